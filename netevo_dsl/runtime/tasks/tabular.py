"""`csv(path=..., target=...)`: classification on a user's local CSV file.

The file has a header row; `target` names the class column (any values, sorted
into class ids), every other column must be numeric.
"""
from __future__ import annotations

import csv

import numpy as np

from ...errors import UsageError
from .classification import ClassificationTask


def load_csv_task(params: dict) -> ClassificationTask:
    path, target = params["path"], params["target"]
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row]
    except OSError as error:
        raise UsageError(f"task `csv` cannot read {path!r}: {error.strerror}", hint="give an existing CSV file")
    if len(rows) < 3:
        raise UsageError(f"task `csv`: {path!r} needs a header row and at least two data rows")
    header, body = rows[0], rows[1:]
    if target not in header:
        raise UsageError(f"task `csv`: no column `{target}` in {path!r}", hint=f"columns are: {', '.join(header)}")
    column = header.index(target)
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise UsageError(f"task `csv`: {path}:{line} has {len(row)} fields, the header has {len(header)}")
        labels.append(row[column])
        try:
            features.append([float(v) for i, v in enumerate(row) if i != column])
        except ValueError:
            raise UsageError(f"task `csv`: {path}:{line} has a non-numeric feature",
                             hint="every column but the target must be a number") from None
    return ClassificationTask(
        "csv", np.array(features), np.array(labels), test_fraction=params["test_fraction"], seed=params["seed"],
        batch_size=params["batch_size"], params=params,
    )
