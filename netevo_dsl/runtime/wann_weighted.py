"""Evaluating WANN genomes whose edges carry their own weights (`edge a -> b w=0.3`).

The packed evaluator (`wann_pack`) folds one shared weight into each level's sum; genomes with
per-edge weights go through `CompiledWann`'s weighted gather instead, one genome at a time, all
shared weights at once (the shared w still applies to the edges without a weight). The scores land
in the same `ScoreTable` rows, through the task's own scorer (classification: the same minibatch
mask as the rest of the population) or rollout (control: the same starting states).
"""
from __future__ import annotations

import torch

from ..compiler.wann import CompiledWann
from ..ir.wann import validate_genome
from .wann_arrays import has_edge_weights
from .wann_pack import io_mismatch


def weighted_rows(genomes: list) -> list[int]:
    """Population rows whose genome has at least one edge weight of its own (known from its carried
    arrays: reading every edge of every genome here cost as much as packing)."""
    return [i for i, g in enumerate(genomes) if g is not None and has_edge_weights(g)]


def _compiled(genome, task, weights, result, row) -> CompiledWann | None:
    """The genome compiled for `weights`' dtype and device, or None after recording its failure."""
    errors = validate_genome(genome)
    mismatch = io_mismatch(genome, task.n_inputs, task.n_outputs)
    if errors or mismatch is not None:
        result.failures[row] = "; ".join(e.message for e in errors) if errors else mismatch.message
        return None
    return CompiledWann(genome, device=weights.device, dtype=weights.dtype)


@torch.no_grad()
def classify_weighted(genomes: list, rows: list[int], task, weights: torch.Tensor, batch_mask: torch.Tensor,
                      result) -> None:
    """Score `rows` of `genomes` on a classification task with the evaluation's `batch_mask`."""
    features = task.features.to(weights.device, weights.dtype)
    for row in rows:
        module = _compiled(genomes[row], task, weights, result, row)
        if module is None:
            continue
        scorer = task.scorer(1, weights, batch_mask)
        scorer.add(module(features, weights).unsqueeze(0), slice(0, task.n_samples))  # [1, W, N, O]
        reward, metrics = scorer.finish()
        result.write([row], reward, metrics, scorer.nonfinite)


@torch.no_grad()
def control_weighted(genomes: list, rows: list[int], task, weights: torch.Tensor, result) -> None:
    """Score `rows` of `genomes` on a control task: one rollout per genome, every shared weight at once."""
    n_weights = len(weights)
    for row in rows:
        module = _compiled(genomes[row], task, weights, result, row)
        if module is None:
            continue

        def policy(obs, module=module):  # obs [1, W, R, n_in] -> [1, W, R, n_out]
            return module(obs[0], weights).unsqueeze(0)

        outcome = task.rollout(policy, (1, n_weights), weights.dtype, weights.device)
        result.write([row], outcome["reward"], task.metrics_of(outcome), outcome["nonfinite"])
