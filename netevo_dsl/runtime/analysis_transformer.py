"""What a transformer (WANN-GPT) genome does with its shared weight: sensitivity, ensembles, ablations.

The counterpart of `analysis` (WANN node/edge genomes) for `ir.TransformerGenome`s on sequence
tasks; it returns the same kinds of data, so `analysis`'s plots draw them. Scores over a sweep of
weights or over several genomes come from the batched evaluator (`evaluate_transformers`), which
also decides whether a genome fits the task. What that evaluator cannot express runs through the
compiled module (`compile_transformer`), whose forward pass takes every shared weight at once:
the ensemble's averaged softmax, and models with one attention head or one sublayer cut out.

Ablations edit the compiled model, never the genome: turning a sublayer off in the genome would
shift the mask seeds of every later matrix (each matrix's seed follows its position), so the
"ablated" genome would be a different network, not the same one missing a part.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from ..compiler.transformer import compile_transformer, config_of, masks_for
from ..errors import UsageError
from ..ir import nodes as ir
from .analysis import (DEFAULT_SWEEP, FIGURE_CAPTIONS, Ablation, _per_weight, plot_ablation, plot_ensemble,
                       plot_sensitivity)
from .evaluate import resolve_device
from .evaluate_transformer import evaluate_transformers
from .tasks import make_task

DEFAULT_METRIC = "token_accuracy"
SAMPLES_PER_PASS = 256  # samples per forward pass of the compiled model (see `model_logits`)


# --- evaluation helpers -------------------------------------------------------------------


def _sequence_task(task):
    """The task object; transformer genomes read and predict tokens, so only sequence tasks fit."""
    task = make_task(task)
    if task.kind != "sequence":
        raise UsageError(f"transformer genomes are analysed on sequence tasks, not `{task.name}` ({task.kind})",
                         hint="use copy, reverse, majority, parity or text(path=...)")
    return task


def _scores(genome: ir.TransformerGenome, task, weights, device, dtype):
    """Batched scores of one genome, or a UsageError saying why it cannot run on `task`."""
    scores = evaluate_transformers([genome], task, weights=weights, device=device, dtype=dtype)
    if 0 in scores.failures:
        tokens = task.tokens.shape[1]
        raise UsageError(f"genome `{genome.name}` cannot be analysed on `{task.name}`: {scores.failures[0]}",
                         genome.span,
                         hint=f"`{task.name}` needs vocab {task.vocab_size} and a context of at least {tokens}")
    return scores


def _model(genome: ir.TransformerGenome, device, dtype):
    """The compiled model in evaluation mode on the resolved device."""
    return compile_transformer(genome, device=resolve_device(device), dtype=dtype).eval()


@torch.no_grad()
def model_logits(model, task, weights) -> torch.Tensor:
    """[W, N, T, vocab] logits of `model` on the task's tokens, every shared weight in each pass.

    Samples go through SAMPLES_PER_PASS at a time: a text task can hold many windows, and the
    sublayers' activations are several times the size of the logits."""
    parameter = next(model.parameters())
    w = torch.as_tensor(weights, dtype=parameter.dtype).to(parameter.device).reshape(-1)
    tokens = task.tokens.to(parameter.device)
    return torch.cat([model(tokens[k:k + SAMPLES_PER_PASS], w) for k in range(0, len(tokens), SAMPLES_PER_PASS)], 1)


def _summary(model, task, weights, metric: str) -> float:
    """`metric` of `model` averaged over the shared weights: the number an ablation compares."""
    _reward, metrics = task.score(model_logits(model, task, weights))
    return float(metrics[metric].mean())


# --- analyses -------------------------------------------------------------------------------


def weight_sensitivity(genome: ir.TransformerGenome, task, weights=DEFAULT_SWEEP, metric: str = DEFAULT_METRIC,
                       device="auto", dtype=torch.float64) -> dict:
    """`metric` at every weight of a sweep (default 51 values in [-2.5, 2.5]), in one batched call."""
    scores = _scores(genome, _sequence_task(task), weights, device, dtype)
    return {"metric": metric, "weights": scores.weights.tolist(), "values": _per_weight(scores, metric)[0].tolist()}


def ensemble_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """[N, T, vocab] log of the softmax averaged over the leading weight dimension of `logits`.

    The task's scores read these as logits: log-probabilities are their own log-softmax, so the
    reward is the ensemble's log-likelihood and the argmax its prediction."""
    logp = torch.log_softmax(logits.to(torch.float64), -1)
    return torch.logsumexp(logp, 0) - math.log(logits.shape[0])


