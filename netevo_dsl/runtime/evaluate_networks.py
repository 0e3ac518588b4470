"""Shared-weight (WANN-style) evaluation of a population of layered networks on classification tasks.

Networks of one architecture (same graph, same shapes; masks may differ) are stacked with
`torch.func.stack_module_state` and run in one `vmap`-ed call for all their shared weights;
networks of different widths form separate groups. Every weight-bearing layer runs as w x mask
(compiled networks' shared-weight mode), so nothing is trained: the score measures the
architecture and its connectivity.

`reference_evaluate_networks` is the oracle: one network and one weight at a time, with every
weight set to w (times its mask) and every bias to 0, through the ordinary forward pass.
"""
from __future__ import annotations

import torch

from ..errors import NetevoError, UsageError
from ..ir import nodes as ir
from .evaluate import Scores, resolve_device
from .tasks import make_task

DEFAULT_WEIGHTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)


def _network_spec(item) -> ir.Spec:
    if isinstance(item, ir.Spec) and len(item.networks) == 1:
        return item
    raise UsageError("each individual must be a spec with exactly one network")


def _classification(task):
    task = make_task(task)
    if task.kind != "classification":
        raise UsageError(f"networks are scored on classification tasks, not `{task.name}`")
    return task


def _score(logits: torch.Tensor, task) -> dict:
    """logits [..., N, C] -> reward (minus train cross-entropy), train and test accuracy, each [...]."""
    n = task.n_train
    labels = task.labels.to(logits.device)
    logp = torch.log_softmax(logits.double(), -1)
    picked = logp.gather(-1, labels.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    correct = (logits.argmax(-1) == labels).double()
    return {"reward": picked[..., :n].mean(-1), "train_accuracy": correct[..., :n].mean(-1),
            "test_accuracy": correct[..., n:].mean(-1)}


def _architecture_key(spec) -> tuple:
    from ..passes.elaborate import elaborate

    graph = elaborate(spec)
    return tuple((n.name, n.op, n.shape, tuple((k, v) for k, v in n.params if k != "mask")) for n in graph.nodes)


def evaluate_networks(population, task, weights=None, device="auto", dtype=torch.float32) -> Scores:
    from torch.func import functional_call, stack_module_state, vmap

    from .. import compile_module

    task = _classification(task)
    device = resolve_device(device)
    w = torch.tensor(weights or DEFAULT_WEIGHTS, dtype=dtype, device=device)
    x = task.features.to(device, dtype)
    P, W = len(population), len(w)
    table = {k: torch.full((P, W), float("nan"), dtype=torch.float64) for k in ("reward", "train_accuracy",
                                                                                "test_accuracy")}
    failures: dict[int, str] = {}
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(population):
        try:
            groups.setdefault(_architecture_key(_network_spec(item)), []).append(i)
        except NetevoError as e:
            failures[i] = e.message
    for members in groups.values():
        modules = [compile_module(population[i]).to(device, dtype).eval() for i in members]
        params, buffers = stack_module_state(modules)
        base = modules[0]

        def run(p, b):
            return functional_call(base, (p, b), (x,), {"w": w})

        with torch.no_grad():
            logits = vmap(run)(params, buffers)  # [G, W, N, C]
        scores = _score(logits, task)
        for k, v in scores.items():
            table[k][members] = v.cpu()
        bad = ~torch.isfinite(logits).flatten(2).all(-1).cpu()
        for j, i in enumerate(members):
            if bool(bad[j].any()):
                failures[i] = "non-finite outputs at some shared weight"
                for v in table.values():
                    v[i] = float("nan")
    return Scores(per_weight=table["reward"], weights=w.double().cpu(), metrics=table, failures=failures)


def reference_evaluate_networks(population, task, weights=None, device="auto", dtype=torch.float32) -> Scores:
    from .. import compile_module

    task = _classification(task)
    device = resolve_device(device)
    ws = list(weights or DEFAULT_WEIGHTS)
    x = task.features.to(device, dtype)
    P, W = len(population), len(ws)
    table = {k: torch.full((P, W), float("nan"), dtype=torch.float64) for k in ("reward", "train_accuracy",
                                                                                "test_accuracy")}
    failures: dict[int, str] = {}
    for i, item in enumerate(population):
        try:
            spec = _network_spec(item)
        except NetevoError as e:
            failures[i] = e.message
            continue
        for j, value in enumerate(ws):
            model = compile_module(spec).to(device, dtype).eval()
            with torch.no_grad():
                for name, module in model.named_modules():
                    if isinstance(module, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
                        mask = getattr(module, "mask", None)
                        full = torch.full_like(module.weight, value)
                        if mask is not None:
                            full = full * mask.view(*mask.shape, *([1] * (full.dim() - 2))).to(full.dtype)
                        module.weight.copy_(full)
                        if module.bias is not None:
                            module.bias.zero_()
                logits = model(x)
            for k, v in _score(logits, task).items():
                table[k][i, j] = float(v)
    return Scores(per_weight=table["reward"], weights=torch.tensor(ws, dtype=torch.float64), metrics=table,
                  failures=failures)


__all__ = ["evaluate_networks", "reference_evaluate_networks"]
