"""Training data for candidates in `netevo evolve`: a seeded train / validation / test split.

`load_training_data(task, params, input_shape, seed=...)` loads one of `ops.training_tasks.TRAINING_TASKS`
(scikit-learn's bundled digits, iris, wine and breast cancer, or a user's CSV / NPZ file; nothing is
downloaded), splits it stratified by class from the seed, standardises every feature with the training
split's mean and standard deviation, and shapes the features as the network's input declares (digits as
64 features or as [1, 8, 8] images).

The test split is guarded: `test_split()` raises E130 until `unlock_test()` was called, so a search that
scores candidates on the validation split cannot read the test split by mistake; the run unlocks it once,
for the final evaluation of the front.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NetevoError
from ..ops.registry import REQUIRED
from ..ops.training_tasks import TRAINING_TASKS


class TestSplitLocked(NetevoError):
    code = "E130"


class TrainingDataError(NetevoError):
    code = "E131"


class TrainingData:
    """Tensors on the CPU; labels are int64 class ids 0..n_classes-1."""

    def __init__(self, name: str, n_classes: int, x_train, y_train, x_val, y_val, x_test, y_test):
        self.name, self.n_classes = name, int(n_classes)
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val
        self._test = (x_test, y_test)
        self._unlocked = False
        self.test_reads = 0  # how often the test split was read (tests check it stays 0 during a search)

    def test_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._unlocked:
            raise TestSplitLocked(f"the test split of `{self.name}` is locked during the search", None,
                                  "score candidates on the validation split (x_val, y_val); call unlock_test() "
                                  "once, for the final evaluation")
        self.test_reads += 1
        return self._test

    def unlock_test(self) -> None:
        self._unlocked = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"TrainingData({self.name!r}, classes={self.n_classes}, train={len(self.y_train)}, "
                f"val={len(self.y_val)}, input={list(self.input_shape)})")


def load_training_data(task: str, params: dict, input_shape: tuple[int, ...], *, seed: int = 0,
                       val_fraction: float = 0.2, test_fraction: float = 0.2, dtype=torch.float32) -> TrainingData:
    """Load `task`, split it (stratified, from `seed`), standardise with the training split's statistics,
    and shape every sample as `input_shape` (the network's input without the batch axis)."""
    params = resolve_params(task, params)
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise TrainingDataError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in (0, 1) "
                                "and leave samples for training")
    features, labels = _load(task, params)
    classes, label_ids = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise TrainingDataError(f"task `{task}` has {len(classes)} class; classification needs at least 2")
    shape = _sample_shape(task, features.shape[1:], input_shape)
    features = features.reshape(len(features), -1).astype(np.float64)
    train, val, test = split_indices(label_ids, val_fraction, test_fraction, seed)
    mean, std = features[train].mean(0), features[train].std(0)
    std[std == 0] = 1.0  # constant features (digits' border pixels) stay 0

    def part(idx):
        x = torch.from_numpy((features[idx] - mean) / std).to(dtype).reshape(len(idx), *shape)
        return x, torch.from_numpy(label_ids[idx].astype(np.int64))

    return TrainingData(task, len(classes), *part(train), *part(val), *part(test))


def resolve_params(task: str, params: dict) -> dict:
    if task not in TRAINING_TASKS:
        from ..errors import did_you_mean

        raise TrainingDataError(f"unknown training task `{task}`", None,
                                did_you_mean(task, TRAINING_TASKS) or "tasks: " + ", ".join(TRAINING_TASKS))
    declared = TRAINING_TASKS[task]
    unknown = set(params) - set(declared)
    if unknown:
        raise TrainingDataError(f"task `{task}` has no parameter `{sorted(unknown)[0]}`", None,
                                "parameters: " + (", ".join(declared) or "none"))
    out = {k: params.get(k, d) for k, d in declared.items()}
    missing = [k for k, v in out.items() if v is REQUIRED]
    if missing:
        raise TrainingDataError(f"task `{task}` needs `{missing[0]}`", None, f"write {task}({', '.join(declared)})")
    return out


def split_indices(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Stratified (train, val, test) index arrays, each sorted; every class is split in the same proportions
    (largest remainders), from one seeded permutation per class."""
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_test = int(round(test_fraction * len(members)))
        n_val = int(round(val_fraction * len(members)))
        n_test, n_val = min(n_test, len(members) - 1), min(n_val, max(0, len(members) - 1 - n_test))
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test:n_test + n_val])
        parts[0].append(members[n_test + n_val:])
    out = tuple(np.sort(np.concatenate(p)) for p in parts)
    if any(len(p) == 0 for p in out):
        raise TrainingDataError(f"{len(labels)} samples are too few for a train, validation and test split")
    return out


def _sample_shape(task: str, found: tuple, input_shape: tuple) -> tuple[int, ...]:
    try:
        want = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TrainingDataError(f"the network's input {list(input_shape)} must have concrete sizes besides the batch",
                                None, "bind symbolic sizes with a param") from None
    if math.prod(want) != math.prod(found):
        what = "64 features [B, 64] or images [B, 1, 8, 8]" if task == "digits" else \
            f"{math.prod(found)} features [B, {math.prod(found)}]"
        raise TrainingDataError(f"task `{task}` gives samples of shape {list(found)}, the network's input is "
                                f"{list(want)} per sample", None, f"declare the input as {what}")
    return want


def _load(task: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    if task in ("digits", "iris", "wine", "breast_cancer"):
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{task}")()  # bundled with scikit-learn: no download
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    if task == "csv":
        from .tasks.tabular import load_csv_task
        from ..errors import UsageError

        try:
            loaded = load_csv_task({**params, "test_fraction": 0.0, "seed": 0, "batch_size": None})
        except UsageError as e:
            raise TrainingDataError(e.message, None, e.hint) from None
        n = loaded.n_train
        # load_csv_task standardised and reordered the rows; undo nothing: a fixed order, split again below
        return loaded.features[:n].numpy(), loaded.labels[:n].numpy()
    return _load_npz(params["path"])


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise TrainingDataError(f"task `npz`: {path!r} holds {sorted(f.files)}, it needs arrays `x` and `y`")
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
    except (OSError, ValueError) as error:
        raise TrainingDataError(f"task `npz` cannot read {path!r}: {error}", None,
                                "give an .npz file written by numpy.savez with arrays x and y") from None
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise TrainingDataError(f"task `npz`: x has shape {list(x.shape)} and y {list(y.shape)}", None,
                                "x is [samples, features...] and y [samples], one label per sample")
    if not np.issubdtype(x.dtype, np.number):
        raise TrainingDataError(f"task `npz`: x has dtype {x.dtype}; it must be numeric")
    return x.astype(np.float64), y


__all__ = ["TrainingData", "load_training_data", "TRAINING_TASKS", "TestSplitLocked", "TrainingDataError",
           "split_indices"]
