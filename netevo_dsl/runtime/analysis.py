"""What a WANN genome does with its shared weight: sensitivity, ensembles, ablations.

Each analysis returns plain data (lists and dicts) computed with the batched
evaluator; each `plot_*` writes that data as a PNG (matplotlib's Agg canvas,
no global backend switch); `analyze` writes all of them plus a markdown summary.
"""
from __future__ import annotations

from pathlib import Path

import attrs
import torch

from ..errors import UsageError
from ..ir import nodes as ir
from ..ir.wann import connection_count, shared_weights
from .evaluate import evaluate
from .tasks import make_task

# -2.5, -2.4, ..., 2.5 exactly (0 included: the silent network), not float32 linspace's -3.7e-08
DEFAULT_SWEEP = tuple(round(-2.5 + 0.1 * k, 10) for k in range(51))


def _per_weight(scores, metric: str) -> torch.Tensor:
    value = scores.metrics.get(metric)
    if value is None or value.dim() != 2:
        per_weight = sorted(k for k, v in scores.metrics.items() if v.dim() == 2)
        raise UsageError(f"`{metric}` is not a per-weight metric of this task", hint=f"choose one of {per_weight}")
    return value


def weight_sensitivity(genome: ir.WannGenome, task, weights=DEFAULT_SWEEP, metric: str = "reward",
                       device="auto", dtype=torch.float64) -> dict:
    """`metric` at every weight of a sweep (default 51 values in [-2.5, 2.5]), in one batched call."""
    scores = evaluate([genome], make_task(task), weights=weights, device=device, dtype=dtype)
    _raise_failure(scores, genome)
    return {"metric": metric, "weights": scores.weights.tolist(), "values": _per_weight(scores, metric)[0].tolist()}


def ensemble_evaluation(genome: ir.WannGenome, task, weights=None, device="auto", dtype=torch.float64) -> dict:
    """Each single weight against the ensemble over weights.

    Classification: accuracies per weight and of the averaged softmax. Control: reward
    per weight and of a policy acting on the outputs averaged over the weights.
    """
    task = make_task(task)
    scores = evaluate([genome], task, weights=weights, device=device, dtype=dtype)
    _raise_failure(scores, genome)
    m = scores.metrics
    data = {"kind": task.kind, "weights": scores.weights.tolist()}
    if task.kind == "classification":
        data.update(
            metric="test_accuracy",
            per_weight=m["test_accuracy"][0].tolist(),
            ensemble=float(m["ensemble_test_accuracy"][0]),
            train_per_weight=m["train_accuracy"][0].tolist(),
            train_ensemble=float(m["ensemble_train_accuracy"][0]),
            best_weight=float(m["best_weight"][0]),
            best=float(m["best_test_accuracy"][0]),
        )
    else:
        episodes = m["episode_reward"][0]  # [W, repeats]
        data.update(metric="reward", per_weight=m["reward"][0].tolist(),
                    ensemble=_control_ensemble_reward(genome, task, scores.weights, dtype),
                    episodes=episodes.shape[1], episode_mean=float(episodes.mean()),
                    episode_std=float(episodes.std(correction=0)),
                    episode_std_per_weight=episodes.std(1, correction=0).tolist())
    return data


def _control_ensemble_reward(genome, task, weights: torch.Tensor, dtype) -> float:
    from ..compiler.wann import compile_wann

    module = compile_wann(genome)
    device = weights.device
    w = weights.to(device, dtype)

    def policy(obs):  # obs [1, 1, R, n] -> outputs averaged over the weights
        outputs = module(obs.reshape(-1, obs.shape[-1]).to(dtype), w).mean(0)
        return outputs.reshape(*obs.shape[:-1], -1)

    return float(task.rollout(policy, (1, 1), dtype, device)["reward"].reshape(()))


@attrs.frozen
class Ablation:
    kind: str  # "node" (removed with its edges) or "edge" (disabled); transformer genomes (analysis_transformer):
    #            "head" (its output zeroed), "attention" or "mlp" (the layer's sublayer switched off)
    name: str
    value: float  # the metric without it
    drop: float  # baseline minus value: how much the genome relies on it


def _summary_value(scores, metric: str) -> torch.Tensor:
    """[P] value of `metric`: 'mean' or 'max' of the reward, or a metric averaged over weights."""
    if metric == "mean":
        return scores.mean
    if metric == "max":
        return scores.max
    value = scores.metrics.get(metric)
    if value is None:
        raise UsageError(f"unknown metric `{metric}`", hint=f"use mean, max or one of {sorted(scores.metrics)}")
    return value.mean(1) if value.dim() == 2 else value


