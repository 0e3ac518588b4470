"""The run report: report.md with PNG plots (fitness curves, the champion's accuracy per generation,
the Pareto front, the champion's weight-sensitivity curve and topology), each with a caption that says
what to read from it. The topology layout is `layered_positions` (deterministic)."""
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


# --- words and units -------------------------------------------------------------------------

REWARD_UNITS = {"classification": "\u2212cross-entropy, nats; 0 is perfect",
                "control": "episode reward", "sequence": "\u2212cross-entropy per token, nats"}


def objective_words(label: str, kind: str | None = None) -> str:
    """`mean(reward)` -> `mean reward over the shared weights (−cross-entropy, nats; 0 is perfect)`."""
    unit = REWARD_UNITS.get(kind, "the task's reward")
    words = {"mean(reward)": f"mean reward over the shared weights ({unit})",
             "max(reward)": f"best reward over the shared weights ({unit})",
             "min(reward)": f"worst reward over the shared weights ({unit})",
             "connections": "enabled connections (count)", "nodes": "hidden nodes (count)"}
    return words.get(label, label)


def robust_limits(values, pad: float = 0.06) -> tuple[float, float, str]:
    """Axis limits that keep far outliers (Tukey's fences at 3 IQR) from crushing the view.
    Returns (low, high, note): the note names the values left off the axis ("" when none are)."""
    v = np.asarray([x for x in np.ravel(values) if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return -1.0, 1.0, ""
    q1, q3 = np.percentile(v, [25, 75])
    fence = 3 * (q3 - q1)
    inliers = v[(v >= q1 - fence) & (v <= q3 + fence)]
    low, high = inliers.min(), inliers.max()
    if high <= low:
        low, high = v.min(), v.max()
    if high <= low:
        low, high = low - 1, high + 1
    span = high - low
    note = " ".join(([f"lowest {v.min():.4g}"] if v.min() < low else []) + ([f"highest {v.max():.4g}"] if v.max() > high else []))
    return low - pad * span, high + pad * span, f"off the axis: {note}" if note else ""


# --- fitness ------------------------------------------------------------------------------------

STATS = (("max", "-", "max over the population"), ("median", "--", "median"), ("min", ":", "min over the population"))


SHORT_UNITS = {"classification": "\u2212cross-entropy, nats", "control": "episode reward",
               "sequence": "\u2212cross-entropy per token, nats"}
PANEL_TITLES = {"mean(reward)": "mean(reward): averaged over the shared weights",
                "max(reward)": "max(reward): at the best shared weight", "connections": "connections (enabled edges)"}


def plot_fitness(log: list[dict], path: Path, kind: str | None = None, champion: dict | None = None,
                 labels: list[str] | None = None) -> None:
    """One panel per objective (best, median and worst individual of each generation), plus one panel
    with the champion's accuracies when `champion` holds them ({label: [value per generation]})."""
    plt = _plt()
    labels = labels or (list(log[0]["objectives"]) if log else [])
    panels = len(labels) + bool(champion)
    fig, axes = plt.subplots(1, max(1, panels), figsize=(4.6 * max(1, panels), 3.8), squeeze=False)
    gens = [l["generation"] for l in log]
    for ax, label in zip(axes[0], labels):
        series = {stat: [np.nan if l["objectives"][label][stat] is None else l["objectives"][label][stat] for l in log]
                  for stat, _, _ in STATS}
        for stat, style, words in STATS:
            ax.plot(gens, series[stat], style, label=words)
        low, high, note = _fitness_limits(series)
        ax.set_ylim(low, high)
        if note:
            ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=7, color="#a33")
        ax.set_title(PANEL_TITLES.get(label, label), fontsize=9)
        ax.set_ylabel("count" if label in ("connections", "nodes") else
                      f"reward ({SHORT_UNITS.get(kind, 'task reward')})" if "reward" in label else label, fontsize=8)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    if champion:
        ax = axes[0][len(labels)]
        for (label, values), style in zip(champion.items(), ("-", "--", "-.", ":")):
            ax.plot(gens[: len(values)], values, style, label=label)
        ax.set_ylim(0, 1.02)
        ax.set_title("champion of each generation", fontsize=10)
        ax.set_ylabel("accuracy (fraction correct)", fontsize=8)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    fig.suptitle("fitness per generation", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fitness_limits(series: dict) -> tuple[float, float, str]:
    """Limits read off the max and median lines (the population's progress); the min line, often noisy
    far below, may stretch them by at most their own span. The note counts what is left off."""
    low, high, _ = robust_limits([series["max"], series["median"]])
    worst = np.asarray([v for v in series["min"] if v is not None and np.isfinite(v)], dtype=float)
    span = high - low
    if len(worst):
        low = min(low, max(worst.min() - 0.06 * span, low - span))
        high = max(high, min(worst.max() + 0.06 * span, high + span))
    values = np.asarray([v for s in series.values() for v in s if v is not None and np.isfinite(v)], dtype=float)
    off = int(((values < low) | (values > high)).sum())
    return low, high, f"{off} value(s) off the axis (lowest {values.min():.4g})" if off else ""


def champion_accuracies(out: Path, task, weights, device="cpu") -> dict | None:
    """{label: [value per generation]} of the champions in `out/champions`, for classification tasks:
    test accuracy with a random shared weight (the mean over the weights), with the weight that is best on
    the training data, and of the ensemble over the weights; training accuracy at that weight. One
    batched evaluation of all champions. None for other tasks (their log already holds the champion)."""
    if getattr(task, "kind", None) != "classification":
        return None
    from .population import genome_from_text
    from .run import evaluate_population

    files = sorted((Path(out) / "champions").glob("gen_*.net"))
    if not files:
        return None
    genomes = [genome_from_text(f.read_text(encoding="utf-8")) for f in files]
    m = evaluate_population(genomes, task, weights, device).metrics
    return {"test, random weight": m["test_accuracy"].double().mean(1).tolist(),
            "test, best weight": m["best_test_accuracy"].tolist(),
            "test, ensemble": m["ensemble_test_accuracy"].tolist(),
            "train, best weight": m["best_train_accuracy"].tolist()}


def headline(champion, task, weights=None, device="cpu") -> dict[str, float]:
    """What a newcomer wants to know about the champion: test accuracy with a random shared weight, the
    best weight (chosen on training data) and the ensemble; for other tasks the best shared weight."""
    from .run import evaluate_population

    scores = evaluate_population([champion], task, weights, device)
    m = scores.metrics
    if getattr(task, "kind", None) == "classification":
        return {"test accuracy, random shared weight": float(m["test_accuracy"][0].double().mean()),
                "test accuracy, best weight": float(m["best_test_accuracy"][0]),
                "test accuracy, ensemble of the weights": float(m["ensemble_test_accuracy"][0]),
                "best weight (chosen on training data)": float(m["best_weight"][0])}
    # the rewards themselves are the run's objectives, reported next to this
    best = int(scores.per_weight[0].argmax())
    out = {"best shared weight": float(scores.weights[best])}
    episodes = m.get("episode_reward")
    if episodes is not None:  # control: the spread over episodes, not only their mean
        out.update({"episode return, mean over all weights and episodes": float(episodes[0].mean()),
                    "episode return, std over all weights and episodes": float(episodes[0].std(correction=0)),
                    "episode return at the best weight, mean": float(episodes[0, best].mean()),
                    "episode return at the best weight, std": float(episodes[0, best].std(correction=0)),
                    "episodes per weight": float(episodes.shape[2])})
    return out


# --- Pareto front ---------------------------------------------------------------------------------


def plot_front(oriented: np.ndarray, front: list[int], labels: list[str], signs: list[float], path: Path,
               kind: str | None = None) -> None:
    """The last generation: the first two objectives as axes, the third (connections) as colour, the
    first Pareto front (over all objectives) ringed in red."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    if oriented.shape[1] >= 2:
        values = oriented * np.asarray(signs)[None, :]
        x, y = values[:, 0], values[:, 1]
        ok = np.isfinite(x) & np.isfinite(y)
        colour = values[:, 2] if values.shape[1] >= 3 else None
        points = ax.scatter(x[ok], y[ok], s=16, c=colour[ok] if colour is not None else "tab:blue",
                            cmap="viridis", label="population (last generation)")
        if colour is not None:
            from matplotlib.ticker import MaxNLocator

            bar = fig.colorbar(points, ax=ax, ticks=MaxNLocator(integer=labels[2] in ("connections", "nodes")))
            bar.set_label(objective_words(labels[2], kind), fontsize=8)
        ax.scatter(x[front], y[front], s=60, facecolors="none", edgecolors="crimson", linewidths=1.3,
                   label=f"Pareto front ({len(front)})")
        for axis, v, setter in ((x, "x", ax.set_xlim), (y, "y", ax.set_ylim)):
            low, high, _ = robust_limits(axis[ok])
            setter(low, high)
        ax.set_xlabel(objective_words(labels[0], kind) + "  \u2192 better", fontsize=8)
        ax.set_ylabel(objective_words(labels[1], kind).replace(" (", "\n(", 1) + "  \u2191 better", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title("last generation: objectives and Pareto front", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- weight sensitivity ---------------------------------------------------------------------------


def sensitivity(champion, task, weights: np.ndarray, device="cpu"):
    from .run import evaluate_population

    scores = evaluate_population([champion], task, tuple(float(w) for w in weights), device)
    return scores.per_weight[0].numpy(), {k: v[0].numpy() for k, v in scores.metrics.items()
                                          if getattr(v, "dim", lambda: 0)() == 2}


def plot_sensitivity(weights, reward, path: Path, metric_name="reward", kind: str | None = None,
                     genome_weights=()) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.plot(weights, reward, "-o", ms=3, label="sweep")
    marked = [(w, r) for w, r in zip(weights, reward) if any(abs(w - g) < 1e-9 for g in genome_weights)]
    if marked:
        ax.scatter(*zip(*marked), s=50, color="tab:orange", zorder=3, label="the genome's shared weights")
    low, high, _ = robust_limits(reward)
    ax.set_ylim(low, high)
    ax.set_xlabel("shared weight w (the one value every connection uses)")
    ax.set_ylabel(f"{metric_name} ({REWARD_UNITS.get(kind, 'the task reward')})" if metric_name == "reward"
                  else metric_name, fontsize=8)
    ax.set_title("champion: reward at each shared weight", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- topology -------------------------------------------------------------------------------------

# one colour per activation (inputs and the bias are drawn as squares in their own colours)
ACTIVATION_COLOURS = {
    "linear": "#7f7f7f", "identity": "#7f7f7f", "step": "#1f77b4", "sin": "#ff7f0e", "gauss": "#2ca02c",
    "tanh": "#d62728", "sigmoid": "#9467bd", "inverse": "#8c564b", "abs": "#e377c2", "relu": "#17becf",
    "cos": "#bcbd22", "square": "#393b79",
}
INPUT_COLOUR, BIAS_COLOUR = "#9ecae1", "#d9d9d9"


def layered_positions(genome: ir.WannGenome) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """A layered drawing, as in the WANN paper's figures: used inputs in the first column (declared order),
    hidden nodes by longest-path depth, outputs in the last column (declared order). Within a hidden
    column nodes sit in the order of their sources' mean height, which uncrosses most edges.
    Returns the positions and the inputs left out (no enabled edge leaves them). Deterministic."""
    from ..ir.wann import enabled_edges, output_names, topological_levels

    edges = enabled_edges(genome)
    sources: dict[str, list[str]] = {}
    for e in edges:
        sources.setdefault(e.dst, []).append(e.src)
    used = {e.src for e in edges}
    shown = [i for i in genome.inputs if i in used]
    unused = [i for i in genome.inputs if i not in used]
    outputs = output_names(genome)
    columns = [shown] + [[n for n in level if n not in outputs] for level in topological_levels(genome)]
    columns = [c for c in columns if c] + [outputs]
    pos: dict[str, tuple[float, float]] = {}
    for x, column in enumerate(columns):
        if 0 < x < len(columns) - 1:
            def height(name):
                ys = [pos[s][1] for s in sources.get(name, ()) if s in pos]
                return -np.mean(ys) if ys else 0.0
            column = sorted(column, key=height)  # stable: ties keep declaration order
        for k, name in enumerate(column):
            pos[name] = (float(x), (len(column) - 1) / 2 - k)
    return pos, unused


def plot_topology(genome, path: Path) -> None:
    plt = _plt()
    if not isinstance(genome, ir.WannGenome):
        _plot_transformer(genome, path)
        return
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    from ..ir.wann import BIAS, activation_of, enabled_edges

    pos, unused = layered_positions(genome)
    acts = activation_of(genome)
    columns = max(x for x, _ in pos.values()) + 1
    tallest = max(sum(1 for p in pos.values() if p[0] == x) for x in range(int(columns)))
    # bounded size: a deep genome gets narrower columns, a wide one closer rows (and smaller labels)
    fig, ax = plt.subplots(figsize=(min(16.0, 3.5 + 1.5 * columns), min(14.0, max(3.8, 0.24 * tallest + 1.6))))
    segments = [(pos[e.src], pos[e.dst]) for e in enabled_edges(genome) if e.src in pos and e.dst in pos]
    ax.add_collection(LineCollection(segments, colors="#444444", linewidths=0.6,
                                     alpha=max(0.35, min(0.8, 40 / max(1, len(segments))))))
    font = 7 if tallest <= 40 else 5
    for name, (x, y) in pos.items():
        if name in genome.inputs:
            ax.scatter([x], [y], marker="s", s=40, color=BIAS_COLOUR if name == BIAS else INPUT_COLOUR,
                       edgecolors="#333333", linewidths=0.5, zorder=3)
            ax.annotate(name, (x, y), xytext=(-6, 0), textcoords="offset points", ha="right", va="center",
                        fontsize=font)
        else:
            ax.scatter([x], [y], s=70, color=ACTIVATION_COLOURS.get(acts[name], "#000000"), edgecolors="#333333",
                       linewidths=0.5, zorder=3)
            if x == columns - 1:
                ax.annotate(name, (x, y), xytext=(7, 0), textcoords="offset points", ha="left", va="center",
                            fontsize=font)
    present = sorted({acts[n] for n in pos if n in acts})
    handles = [Line2D([], [], marker="o", linestyle="", color=ACTIVATION_COLOURS.get(a, "#000000"), label=a)
               for a in present]
    handles += [Line2D([], [], marker="s", linestyle="", color=INPUT_COLOUR, label="input"),
                Line2D([], [], marker="s", linestyle="", color=BIAS_COLOUR, label="bias (constant 1)")]
    ax.legend(handles=handles, title="activation", fontsize=7, title_fontsize=7, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    hidden = len(genome.nodes)
    ax.set_title(f"champion `{genome.name}`: {hidden} hidden nodes, {len(segments)} connections"
                 + (f"\n{len(unused)} inputs without a connection not drawn" if unused else ""), fontsize=9)
    ax.set_xlim(-0.8, columns - 0.2)
    ax.set_ylim(-tallest / 2 - 0.5, tallest / 2 + 0.5)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _plot_transformer(genome, path: Path) -> None:
    plt = _plt()
    from ..compiler.transformer import config_of

    cfg = config_of(genome)
    chain = ["embed"] + [f"layer {i}\nheads {h}, ffn {f}\n{a}" + ("" if at else "\nno attention")
                         + ("" if m else "\nno ffn") for i, (h, f, a, at, m) in enumerate(cfg.layers)] + ["head"]
    fig, ax = plt.subplots(figsize=(1.7 * len(chain) + 1, 2.6))
    for i, text in enumerate(chain):
        ax.text(i, 0, text, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "facecolor": "#fde2b8", "edgecolor": "#555555"})
        if i:
            ax.annotate("", (i - 0.35, 0), (i - 0.65, 0), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.7, len(chain) - 0.3)
    ax.set_ylim(-1, 1)
    ax.set_title(f"champion `{genome.name}`: layers in order", fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


# --- report.md --------------------------------------------------------------------------------------

CAPTIONS = {
    "fitness": "*Fitness per generation.* One panel per objective. Each individual has one value per objective "
               "(`mean(reward)`: its reward averaged over the shared weights; `max(reward)`: its reward at its best "
               "shared weight); the three lines are the max, the median and the min of that value over the "
               "generation's individuals. Rising max and median lines mean the population improves (for "
               "connections, lower is better); far outliers are left off the axis and noted in red.",
    "champion": "The last panel follows the champion of each generation on held-out test data: with a shared "
                "weight drawn at random (the mean over the weights), with the weight that is best on the "
                "training data, and with all weights as an ensemble; and its training accuracy. There is no "
                "separate validation split: the weight is chosen on training data, so the test accuracy is "
                "unbiased.",
    "pareto": "*Pareto front.* The last generation, first objective across, second up, third (connections) as "
              "colour. Ringed points are the first Pareto front over all objectives: none is beaten on every "
              "objective by another. Up and right is better; a front that reaches far up with few connections "
              "is the goal.",
    "sensitivity": "*Weight sensitivity.* The champion's reward when every connection uses the one shared weight "
                   "on the x-axis; orange dots are the weights it was evolved with. A weight-agnostic network "
                   "stays good over a wide range; w = 0 silences every connection.",
    "topology": "*Topology.* The champion as drawn in the WANN paper: inputs left (those without a connection "
                "are left out and counted in the title), hidden nodes by depth, outputs right; colour is the "
                "activation (legend). Every connection carries the same shared weight.",
}


def write_report(out: Path, settings, champion, task, population, oriented, front) -> Path:
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    log = [json.loads(l) for l in (out / "log.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    labels = [o.label for o in settings.objectives]
    signs = [1.0 if o.direction == "maximize" else -1.0 for o in settings.objectives]
    kind = getattr(task, "kind", None)
    accuracies = champion_accuracies(out, task, settings.weights) if isinstance(champion, ir.WannGenome) else None
    if accuracies:
        (out / "champion_accuracy.json").write_text(json.dumps(accuracies), encoding="utf-8")
    plot_fitness(log, plots / "fitness.png", kind, accuracies, labels)
    plot_front(oriented, front, labels, signs, plots / "pareto.png", kind)
    ws = np.round(np.linspace(-2.0, 2.0, 41), 6)
    ws = ws[ws != 0.0]
    genome_weights = ()
    if isinstance(champion, ir.WannGenome):
        from ..ir.wann import shared_weights

        genome_weights = settings.weights or shared_weights(champion)
        ws = np.union1d(ws, np.asarray(genome_weights, dtype=float))
    reward, metrics = sensitivity(champion, task, ws)
    plot_sensitivity(ws, reward, plots / "sensitivity.png", kind=kind, genome_weights=genome_weights)
    plot_topology(champion, plots / "topology.png")
    final = headline(champion, task, settings.weights)
    (out / "champion_summary.json").write_text(json.dumps(final, indent=1), encoding="utf-8")
    last = log[-1] if log else {}
    lines = [
        f"# netevo run: `{settings.target}` on `{settings.task}`", "",
        f"Made by `netevo evolve` (or `netevo_dsl.evolve.run_evolution`) with selection `{settings.selection}`, "
        f"population {settings.population}, generations {settings.generations}, seed {settings.seed}. "
        "Settings: `config.yaml`.", "",
        "## Champion", "",
        f"`champion.net` / `champion.py` (id `{last.get('champion', {}).get('id', '?')}`).", "",
        "| measure | value |", "|---|---|",
        *[f"| {k} | {v:.4g} |" for k, v in final.items()],
        *[f"| {objective_words(k, kind)} | {v} |" for k, v in last.get("champion", {}).items() if k != "id"],
    ]
    extra = {k: v for k, v in metrics.items() if k != "reward"}
    if extra:
        best = int(np.nanargmax(reward))
        lines += ["", f"Best shared weight on the sensitivity sweep: w = {ws[best]:g} (reward {reward[best]:.4g}).", "",
                  "| metric at that weight | value |", "|---|---|",
                  *[f"| {k} | {v[best]:.4g} |" for k, v in sorted(extra.items())]]
    lines += ["", "## Plots", "",
              "![fitness](plots/fitness.png)", "", CAPTIONS["fitness"] + (" " + CAPTIONS["champion"] if accuracies else ""),
              "", "![Pareto front](plots/pareto.png)", "", CAPTIONS["pareto"], "",
              "![weight sensitivity](plots/sensitivity.png)", "", CAPTIONS["sensitivity"], "",
              "![topology](plots/topology.png)", "", CAPTIONS["topology"], "",
              f"The final Pareto front ({len(front)} individuals) is in `pareto/`; the champion of every generation "
              "in `champions/`; one line per generation in `log.jsonl`."]
    path = out / "report.md"
    from .checkpoint import write_atomic

    write_atomic(path, "\n".join(lines) + "\n")
    return path


def record_command(report: Path, command: str) -> None:
    """Name the command that made the run in its report.md (the CLI calls this after the run)."""
    text = Path(report).read_text(encoding="utf-8")
    text = text.replace("Made by `netevo evolve` (or `netevo_dsl.evolve.run_evolution`)", f"Made by `{command}`", 1)
    Path(report).write_text(text, encoding="utf-8")
