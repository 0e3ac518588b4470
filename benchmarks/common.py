"""Small timing helpers shared by the benchmarks: interleaved repetitions, medians, machine description."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time


def machine() -> str:
    try:
        model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next((l.split(":", 1)[1].strip() for l in model.splitlines() if l.startswith("Model name")), "")
    except OSError:
        name = platform.processor()
    return f"{name or 'unknown CPU'}, {os.cpu_count()} cores, Python {platform.python_version()}"


def torch_machine() -> str:
    """`machine()` plus the torch version and its thread count (for benchmarks that time torch)."""
    import torch

    return f"{machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def timeit(fn, repeat: int = 5, number: int = 1) -> float:
    """Median seconds per call over `repeat` rounds of `number` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def side_by_side(fns: dict, repeat: int = 7, number: int = 3) -> dict:
    """Median seconds per call for each function, rounds interleaved so machine noise hits all alike."""
    samples = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[k].append((time.perf_counter() - t0) / number)
    return {k: statistics.median(v) for k, v in samples.items()}
