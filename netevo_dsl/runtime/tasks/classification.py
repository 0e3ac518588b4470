"""Classification tasks under the WANN protocol (Gaier & Ha 2019).

Fixed, seeded, stratified train/test split. Features are scaled as the task's
`scale` says: divided by a number (digits: 16, the authors' choice, giving
[0, 1]) or z-scored with the training split's statistics ("z"). The reward is
minus the mean cross-entropy of the softmax over the genome's linear outputs on
a fresh minibatch of (at most) 1,000 *training* samples per evaluation, as the
authors' `ClassifyEnv` draws one per reset; in a run the minibatch is drawn from
the run's seed and the generation number (`start_generation`). Accuracies are
measured on the whole training split and on the held-out test split, a split
the authors did not have for digits (see docs/tasks.md).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import UsageError

# The authors' ClassifyEnv draws 1,000 samples per evaluation; smaller training sets are used whole.
DEFAULT_MINIBATCH = 1000


def draw_seed(seed: int, index: int) -> int:
    """The seed of draw `index` (a generation, or a standalone evaluation's count) of a run
    seeded `seed`: one 32-bit word of numpy's SeedSequence, so neighbouring seeds do not overlap."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def scale_features(features: np.ndarray, train_idx: np.ndarray, scale, name: str) -> np.ndarray:
    """features divided by `scale` (a positive number), or z-scored with the training rows' statistics."""
    if scale == "z":
        mean = features[train_idx].mean(0)
        std = features[train_idx].std(0)
        std[std == 0] = 1.0  # constant pixels (digits' borders) stay 0 instead of dividing by 0
        return (features - mean) / std
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise UsageError(f"task `{name}`: scale must be \"z\" (z-score) or a positive number, got {scale!r}",
                         hint='e.g. scale=16 (digits\' pixels 0..16 to [0, 1], the authors\' choice) or scale="z"',
                         code="E190")
    return features / float(scale)


class ClassificationTask:
    kind = "classification"
    # metric -> 2 for [population, weights], 1 for [population]
    metric_dims = {"reward": 2, "train_accuracy": 2, "test_accuracy": 2, "test_reward": 2, "best_weight": 1,
                   "best_train_accuracy": 1, "best_test_accuracy": 1, "ensemble_train_accuracy": 1,
                   "ensemble_test_accuracy": 1}

    def __init__(
        self,
        name: str,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        test_fraction: float = 0.2,
        seed: int = 0,
        batch_size: int | None = None,
        outputs: int | None = None,
        scale="z",
        params: dict | None = None,
    ):
        self.name = name
        self.params = dict(params or {})
        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        classes, label_ids = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise UsageError(f"task `{name}` has {len(classes)} class; classification needs at least 2")
        if not 0.0 <= test_fraction < 1.0:
            raise UsageError(f"task `{name}`: test_fraction must be in [0, 1), got {test_fraction}")
        train_idx, test_idx = _stratified_split(label_ids, test_fraction, seed)
        # Within each split, samples are grouped by label: the scorer then reads each
        # label's logits as plain slices instead of gathering per sample.
        order = np.concatenate([train_idx[np.argsort(label_ids[train_idx], kind="stable")],
                                test_idx[np.argsort(label_ids[test_idx], kind="stable")]])
        self.scale = scale
        self.features = torch.from_numpy(scale_features(features, train_idx, scale, name)[order])  # [N, F], train first
        self.rows = order  # self.features[k] is row self.rows[k] of the data set
        self.labels = torch.from_numpy(label_ids[order].astype(np.int64))
        change = np.flatnonzero(np.diff(label_ids[order], prepend=-1) != 0)
        # (label, first, stop) runs of equal labels, in sample order
        self.label_runs = [(int(label_ids[order][a]), int(a), int(b))
                           for a, b in zip(change, np.append(change[1:], len(order)))]
        self.n_train = len(train_idx)
        self.n_test = len(test_idx)
        self.classes = tuple(classes.tolist())
        self.n_inputs = features.shape[1]
        self.n_classes = len(classes)
        self.n_outputs = self.n_classes if outputs is None else int(outputs)
        if self.n_outputs not in (self.n_classes, 1) or (self.n_outputs == 1 and self.n_classes != 2):
            raise UsageError(f"task `{name}` has {self.n_classes} classes; a genome may have {self.n_classes} outputs"
                             + (" or 1 (logit of the second class)" if self.n_classes == 2 else ""))
        if batch_size is None:
            batch_size = DEFAULT_MINIBATCH
        if not 1 <= int(batch_size):
            raise UsageError(f"task `{name}`: batch_size must be positive, got {batch_size}")
        self.batch_size = min(int(batch_size), self.n_train)
        self.seed = seed
        self.draw_base = seed  # the run's seed once `start_generation` is called; the split's seed before
        self.evaluations = 0  # minibatch counter: evaluation k always sees the same minibatch

    @property
    def n_samples(self) -> int:
        return self.n_train + self.n_test

    def start_generation(self, run_seed: int, generation: int) -> dict:
        """The next evaluation draws generation `generation`'s minibatch of a run seeded `run_seed`
        (the same on every machine and after a resume); returns what the run's log records."""
        self.draw_base, self.evaluations = int(run_seed), int(generation)
        if self.batch_size == self.n_train:
            return {"minibatch": "whole training split"}
        return {"minibatch_seed": draw_seed(run_seed, generation)}

    def minibatch_positions(self, seed: int) -> np.ndarray:
        """Positions (into the training rows of `self.features`) of the minibatch drawn with `seed`:
        the first `batch_size` of a random permutation, as the authors' `np.random.permutation(n)[:1000]`."""
        return np.random.default_rng(seed).permutation(self.n_train)[: self.batch_size]

    def next_batch_mask(self) -> torch.Tensor:
        """Bool [N] marking this evaluation's training minibatch; advances the counter."""
        mask = torch.zeros(self.n_samples, dtype=torch.bool)
        if self.batch_size == self.n_train:
            mask[: self.n_train] = True
            return mask
        seed = draw_seed(self.draw_base, self.evaluations)
        self.evaluations += 1
        mask[torch.from_numpy(self.minibatch_positions(seed))] = True
        return mask

    def scorer(self, n_individuals: int, weights: torch.Tensor, batch_mask: torch.Tensor,
               metrics=None) -> "ClassificationScorer":
        return ClassificationScorer(self, n_individuals, weights, batch_mask, metrics)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if test_fraction == 0:
        return np.arange(len(labels)), np.arange(0)
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                   random_state=seed)
    return np.sort(train), np.sort(test)


