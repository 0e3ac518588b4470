"""Evaluate population chunks as Ray tasks, on an existing cluster (`--address`) or a local one.

Results are identical to the local backend: each individual's scores depend only
on itself, and chunks are merged back in population order. Point a run at a
multi-machine cluster with `ray start --head` on one machine, `ray start
--address HEAD:6379` on the others, then `netevo evolve SPEC --backend ray
--address HEAD:6379`.
"""
from __future__ import annotations

import torch

from ..errors import UsageError


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("the ray backend needs Ray", hint="pip install 'netevo[ray]'") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):
    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
            _start_watchdog()
    return ray


def _start_watchdog() -> None:
    """A locally started Ray ends with this process, even one killed with SIGKILL (ray_watchdog.py)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if sys.platform.startswith("linux"):
        subprocess.Popen([sys.executable, str(Path(__file__).with_name("ray_watchdog.py")), str(os.getpid())],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


def _evaluate_chunk(population, task, weights, device, metrics=None):
    from .run import evaluate_population

    return evaluate_population(population, task, weights, device, metrics)


def evaluate_on_ray(population: list, task, weights, settings, metrics=None):
    ray = ensure_ray(settings.address)
    from ..runtime.evaluate import Scores

    n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = settings.chunk or max(1, -(-len(population) // n_workers))
    remote = ray.remote(_evaluate_chunk)
    task_ref = ray.put(task)
    chunks = [population[i:i + size] for i in range(0, len(population), size)]
    results = ray.get([remote.remote(c, task_ref, weights, "cpu" if settings.device == "auto" else settings.device,
                                     metrics) for c in chunks])
    failures, offset = {}, 0
    for chunk, r in zip(chunks, results):
        failures.update({offset + i: reason for i, reason in r.failures.items()})
        offset += len(chunk)
    metrics = {}
    for k in results[0].metrics:
        metrics[k] = torch.cat([r.metrics[k] for r in results])
    return Scores(per_weight=torch.cat([r.per_weight for r in results]), weights=results[0].weights,
                  metrics=metrics, failures=failures)


def _train_chunk(candidates, data, cfg, batched):
    from ..runtime.train_networks import train_candidates

    return train_candidates(candidates, data, cfg, batched=batched)


def train_on_ray(candidates: list, data, cfg, settings) -> list:
    """Train network candidates as Ray tasks, in population order. Candidates with the same spec text
    stay in one task, so every group is batched exactly as the local backend batches it."""
    ray = ensure_ray(settings.address)
    from .network_run import spec_text

    groups: dict = {}
    for i, c in enumerate(candidates):
        groups.setdefault(spec_text(c.spec), []).append(i)
    n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    chunks: list[list[int]] = [[] for _ in range(min(n_workers, len(groups)))]
    for k, members in enumerate(groups.values()):
        min(chunks, key=len).extend(members) if k >= len(chunks) else chunks[k].extend(members)
    data_ref = ray.put(data)
    remote = ray.remote(_train_chunk)
    refs = [remote.remote([candidates[i] for i in chunk], data_ref, cfg, settings.batched) for chunk in chunks]
    out: list = [None] * len(candidates)
    for chunk, results in zip(chunks, ray.get(refs)):
        for i, r in zip(chunk, results):
            out[i] = r
    return out
