"""Training candidate networks for `netevo evolve`, batched where that is exact.

`train_candidates(candidates, data, cfg)` trains each candidate (a spec, its network, optional weights and
optimizer state, a seed) for the same budget and returns its weights, its optimizer state and its scores on
the validation split. A candidate's result depends only on the candidate, the data and the config: its
initial weights (when it has none) and the order of its minibatches come from its own seed.

Batching. Candidates with the same elaborated architecture (`network_groups.exact_key`: the same nodes,
ops, wiring and shapes; masks may differ) and the same state-dict layout train as one computation: their
parameters and buffers are stacked (`torch.func.stack_module_state`), the forward pass runs under `vmap`
with each candidate's own minibatch indices, and one `torch.optim` optimizer steps the stacked leaves
[K, ...] with the sum of the candidates' losses. The gradient of that sum with respect to candidate k's
slice is the gradient of candidate k's own loss, and for the element-wise optimizers in
`ELEMENTWISE_OPTIMIZERS` every update reads only the same element of the parameter, its gradient and its
state, so stepping the stack *is* stepping each candidate (tests/evolve/test_network_training.py checks this
against training each candidate alone). Scalar optimizer state (Adam's step count) must then be equal
within a group, so candidates are also grouped by it.

Trained one by one instead (same results, no speed-up):
* optimizers that are not element-wise: LBFGS (line search over the whole parameter vector), Adafactor
  (row and column factors), SparseAdam, Muon (orthogonalises each matrix), and any other not listed;
* networks with dropout (p > 0): its random masks under `vmap` cannot be drawn as the candidate alone would.
BatchNorm trains batched: each candidate's running statistics are its own slice of the stacked buffers.

The scheduler (a `torch.optim.lr_scheduler` class) steps after every optimizer step, so its periods
(`step_size`, `T_max`, ...) count steps. A candidate's saved optimizer state is loaded state only: the
hyperparameters (learning rate, ...) are the config's, since a child starts a new training budget.
"""
from __future__ import annotations

import copy
import math
from collections import defaultdict

import attrs
import torch
import torch.nn.functional as F

from ..errors import NetevoError
from ..ir import nodes as ir

ELEMENTWISE_OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Rprop",
                                    "Adagrad", "Adadelta", "ASGD"})
REFUSED_SCHEDULERS = {"ReduceLROnPlateau": "it needs a metric to step on",
                      "LambdaLR": "it needs a Python function", "MultiplicativeLR": "it needs a Python function",
                      "SequentialLR": "it needs scheduler objects", "ChainedScheduler": "it needs scheduler objects"}
SCORE_CHUNK = 4096  # samples per forward when scoring


class TrainConfigError(NetevoError):
    code = "E132"


