"""Classification tasks under the WANN protocol (Gaier & Ha 2019).

Fixed, seeded, stratified train/test split; features standardised with the
training split's statistics. The reward is minus the cross-entropy of the
softmax over the genome's linear outputs on a *training* minibatch (a new one
per evaluation when the minibatch is smaller than the training split), exactly
what the authors' `ClassifyEnv` returns. Accuracies are measured on the whole
training split and on the held-out test split.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import UsageError

# WANN draws 1,000-image minibatches for MNIST; smaller training sets are used whole.
WHOLE_SET_LIMIT = 2000
DEFAULT_MINIBATCH = 1000


class ClassificationTask:
    kind = "classification"

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
        order = np.concatenate([train_idx, test_idx])
        mean = features[train_idx].mean(0)
        std = features[train_idx].std(0)
        std[std == 0] = 1.0  # constant pixels (digits' borders) stay 0 instead of dividing by 0
        self.features = torch.from_numpy((features[order] - mean) / std)  # [N, F] float64, train first
        self.labels = torch.from_numpy(label_ids[order].astype(np.int64))
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
            batch_size = self.n_train if self.n_train <= WHOLE_SET_LIMIT else DEFAULT_MINIBATCH
        if not 1 <= int(batch_size):
            raise UsageError(f"task `{name}`: batch_size must be positive, got {batch_size}")
        self.batch_size = min(int(batch_size), self.n_train)
        self.seed = seed
        self.evaluations = 0  # minibatch counter: evaluation k always sees the same minibatch

    @property
    def n_samples(self) -> int:
        return self.n_train + self.n_test

    def next_batch_mask(self) -> torch.Tensor:
        """Bool [N] marking this evaluation's training minibatch; advances the counter."""
        mask = torch.zeros(self.n_samples, dtype=torch.bool)
        if self.batch_size == self.n_train:
            mask[: self.n_train] = True
            return mask
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.evaluations)
        self.evaluations += 1
        mask[torch.randperm(self.n_train, generator=gen)[: self.batch_size]] = True
        return mask

    def scorer(self, n_individuals: int, weights: torch.Tensor, batch_mask: torch.Tensor) -> "ClassificationScorer":
        return ClassificationScorer(self, n_individuals, weights, batch_mask)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if test_fraction == 0:
        return np.arange(len(labels)), np.arange(0)
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                   random_state=seed)
    return np.sort(train), np.sort(test)


class ClassificationScorer:
    """Accumulates rewards and accuracies over blocks of samples.

    The batched evaluator feeds it sample blocks so that outputs never have to
    exist for the whole data set at once; the reference feeds everything at once.
    """

    def __init__(self, task: ClassificationTask, n_individuals: int, weights: torch.Tensor, batch_mask: torch.Tensor):
        self.task = task
        self.weights = weights
        device = weights.device
        P, W = n_individuals, len(weights)
        acc = torch.float64  # sums over thousands of samples: accumulate in float64
        self.labels = task.labels.to(device)
        self.in_batch = batch_mask.to(device)
        self.is_train = (torch.arange(task.n_samples, device=device) < task.n_train)
        self.reward_sum = torch.zeros(P, W, dtype=acc, device=device)
        self.test_logp_sum = torch.zeros(P, W, dtype=acc, device=device)
        self.train_correct = torch.zeros(P, W, dtype=acc, device=device)
        self.test_correct = torch.zeros(P, W, dtype=acc, device=device)
        self.ensemble_train_correct = torch.zeros(P, dtype=acc, device=device)
        self.ensemble_test_correct = torch.zeros(P, dtype=acc, device=device)
        self.nonfinite = torch.zeros(P, W, dtype=torch.bool, device=device)
        self.n_batch = int(batch_mask.sum())

    def add(self, outputs: torch.Tensor, samples: slice) -> None:
        """outputs: [P, W, b, O] for the samples in `samples`."""
        # Work on [P, O, W, b]: the batched evaluator's outputs are laid out that way, and
        # reductions over a middle dimension vectorise where reductions over a short
        # strided last dimension do not.
        x = outputs.permute(0, 3, 1, 2)
        if self.task.n_outputs == 1:  # one logit for the second class against an implicit 0
            x = torch.cat([torch.zeros_like(x), x], dim=1)
        labels = self.labels[samples]
        high = x.amax(1)  # [P, W, b]; amax propagates NaN and +inf
        self.nonfinite |= ~(torch.isfinite(high) & torch.isfinite(x.amin(1))).all(-1)
        exp = (x - high.unsqueeze(1)).exp_()
        total = exp.sum(1)
        at_label = x.gather(1, labels.view(1, 1, 1, -1).expand(x.shape[0], 1, *x.shape[2:])).squeeze(1)
        label_logp = (at_label - high - total.log()).to(torch.float64)
        correct = _predicts(x, at_label, high, labels).to(torch.float64)
        mean_softmax = exp.div_(total.unsqueeze(1)).mean(2)  # [P, O, b]: the ensemble over weights
        ensemble = _predicts(mean_softmax, mean_softmax.gather(1, labels.view(1, 1, -1).expand(
            x.shape[0], 1, -1)).squeeze(1), mean_softmax.amax(1), labels).to(torch.float64)
        in_batch = self.in_batch[samples].to(torch.float64)
        train = self.is_train[samples]
        trainf, testf = train.to(torch.float64), (~train).to(torch.float64)
        self.reward_sum += label_logp @ in_batch
        self.test_logp_sum += label_logp @ testf
        self.train_correct += correct @ trainf
        self.test_correct += correct @ testf
        self.ensemble_train_correct += ensemble @ trainf
        self.ensemble_test_correct += ensemble @ testf

    def finish(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """reward [P, W] and metrics; `self.nonfinite` [P, W] flags outputs that overflowed."""
        n_train, n_test = self.task.n_train, self.task.n_test
        nan = float("nan")
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
        return metrics["reward"], metrics


def _predicts(x: torch.Tensor, at_label: torch.Tensor, high: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Whether the label is the predicted class: the first class within a relative
    sqrt(eps) of the maximum (argmax's first-index rule, tolerant of rounding).

    The tolerance makes the batched and the reference evaluator agree on ties that
    are exact in real arithmetic but not in floating point (an odd network's mean
    softmax over +-w, two outputs summing the same sources in another order).
    x: [P, C, ..., b]; at_label, high: x at the label and x's max over C; labels: [b].
    """
    tolerance = math.sqrt(torch.finfo(x.dtype).eps)
    threshold = high - tolerance * high.abs().clamp_min(1.0)
    classes = torch.arange(x.shape[1], device=x.device).view((1, -1) + (1,) * (x.dim() - 2))
    earlier = torch.where(classes < labels.view((1, 1) + (1,) * (x.dim() - 3) + (-1,)), x, float("-inf")).amax(1)
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
        batch_size=params["batch_size"], outputs=params.get("outputs"), params=params,
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
                              batch_size=params["batch_size"], outputs=params["outputs"], params=params)
