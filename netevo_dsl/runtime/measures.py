"""Measured cost of a compiled network: `latency` (median wall-clock seconds per forward pass).

Noisy by nature (other processes, CPU frequency): the median of `repeats` timed calls after two warm-up
calls, in eval mode without gradients. The counted measures (params, FLOPs, density) are in passes.measures.
"""
from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def latency(module, example_inputs, repeats: int = 20) -> float:
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    was = module.training
    module.eval()
    try:
        for _ in range(2):
            module(*example_inputs)
        times = []
        for _ in range(max(1, int(repeats))):
            if any(t.is_cuda for t in example_inputs if torch.is_tensor(t)):
                torch.cuda.synchronize()
            start = time.perf_counter()
            module(*example_inputs)
            if any(t.is_cuda for t in example_inputs if torch.is_tensor(t)):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    finally:
        module.train(was)
    return statistics.median(times)


__all__ = ["latency"]
