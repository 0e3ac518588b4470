"""The reference evaluator: the batched evaluator's judge.

One individual, one shared weight at a time, a plain Python loop over the nodes
in topological order, vectorised only over samples. It shares nothing with the
batched path except the task (data, physics and scoring) and the activation
table, so a packing or indexing bug in the batched path shows up as a mismatch.
"""
from __future__ import annotations

import torch

from ..ir import nodes as ir
from ..ir.wann import (BIAS, activation_of, evaluation_order, has_edge_weights, incoming, incoming_weights,
                       output_names, validate_genome)
from ..ops.activations import torch_fn
from .evaluate import Scores, ScoreTable, finalize, resolve_device, resolve_weights, wann_genomes_of, wrong_task_kind
from .tasks import make_task
from .wann_pack import io_mismatch


def reference_forward(genome: ir.WannGenome, inputs: torch.Tensor, w: float) -> torch.Tensor:
    """Outputs [B, n_outputs] of `genome` at shared weight `w` for observations [B, n_obs]."""
    samples = inputs.shape[0]
    columns = iter(inputs.t().contiguous())
    values: dict[str, torch.Tensor] = {}
    for name in genome.inputs:
        values[name] = torch.ones(samples, dtype=inputs.dtype, device=inputs.device) if name == BIAS else next(columns)
    sources = incoming(genome)
    declared_inputs = set(genome.inputs)
    own = incoming_weights(genome)
    weighted = has_edge_weights(genome)
    activation = activation_of(genome)
    for name in evaluation_order(genome):
        total = torch.zeros(samples, dtype=inputs.dtype, device=inputs.device)
        if weighted:  # each source times its edge's own weight, or w: act(sum of w_e * source)
            for source, weight in zip(sources[name], own[name]):
                total = total + (w if weight is None else weight) * values[source]
            values[name] = torch_fn(activation[name])(total)
            continue
        # inputs first, then hidden nodes, each in edge order: a fixed order, which the batched
        # evaluator follows too (a step activation at an exact 0 sees the same rounding)
        for source in sorted(sources[name], key=lambda s: s not in declared_inputs):
            total = total + values[source]
        values[name] = torch_fn(activation[name])(w * total)
    return torch.stack([values[name] for name in output_names(genome)], -1)


def reference_evaluate(population, task, weights=None, device="auto", *, dtype=torch.float32) -> Scores:
    """Same contract and result as `evaluate`, computed the slow, obvious way."""
    from .evaluate_transformer import is_transformer_individual
    from .reference_transformer import reference_evaluate_transformers

    if isinstance(population, (list, tuple)) and any(map(is_transformer_individual, population)):
        return reference_evaluate_transformers(population, task, weights, device, dtype=dtype)
    genomes, failures = wann_genomes_of(population)
    task = make_task(task)
    device = resolve_device(device)
    weights = resolve_weights(genomes, weights, dtype, device)
    if task.kind not in ("classification", "control"):
        raise wrong_task_kind(task)
    result = ScoreTable.empty(len(genomes), weights, task.metric_dims, getattr(task, "repeats", 1))
    batch_mask = task.next_batch_mask() if task.kind == "classification" else None
    for index, genome in enumerate(genomes):
        if genome is None:
            continue
        errors = validate_genome(genome)
        mismatch = io_mismatch(genome, task.n_inputs, task.n_outputs)
        if errors or mismatch is not None:
            result.failures[index] = "; ".join(e.message for e in errors) if errors else mismatch.message
            continue
        if task.kind == "classification":
            reward, metrics, bad = _classify_one(genome, task, weights, batch_mask)
        else:
            reward, metrics, bad = _control_one(genome, task, weights)
        result.write([index], reward, metrics, bad)
    return finalize(result, failures)


def _classify_one(genome, task, weights, batch_mask):
    features = task.features.to(weights.device, weights.dtype)
    outputs = torch.stack([reference_forward(genome, features, float(w)) for w in weights])  # [W, N, O]
    scorer = task.scorer(1, weights, batch_mask)
    scorer.add(outputs.unsqueeze(0), slice(0, task.n_samples))
    reward, metrics = scorer.finish()
    return reward, metrics, scorer.nonfinite


def _control_one(genome, task, weights):
    outcomes = [task.rollout(lambda obs: reference_forward(genome, obs[0, 0], w)[None, None], (1, 1),
                             weights.dtype, weights.device) for w in weights.tolist()]
    return stack_outcomes(task, outcomes)


def stack_outcomes(task, outcomes: list) -> tuple:
    """reward [1, W], metrics and non-finite flags [1, W] from one (1, 1) rollout per weight."""
    joined = {key: torch.cat([o[key] for o in outcomes], 1) for key in outcomes[0]}  # [1, W, ...]
    return joined["reward"], task.metrics_of(joined), joined["nonfinite"]
