"""Tuning a champion's individual weights: the WANN paper's weight-tuning step.

Gaier & Ha (2019), sec. 4, report a fourth setting besides random, best and ensemble shared weights:
"tuned weights", the champion's individual connection weights trained. `tune` reproduces that step:

1. the genome (a run folder's champion, or a spec's one genome) is scored at every shared weight;
   the weight with the highest mean reward (classification: on the training split; control: on 100
   tuning-side episodes) becomes every enabled edge's starting weight (an edge's own `w=` is kept);
2. classification: Adam on the cross-entropy of the training split in shuffled minibatches, through
   `CompiledWann`'s differentiable per-edge gather; control: an evolution strategy (antithetic
   Gaussian perturbations, centred-rank fitness, Adam on the estimated gradient, as OpenAI-ES,
   Salimans et al. 2017), all perturbations x episodes in one batched rollout, with fresh starting
   states every iteration (`task.start_generation(seed, iteration)`); of the starting weights and those
   after every tenth of the steps, the best on the selection episodes is kept;
3. before and after are measured the same way, through `netevo_dsl.evaluate`: classification train
   and held-out test accuracy; control mean +- std over 100 fresh episodes from a held-out draw
   (`EVAL_DRAW`) that tuning never sees. Re-evaluating the written spec gives the reported numbers.

The tuned genome carries `w=` on every enabled edge and prints through the printer.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import attrs
import numpy as np
import torch

from ..errors import UsageError
from ..ir import nodes as ir
from ..ir.wann import require_valid, shared_weights

# Draw indices of the control task's starting states: tuning iterations use 0, 1, ...; the shared
# weight is chosen on SELECT_DRAW and before/after are measured on EVAL_DRAW, which tuning never uses.
SELECT_DRAW = 1_000_000
EVAL_DRAW = 2_000_000
EVAL_EPISODES = 100


@attrs.frozen
class TuneBudget:
    """How long to tune: `iterations` (classification: epochs; control: ES steps) and an optional cap
    on the CPU seconds of this process (checked after each epoch or step)."""

    iterations: int | None = None  # None: DEFAULT_ITERATIONS of the task's kind
    cpu_seconds: float | None = None
    lr: float | None = None  # Adam's step size; None: the kind's default
    batch_size: int = 128  # classification minibatch
    population: int = 32  # ES perturbations per step (even: antithetic pairs)
    sigma: float = 0.1  # ES perturbation scale
    episodes: int = 4  # ES episodes per perturbation and step


DEFAULT_ITERATIONS = {"classification": 60, "control": 40}
DEFAULT_LR = {"classification": 0.03, "control": 0.03}


@attrs.define
class TuneResult:
    genome: ir.WannGenome  # the tuned genome: `w=` on every enabled edge
    source_genome: ir.WannGenome
    task: str
    task_params: dict
    best_weight: float
    shared_weights: tuple
    before: dict  # metric -> value, at the best shared weight
    after: dict  # the same metrics for the tuned genome
    iterations: int  # epochs or ES steps done
    cpu_seconds: float
    seed: int
    history: list  # per iteration: training loss (classification) or mean ES reward (control)

    def to_json(self) -> dict:
        return {"genome": self.genome.name, "task": self.task, "task_params": _plain(self.task_params),
                "best_shared_weight": self.best_weight, "shared_weights": list(self.shared_weights),
                "before": self.before, "after": self.after, "iterations": self.iterations,
                "cpu_seconds": round(self.cpu_seconds, 3), "seed": self.seed, "history": self.history}


def tune(genome: ir.WannGenome, task, task_params: dict | None = None, *, weights=None, budget: TuneBudget | None = None,
         seed: int = 0) -> TuneResult:
    """Tune `genome`'s individual weights on `task` (a name; `task_params` its arguments).

    genome: a WANN genome, or a spec holding exactly one. weights: the shared weights to start from
    (default: the genome's `weights`). The result holds the tuned genome and the before/after table."""
    from ..runtime.tasks import make_task

    if isinstance(genome, ir.Spec):
        found = genome.of_kind(ir.WannGenome)
        if len(found) != 1:
            raise UsageError(f"the spec holds {len(found)} WANN genomes; tune takes exactly one", code="E194")
        genome = found[0]
    if not isinstance(genome, ir.WannGenome):
        raise UsageError(f"tune takes a WANN genome, not {type(genome).__name__}", code="E194")
    require_valid(genome)
    budget = budget or TuneBudget()
    params = dict(task_params or {})
    task_object = make_task((task, params))
    if task_object.kind not in ("classification", "control"):
        raise UsageError(f"task `{task}` is a {task_object.kind} task; `netevo tune` tunes WANN genomes on "
                         "classification and control tasks", code="E195")
    if len(genome.inputs) - list(genome.inputs).count("bias") != task_object.n_inputs or \
            len(genome.outputs) != task_object.n_outputs:
        raise UsageError(f"genome `{genome.name}` does not fit task `{task}` ({task_object.n_inputs} inputs, "
                         f"{task_object.n_outputs} outputs)", hint="pass the task it was evolved on with --task",
                         code="E195")
    weights = tuple(float(w) for w in (weights or shared_weights(genome)))
    _check_budget(budget)
    iterations = budget.iterations or DEFAULT_ITERATIONS[task_object.kind]
    lr = budget.lr if budget.lr is not None else DEFAULT_LR[task_object.kind]
    torch.manual_seed(seed)
    start = time.process_time()
    if task_object.kind == "classification":
        best, vector, done, history = _tune_classifier(genome, task_object, weights, iterations, lr, budget, seed,
                                                       start)
    else:
        best, vector, done, history = _tune_control(genome, task_object, weights, iterations, lr, budget, seed,
                                                    start)
    tuned = with_edge_weights(genome, vector)
    measure = _measure_classification if task_object.kind == "classification" else _measure_control
    before = measure(genome, task, params, best)
    after = measure(tuned, task, params, best)
    return TuneResult(tuned, genome, task, params, best, weights, before, after, done,
                      time.process_time() - start, seed, history)


def _check_budget(budget: TuneBudget) -> None:
    def bad(what, hint):
        raise UsageError(f"tune budget: {what}", hint=hint, code="E196")

    if budget.iterations is not None and not 1 <= budget.iterations < SELECT_DRAW:
        bad(f"iterations must be 1 .. {SELECT_DRAW - 1}, got {budget.iterations}", "e.g. --iterations 50")
    if budget.cpu_seconds is not None and not (budget.cpu_seconds > 0 and math.isfinite(budget.cpu_seconds)):
        bad(f"the CPU-seconds cap must be positive, got {budget.cpu_seconds}", "e.g. --cpu-seconds 60")
    if budget.lr is not None and not (budget.lr > 0 and math.isfinite(budget.lr)):
        bad(f"the learning rate must be positive, got {budget.lr}", "e.g. --lr 0.03")
    if budget.batch_size < 1 or budget.episodes < 1 or budget.population < 2 or budget.population % 2:
        bad("batch size and episodes must be positive, the ES population even and at least 2",
            "e.g. --population 32 --episodes 4")
    if not (budget.sigma > 0 and math.isfinite(budget.sigma)):
        bad(f"sigma must be positive, got {budget.sigma}", "e.g. --sigma 0.1")


def with_edge_weights(genome: ir.WannGenome, vector: dict) -> ir.WannGenome:
    """`genome` with `vector[(src, dst)]` as the weight of each enabled edge named in it."""
    edges = tuple(attrs.evolve(e, weight=float(vector[(e.src, e.dst)])) if e.enabled and (e.src, e.dst) in vector
                  else e for e in genome.edges)
    return attrs.evolve(genome, edges=edges)


def _out_of_time(start: float, budget: TuneBudget) -> bool:
    return budget.cpu_seconds is not None and time.process_time() - start >= budget.cpu_seconds


# --- classification: Adam on the training split's cross-entropy -------------------------------


def _logits(task, outputs: torch.Tensor) -> torch.Tensor:
    """[..., C] class logits from a genome's outputs (one output: the second class's logit against 0)."""
    return torch.cat([torch.zeros_like(outputs), outputs], -1) if task.n_outputs == 1 else outputs


def _tune_classifier(genome, task, weights, iterations, lr, budget, seed, start):
    from ..compiler.wann import CompiledWann

    module = CompiledWann(genome, dtype=torch.float64)
    x = task.features[: task.n_train].to(torch.float64)
    y = task.labels[: task.n_train]
    with torch.no_grad():  # the best shared weight: the lowest training cross-entropy
        outputs = module(x, list(weights))  # [W, N, O]
        losses = [torch.nn.functional.cross_entropy(_logits(task, o), y).item() for o in outputs]
    finite = [k for k, v in enumerate(losses) if math.isfinite(v)]
    best = weights[min(finite, key=lambda k: losses[k])] if finite else weights[0]
    vector = module.edge_weights_at(best).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([vector], lr=lr)
    rng = np.random.default_rng(seed)
    history, done = [], 0
    for _ in range(iterations):
        order = torch.from_numpy(rng.permutation(task.n_train))
        total = 0.0
        for first in range(0, task.n_train, budget.batch_size):
            rows = order[first:first + budget.batch_size]
            loss = torch.nn.functional.cross_entropy(_logits(task, module(x[rows], edge_weights=vector)[0]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        done += 1
        history.append(round(total / task.n_train, 6))
        if _out_of_time(start, budget):
            break
    return best, _as_dict(module, vector), done, history


def _measure_classification(genome, task, params, best) -> dict:
    from ..runtime.evaluate import evaluate

    scores = evaluate([genome], (task, params), [best], dtype=torch.float64, device="cpu")
    _require_scored(scores, genome)
    m = scores.metrics
    return {"train_accuracy": _num(m["train_accuracy"][0, 0]), "test_accuracy": _num(m["test_accuracy"][0, 0]),
            "test_reward": _num(m["test_reward"][0, 0])}


# --- control: an evolution strategy on fresh episodes -----------------------------------------


def _tune_control(genome, task, weights, iterations, lr, budget, seed, start):
    from ..compiler.wann import CompiledWann
    from ..runtime.tasks import make_task

    module = CompiledWann(genome, dtype=torch.float64)
    chooser = make_task((task.name, {**task.params, "repeats": EVAL_EPISODES, "starts": None}))
    chooser.start_generation(seed, SELECT_DRAW)
    with torch.no_grad():  # the best shared weight: the highest mean return on tuning-side episodes
        table = torch.stack([module.edge_weights_at(w) for w in weights])
        rewards = _returns(module, chooser, table)
    rewards = torch.where(torch.isfinite(rewards), rewards, torch.full_like(rewards, -math.inf))
    best = weights[int(rewards.argmax())]
    theta = module.edge_weights_at(best).clone()
    trainer = make_task((task.name, {**task.params, "repeats": budget.episodes, "starts": None}))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([theta.requires_grad_(True)], lr=lr)
    half = budget.population // 2
    # centred ranks (Salimans et al. 2017): fitness -0.5 .. 0.5 whatever the returns' scale
    ranks = torch.linspace(-0.5, 0.5, budget.population, dtype=torch.float64)
    # the weights kept: the best on the selection episodes of the start and of every `check`-th step
    # (an ES step is noisy; tuning never returns weights that score below its starting point there)
    kept, kept_score = theta.detach().clone(), float(rewards.max())
    check = max(1, iterations // 10)
    history, done = [], 0
    for iteration in range(iterations):
        trainer.start_generation(seed, iteration)  # fresh starting states every step
        noise = torch.randn(half, len(theta), dtype=torch.float64, generator=generator)
        noise = torch.cat([noise, -noise])  # antithetic pairs
        with torch.no_grad():
            returns = _returns(module, trainer, theta.detach() + budget.sigma * noise)
        returns = torch.where(torch.isfinite(returns), returns, torch.full_like(returns, -math.inf))
        fitness = torch.empty_like(returns)
        fitness[returns.argsort(stable=True)] = ranks
        gradient = (fitness[:, None] * noise).sum(0) / (budget.population * budget.sigma)
        optimizer.zero_grad()
        theta.grad = -gradient  # ascent
        optimizer.step()
        done += 1
        history.append(round(float(returns[torch.isfinite(returns)].mean()), 4) if torch.isfinite(returns).any()
                       else None)
        last = iteration == iterations - 1 or _out_of_time(start, budget)
        if done % check == 0 or last:
            with torch.no_grad():
                score = float(_returns(module, chooser, theta.detach()[None])[0])
            if score > kept_score:  # NaN never wins
                kept, kept_score = theta.detach().clone(), score
        if last:
            break
    return best, _as_dict(module, kept), done, history


def _returns(module, task, vectors: torch.Tensor) -> torch.Tensor:
    """[N] mean return over the task's episodes for each of N edge-weight vectors, in one rollout."""
    def policy(obs):  # [N, R, n_in] -> [N, R, n_out]
        return module(obs, edge_weights=vectors)

    outcome = task.rollout(policy, (len(vectors),), torch.float64)
    return outcome["reward"].masked_fill(outcome["nonfinite"], float("nan"))


def _measure_control(genome, task, params, best) -> dict:
    from ..runtime.evaluate import evaluate
    from ..runtime.tasks import make_task

    held_out = make_task((task, {**params, "repeats": EVAL_EPISODES, "starts": None}))
    held_out.start_generation(0, EVAL_DRAW)
    scores = evaluate([genome], held_out, [best], dtype=torch.float64, device="cpu")
    _require_scored(scores, genome)
    episodes = scores.metrics["episode_reward"][0, 0]
    return {"mean_reward": _num(episodes.mean()), "std_reward": _num(episodes.std(correction=0)),
            "episodes": EVAL_EPISODES}


# --- shared ------------------------------------------------------------------------------------


def _as_dict(module, vector: torch.Tensor) -> dict:
    return {key: float(v) for key, v in zip(module.edge_keys, vector.detach().tolist())}


def _require_scored(scores, genome) -> None:
    if scores.failures:
        raise UsageError(f"genome `{genome.name}` could not be scored: {scores.failures[0]}",
                         hint="tuning needs finite outputs; try a smaller --lr or --sigma", code="E197")


def _num(x) -> float:
    return round(float(x), 10)


def _plain(params: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
