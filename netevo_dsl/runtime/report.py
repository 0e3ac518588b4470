"""Reports of a tracker's statistics: tables, rankings, heatmaps, recommendations.

Everything here reads the tracker's public API; nothing is computed that the
tracker does not already answer. Heatmaps use matplotlib's Agg canvas
directly, so writing them never touches pyplot or the user's backend, and
matplotlib is imported only when an image is drawn (it is slow to import).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from netevo_dsl.runtime.history import TrainingHistory
    from netevo_dsl.runtime.tracker import NeuronTracker

LAYER_COLUMNS = ("layer", "op", "neurons", "samples", "dead", "redundant", "saturated", "mean_firing_rate")


def layer_summary(
    tracker: "NeuronTracker",
    dead_rate: float = 0.0,
    redundancy_threshold: float = 0.9,
    saturation_threshold: float = 0.9,
) -> list[dict]:
    """One row per tracked layer with data. None marks a count that does not apply:
    dead without an activation, redundant without correlations, saturated without bounds."""
    dead = tracker.dead_neurons(dead_rate)
    saturated = tracker.saturated_neurons(saturation_threshold)
    redundant = tracker.redundancy_summary(redundancy_threshold) if tracker.correlation else {}
    rows = []
    for name in tracker.layer_names:
        info = tracker.layer_info(name)
        if not info["samples"]:
            continue
        rate = tracker.layer_stats(name)["firing_rate"]
        rows.append({
            "layer": name,
            "op": info["op"],
            "neurons": info["width"],
            "samples": info["samples"],
            "dead": len(dead[name]) if name in dead else None,
            "redundant": redundant[name]["redundant_neurons"] if name in redundant else None,
            "saturated": len(saturated[name]) if name in saturated else None,
            "mean_firing_rate": float(rate.mean()) if rate.numel() else None,
        })  # fmt: skip
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value) or "<model>"


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[k]) for line in cells]) for k, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def totals_row(rows: Sequence[dict]) -> dict:
    def total(key):
        values = [row[key] for row in rows if row[key] is not None]
        return sum(values) if values else None

    return {"layer": "TOTAL", "neurons": total("neurons"), "dead": total("dead"),
            "redundant": total("redundant"), "saturated": total("saturated")}  # fmt: skip


def print_layer_table(rows: Sequence[dict], console=None) -> None:
    """Print the layer table with rich when it is installed, as plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(format_table(list(rows) + [totals_row(rows)], LAYER_COLUMNS))
        return
    table = Table(title="neurons per layer")
    for column in LAYER_COLUMNS:
        table.add_column(column, justify="left" if column in ("layer", "op") else "right")
    for row in list(rows) + [totals_row(rows)]:
        table.add_row(*(_cell(row.get(column)) for column in LAYER_COLUMNS))
    (console or Console()).print(table)


def neuron_ranking(tracker: "NeuronTracker", k: int = 10, key: str = "firing_rate") -> tuple[list[dict], list[dict]]:
    """The k most and k least active neurons over all layers, by `key` (a layer_stats key)."""
    offsets = tracker.layer_offsets()
    names, stats = [], []
    for name in tracker.layer_names:
        if tracker.layer_info(name)["samples"]:
            names.append(name)
            stats.append(tracker.layer_stats(name))
    if not stats:
        return [], []
    values = torch.cat([layer[key] for layer in stats])
    layer_of = torch.cat([torch.full((len(layer[key]),), n) for n, layer in enumerate(stats)])
    position = torch.cat([torch.arange(len(layer[key])) for layer in stats])

    def entry(flat: int) -> dict:
        layer, at = stats[int(layer_of[flat])], int(position[flat])
        name, index = names[int(layer_of[flat])], int(layer["index"][at])
        return {
            "neuron_id": offsets[name] + index if offsets else None,
            "layer": name,
            "index": index,
            "firing_rate": float(layer["firing_rate"][at]),
            "mean": float(layer["mean"][at]),
            key: float(layer[key][at]),
        }

    # A stable sort keeps layer order among ties, so rankings are reproducible.
    top = torch.sort(values, descending=True, stable=True).indices[:k]
    bottom = torch.sort(values, stable=True).indices[:k]
    return [entry(int(i)) for i in top], [entry(int(i)) for i in bottom]


