"""Task declarations: what a task needs, what it reports, how many inputs/outputs.

Pure metadata (no torch, no data loading beyond peeking at a user's file), so
the checker can verify a genome's input/output counts and objectives in
milliseconds. The implementations live in `netevo_dsl.runtime.tasks`.

Input/output counts are *observation features* and *action / logit values*;
a WANN genome's `bias` input is extra (it is the constant 1.0). A count is
None when it depends on a file that cannot be read yet.
"""
from __future__ import annotations

import csv as _csv
from typing import Callable

import attrs

from ..errors import UsageError, did_you_mean


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # marks a parameter without a default

CLASSIFICATION_METRICS = (
    "reward",  # [P, W] minus cross-entropy on the training minibatch
    "train_accuracy",  # [P, W]
    "test_accuracy",  # [P, W]
    "test_reward",  # [P, W] minus cross-entropy on the whole test split
    "best_weight",  # [P] the shared weight with the highest train accuracy
    "best_train_accuracy",  # [P]
    "best_test_accuracy",  # [P] test accuracy at the weight chosen on train data
    "ensemble_train_accuracy",  # [P] softmax averaged over the weights
    "ensemble_test_accuracy",  # [P]
)
CONTROL_METRICS = ("reward", "steps", "episode_reward")  # [P, W] averaged over repeats; [P, W, repeats]
# control parameters: `precision` of the physics (float64 or float32), `starts` explicit starting states
# (rows of x, x_dot, theta, theta_dot, or a file of them) replayed instead of fresh ones
SEQUENCE_METRICS = ("reward", "token_accuracy", "sequence_accuracy", "bits_per_char")

KINDS = ("classification", "control", "sequence")


@attrs.frozen
class TaskSpec:
    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    params: dict = attrs.field(hash=False)  # defaults; REQUIRED where the user must give one
    metrics: tuple = attrs.field(converter=tuple)
    inputs_rule: Callable[[dict], int | None] = attrs.field(eq=False, hash=False, repr=False)
    outputs_rule: Callable[[dict], int | None] = attrs.field(eq=False, hash=False, repr=False)
    doc: str = ""
    # the WANN activations a run draws from when the spec's `change_activation` names none
    activations: tuple = attrs.field(default=None, converter=lambda v: _default_pool(v), kw_only=True)

    def resolve(self, params: dict | None = None) -> dict:
        """Defaults merged with `params`; unknown or missing parameters raise UsageError."""
        params = dict(params or {})
        for key in params:
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise UsageError(
                    f"task `{self.name}` has no parameter `{key}`",
                    hint=did_you_mean(key, self.params) or f"its parameters are: {known}",
                )
        merged = {**self.params, **params}
        missing = [key for key, value in merged.items() if value is REQUIRED]
        if missing:
            raise UsageError(
                f"task `{self.name}` needs {', '.join(f'`{m}`' for m in missing)}",
                hint=f"write e.g. `task {self.name}({missing[0]}=...)`",
            )
        return merged

    def n_inputs(self, params: dict | None = None) -> int | None:
        return self.inputs_rule(self.resolve(params))

    def n_outputs(self, params: dict | None = None) -> int | None:
        return self.outputs_rule(self.resolve(params))


# The authors' activation pools (WANNRelease/WANN/domain/config.py, `h_act`, in their ids 1-11:
# 1 linear, 2 step, 3 sin, 4 gauss, 5 tanh, 6 sigmoid, 7 inverse, 8 abs, 9 relu, 10 cos, 11 square).
CONTROL_ACTIVATIONS = ("linear", "step", "sin", "gauss", "tanh", "sigmoid", "inverse", "abs", "relu", "cos")  # 1-10
CLASSIFICATION_ACTIVATIONS = tuple(a for a in CONTROL_ACTIVATIONS if a != "step")  # digits/MNIST: 1, 3-10


def _default_pool(value) -> tuple:
    return CONTROL_ACTIVATIONS if value is None else tuple(value)


def _const(n: int) -> Callable[[dict], int]:
    return lambda params: n


def _dataset(name: str, n_features: int, n_classes: int, doc: str, binary: bool = False, scale="z") -> TaskSpec:
    # scale: "z" (z-score with the training split's statistics) or a number to divide by;
    # batch_size None: the authors' 1,000-sample minibatch, or the whole training split if smaller
    params = {"test_fraction": 0.2, "seed": 0, "batch_size": None, "scale": scale}
    outputs_rule = _const(n_classes)
    if binary:
        # outputs=1: the single output is the logit of class 1 against an implicit 0 logit.
        params["outputs"] = 2
        outputs_rule = _binary_outputs
    return TaskSpec(name, "classification", params, CLASSIFICATION_METRICS, _const(n_features), outputs_rule, doc,
                    activations=CLASSIFICATION_ACTIVATIONS)


