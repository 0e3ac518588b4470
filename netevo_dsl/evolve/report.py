"""The run report: report.md with PNG plots (fitness curves, Pareto front, the champion's
weight-sensitivity curve and topology)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..ir import nodes as ir


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fitness(log: list[dict], path: Path) -> None:
    plt = _plt()
    labels = list(log[0]["objectives"]) if log else []
    fig, axes = plt.subplots(1, max(1, len(labels)), figsize=(4.2 * max(1, len(labels)), 3.2), squeeze=False)
    gens = [l["generation"] for l in log]
    for ax, label in zip(axes[0], labels):
        for stat, style in (("max", "-"), ("median", "--"), ("min", ":")):
            ys = [l["objectives"][label][stat] for l in log]
            ax.plot(gens, [np.nan if y is None else y for y in ys], style, label=stat)
        ax.set_title(label)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_front(oriented: np.ndarray, front: list[int], labels: list[str], signs: list[float], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    if oriented.shape[1] >= 2:
        x, y = oriented[:, 0] * signs[0], oriented[:, 1] * signs[1]
        ok = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=10, c="lightgray", label="population")
        ax.scatter(x[front], y[front], s=18, c="crimson", label="Pareto front")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sensitivity(champion, task, weights: np.ndarray, device="cpu"):
    from .run import evaluate_population

    scores = evaluate_population([champion], task, tuple(float(w) for w in weights), device)
    return scores.per_weight[0].numpy(), {k: v[0].numpy() for k, v in scores.metrics.items()
                                          if getattr(v, "dim", lambda: 0)() == 2}


def plot_sensitivity(weights, reward, path: Path, metric_name="reward") -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(weights, reward, "-o", ms=3)
    ax.set_xlabel("shared weight w")
    ax.set_ylabel(metric_name)
    ax.set_title("champion: weight sensitivity")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# light fills, so that the black labels stay readable: inputs, the bias, hidden nodes, outputs
ROLE_COLOURS = {"input": "#cfe3f7", "bias": "#e6e6e6", "hidden": "#fde2b8", "output": "#c9ecc4"}


def plot_topology(genome, path: Path) -> None:
    plt = _plt()
    import networkx as nx

    fig, ax = plt.subplots(figsize=(6, 4))
    if isinstance(genome, ir.WannGenome):
        from ..ir.wann import topological_levels, to_networkx

        g = to_networkx(genome)
        levels = {n: 0 for n in genome.inputs}
        for depth, names in enumerate(topological_levels(genome), start=1):
            for n in names:
                levels[n] = depth
        for n in g.nodes:
            g.nodes[n]["layer"] = levels.get(n, 0)
        pos = nx.multipartite_layout(g, subset_key="layer")
        acts = {n: d.get("activation", "") for n, d in g.nodes(data=True)}
        colours = [ROLE_COLOURS[d["role"]] for _, d in g.nodes(data=True)]
        nx.draw_networkx(g, pos, ax=ax, node_size=650, node_color=colours, edgecolors="#555555", font_size=6,
                         arrowsize=8, edge_color="#777777",
                         labels={n: f"{n}\n{acts[n]}" if acts[n] else n for n in g.nodes})
    else:
        from ..compiler.transformer import config_of

        cfg = config_of(genome)
        chain = ["embed"] + [f"layer {i}\nheads {h} ffn {f}\n{a}" + ("" if at else "\nno attn") + ("" if m else "\nno ffn")
                             for i, (h, f, a, at, m) in enumerate(cfg.layers)] + ["head"]
        g = nx.path_graph(len(chain), create_using=nx.DiGraph)
        nx.draw_networkx(g, {i: (i, 0) for i in range(len(chain))}, ax=ax, node_size=900, font_size=6,
                         labels=dict(enumerate(chain)))
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, settings, champion, task, population, oriented, front) -> Path:
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    log = [json.loads(l) for l in (out / "log.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    labels = [o.label for o in settings.objectives]
    signs = [1.0 if o.direction == "maximize" else -1.0 for o in settings.objectives]
    plot_fitness(log, plots / "fitness.png")
    plot_front(oriented, front, labels, signs, plots / "pareto.png")
    ws = np.round(np.linspace(-2.0, 2.0, 41), 6)
    ws = ws[ws != 0.0]
    reward, metrics = sensitivity(champion, task, ws)
    plot_sensitivity(ws, reward, plots / "sensitivity.png")
    plot_topology(champion, plots / "topology.png")
    last = log[-1] if log else {}
    lines = [
        f"# netevo run: `{settings.target}` on `{settings.task}`", "",
        f"Selection `{settings.selection}`, population {settings.population}, generations {settings.generations}, "
        f"seed {settings.seed}. Settings: `config.yaml`.", "",
        "## Champion", "",
        f"`champion.net` / `champion.py` (id `{last.get('champion', {}).get('id', '?')}`).", "",
        "| objective | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in last.get("champion", {}).items() if k != "id"],
    ]
    extra = {k: v for k, v in metrics.items() if k != "reward"}
    if extra:
        best = int(np.nanargmax(reward))
        lines += ["", f"Best shared weight on the sensitivity sweep: w = {ws[best]:g} (reward {reward[best]:.4g}).", "",
                  "| metric at that weight | value |", "|---|---|",
                  *[f"| {k} | {v[best]:.4g} |" for k, v in sorted(extra.items())]]
    lines += ["", "## Plots", "",
              "![fitness](plots/fitness.png)", "", "![Pareto front](plots/pareto.png)", "",
              "![weight sensitivity](plots/sensitivity.png)", "", "![topology](plots/topology.png)", "",
              f"The final Pareto front ({len(front)} individuals) is in `pareto/`; the champion of every generation "
              "in `champions/`; one line per generation in `log.jsonl`."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
