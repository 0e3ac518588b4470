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


@pytest.mark.parametrize("task,n_in,n_out", [(("xor", {"outputs": 1}), 2, 1), (("digits", {}), 64, 10)],
                         ids=["xor", "digits"])
def test_ray_equals_local_bitwise_for_every_chunk_size(local_cluster, task, n_in, n_out):
    """Issue 14, defect 7: the cluster's CPU count (which sets the chunk size) must not change a
    score. Genomes with and without hidden nodes, weights that are not powers of two."""
    from netevo_dsl.evolve.ray_backend import evaluate_on_ray
    from tests.runtime.test_batch_invariance import WEIGHTS, population

    genomes = population(n_in, n_out, 7, seed=2)
    local = evaluate_population(genomes, make_task(task), WEIGHTS, "cpu")
    spec = ne.load(XOR)
    for chunk in (1, 2, 3, 5, 0):
        settings = resolve_settings(spec, overrides={"backend": "ray", "chunk": chunk})
        remote = evaluate_on_ray(genomes, make_task(task), WEIGHTS, settings)
        assert remote.failures == local.failures
        for name, value in local.metrics.items():
            assert torch.equal(torch.nan_to_num(remote.metrics[name], nan=7.0), torch.nan_to_num(value, nan=7.0)), \
                (chunk, name)


def test_sigkill_of_a_ray_run_leaves_no_ray_process(tmp_path):
    """Issue 14, defect 12: a locally started Ray ends with the run, even after SIGKILL."""
    import signal
    import subprocess
    import sys
    import time

    from netevo_dsl.evolve.ray_watchdog import _stat, descendants

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "netevo_dsl.cli", "evolve", str(XOR), "--backend", "ray",
                             "--population", "8", "--generations", "100", "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while not (out / "checkpoint.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    ray_processes = descendants(proc.pid)
    assert len(ray_processes) >= 3  # raylet, GCS server, workers, agents, the watchdog
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(_stat(p) for p in ray_processes):
        time.sleep(0.5)
    alive = [p for p, start in ray_processes.items() if (_stat(p) or (0, None))[1] == start]
    assert not alive