RANKING_COLUMNS = ("neuron_id", "layer", "index", "firing_rate", "mean")
_SITE_SOURCES = {"fx": "tracing with torch.fx", "hooks": "module hooks", "neuron_sites": "the model's neuron_sites"}
TABLE_THRESHOLDS = ("dead_rate", "redundancy_threshold", "saturation_threshold")  # shared with recommendations()


def text_report(
    tracker: "NeuronTracker",
    k: int = 10,
    recommendations: dict | None = None,
    dead_rate: float = 0.0,
    redundancy_threshold: float = 0.9,
    saturation_threshold: float = 0.9,
) -> str:
    """The layer table (counts at the given thresholds), top and bottom neurons,
    and a summary of `recommendations` when given, as plain text."""
    rows = layer_summary(tracker, dead_rate, redundancy_threshold, saturation_threshold)
    top, bottom = neuron_ranking(tracker, k)
    parts = [
        f"firing threshold: {tracker.threshold:g}",
        f"sites: {len(tracker.layer_names)}, found by {_SITE_SOURCES.get(tracker.method, tracker.method)}",
        *(f"note: {note}" for note in tracker.notes),
        "",
        format_table(rows + [totals_row(rows)], LAYER_COLUMNS),
        "",
        f"top {len(top)} neurons by firing rate",
        format_table(top, RANKING_COLUMNS),
        "",
        f"bottom {len(bottom)} neurons by firing rate",
        format_table(bottom, RANKING_COLUMNS),
    ]
    if recommendations is not None:
        counts = recommendations["summary"]
        parts += ["", f"recommendations: prune {counts['prune']}, merge {counts['merge']}, expand {counts['expand']}"]
        parts += [f"note: {note}" for note in recommendations.get("notes", []) if note not in tracker.notes]
    return "\n".join(parts) + "\n"


# --- heatmaps ----------------------------------------------------------------------------


def _file_stem(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer) or "model"


# colour-bar labels: what the colour measures, with its unit
KEY_LABELS = {"firing_rate": "firing rate (share of samples > 0)",
              "mean": "mean activation", "zero_fraction": "fraction of samples exactly 0"}


