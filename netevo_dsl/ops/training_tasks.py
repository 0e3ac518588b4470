"""Datasets a network can be trained on inside `netevo evolve` (`train { task: ... }`), with their params.

Pure Python, so `netevo check` validates a `train` part without importing torch;
`runtime.datasets.load_training_data` implements them. A param whose default is
`REQUIRED` must be given.
"""
from __future__ import annotations

from .registry import REQUIRED

TRAINING_TASKS: dict[str, dict] = {
    "digits": {},  # scikit-learn's 8x8 digits: 64 features, or [1, 8, 8] images when the network's input says so
    "iris": {},
    "wine": {},
    "breast_cancer": {},
    "csv": {"path": REQUIRED, "target": REQUIRED},  # a header row; `target` names the class column
    "npz": {"path": REQUIRED},  # arrays `x` (samples first) and `y` (class labels)
}

TRAINING_TASK_DOCS = {
    "digits": "scikit-learn's 8x8 handwritten digits (1,797 samples, 10 classes)",
    "iris": "scikit-learn's iris (150 samples, 4 features, 3 classes)",
    "wine": "scikit-learn's wine (178 samples, 13 features, 3 classes)",
    "breast_cancer": "scikit-learn's breast cancer (569 samples, 30 features, 2 classes)",
    "csv": "a local CSV file with a header row; `target` names the class column, the rest must be numeric",
    "npz": "a local .npz file with arrays `x` (samples first, any feature shape) and `y` (class labels)",
}

__all__ = ["TRAINING_TASKS", "TRAINING_TASK_DOCS", "REQUIRED"]