# What each metric beyond the reward costs the scorer: the log-probability of the label on the
# test split, which samples each weight classifies correctly, or the ensemble's votes.
_NEEDS = {"test_reward": "test_logp", "train_accuracy": "correct", "test_accuracy": "correct",
          "best_weight": "correct", "best_train_accuracy": "correct", "best_test_accuracy": "correct",
          "ensemble_train_accuracy": "ensemble", "ensemble_test_accuracy": "ensemble"}


class Scratch:
    """Named scratch tensors, reused from block to block: fresh large allocations cost page
    faults on every block."""

    def __init__(self):
        self._space: dict = {}

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """A tensor of `shape` with `like`'s dtype and device; its contents are undefined."""
        n = math.prod(shape)
        space = self._space.get(name)
        if space is None or space.numel() < n or space.dtype != like.dtype or space.device != like.device:
            space = self._space[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return space[:n].view(shape)


class ClassificationScorer:
    """Accumulates rewards and accuracies over blocks of samples.

    The batched evaluator feeds it sample blocks so that outputs never exist for the
    whole data set at once; the reference feeds everything at once. Both go through
    this one definition of the reward and the metrics. `metrics` (default: all) names
    the metrics to compute; the reward always is, with the same bits whatever else is.
    """

    def __init__(self, task: ClassificationTask, n_individuals: int, weights: torch.Tensor, batch_mask: torch.Tensor,
                 metrics=None):
        self.task = task
        self.weights = weights
        self.wanted = frozenset(task.metric_dims if metrics is None else {"reward", *metrics})
        self.needs = {_NEEDS[m] for m in self.wanted if m in _NEEDS}
        device = weights.device
        P, W = n_individuals, len(weights)
        acc = torch.float64  # sums over thousands of samples: accumulate in float64
        is_train = (torch.arange(task.n_samples, device=device) < task.n_train).to(acc)
        self.membership = torch.stack([batch_mask.to(device, acc), is_train, 1.0 - is_train])  # [3, N]
        self.reward_sum = torch.zeros(P, W, dtype=acc, device=device)
        self.test_logp_sum = torch.zeros(P, W, dtype=acc, device=device)
        self.train_correct = torch.zeros(P, W, dtype=acc, device=device)
        self.test_correct = torch.zeros(P, W, dtype=acc, device=device)
        self.ensemble_train_correct = torch.zeros(P, dtype=acc, device=device)
        self.ensemble_test_correct = torch.zeros(P, dtype=acc, device=device)
        self.nonfinite = torch.zeros(P, W, dtype=torch.bool, device=device)
        # minibatch, and test when the test reward is wanted
        self._logp_sums = torch.zeros(1 + ("test_logp" in self.needs), P * W, dtype=acc, device=device)
        self._pending = None  # values of a segment that the last block ended inside
        self.n_batch = int(batch_mask.sum())
        self._scratch = Scratch()  # for blocks scored one after another (`add`)

    def add(self, outputs: torch.Tensor, samples: slice) -> None:
        """outputs: [P, W, b, O] for the samples in `samples` (a slice of the task's samples)."""
        self.accept(self.block_scores(outputs, samples, self._scratch), samples)

    def block_scores(self, outputs: torch.Tensor, samples: slice, scratch: "Scratch | None" = None) -> dict:
        """A block's share of the scores, for `accept`. It reads the scorer without changing it,
        so blocks may be scored on several threads at once, each with its own `scratch`; the
        block's masked log-probabilities are then its own tensor (`scratch` None) or reused
        space that the next block overwrites (`scratch` given: accept first)."""
        # Work on [P, O, W, b]: the batched evaluator's outputs are laid out that way, and
        # reductions over a middle dimension vectorise where reductions over a short
        # strided last dimension do not.
        scratch = Scratch() if scratch is None else scratch
        x = outputs.permute(0, 3, 1, 2)
        if self.task.n_outputs == 1:  # one logit for the second class against an implicit 0
            x = torch.cat([torch.zeros_like(x), x], dim=1)
        runs = _runs_in(self.task.label_runs, samples)
        high = x.amax(1)  # [P, W, b]; amax propagates NaN and +inf
        # NaN and +inf survive amax, -inf survives amin: two small reductions find them all
        low = x.amin(1)
        part = {"nonfinite": ~(torch.isfinite(high.amax(-1)) & torch.isfinite(low.amin(-1)))}
        # exp of large negative numbers takes a slow path on the CPU; below e^-80 a class's share
        # of the softmax is immaterial (1e-35), so it is floored there, when any value is that low
        # (on a GPU always: the floor is cheap there, and asking would wait for the device).
        # (the largest gap, not `(gap < 80).all()`: a reduction over bools is several times slower;
        # a NaN gap floors, as before)
        floor = x.is_cuda or not float((high - low).amax()) < 80.0
        probs = None
        if "ensemble" in self.needs:  # the ensemble reads every class's probability
            probs = torch.sub(x, high.unsqueeze(1), out=scratch.get("probs", x.shape, x))
            if floor:
                probs.clamp_min_(-80.0)
            total = ordered_sum(probs.exp_(), 1)  # not .sum(1): see ordered_sum
        else:  # the same operations one class at a time, on slices that stay in cache
            total = _exp_sum(x, high, floor, scratch.get("term", high.shape, high))
        at_label, earlier = _label_slices(x, runs, earlier="correct" in self.needs)
        if probs is None:  # at_label - high - log(total) in scratch space: the same operations
            label_logp = torch.sub(at_label, high, out=scratch.get("term", high.shape, high)).sub_(total.log_())
        else:  # the ensemble still reads total
            label_logp = at_label - high - total.log()
        P, W, b = x.shape[0], x.shape[2], x.shape[3]
        # every per-sample quantity against (minibatch, train, test) membership, one product each
        membership = self.membership[:, samples].t()  # [b, 3]
        # counts are whole numbers, exact in float64 in any order: one product each. The log-
        # probability sums are not, so they go through `_add_segment_sums`, whose order of
        # additions is fixed per individual (not by the block size, the batch or the metrics).
        rows = membership[:, 0::2] if "test_logp" in self.needs else membership[:, :1]
        # float32 * float64 converts, then multiplies: the bits of .to(float64) * rows, in one pass
        shape = (rows.shape[1], P * W, b)
        masked = scratch.get("masked", shape, self.membership) if scratch is self._scratch else None
        part["masked"] = torch.mul(label_logp.view(1, -1, b), rows.t().unsqueeze(1), out=masked)
        if "correct" in self.needs:
            correct = _predicts(at_label, earlier, high)
            part["correct"] = (correct.view(-1, b).to(torch.float64) @ membership).view(P, W, 3)
        if "ensemble" in self.needs:
            # W times the mean softmax over weights (a sum is cheaper than a mean over this
            # dimension; the tolerance of `_predicts` is scaled to match)
            ensemble_sum = ordered_sum(probs.div_(total.unsqueeze(1)), 2)  # [P, O, b]
            at_label_m, earlier_m = _label_slices(ensemble_sum.unsqueeze(2), runs)
            ensemble = _predicts(at_label_m, earlier_m, ensemble_sum.amax(1, keepdim=True), scale=W).squeeze(1)
            part["ensemble"] = ensemble.view(-1, b).to(torch.float64) @ membership  # [P, 3]
        return part

    def accept(self, part: dict, samples: slice) -> None:
        """Add a block's `block_scores`; blocks must come in sample order."""
        self.nonfinite |= part["nonfinite"]
        self._add_logp(part["masked"], samples.stop)  # [1 or 2, P * W, b]: minibatch, test
        if "correct" in part:
            self.train_correct += part["correct"][..., 1]
            self.test_correct += part["correct"][..., 2]
        if "ensemble" in part:
            self.ensemble_train_correct += part["ensemble"][:, 1]
            self.ensemble_test_correct += part["ensemble"][:, 2]

    def _add_logp(self, masked: torch.Tensor, stop: int) -> None:
        """Sums of whole segments; a block that ends inside a segment leaves the rest of it
        pending for the next block (blocks arrive in sample order), the data set's end pads it."""
        if self._pending is not None:
            masked = torch.cat([self._pending, masked], -1)
            self._pending = None
        whole = masked.shape[-1] // SEGMENT * SEGMENT
        if whole < masked.shape[-1]:
            if stop < self.task.n_samples:
                self._pending = masked[..., whole:].clone()
                masked = masked[..., :whole]
            else:
                masked = torch.nn.functional.pad(masked, (0, whole + SEGMENT - masked.shape[-1]))
        if masked.shape[-1]:
            _add_segment_sums(self._logp_sums, masked)

    def finish(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """reward [P, W] and metrics; `self.nonfinite` [P, W] flags outputs that overflowed."""
        n_train, n_test = self.task.n_train, self.task.n_test
        nan = float("nan")
        self.reward_sum = self._logp_sums[0].view_as(self.reward_sum)
        self.test_logp_sum = self._logp_sums[-1].view_as(self.test_logp_sum)  # only read when computed
        train_acc = self.train_correct / n_train
        test_acc = self.test_correct / n_test if n_test else torch.full_like(train_acc, nan)
        best = train_acc.argmax(1, keepdim=True)  # chosen on training data only, never on test
        metrics = {
            "reward": self.reward_sum / self.n_batch,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "test_reward": self.test_logp_sum / n_test if n_test else torch.full_like(train_acc, nan),
            "best_weight": self.weights.to(torch.float64)[best.squeeze(1)],
            "best_train_accuracy": train_acc.gather(1, best).squeeze(1),
            "best_test_accuracy": test_acc.gather(1, best).squeeze(1),
            "ensemble_train_accuracy": self.ensemble_train_correct / n_train,
            "ensemble_test_accuracy": (self.ensemble_test_correct / n_test if n_test
                                       else torch.full_like(self.ensemble_train_correct, nan)),
        }
        return metrics["reward"], {name: value for name, value in metrics.items() if name in self.wanted}


# Samples per summation segment. An individual's sum over samples is the same whatever
# shares its batch: each aligned segment of SEGMENT samples is summed by a fixed pairwise
# tree (elementwise additions only), and the segment sums are added one after another in
# sample order. Sample blocks are whole segments, so block sizes (which depend on the
# population) do not change the order either.
SEGMENT = 64


def ordered_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over a short dimension (classes, shared weights) as one elementwise addition per
    slice, in index order. torch's reduction over a non-innermost dimension groups the
    additions differently for the elements its vector loop handles and for the leftover
    ones, so a sum's last bit depended on the tensor's shape, that is on the batch."""
    total = x.select(dim, 0).clone()
    for k in range(1, x.shape[dim]):
        total.add_(x.select(dim, k))
    return total


# Bytes of one [rows, W, b] slice that `_exp_sum` works on at a time: its four such tensors (a
# class's logits, the maximum, the term, the total) then stay in a core's L2 cache through the
# ten classes' passes (a digits block: 1.4x faster than whole [P, W, b] passes at one thread; RESULTS.md).
EXP_SUM_BYTES = 384 << 10


def _exp_sum(x: torch.Tensor, high: torch.Tensor, floor: bool, scratch: torch.Tensor,
             slice_bytes: int = EXP_SUM_BYTES) -> torch.Tensor:
    """sum over classes of exp(x - high) (floored at e^-80 when `floor`), class after class.

    x: [P, C, W, b]; high: [P, W, b]. The elementwise operations and the order of the additions
    are `ordered_sum`'s over the whole softmax numerator, so the bits are the same; but only two
    [P, W, b] tensors are written (the running total and one class's term), not [P, C, W, b], and
    on the CPU a few individuals at a time (`slice_bytes` per [rows, W, b] slice), so that the
    passes stay in cache (on a GPU every slice would cost kernel launches)."""
    total = torch.empty_like(high)
    rows = x.shape[0] if x.is_cuda else max(1, slice_bytes // max(1, high[:1].numel() * high.element_size()))
    for a in range(0, x.shape[0], rows):
        x_a, high_a, total_a, scratch_a = x[a:a + rows], high[a:a + rows], total[a:a + rows], scratch[a:a + rows]
        for k in range(x.shape[1]):
            term = torch.sub(x_a[:, k], high_a, out=total_a if k == 0 else scratch_a)
            if floor:
                term.clamp_min_(-80.0)
            term.exp_()
            if k:
                total_a.add_(term)
    return total


def _add_segment_sums(running: torch.Tensor, values: torch.Tensor) -> None:
    """running[..., r] += sum over the last axis of values[..., r, :], in the fixed order above.

    values: [..., R, k * SEGMENT] float64, whole aligned segments (the last one zero-padded)."""
    x = values.reshape(*values.shape[:-1], -1, SEGMENT)
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        x = x[..., :half] + x[..., half:]
    x = x.squeeze(-1)
    for k in range(x.shape[-1]):
        running += x[..., k]


def _runs_in(label_runs, samples: slice) -> list[tuple[int, int, int]]:
    """The label runs clipped to `samples`, in block-local positions."""
    runs = []
    for label, first, stop in label_runs:
        a, b = max(first, samples.start), min(stop, samples.stop)
        if a < b:
            runs.append((label, a - samples.start, b - samples.start))
    return runs


def _label_slices(x: torch.Tensor, runs, earlier: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x at each sample's label, and (when `earlier`) the max of x over the classes before it.

    x: [P, C, W, b]; both results [P, W, b]. One slice per run of equal labels.
    """
    shape = (x.shape[0],) + tuple(x.shape[2:])
    at_label = x.new_empty(shape)
    wanted, earlier = earlier, x.new_empty(shape) if earlier else None  # the runs cover every sample
    for label, first, stop in runs:
        at_label[..., first:stop] = x[:, label, ..., first:stop]
        if not wanted:
            continue
        if label > 0:
            torch.amax(x[:, :label, ..., first:stop], 1, out=earlier[..., first:stop])
        else:
            earlier[..., first:stop] = float("-inf")
    return at_label, earlier


def _predicts(at_label: torch.Tensor, earlier: torch.Tensor, high: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Whether the label is the predicted class: the first class within a relative
    sqrt(eps) of the maximum (argmax's first-index rule, tolerant of rounding).

    The tolerance makes the batched and the reference evaluator agree on ties that
    are exact in real arithmetic but not in floating point (an odd network's mean
    softmax over +-w, two outputs summing the same sources in another order). For scores
    that are `scale` times a quantity, the tolerance is that quantity's.
    """
    tolerance = math.sqrt(torch.finfo(high.dtype).eps)
    threshold = high - tolerance * high.abs().clamp_min(scale)
    return (at_label >= threshold) & (earlier < threshold)


def load_sklearn_task(name: str, params: dict) -> ClassificationTask:
    from sklearn import datasets

    loaders = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    data = loaders[name]()
    return ClassificationTask(
        name, data.data, data.target, test_fraction=params["test_fraction"], seed=params["seed"],
        batch_size=params["batch_size"], outputs=params.get("outputs"), scale=params["scale"], params=params,
    )


def make_xor_data(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """As the authors' `make_xor`: uniform points, class = (x > 0.5) xor (y > 0.5)."""
    rng = np.random.RandomState(seed)
    points = rng.rand(n, 2)
    labels = np.logical_xor(points[:, 0] > 0.5, points[:, 1] > 0.5).astype(np.int64)
    return points, labels


def load_xor_task(params: dict) -> ClassificationTask:
    points, labels = make_xor_data()
    return ClassificationTask("xor", points, labels, test_fraction=params["test_fraction"], seed=params["seed"],
                              batch_size=params["batch_size"], outputs=params["outputs"], scale=params["scale"],
                              params=params)
