"""TensorBoard scalars, through `torch.utils.tensorboard` (the optional extra: pip install 'netevo[tensorboard]').

`netevo evolve --tensorboard` and `netevo track --tensorboard` write one scalar per measure and step
(generation or epoch), so runs can be compared side by side in TensorBoard.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from ..errors import UsageError


def scalar_writer(log_dir):
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        raise UsageError("--tensorboard needs the `tensorboard` package",
                         hint="pip install 'netevo[tensorboard]' (or pip install tensorboard)") from None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


def write_scalars(log_dir, rows: Iterable[tuple[int, dict]]) -> Path:
    """rows: (step, {tag: value}); None and non-finite values are left out."""
    writer = scalar_writer(log_dir)
    try:
        for step, values in rows:
            for tag, value in values.items():
                if value is not None and math.isfinite(float(value)):
                    writer.add_scalar(tag, float(value), int(step))
    finally:
        writer.close()
    return Path(log_dir)


def evolution_rows(log: list[dict], champion_accuracy: dict | None = None) -> list[tuple[int, dict]]:
    """Per generation: every objective's best, median and worst individual, the champion's values,
    the front size and failures; the champion's accuracies when given ({label: [per generation]})."""
    rows = []
    for k, line in enumerate(log):
        values = {f"{label}/{stat}": v for label, stats in line["objectives"].items() for stat, v in stats.items()}
        values.update({f"champion/{label}": v for label, v in line["champion"].items() if label != "id"})
        values.update({"front_size": line.get("front_size"), "failures": line.get("failures"),
                       "evaluations": line.get("evaluations")})
        for label, series in (champion_accuracy or {}).items():
            if k < len(series):
                values[f"champion_accuracy/{label.replace(', ', '_').replace(' ', '_')}"] = series[k]
        rows.append((line["generation"], values))
    return rows


def training_rows(history) -> list[tuple[int, dict]]:
    """Per epoch of a TrainingHistory: loss, accuracies, and each layer's mean firing rate."""
    rows = []
    for snap in history.epochs:
        values = {"train/loss": snap.get("loss"), "train/accuracy": snap.get("accuracy")}
        values.update({f"test/{k[5:]}" if k.startswith("test_") else f"train/{k}": v
                       for k, v in snap.get("metrics", {}).items() if isinstance(v, (int, float))})
        for layer, data in snap.get("layers", {}).items():
            summary = data.get("summary", {})
            for key in ("mean_firing_rate", "dead"):
                if summary.get(key) is not None:
                    values[f"{key}/{layer or 'model'}"] = summary[key]
        rows.append((snap.get("epoch", len(rows)), values))
    return rows
