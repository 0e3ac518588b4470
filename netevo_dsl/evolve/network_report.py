"""report.md for a network search: the front over generations, hypervolume per generation (and the
random-search curve when a random run is given), the final front with its test accuracy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .report import _plt

HV_WORDS = ("Hypervolume of (validation accuracy, parameters): the area the front dominates in [0, 1] x "
            "[0, P_ref], divided by P_ref, with reference point (accuracy 0, P_ref = {ref:,.0f} parameters, "
            "4x the spec's network); 1.0 would be a perfect classifier with no parameters")


RANDOM_NOTE = (" The `random` curve is random search over the same rules with the same seed (the run folder "
               "beside this one); a search that beats it lies above it at the same number of candidates.")


def read_log(out: Path) -> list[dict]:
    return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]


def plot_fronts(lines: list[dict], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    cmap = plt.get_cmap("viridis")
    n = max(1, len(lines) - 1)
    for line in lines:
        pts = sorted((p["params"], p["accuracy"]) for p in line["front"] if p["accuracy"] is not None)
        if not pts:
            continue
        x, y = zip(*pts)
        colour = cmap(line["generation"] / n)
        ax.step(x, y, where="post", color=colour, alpha=0.8, lw=1.2)
        ax.scatter(x, y, color=colour, s=14, zorder=3)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, max(1, len(lines) - 1)))
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(sm, ax=ax, label="generation")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    ax.set_xscale("log")
    ax.set_xlabel("parameters (count, log scale)")
    ax.set_ylabel("validation accuracy (fraction correct)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_hypervolume(curves: dict, path: Path, title: str) -> None:
    """curves: label -> (trained candidates per generation, hypervolume per generation)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("candidates trained (count)")
    ax.set_ylabel("hypervolume (fraction of the reference box)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_network_report(out: Path, settings, archive: list, test: list, params_ref: float,
                         random_run: Path | None = None) -> Path:
    out = Path(out)
    lines = read_log(out)
    net = settings.target
    plot_fronts(lines, out / "front.png", f"{net}: Pareto front per generation ({settings.selection})")
    curves = {settings.selection: ([l["trained"] for l in lines], [l["hypervolume"] for l in lines])}
    if random_run is not None and Path(random_run, "log.jsonl").exists():
        other = read_log(Path(random_run))
        curves["random"] = ([l["trained"] for l in other], [l["hypervolume"] for l in other])
    plot_hypervolume(curves, out / "hypervolume.png", f"{net}: hypervolume per generation")
    by_id = {t["id"]: t for t in test}
    rows = "\n".join(
        f"| {k} | {r['id']} | {r['metrics']['accuracy']:.4f} | "
        + (f"{by_id[r['id']]['test_accuracy']:.4f}" if r["id"] in by_id else "not evaluated")
        + f" | {int(r['metrics']['params']):,} | {r['how'] or ''} |"
        for k, r in enumerate(archive))
    s = settings
    budget = f"{s.epochs:g} epoch(s)" if s.epochs is not None else f"{s.steps} steps"
    text = f"""# Network search: `{net}`

Selection `{s.selection}`, population {s.population}, {len(lines)} generations, seed {s.seed}, inheritance
{'on' if s.inherit else 'off'}. Each candidate trains {budget} on `{s.task}` (batch {s.batch_size},
{s.optimizer}{dict(s.optimizer_args)}{', ' + s.scheduler if s.scheduler else ''}); objectives:
{', '.join(f'{d} {m}' for d, m in s.objectives)}. Accuracy is measured on the validation split; the test
split is read once, for the final front below.

![front](front.png)

*The Pareto front of validation accuracy against parameter count after each generation (every candidate
trained so far that no other beats on both), dark = early, yellow = late. A front that moves up and left
found smaller and more accurate networks.*

![hypervolume](hypervolume.png)

*{HV_WORDS.format(ref=params_ref)}. Higher is better; it can only grow, since the front keeps every
non-dominated candidate.{RANDOM_NOTE if len(curves) > 1 else ""}*

## Final front

| # | id | validation accuracy | test accuracy | parameters | last change |
|---|---|---|---|---|---|
{rows}

Files: `front/champion_NNN.net` (spec), `.py` (standalone PyTorch source), `.pt` (weights, read with
`netevo_dsl.runtime.weights_io.load_weights`); `generations/gen_NNNN/` holds each generation's front.
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
