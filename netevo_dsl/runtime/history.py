"""Training history: one snapshot per epoch, saved as versioned JSON.

A snapshot holds the epoch's loss, accuracy and other metrics, and for every
tracked layer a summary plus each neuron's mean and firing rate. Neurons are
stored per layer by local index, so a layer that grows or shrinks between
epochs keeps meaningful series; global ids are resolved with the layout of
the latest snapshot.

File format: {"schema": "netevo.history", "version": 1, "metadata": {...},
"epochs": [snapshot, ...]}. NaN and infinities are written as null, so the
file is strict JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from netevo_dsl.errors import UsageError

if TYPE_CHECKING:
    from netevo_dsl.runtime.tracker import NeuronTracker

SCHEMA = "netevo.history"
VERSION = 1


def _plain(value):
    """JSON-ready copy: tensors and numpy values become lists / floats, NaN and inf become None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def layer_snapshot(
    tracker: "NeuronTracker", name: str, dead: dict[str, list[int]], saturation_threshold: float, offset: int | None
) -> dict:
    """Summary and per-neuron mean / firing rate of one tracked layer (`dead` from tracker.dead_neurons())."""
    info = tracker.layer_info(name)
    stats = tracker.layer_stats(name)
    index = stats["index"].tolist()
    rate = stats["firing_rate"]
    summary = {
        "neurons": info["width"],
        "tracked": len(index),
        "samples": info["samples"],
        "mean_activation": float(stats["mean"].mean()) if index else None,
        "mean_firing_rate": float(rate.mean()) if index else None,
        "mean_zero_fraction": float(stats["zero_fraction"].mean()) if index else None,
        "dead": len(dead[name]) if name in dead else None,  # None: not a gated activation, "dead" does not apply
        "saturated": int((stats["saturation"] >= saturation_threshold).sum()) if "saturation" in stats else None,
    }
    return {
        "offset": offset,
        "width": info["width"],
        "index": None if len(index) == info["width"] else index,
        "summary": summary,
        "mean": stats["mean"],
        "firing_rate": rate,
    }


class TrainingHistory:
    """Per-epoch snapshots of metrics and neuron statistics."""

    def __init__(self, metadata: dict | None = None, epochs: list[dict] | None = None):
        self.metadata = dict(metadata or {})
        self.epochs: list[dict] = list(epochs or [])

    def __len__(self) -> int:
        return len(self.epochs)

    def record(
        self,
        epoch: int,
        tracker: "NeuronTracker | None" = None,
        loss: float | None = None,
        accuracy: float | None = None,
        saturation_threshold: float = 0.9,
        **metrics: float,
    ) -> dict:
        """Add a snapshot for `epoch` and return it."""
        layers = {}
        if tracker is not None:
            offsets = tracker.layer_offsets()
            dead = tracker.dead_neurons()
            for name in tracker.layer_names:
                if tracker.layer_info(name)["samples"]:
                    offset = offsets[name] if offsets else None
                    layers[name] = layer_snapshot(tracker, name, dead, saturation_threshold, offset)
        snapshot = _plain({
            "epoch": int(epoch),
            "loss": loss,
            "accuracy": accuracy,
            "metrics": metrics,
            "saturation_threshold": saturation_threshold,
            "layers": layers,
        })  # fmt: skip
        self.epochs.append(snapshot)
        return snapshot

    def series(self, key: str) -> list:
        """A metric across epochs: "loss", "accuracy", or a name given to record(**metrics)."""
        if key in ("loss", "accuracy", "epoch"):
            return [snap[key] for snap in self.epochs]
        return [snap["metrics"].get(key) for snap in self.epochs]

    def neuron_evolution(
        self, global_id: int | None = None, *, layer: str | None = None, index: int | None = None
    ) -> dict:
        """One neuron's mean and firing rate per epoch, with the epoch's loss and accuracy.

        Name the neuron by `global_id` (resolved with the latest snapshot's
        layout) or by `layer` and `index`. Epochs where it was not tracked give None.
        """
        if global_id is not None:
            layer, index = self._resolve(global_id)
        elif layer is None or index is None:
            raise UsageError("name a neuron by global_id, or by layer= and index=")
        result = {"layer": layer, "index": index}
        result |= {key: [] for key in ("epoch", "mean", "firing_rate", "loss", "accuracy")}
        for snap in self.epochs:
            data = snap["layers"].get(layer)
            position = _position(data, index) if data else None
            result["epoch"].append(snap["epoch"])
            result["mean"].append(data["mean"][position] if position is not None else None)
            result["firing_rate"].append(data["firing_rate"][position] if position is not None else None)
            result["loss"].append(snap["loss"])
            result["accuracy"].append(snap["accuracy"])
        return result

    def _resolve(self, global_id: int) -> tuple[str, int]:
        for snap in reversed(self.epochs):
            for name, data in snap["layers"].items():
                if data["offset"] is not None and data["offset"] <= global_id < data["offset"] + data["width"]:
                    return name, global_id - data["offset"]
        raise UsageError(
            f"no recorded neuron has global id {global_id}", hint="check tracker.lookup(id), or use layer= and index="
        )

    # --- files ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "version": VERSION, "metadata": _plain(self.metadata), "epochs": self.epochs}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def from_dict(cls, data, source: str = "<dict>") -> "TrainingHistory":
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise UsageError(
                f"{source} is not a netevo training history (schema {found!r})",
                hint=f'expected a JSON object with "schema": "{SCHEMA}"',
            )
        if data.get("version") != VERSION:
            raise UsageError(
                f"{source} is history version {data.get('version')!r}; this netevo reads version {VERSION}",
                hint="re-record the history with this version of netevo",
            )
        if not isinstance(data.get("epochs"), list):
            raise UsageError(f"{source} has no list of epochs")
        return cls(data.get("metadata"), data["epochs"])

    @classmethod
    def load(cls, path: str | Path) -> "TrainingHistory":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from error
        return cls.from_dict(data, str(path))


def _position(layer_data: dict, index: int) -> int | None:
    """Where neuron `index` sits in a layer snapshot's per-neuron lists."""
    tracked = layer_data["index"]
    if tracked is None:
        return index if 0 <= index < layer_data["width"] else None
    return tracked.index(index) if index in tracked else None
