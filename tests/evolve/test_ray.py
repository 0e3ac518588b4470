"""The Ray backend on a local 2-CPU cluster gives exactly the local backend's results."""
import os

import numpy as np
import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.population import wann_initial_population
from netevo_dsl.evolve.run import Evolution, evaluate_population
from netevo_dsl.evolve.settings import resolve_settings
from netevo_dsl.runtime.tasks import make_task

from .test_run import XOR

if os.environ.get("NETEVO_REQUIRE_RAY"):
    import ray  # CI installs the [ray] extra and sets this, so the test cannot silently skip there
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_cluster():
    from netevo_dsl.evolve.ray_backend import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_ray_scores_equal_local_scores(local_cluster):
    from netevo_dsl.evolve.ray_backend import evaluate_on_ray

    spec = ne.load(XOR)
    population = wann_initial_population(spec.genomes[0], 24, np.random.default_rng(0))
    settings = resolve_settings(spec, overrides={"backend": "ray", "chunk": 5})
    task = make_task(("xor", settings.task_params))
    remote = evaluate_on_ray(population, task, None, settings)
    local = evaluate_population(population, task, None, "cpu")
    assert torch.equal(remote.per_weight, local.per_weight)
    assert remote.failures == local.failures
    assert set(remote.metrics) == set(local.metrics)


def test_ray_run_log_equals_local_run_log(local_cluster, tmp_path):
    spec = ne.load(XOR)
    for backend in ("local", "ray"):
        s = resolve_settings(spec, overrides={"population": 12, "generations": 3, "backend": backend})
        Evolution(spec, s, tmp_path / backend, progress=False, report=False).execute()
    assert (tmp_path / "local" / "log.jsonl").read_text() == (tmp_path / "ray" / "log.jsonl").read_text()
    assert (tmp_path / "local" / "champion.net").read_text() == (tmp_path / "ray" / "champion.net").read_text()
