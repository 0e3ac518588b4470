"""Shared-weight evaluation of transformer (WANN-GPT) genomes on sequence tasks.

Each genome runs once for all shared weights together (the weight dimension is
a batch dimension inside the model); genomes are evaluated one after another.
A genome that does not fit the task (vocabulary, context) or produces
non-finite outputs is reported in `Scores.failures` with NaN scores.
"""
from __future__ import annotations

import torch

from ..compiler.transformer import config_of, compile_transformer
from ..errors import NetevoError, UsageError
from ..ir import nodes as ir
from .evaluate import Scores, resolve_device
from .tasks import make_task


def evaluate_transformers(population, task, weights=None, device="auto", dtype=torch.float32) -> Scores:
    task = make_task(task)
    if task.kind != "sequence":
        raise UsageError(f"transformer genomes are scored on sequence tasks, not `{task.name}` ({task.kind})",
                         hint="use copy, reverse, majority, parity or text(path=...)")
    device = resolve_device(device)
    genomes = [_genome(p) for p in population]
    if weights is None:
        weights = config_of(genomes[0]).weights if genomes and genomes[0] is not None else (1.0,)
    w = torch.tensor([float(x) for x in weights], dtype=dtype, device=device)
    tokens, targets = task.tokens.to(device), task.targets.to(device)
    n, width = len(genomes), len(w)
    per_weight = torch.full((n, width), float("nan"), dtype=torch.float64)
    metrics: dict[str, torch.Tensor] = {}
    failures: dict[int, str] = {}
    for i, genome in enumerate(genomes):
        try:
            if genome is None:
                raise UsageError("the individual holds no transformer genome")
            cfg = config_of(genome)
            if cfg.vocab != task.vocab_size:
                raise UsageError(f"vocab {cfg.vocab} does not match the task's {task.vocab_size} tokens")
            if tokens.shape[1] > cfg.context:
                raise UsageError(f"context {cfg.context} is shorter than the task's {tokens.shape[1]} tokens")
            model = compile_transformer(genome, device=device, dtype=dtype)
            with torch.no_grad():
                logits = model(tokens, w)
            if not torch.isfinite(logits).all():
                raise UsageError("non-finite outputs at some shared weight")
            reward, named = task.score(logits)
        except NetevoError as e:
            failures[i] = e.message
            continue
        per_weight[i] = reward.double().cpu()
        for k, v in named.items():
            metrics.setdefault(k, torch.full((n, width), float("nan"), dtype=torch.float64))[i] = v.double().cpu()
    metrics["reward"] = per_weight
    return Scores(per_weight=per_weight, weights=w.double().cpu(), metrics=metrics, failures=failures)


def _genome(item):
    if isinstance(item, ir.TransformerGenome):
        return item
    if isinstance(item, ir.Spec):
        found = item.of_kind(ir.TransformerGenome)
        return found[0] if len(found) == 1 else None
    return None