def ensemble_evaluation(genome: ir.TransformerGenome, task, weights=None, device="auto",
                        dtype=torch.float64) -> dict:
    """Each single weight against the ensemble that averages the softmax over the shared weights,
    scored by token accuracy (`per_weight`, `ensemble`) and sequence accuracy (`sequence_*`).

    weights: default the genome's `weights` setting."""
    task = _sequence_task(task)
    scores = _scores(genome, task, weights, device, dtype)
    logits = model_logits(_model(genome, device, dtype), task, scores.weights)
    reward, metrics = task.score(ensemble_log_probs(logits))
    per_weight = scores.metrics["token_accuracy"][0]
    best = int(per_weight.argmax())
    return {
        "kind": task.kind,
        "metric": "token_accuracy",
        "weights": scores.weights.tolist(),
        "per_weight": per_weight.tolist(),
        "ensemble": float(metrics["token_accuracy"]),
        "sequence_per_weight": scores.metrics["sequence_accuracy"][0].tolist(),
        "sequence_ensemble": float(metrics["sequence_accuracy"]),
        "reward_per_weight": scores.metrics["reward"][0].tolist(),
        "reward_ensemble": float(reward),
        "best_weight": float(scores.weights[best]),
        "best": float(per_weight[best]),
    }


def without_head(model, layer: int, head: int):
    """A copy of `model` whose attention head `head` in layer `layer` contributes exactly nothing:
    that head's d_head input columns of the output projection's mask are cleared, so its output
    is multiplied by zero. A layer whose attention is off has no heads to cut: an unchanged copy."""
    model = copy.deepcopy(model)
    block = model.h[layer]
    if block.use_attention:
        width = block.c_proj.mask.shape[1] // block.heads
        block.c_proj.mask[:, head * width:(head + 1) * width] = False
    return model


def without_sublayer(model, layer: int, sublayer: str):
    """A copy of `model` with layer `layer`'s "attention" or "mlp" sublayer switched off (its
    residual branch skipped), every other matrix and mask unchanged."""
    model = copy.deepcopy(model)
    setattr(model.h[layer], {"attention": "use_attention", "mlp": "use_mlp"}[sublayer], False)
    return model


def ablation_variants(model):
    """Yield (kind, name, ablated model) for every head ("layer.head"), then each layer's attention
    and MLP sublayer (named by the layer's index), one copy at a time. Heads and sublayers that are
    off are listed too: cutting them changes nothing, and the table says so with a drop of 0."""
    for i, block in enumerate(model.h):
        for k in range(block.heads):
            yield "head", f"{i}.{k}", without_head(model, i, k)
        for part in ("attention", "mlp"):
            yield part, str(i), without_sublayer(model, i, part)


def ablation(genome: ir.TransformerGenome, task, metric: str = DEFAULT_METRIC, weights=None, device="auto",
             dtype=torch.float64) -> tuple[float, list[Ablation]]:
    """Baseline `metric` (averaged over the shared weights) and its drop when each attention head is
    removed and when each layer's attention or MLP sublayer is switched off.

    Baseline and variants all run through the same compiled forward pass, so a cut that changes
    nothing has a drop of exactly 0. weights: default the genome's `weights` setting."""
    task = _sequence_task(task)
    scores = _scores(genome, task, weights, device, dtype)
    _per_weight(scores, metric)  # an unknown metric fails here, with the list of known ones
    model = _model(genome, device, dtype)
    base = _summary(model, task, scores.weights, metric)
    parts = []
    for kind, name, variant in ablation_variants(model):
        value = _summary(variant, task, scores.weights, metric)
        parts.append(Ablation(kind, name, value, base - value))
    return base, parts


def connection_count(genome: ir.TransformerGenome) -> int:
    """Enabled mask entries over every matrix: the transformer's complexity objective."""
    total = 0
    for value in masks_for(config_of(genome)).values():
        for mask in (value.values() if isinstance(value, dict) else [value]):
            total += int(mask.sum())
    return total