@attrs.frozen
class TrainConfig:
    epochs: float | None = 1.0  # the budget: passes over the training split ...
    steps: int | None = None  # ... or optimizer steps; given steps take precedence over epochs
    batch_size: int = 64
    optimizer: str = "Adam"  # a torch.optim class name
    optimizer_args: tuple = (("lr", 1e-3),)
    scheduler: str | None = None  # a torch.optim.lr_scheduler class name
    scheduler_args: tuple = ()

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps per candidate: `steps` when given, else `epochs` passes over n_train samples
        (rounded up to whole steps)."""
        if self.epochs is None and self.steps is None:
            raise TrainConfigError("give `epochs` or `steps` as the training budget")
        if self.batch_size < 1:
            raise TrainConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.steps is not None:
            if int(self.steps) < 1:
                raise TrainConfigError(f"steps must be positive, got {self.steps}")
            return int(self.steps)
        if not self.epochs > 0:
            raise TrainConfigError(f"epochs must be positive, got {self.epochs}")
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_train, self.batch_size)))


@attrs.frozen
class Candidate:
    spec: ir.Spec
    network: str
    state: dict | None = None  # None: fresh init seeded by `seed`, as compile_module would init
    opt_state: dict | None = None  # per-candidate optimizer state (as from optimizer.state_dict()), or None
    seed: int = 0  # init (if state is None) and minibatch order come only from this seed


@attrs.frozen
class Trained:
    state: dict
    opt_state: dict
    val_accuracy: float
    val_loss: float
    train_loss: float  # mean minibatch loss over the last epoch's worth of steps
    steps: int


# --- public API -------------------------------------------------------------------------------------


def train_candidates(candidates: list[Candidate], data, cfg: TrainConfig, *, dtype=torch.float32, device="cpu",
                     batched: bool = True) -> list[Trained]:
    """Train every candidate for cfg's budget on data's training split; score it on the validation split."""
    optimizer_class(cfg.optimizer)
    scheduler_class(cfg.scheduler)
    total = cfg.total_steps(len(data.y_train))
    x, y = data.x_train.to(device=device, dtype=dtype), data.y_train.to(device)
    xv, yv = data.x_val.to(device=device, dtype=dtype), data.y_val.to(device)
    results: list[Trained | None] = [None] * len(candidates)
    models = [build_model(c, dtype, device) for c in candidates]
    for model in models:
        _check_outputs(model, x, data.n_classes)
    for group in plan_training_groups(candidates, models, cfg, batched):
        if len(group) == 1 or not batched:
            for i in group:
                results[i] = _train_one(models[i], candidates[i], x, y, xv, yv, cfg, total)
        else:
            for i, trained in zip(group, _train_group([models[i] for i in group], [candidates[i] for i in group],
                                                      x, y, xv, yv, cfg, total)):
                results[i] = trained
    return results


def score_candidates(candidates: list[Candidate], x: torch.Tensor, y: torch.Tensor, *,
                     dtype=torch.float32) -> list[tuple[float, float]]:
    """(accuracy, mean cross-entropy) of each candidate on (x, y), in eval mode."""
    out = []
    for c in candidates:
        model = build_model(c, dtype, x.device)
        out.append(_score(model, x.to(dtype), y))
    return out


# --- models, optimizers, schedulers ----------------------------------------------------------------


_GRAPHS: dict = {}


def network_graph(spec: ir.Spec, network: str):
    """The elaborated graph (checked once per spec and network; specs are frozen, so the cache is safe)."""
    key = (id(spec), network)
    hit = _GRAPHS.get(key)
    if hit is None or hit[0] is not spec:
        from ..passes.check import check
        from ..passes.elaborate import elaborate

        check(spec)
        if len(_GRAPHS) > 512:
            _GRAPHS.clear()
        hit = _GRAPHS[key] = (spec, elaborate(spec, network))
    return hit[1]


def build_model(candidate: Candidate, dtype=torch.float32, device="cpu") -> torch.nn.Module:
    """The candidate's module: its weights, or a fresh init from its seed exactly as
    `torch.manual_seed(seed); compile_module(spec, network)` gives (the global RNG is left as it was)."""
    from ..compiler.build import CompiledNetwork

    graph = network_graph(candidate.spec, candidate.network)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator is what torch.manual_seed seeds for a CPU init (without its accelerator calls)
        torch.default_generator.manual_seed(candidate.seed)
        model = CompiledNetwork(graph)
    model = model.to(device=device, dtype=dtype)
    if candidate.state is not None:
        try:
            model.load_state_dict(candidate.state)
        except RuntimeError as e:
            raise TrainConfigError(f"the weights of a `{candidate.network}` candidate do not fit its spec: "
                                   f"{str(e).splitlines()[0]}", None, "weights must come from the same spec "
                                   "(evolve.inherit maps a parent's weights onto a child)") from None
    return model


def optimizer_class(name: str):
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        from ..errors import did_you_mean

        names = sorted(n for n, c in vars(torch.optim).items() if isinstance(c, type)
                       and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer)
        raise TrainConfigError(f"unknown optimizer `{name}`", None,
                               did_you_mean(name, names) or "torch.optim optimizers: " + ", ".join(names))
    return cls


def scheduler_class(name: str | None):
    if name is None:
        return None
    sched = torch.optim.lr_scheduler
    cls = getattr(sched, name, None)
    if name in REFUSED_SCHEDULERS:
        raise TrainConfigError(f"scheduler `{name}` cannot be used here: {REFUSED_SCHEDULERS[name]}", None,
                               "use a scheduler stepped by count: StepLR, MultiStepLR, ExponentialLR, "
                               "CosineAnnealingLR, OneCycleLR, LinearLR, ...")
    if not (isinstance(cls, type) and issubclass(cls, sched.LRScheduler)):
        raise TrainConfigError(f"unknown learning-rate scheduler `{name}`", None,
                               "give a torch.optim.lr_scheduler class name, e.g. StepLR or CosineAnnealingLR")
    return cls


def make_optimizer(cfg: TrainConfig, params):
    """The optimizer, with torch's default implementation unless the config chooses one. Not the fused
    kernels by default: they round some elements differently from the per-operation path depending on
    where an element sits in the tensor (vector body or scalar tail), so a candidate's result would depend
    on the group it was stacked in (measured: 1 ulp after 15 Adam steps); the default path is bitwise
    the same stacked or alone."""
    args = dict(cfg.optimizer_args)
    try:
        return optimizer_class(cfg.optimizer)(params, **args)
    except (TypeError, ValueError) as e:
        raise TrainConfigError(f"optimizer {cfg.optimizer}: {e}", None,
                               f"see torch.optim.{cfg.optimizer} for its arguments") from None


def make_scheduler(cfg: TrainConfig, optimizer):
    cls = scheduler_class(cfg.scheduler)
    if cls is None:
        return None
    try:
        return cls(optimizer, **dict(cfg.scheduler_args))
    except (TypeError, ValueError) as e:
        raise TrainConfigError(f"scheduler {cfg.scheduler}: {e}", None,
                               f"see torch.optim.lr_scheduler.{cfg.scheduler} for its arguments") from None


def load_optimizer_state(optimizer, opt_state: dict | None) -> None:
    """Load the per-parameter state of `opt_state`; hyperparameters stay the optimizer's own."""
    if not opt_state:
        return
    try:  # cloned: torch keeps the given step tensors, and stepping would change the caller's state
        optimizer.load_state_dict({"state": clone_tree(opt_state.get("state", {})),
                                   "param_groups": optimizer.state_dict()["param_groups"]})
    except (KeyError, ValueError, RuntimeError) as e:
        raise TrainConfigError(f"the optimizer state does not fit the network: {e}", None,
                               "optimizer state must come from the same optimizer and network") from None


