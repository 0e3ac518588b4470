"""The reference evaluator for transformer (WANN-GPT) genomes: the batched evaluator's judge.

One genome, one shared weight at a time: every matrix of the compiled module is set to w (the
module multiplies it by its mask) and the ordinary forward pass runs, with no weight dimension
and no grouping, stacking or chunking. It shares with `evaluate_transformers` only the contract
helpers (reading the population, fit checks, shared weights, the score table) and the task's
`score`, so a bug in the batched forward, grouping or chunking shows up as a mismatch.
"""
from __future__ import annotations

import torch

from ..compiler.transformer import compile_transformer
from ..compiler.wann_gpt import SharedMaskedLinear
from .evaluate import Scores, resolve_device
from .evaluate_transformer import ScoreRows, fitting_configs, sequence_task, transformer_genome_of, \
    transformer_weights


def reference_evaluate_transformers(population, task, weights=None, device="auto", dtype=torch.float32) -> Scores:
    """Same contract and result as `evaluate_transformers`, computed the slow, obvious way."""
    task = sequence_task(task)
    device = resolve_device(device)
    configs, failures = fitting_configs(population, task)
    w = transformer_weights(configs.values(), weights, dtype, device)
    table = ScoreRows(len(population), w, task)
    tokens = task.tokens.to(device)
    for index in configs:
        model = compile_transformer(transformer_genome_of(population[index]), device=device, dtype=dtype).eval()
        rewards, metrics, bad = [], {}, []
        for value in w.tolist():
            logits = reference_logits(model, tokens, value)  # [N, T, vocab]
            reward, named = task.score(logits)
            rewards.append(reward)
            for name, metric in named.items():
                metrics.setdefault(name, []).append(metric)
            bad.append(not bool(torch.isfinite(logits).all()))
        table.write([index], torch.stack(rewards)[None], {k: torch.stack(v)[None] for k, v in metrics.items()},
                    torch.tensor([bad]))
    return table.finish(failures)


def reference_logits(model, tokens: torch.Tensor, value: float) -> torch.Tensor:
    """The plain forward with every weight equal to `value`, so each matrix is value x mask."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SharedMaskedLinear):
                module.weight.fill_(value)
        return model(tokens)


__all__ = ["reference_evaluate_transformers", "reference_logits"]