def compare(genomes: list, task, names: list[str] | None = None, weights=None, device="auto",
            dtype=torch.float64) -> list[dict]:
    """One row per genome: mean and max reward, mean and best token and sequence accuracy, size.

    weights: default each genome's own `weights` setting, so each genome is evaluated on its own;
    a genome that does not fit the task gets NaN scores and its reason under "failure"."""
    task = _sequence_task(task)
    names = names or [g.name for g in genomes]
    rows = []
    for name, genome in zip(names, genomes):
        scores = evaluate_transformers([genome], task, weights=weights, device=device, dtype=dtype)
        failure = scores.failures.get(0)
        cfg = None if failure else config_of(genome)
        row = {"name": name, "mean": float(scores.mean[0]), "max": float(scores.max[0]), "failure": failure,
               "connections": None if failure else connection_count(genome),
               "layers": None if failure else len(cfg.layers),
               "heads": None if failure else sum(layer[0] for layer in cfg.layers if layer[3])}
        for key in ("token_accuracy", "sequence_accuracy"):
            row[key] = float(scores.metrics[key][0].mean())
            row[f"best_{key}"] = float(scores.metrics[key][0].max())
        rows.append(row)
    return rows


# --- report -------------------------------------------------------------------------------


def _layers_line(cfg) -> str:
    """e.g. "layer 0: 4 heads, mlp gelu; layer 1: attention off, mlp sin"."""
    described = []
    for i, (heads, _ffn, activation, attention, mlp) in enumerate(cfg.layers):
        parts = [f"{heads} head(s)" if attention else "attention off", f"mlp {activation}" if mlp else "mlp off"]
        described.append(f"layer {i}: {', '.join(parts)}")
    return "; ".join(described)


def _describe(part: Ablation) -> str:
    """The part in words, for the summary table (the plot keeps the short "head 0.2" labels)."""
    if part.kind == "head":
        layer, head = part.name.split(".")
        return f"head {head} of layer {layer}"
    return f"{part.kind} of layer {part.name}"


def analyze(genome: ir.TransformerGenome, task, out_dir, metric: str = DEFAULT_METRIC, device="auto",
            dtype=torch.float64, progress=None) -> dict:
    """Write sensitivity.png, ensemble.png, ablation.png and summary.md into `out_dir`.

    The sweep covers DEFAULT_SWEEP; the ensemble and the ablations use the genome's own weights.
    `progress(phase)`, when given, is called as each phase starts."""
    step = progress or (lambda phase: None)
    out = Path(out_dir)
    task = _sequence_task(task)
    step("weight sweep")
    sensitivity = weight_sensitivity(genome, task, metric=metric, device=device, dtype=dtype)
    cfg = config_of(genome)  # after the sweep, which rejects genomes that do not fit the task
    step("ensemble")
    ensemble = ensemble_evaluation(genome, task, weights=cfg.weights, device=device, dtype=dtype)
    step("ablation")
    base, parts = ablation(genome, task, metric=metric, weights=cfg.weights, device=device, dtype=dtype)
    step("plots")
    paths = {
        "sensitivity": plot_sensitivity(sensitivity, out / "sensitivity.png", genome_weights=cfg.weights),
        "ensemble": plot_ensemble(ensemble, out / "ensemble.png"),
        "ablation": plot_ablation(parts, out / "ablation.png", metric=f"mean {metric} over the shared weights"),
    }
    best_sweep = max(range(len(sensitivity["values"])), key=lambda k: sensitivity["values"][k])
    lines = [
        f"# Transformer genome `{genome.name}` on `{task.name}`",
        "",
        f"- {_layers_line(cfg)}; embed {cfg.embed}; enabled connections: {connection_count(genome)}",
        f"- shared weights: {', '.join(f'{w:g}' for w in cfg.weights)}",
        f"- mean {metric} over them: {base:.6g}",
        f"- best {sensitivity['metric']} on the sweep: {sensitivity['values'][best_sweep]:.6g} "
        f"at w = {sensitivity['weights'][best_sweep]:g}",
        f"- ensemble (mean softmax) token_accuracy: {ensemble['ensemble']:.6g} "
        f"(single weights: {min(ensemble['per_weight']):.6g} to {max(ensemble['per_weight']):.6g}); "
        f"sequence_accuracy {ensemble['sequence_ensemble']:.6g}",
        "",
        f"## Most important parts (drop in mean {metric})",
        "",
        "| part | drop |",
        "|---|---|",
    ]
    lines += [f"| {_describe(a)} | {a.drop:.6g} |" for a in sorted(parts, key=lambda a: -a.drop)[:10]]
    lines += ["", *FIGURE_CAPTIONS]
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text("\n".join(lines))
    return {"paths": paths, "sensitivity": sensitivity, "ensemble": ensemble, "ablation": parts,
            "baseline": base, "metric": metric}