def clone_tree(value):
    """A copy of nested dicts / lists / tuples whose tensors are cloned (optimizer state dicts alias live state)."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: clone_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clone_tree(v) for v in value)
    return value


# --- minibatches -------------------------------------------------------------------------------------


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-n_train // min(batch_size, n_train))


def minibatch_indices(seed: int, n_train: int, batch_size: int, total: int) -> list[torch.Tensor]:
    """`total` index tensors: successive epochs of a permutation drawn from `seed`, cut into batches."""
    gen = torch.Generator().manual_seed(int(seed))
    out: list[torch.Tensor] = []
    while len(out) < total:
        out += list(torch.randperm(n_train, generator=gen).split(batch_size))
    return out[:total]


# --- grouping ------------------------------------------------------------------------------------------


def _batchable(model, cfg) -> str | None:
    """Why this candidate trains alone, or None."""
    if cfg.optimizer not in ELEMENTWISE_OPTIMIZERS:
        return f"{cfg.optimizer} is not an element-wise optimizer"
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return "dropout's random masks under vmap differ from the candidate's own"
    return None


def _scalar_state_key(opt_state: dict | None) -> tuple:
    """The optimizer state that cannot be stacked (step counts): candidates stack only when it is equal."""
    if not opt_state:
        return ()
    out = []
    for index, entry in sorted(opt_state.get("state", {}).items()):
        out.append((index, tuple(sorted((k, _scalar_value(v)) for k, v in entry.items()))))
    return tuple(out)


def _scalar_value(v):
    if torch.is_tensor(v):
        return float(v) if v.dim() == 0 else ("tensor", tuple(v.shape))
    return float(v) if isinstance(v, (int, float)) else repr(v)


def plan_training_groups(candidates, models, cfg, batched: bool = True) -> list[list[int]]:
    """Indices of candidates that train together (one by one: singletons), in first-seen order."""
    from .network_groups import exact_key

    if not batched:
        return [[i] for i in range(len(candidates))]
    groups: dict = defaultdict(list)
    for i, (c, model) in enumerate(zip(candidates, models)):
        if _batchable(model, cfg) is not None:
            groups[("alone", i)].append(i)
            continue
        layout = tuple((k, tuple(t.shape), t.dtype) for k, t in model.state_dict().items())
        key = (exact_key(network_graph(c.spec, c.network)), layout, _scalar_state_key(c.opt_state))
        groups[key].append(i)
    return list(groups.values())


# --- one candidate -------------------------------------------------------------------------------------


def _train_one(model, cand, x, y, xv, yv, cfg, total) -> Trained:
    model.train()
    optimizer = make_optimizer(cfg, list(model.parameters()))
    load_optimizer_state(optimizer, cand.opt_state)
    scheduler = make_scheduler(cfg, optimizer)
    losses = []
    for idx in minibatch_indices(cand.seed, len(y), cfg.batch_size, total):
        idx = idx.to(x.device)

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            return loss

        losses.append(optimizer.step(closure).detach())
        if scheduler is not None:
            scheduler.step()
    acc, loss = _score(model, xv, yv)
    return Trained({k: v.detach().clone() for k, v in model.state_dict().items()}, clone_tree(optimizer.state_dict()),
                   acc, loss, _last_epoch_mean(torch.stack(losses)[:, None], len(y), cfg.batch_size)[0], total)


@torch.no_grad()
def _score(model, x, y) -> tuple[float, float]:
    was = model.training
    model.eval()
    correct, total_loss = 0, 0.0
    for a in range(0, len(y), SCORE_CHUNK):
        out = model(x[a:a + SCORE_CHUNK])
        correct += int((out.argmax(-1) == y[a:a + SCORE_CHUNK]).sum())
        total_loss += float(F.cross_entropy(out, y[a:a + SCORE_CHUNK], reduction="none").double().sum())
    model.train(was)
    return correct / len(y), total_loss / len(y)


def _last_epoch_mean(losses: torch.Tensor, n_train: int, batch_size: int) -> list[float]:
    """losses [steps, K] -> per candidate the mean over the last epoch's worth of steps."""
    per = steps_per_epoch(n_train, batch_size)
    return [float(v) for v in losses[-per:].double().mean(0)]


