"""Every batched evaluator gives the same scores on CUDA as on the CPU (skipped without a GPU).

On a machine with a GPU these run with the rest of the suite; `benchmarks/bench_evaluator.py`
then also reports one digits generation's time on the device.
"""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.evaluate_networks import evaluate_networks
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.testing.strategies import shared_weight_populations
from netevo_dsl.testing.transformer_strategies import transformer_populations
from netevo_dsl.testing.wann_strategies import wann_genomes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

F64 = torch.float64
SETTINGS = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Short episodes: rounding differences between the devices grow through the dynamics.
CARTPOLE = ("cartpole", {"max_steps": 6, "repeats": 2})


def assert_same_scores(gpu, cpu, tolerance=1e-9):
    assert gpu.failures == cpu.failures
    assert set(gpu.metrics) == set(cpu.metrics)
    for name in cpu.metrics:
        torch.testing.assert_close(gpu.metrics[name], cpu.metrics[name], rtol=tolerance, atol=tolerance,
                                   equal_nan=True, msg=name)


def both_devices(population, task, **kwargs):
    return [evaluate(population, task, dtype=F64, device=device, **kwargs) for device in ("cuda", "cpu")]


@SETTINGS
@given(population=st.lists(wann_genomes(n_inputs=4, n_outputs=3, max_hidden=6, max_edges=18), min_size=1,
                           max_size=5),
       controllers=st.lists(wann_genomes(n_inputs=4, n_outputs=1, max_hidden=4, max_edges=10), min_size=1,
                            max_size=3))
def test_wann_genomes(population, controllers):
    assert_same_scores(*both_devices(population, "iris"))
    assert_same_scores(*both_devices(population, "iris", block_bytes=1, chunk_bytes=1))
    assert_same_scores(*both_devices(controllers, CARTPOLE), tolerance=1e-7)


@SETTINGS
@given(population=transformer_populations(3, 4, max_size=5))
def test_transformer_genomes(population):
    task = make_task(("majority", {"length": 3, "samples": 12}))
    assert_same_scores(*both_devices(population, task))


@SETTINGS
@given(population=shared_weight_populations(4, 3))
def test_layered_networks_grouped_and_padded(population):
    for widths in ("group", "pad"):
        gpu, cpu = (evaluate_networks(population, "iris", dtype=F64, device=device, widths=widths)
                    for device in ("cuda", "cpu"))
        assert_same_scores(gpu, cpu)


@SETTINGS
@given(population=shared_weight_populations(4, 1))
def test_layered_networks_on_control(population):
    gpu, cpu = (evaluate_networks(population, CARTPOLE, dtype=F64, device=device) for device in ("cuda", "cpu"))
    assert_same_scores(gpu, cpu, tolerance=1e-7)


def test_auto_picks_cuda_and_results_come_back_to_the_cpu():
    from netevo_dsl.grammar.parser import parse
    from netevo_dsl.runtime.evaluate import resolve_device

    assert resolve_device("auto").type == "cuda"
    genome = parse("genome g: wann {\n inputs a, b, c, d, bias\n outputs y0: linear, y1: linear, y2: linear\n"
                   " node h: tanh\n edge a -> h\n edge h -> y0\n edge b -> y1\n edge bias -> y2\n}").genomes[0]
    scores = evaluate([genome], "iris")
    assert scores.per_weight.device.type == "cpu" and torch.isfinite(scores.per_weight).all()


def test_digits_runs_as_one_block_on_a_gpu(monkeypatch):
    """On a GPU the default block budget is a share of free memory, not the CPU's cache-sized 16 MiB."""
    from netevo_dsl.runtime import evaluate as evaluate_module
    from netevo_dsl.runtime.wann_pack import PackedPopulation
    from netevo_dsl.testing.wann_strategies import random_genome
    import random

    assert evaluate_module.block_budget(torch.device("cuda")) > evaluate_module.BLOCK_BYTES
    rng = random.Random(0)
    population = [random_genome(rng, 64, 10, 30, 150, output_activation="linear") for _ in range(200)]
    calls = []
    forward = PackedPopulation.forward
    monkeypatch.setattr(PackedPopulation, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    evaluate(population, "digits", device="cuda")
    assert len(calls) == 1