def _save_image(path: Path, matrix, title: str, xlabel: str = "", ylabel: str = "", key: str = "firing_rate",
                yticks: Sequence[str] | None = None) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = len(matrix)
    figure = Figure(figsize=(7, min(10.0, max(2.2, 0.45 * rows + 1.6))))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bounded = key in ("firing_rate", "zero_fraction")
    image = axes.imshow(matrix, aspect="auto", interpolation="nearest", cmap="viridis",
                        vmin=0.0 if bounded else None, vmax=1.0 if bounded else None)
    figure.colorbar(image, ax=axes).set_label(KEY_LABELS.get(key, key), fontsize=8)
    if yticks is not None:
        axes.set_yticks(range(len(yticks)), yticks, fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def layer_grid(tracker: "NeuronTracker", key: str = "firing_rate") -> tuple[np.ndarray, list[str]]:
    """[layers, widest] matrix of `key`, one row per tracked layer with data (NaN past a layer's width),
    and one row label per layer: `name (op, width)`."""
    rows, names = [], []
    for name in tracker.layer_names:
        if not tracker.layer_info(name)["samples"]:
            continue
        values = tracker.layer_stats(name)[key].numpy().astype(float)
        rows.append(values)
        names.append(f"{name or '<model>'} ({tracker.layer_info(name)['op']}, {values.size})")
    grid = np.full((len(rows), max((r.size for r in rows), default=0)), np.nan)
    for k, r in enumerate(rows):
        grid[k, : r.size] = r
    return grid, names


def save_heatmaps(tracker: "NeuronTracker", out_dir: str | Path, key: str = "firing_rate") -> list[Path]:
    """`layers.png`: one row per tracked layer, neurons across (narrower layers end early, blank), coloured
    by `key`; and one single-row PNG per layer. Returns the per-layer paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid, names = layer_grid(tracker, key)
    layers = [n for n in tracker.layer_names if tracker.layer_info(n)["samples"]]
    paths = []
    for name, label in zip(layers, names):
        values = tracker.layer_stats(name)[key].numpy().astype(float)
        paths.append(_save_image(out_dir / f"{_file_stem(name)}.png", values[None, :],
                                 f"{name or '<model>'}: {key} per neuron", "neuron index", "", key, [label]))
    if len(grid):
        _save_image(out_dir / "layers.png", grid, f"{key} of every neuron, one row per layer (after training)",
                    "neuron index within the layer", "", key, names)
    return paths


def save_history_heatmaps(history: "TrainingHistory", out_dir: str | Path, key: str = "firing_rate") -> list[Path]:
    """One PNG per layer: epochs down, neurons across, coloured by `key` (layers that kept their width)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    names = {name for snap in history.epochs for name in snap["layers"]}
    for name in sorted(names):
        series = [snap["layers"][name][key] for snap in history.epochs if name in snap["layers"]]
        if len({len(values) for values in series}) != 1:
            continue  # the layer changed width; a rectangular image would misalign neurons
        matrix = np.array([[np.nan if v is None else v for v in values] for values in series], dtype=float)
        title = f"{name or '<model>'}: {key} per neuron and epoch"
        paths.append(_save_image(out_dir / f"{_file_stem(name)}.png", matrix, title, "neuron index", "epoch", key,
                                 [str(snap["epoch"]) for snap in history.epochs if name in snap["layers"]]))
    return paths


# --- files -------------------------------------------------------------------------------


def write_recommendations(tracker: "NeuronTracker", path: str | Path, **thresholds) -> Path:
    """tracker.recommendations(**thresholds) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tracker.recommendations(**thresholds), indent=1))
    return path


FIGURES = """
Figures
  heatmaps/layers.png         firing rate of every neuron after training, one row per layer (colour bar:
                              share of training samples where the unit's output is above the threshold, 0..1).
                              Dark cells are units that almost never fire: the prune candidates.
  heatmaps/LAYER.png          the same, one layer per file.
  history_heatmaps/LAYER.png  one row per epoch: how each unit's firing rate moved during training; a column
                              that turns dark is a unit dying.
"""


def write_report(
    tracker: "NeuronTracker", out_dir: str | Path, history: "TrainingHistory | None" = None, k: int = 10, **thresholds
) -> dict[str, Path | list[Path]]:
    """Write summary.txt, recommendations.json, heatmaps/*.png and, with a history,
    history.json and history_heatmaps/*.png into out_dir. `thresholds` go to recommendations()."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recommendations = tracker.recommendations(**thresholds)
    written: dict[str, Path | list[Path]] = {}
    written["recommendations"] = out_dir / "recommendations.json"
    written["recommendations"].write_text(json.dumps(recommendations, indent=1))
    written["summary"] = out_dir / "summary.txt"
    table_thresholds = {key: thresholds[key] for key in TABLE_THRESHOLDS if key in thresholds}
    written["summary"].write_text(text_report(tracker, k, recommendations, **table_thresholds) + FIGURES)
    written["heatmaps"] = save_heatmaps(tracker, out_dir / "heatmaps")
    if history is not None:
        written["history"] = history.save(out_dir / "history.json")
        written["history_heatmaps"] = save_history_heatmaps(history, out_dir / "history_heatmaps")
    return written