def _check_outputs(model, x, n_classes):
    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            out = model(x[:2])
        except NetevoError as e:
            raise TrainConfigError(f"the training data does not fit the network: {e.message}", None, e.hint) from None
        finally:
            model.train(was)
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[1] != n_classes:
        shape = list(out.shape[1:]) if torch.is_tensor(out) else "several outputs"
        raise TrainConfigError(f"network `{model.graph_name}` outputs {shape} per sample; the task has "
                               f"{n_classes} classes", None, f"end the network with one output [B, {n_classes}]")


# --- a group, batched ------------------------------------------------------------------------------------


def _train_group(models, cands, x, y, xv, yv, cfg, total) -> list[Trained]:
    from torch.func import functional_call, stack_module_state, vmap

    k = len(models)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    base.train()
    names = list(params)
    optimizer = make_optimizer(cfg, [params[n] for n in names])
    _load_stacked_state(optimizer, [c.opt_state for c in cands], names, params)
    scheduler = make_scheduler(cfg, optimizer)

    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))

    def batched_loss(p, b, xb, yb):
        # the forward pass under vmap; the loss per candidate with the very kernel training alone uses,
        # so losses (and the reported training loss) are the same bits stacked or alone
        logits = forward(p, b, xb)
        return torch.stack([F.cross_entropy(logits[i], yb[i]) for i in range(len(yb))])
    orders = [minibatch_indices(c.seed, len(y), cfg.batch_size, total) for c in cands]
    losses = []
    for step in range(total):
        idx = torch.stack([o[step] for o in orders]).to(x.device)  # [K, batch]

        def closure():
            optimizer.zero_grad()
            per = batched_loss(params, buffers, x[idx], y[idx])
            per.sum().backward()
            closure.per = per.detach()
            return per.sum()

        optimizer.step(closure)
        losses.append(closure.per)
        if scheduler is not None:
            scheduler.step()
    train_loss = _last_epoch_mean(torch.stack(losses), len(y), cfg.batch_size)
    scores = _score_stacked(base, params, buffers, xv, yv)
    state_keys = list(models[0].state_dict())
    stacked = {**params, **buffers}
    opt_states = _slice_optimizer_state(optimizer.state_dict(), k)
    return [Trained({key: stacked[key][i].detach().clone() for key in state_keys}, opt_states[i],
                    scores[i][0], scores[i][1], train_loss[i], total) for i in range(k)]