def ablation(genome: ir.WannGenome, task, metric: str = "mean", weights=None, device="auto",
             dtype=torch.float64) -> tuple[float, list[Ablation]]:
    """Baseline `metric` and its drop when each hidden node is removed or each enabled edge
    disabled; all variants are scored in one batched call."""
    variants, labels = [genome], []
    for node in genome.nodes:
        variants.append(attrs.evolve(genome, nodes=[n for n in genome.nodes if n.name != node.name],
                                     edges=[e for e in genome.edges if node.name not in (e.src, e.dst)]))
        labels.append(("node", node.name))
    for k, edge in enumerate(genome.edges):
        if edge.enabled:
            edges = list(genome.edges)
            edges[k] = attrs.evolve(edge, enabled=False)
            variants.append(attrs.evolve(genome, edges=edges))
            labels.append(("edge", f"{edge.src} -> {edge.dst}"))
    scores = evaluate(variants, make_task(task), weights=weights, device=device, dtype=dtype)
    _raise_failure(scores, genome)
    values = _summary_value(scores, metric).tolist()
    base = values[0]
    return base, [Ablation(kind, name, v, base - v) for (kind, name), v in zip(labels, values[1:])]


def compare(genomes: list, task, names: list[str] | None = None, weights=None, device="auto",
            dtype=torch.float64) -> list[dict]:
    """One row per genome: mean and max reward, size, and the task's headline metrics."""
    task = make_task(task)
    scores = evaluate(genomes, task, weights=weights, device=device, dtype=dtype)
    names = names or [g.name for g in genomes]
    rows = []
    for i, genome in enumerate(genomes):
        row = {"name": names[i], "mean": float(scores.mean[i]), "max": float(scores.max[i]),
               "connections": connection_count(genome), "nodes": len(genome.nodes),
               "failure": scores.failures.get(i)}
        for key in ("best_test_accuracy", "ensemble_test_accuracy"):
            if key in scores.metrics:
                row[key] = float(scores.metrics[key][i])
        rows.append(row)
    return rows


def _raise_failure(scores, genome) -> None:
    if 0 in scores.failures:
        raise UsageError(f"genome `{genome.name}` cannot be evaluated: {scores.failures[0]}", genome.span)


# --- plots --------------------------------------------------------------------------------