def _binary_outputs(params: dict) -> int:
    if params["outputs"] not in (1, 2):
        raise UsageError("a binary task has `outputs` 1 or 2", hint="1: one logit against an implicit 0; 2: softmax")
    return int(params["outputs"])


def _sequence(name: str, vocab_rule: Callable[[dict], int], params: dict, doc: str) -> TaskSpec:
    return TaskSpec(name, "sequence", {**params, "samples": 1024, "seed": 0}, SEQUENCE_METRICS, vocab_rule,
                    vocab_rule, doc)


def _symbols_plus_separator(params: dict) -> int:
    return int(params["symbols"]) + 1


def _text_vocab(params: dict) -> int | None:
    try:
        with open(params["path"], encoding="utf-8") as f:
            return len(set(f.read()))
    except OSError:
        return None


def _csv_columns(params: dict) -> tuple[int, int] | None:
    """(features, classes) of a CSV file with a header row, or None if unreadable."""
    try:
        with open(params["path"], newline="", encoding="utf-8") as f:
            rows = list(_csv.reader(f))
    except OSError:
        return None
    if not rows or params["target"] not in rows[0]:
        return None
    column = rows[0].index(params["target"])
    classes = {row[column] for row in rows[1:] if row}
    return len(rows[0]) - 1, len(classes)


def _csv_inputs(params: dict) -> int | None:
    counts = _csv_columns(params)
    return counts and counts[0]


def _csv_outputs(params: dict) -> int | None:
    counts = _csv_columns(params)
    return counts and counts[1]


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"task `{spec.name}` is registered twice")
    _TASKS[spec.name] = spec
    return spec


for _spec in (
    _dataset("digits", 64, 10, "scikit-learn 8x8 digits (1,797 images), 10 classes; pixels / 16 as in WANN",
             scale=16),
    _dataset("iris", 4, 3, "scikit-learn iris (150 flowers), 3 classes"),
    _dataset("wine", 13, 3, "scikit-learn wine (178 wines), 3 classes"),
    _dataset("breast_cancer", 30, 2, "scikit-learn breast cancer (569 tumours), 2 classes", binary=True),
    _dataset("xor", 2, 2, "500 points in the unit square, class = (x>0.5) xor (y>0.5), as in WANN", binary=True),
    TaskSpec("swingup", "control", {"repeats": 4, "max_steps": 1000, "seed": 0, "precision": "float64",
                                         "starts": None}, CONTROL_METRICS, _const(5),
             _const(1), "WANN cart-pole swing-up; obs x, x_dot, cos, sin, theta_dot; action force in [-1, 1]"),
    TaskSpec("cartpole", "control", {"repeats": 4, "max_steps": 500, "seed": 0, "precision": "float64",
                                          "starts": None}, CONTROL_METRICS, _const(4),
             _const(1), "CartPole-v1 balance; obs x, x_dot, theta, theta_dot; push right if output > 0"),
    _sequence("copy", _symbols_plus_separator, {"length": 8, "symbols": 8}, "repeat the sequence after a separator"),
    _sequence("reverse", _symbols_plus_separator, {"length": 8, "symbols": 8},
              "write the sequence backwards after a separator"),
    _sequence("majority", _const(3), {"length": 9}, "after the separator, the more frequent bit"),
    _sequence("parity", _const(3), {"length": 8}, "after the separator, the xor of all bits"),
    TaskSpec("text", "sequence", {"path": REQUIRED, "context": 64, "train_fraction": 0.9}, SEQUENCE_METRICS,
             _text_vocab, _text_vocab, "character-level next-token prediction on a local UTF-8 text file"),
    TaskSpec("csv", "classification", {"path": REQUIRED, "target": REQUIRED, "test_fraction": 0.2, "seed": 0,
                                       "batch_size": None}, CLASSIFICATION_METRICS, _csv_inputs, _csv_outputs,
             "a local CSV file with a header row; numeric feature columns, `target` names the class column",
             activations=CLASSIFICATION_ACTIVATIONS),
):
    register_task(_spec)


def task_names() -> tuple[str, ...]:
    return tuple(_TASKS)


def get_task_spec(name: str) -> TaskSpec:
    try:
        return _TASKS[name]
    except KeyError:
        raise UsageError(
            f"unknown task `{name}`",
            hint=did_you_mean(name, _TASKS) or f"tasks are: {', '.join(_TASKS)}",
        ) from None