@torch.no_grad()
def _score_stacked(base, params, buffers, x, y) -> list[tuple[float, float]]:
    from torch.func import functional_call, vmap

    base.eval()
    k = next(iter(params.values())).shape[0]
    correct = torch.zeros(k, dtype=torch.long, device=x.device)
    total = torch.zeros(k, dtype=torch.float64, device=x.device)
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), in_dims=(0, 0, None))
    for a in range(0, len(y), SCORE_CHUNK):
        out = forward(params, buffers, x[a:a + SCORE_CHUNK])  # [K, n, classes]
        yb = y[a:a + SCORE_CHUNK]
        correct += (out.argmax(-1) == yb).sum(1)
        # per candidate as `_score` computes it, so the scores are the same bits stacked or alone
        total += torch.stack([F.cross_entropy(o, yb, reduction="none").double().sum() for o in out])
    base.train()
    return [(int(c) / len(y), float(t) / len(y)) for c, t in zip(correct, total)]


def _load_stacked_state(optimizer, opt_states, names, params) -> None:
    """Stack the candidates' optimizer states (equal scalar entries: see `plan_training_groups`)."""
    if not any(opt_states):
        return
    if not all(opt_states):
        raise TrainConfigError("internal: candidates with and without optimizer state in one group")
    stacked = {}
    for index, name in enumerate(names):
        entries = [s.get("state", {}).get(index) for s in opt_states]
        if entries[0] is None:
            continue
        entry = {}
        for key, value in entries[0].items():
            if torch.is_tensor(value) and value.dim() > 0:
                entry[key] = torch.stack([e[key] for e in entries])
            else:
                entry[key] = value
        stacked[index] = entry
    load_optimizer_state(optimizer, {"state": stacked})


def _slice_optimizer_state(sd: dict, k: int) -> list[dict]:
    """Candidate i's optimizer.state_dict(): stacked entries [K, ...] sliced, scalar entries copied."""
    out = []
    for i in range(k):
        state = {index: {key: (v[i].clone() if torch.is_tensor(v) and v.dim() > 0 else
                               (v.clone() if torch.is_tensor(v) else v)) for key, v in entry.items()}
                 for index, entry in sd["state"].items()}
        out.append({"state": state, "param_groups": copy.deepcopy(sd["param_groups"])})
    return out


__all__ = ["TrainConfig", "Candidate", "Trained", "train_candidates", "score_candidates", "build_model",
           "minibatch_indices", "plan_training_groups", "ELEMENTWISE_OPTIMIZERS", "TrainConfigError"]