def _figure(width=6.0, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _save(figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    return path


# What each metric is, in words and units, for axis labels: a newcomer cannot read "reward".
METRIC_LABELS = {
    ("classification", "reward"): "reward = \u2212cross-entropy on training data (nats; 0 is perfect)",
    ("control", "reward"): "episode reward (sum over the episode's steps)",
    ("sequence", "reward"): "reward = \u2212cross-entropy per token (nats; 0 is perfect)",
    (None, "test_accuracy"): "test accuracy (fraction of held-out samples correct)",
    (None, "train_accuracy"): "training accuracy (fraction correct)",
    (None, "token_accuracy"): "token accuracy (fraction of target tokens correct)",
    (None, "sequence_accuracy"): "sequence accuracy (fraction of sequences all correct)",
}


def metric_label(metric: str, kind: str | None = None) -> str:
    """`metric` in words with its unit (the task kind decides what a reward is)."""
    return METRIC_LABELS.get((kind, metric)) or METRIC_LABELS.get((None, metric)) or metric


def plot_sensitivity(data: dict, path, genome_weights=()) -> Path:
    """The metric over the sweep; the genome's own shared weights are marked (orange)."""
    figure, ax = _figure()
    ax.plot(data["weights"], data["values"], marker=".", label="sweep")
    ax.axvline(0.0, color="grey", linewidth=0.5)
    marked = [(w, v) for w, v in zip(data["weights"], data["values"]) if any(abs(w - g) < 1e-9 for g in genome_weights)]
    if marked:
        ax.scatter(*zip(*marked), s=45, color="tab:orange", zorder=3, label="the genome's shared weights")
        ax.legend(fontsize=8)
    ax.set_xlabel("shared weight w (the one value every connection uses)")
    ax.set_ylabel(metric_label(data["metric"], data.get("kind")), fontsize=8)
    ax.set_title("weight sensitivity: the metric at each shared weight")
    return _save(figure, path)


def plot_ensemble(data: dict, path) -> Path:
    figure, ax = _figure()
    labels = [f"{w:g}" for w in data["weights"]] + ["ensemble"]
    values = list(data["per_weight"]) + [data["ensemble"]]
    ax.bar(range(len(values)), values, color=["tab:blue"] * (len(values) - 1) + ["tab:orange"])
    ax.set_xticks(range(len(values)), labels)
    ax.set_xlabel("shared weight w (orange: all weights together, mean of their outputs)")
    ax.set_ylabel(metric_label(data["metric"], data.get("kind")), fontsize=8)
    ax.set_title("single shared weights and their ensemble")
    return _save(figure, path)


def plot_ablation(ablations: list[Ablation], path, top: int = 25, metric: str = "mean reward over the shared weights"
                  ) -> Path:
    shown = sorted(ablations, key=lambda a: -abs(a.drop))[:top]
    figure, ax = _figure(6.0, max(2.5, 0.25 * len(shown) + 1))
    colors = {"node": "tab:red", "edge": "tab:blue", "head": "tab:orange", "attention": "tab:green",
              "mlp": "tab:purple"}
    ax.barh(range(len(shown)), [a.drop for a in shown], color=[colors.get(a.kind, "tab:gray") for a in shown])
    ax.set_yticks(range(len(shown)), [f"{a.kind} {a.name}" for a in shown])
    ax.invert_yaxis()
    from matplotlib.patches import Patch

    kinds = sorted({a.kind for a in shown})
    ax.legend(handles=[Patch(color=colors.get(k, "tab:gray"), label=k) for k in kinds], fontsize=7)
    ax.set_xlabel(f"drop in {metric}\n(with the part minus without it; larger = more needed)", fontsize=8)
    ax.set_title(f"ablation: the {len(shown)} parts whose removal changes the most")
    return _save(figure, path)


COMPARISON_LABELS = {"mean": "mean reward over the shared weights", "max": "best reward over the shared weights",
                     "token_accuracy": "token accuracy, mean over the shared weights (fraction correct)"}


def plot_comparison(rows: list[dict], path, metric: str = "mean") -> Path:
    figure, ax = _figure()
    ax.bar(range(len(rows)), [r[metric] for r in rows])
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel(COMPARISON_LABELS.get(metric, metric), fontsize=8)
    ax.set_title("genomes side by side on one task")
    return _save(figure, path)


def analyze(genome: ir.WannGenome, task, out_dir, device="auto", dtype=torch.float64, progress=None) -> dict:
    """Write sensitivity.png, ensemble.png, ablation.png and summary.md into `out_dir`.

    `progress(phase)`, when given, is called as each phase starts (for a progress bar)."""
    step = progress or (lambda phase: None)
    out = Path(out_dir)
    task = make_task(task)
    weights = shared_weights(genome)
    step("weight sweep")
    sensitivity = weight_sensitivity(genome, task, device=device, dtype=dtype)
    sensitivity["kind"] = task.kind
    step("ensemble")
    ensemble = ensemble_evaluation(genome, task, weights=weights, device=device, dtype=dtype)
    step("ablation")
    base, ablations = ablation(genome, task, weights=weights, device=device, dtype=dtype)
    step("plots")
    paths = {
        "sensitivity": plot_sensitivity(sensitivity, out / "sensitivity.png", genome_weights=weights),
        "ensemble": plot_ensemble(ensemble, out / "ensemble.png"),
        "ablation": plot_ablation(ablations, out / "ablation.png"),
    }
    best_sweep = max(range(len(sensitivity["values"])), key=lambda k: sensitivity["values"][k])
    lines = [
        f"# Genome `{genome.name}` on `{task.name}`",
        "",
        f"- hidden nodes: {len(genome.nodes)}, enabled connections: {connection_count(genome)}",
        f"- shared weights: {', '.join(f'{w:g}' for w in weights)}",
        f"- mean reward over them: {base:.6g}",
        f"- best {sensitivity['metric']} on the sweep: {sensitivity['values'][best_sweep]:.6g} "
        f"at w = {sensitivity['weights'][best_sweep]:g}",
        f"- ensemble {ensemble['metric']}: {ensemble['ensemble']:.6g} "
        f"(single weights: {min(ensemble['per_weight']):.6g} to {max(ensemble['per_weight']):.6g})",
        *([f"- episode return over all weights and {ensemble['episodes']} episodes: "
           f"{ensemble['episode_mean']:.6g} \u00b1 {ensemble['episode_std']:.6g} (mean \u00b1 std)"]
          if "episode_mean" in ensemble else []),
        "",
        "## Most important parts (drop in mean reward)",
        "",
        "| part | drop |",
        "|---|---|",
    ]
    lines += [f"| {a.kind} `{a.name}` | {a.drop:.6g} |" for a in sorted(ablations, key=lambda a: -a.drop)[:10]]
    lines += ["", *FIGURE_CAPTIONS]
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text("\n".join(lines))
    return {"paths": paths, "sensitivity": sensitivity, "ensemble": ensemble, "ablation": ablations,
            "baseline": base}


# The figures of summary.md with what to read from each (shared with analysis_transformer)
FIGURE_CAPTIONS = [
    "![sensitivity](sensitivity.png)", "",
    "*Weight sensitivity.* The metric when every connection uses the one shared weight on the x-axis; orange "
    "dots are the genome's own weights. A weight-agnostic genome scores well over a wide range of weights, "
    "not at one value only; w = 0 silences every connection.", "",
    "![ensemble](ensemble.png)", "",
    "*Ensemble.* Each bar is the genome run with one of its shared weights; the orange bar averages the outputs "
    "over all of them (the WANN paper's ensemble), usually at least as good as the best single weight.", "",
    "![ablation](ablation.png)", "",
    "*Ablation.* How much the metric falls when one part is removed (a hidden node with its edges) or switched off "
    "(an edge, a head, a sublayer). Long bars are the parts the genome relies on; bars near 0 could be pruned; "
    "negative bars are parts that hurt.", "",
]
