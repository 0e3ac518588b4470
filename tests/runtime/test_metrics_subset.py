"""`evaluate(..., metrics=...)`: the reward-only path that selection uses (issue 18, item 3).

Expected values: the same individuals evaluated with every metric (the default). Asking for fewer
metrics must leave the reward, the failures and every metric still asked for bit for bit the same,
and return only what was asked. The run loop asks only for its objectives; the report still
evaluates the champion for every metric.
"""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.run import Evolution, evaluate_population, objective_matrix
from netevo_dsl.evolve.settings import resolve_settings
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.testing.wann_strategies import random_genome, wann_genomes

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = (-1.7, -0.3, 0.3, 0.7, 1.3, 2.9)
TASKS = [(("xor", {"outputs": 1}), 2, 1), (("iris", {"batch_size": 50}), 4, 3), (("wine", {}), 13, 3)]
METRICS = sorted(make_task("iris").metric_dims)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0))


@settings(max_examples=12, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_fewer_metrics_leave_the_reward_and_the_asked_metrics_bitwise_the_same(data, dtype):
    task, n_in, n_out = data.draw(st.sampled_from(TASKS))
    genomes = data.draw(st.lists(wann_genomes(n_inputs=n_in, n_outputs=n_out, max_hidden=6, max_edges=24),
                                 min_size=1, max_size=5))
    asked = data.draw(st.lists(st.sampled_from(METRICS), max_size=4, unique=True))
    full = evaluate(genomes, task, WEIGHTS, device="cpu", dtype=dtype)
    part = evaluate(genomes, task, WEIGHTS, device="cpu", dtype=dtype, metrics=asked)
    assert set(part.metrics) == {"reward", *asked}
    assert part.failures == full.failures
    assert same_bits(part.per_weight, full.per_weight)
    for name in part.metrics:
        assert same_bits(part.metrics[name], full.metrics[name]), name


def test_reward_only_on_digits_across_sample_blocks():
    """Several sample blocks (a segment left pending between them) and the test split."""
    rng = random.Random(3)
    genomes = [random_genome(rng, 64, 10, 8, 40, name=f"g{i}", output_activation="linear") for i in range(6)]
    full = evaluate(genomes, "digits", WEIGHTS, device="cpu")
    for block_bytes in (1, 1 << 16, 1 << 30):
        part = evaluate(genomes, "digits", WEIGHTS, device="cpu", block_bytes=block_bytes,
                        metrics=["reward", "test_reward"])
        assert set(part.metrics) == {"reward", "test_reward"}
        assert same_bits(part.per_weight, full.per_weight)
        assert same_bits(part.metrics["test_reward"], full.metrics["test_reward"])


def test_control_and_transformer_scores_keep_only_the_asked_metrics():
    rng = random.Random(0)
    genomes = [random_genome(rng, 5, 1, 3, 8, name=f"s{i}") for i in range(3)]
    task = ("swingup", {"repeats": 2, "max_steps": 30})
    full = evaluate(genomes, task, WEIGHTS, device="cpu")
    part = evaluate(genomes, task, WEIGHTS, device="cpu", metrics=["steps"])
    assert set(part.metrics) == {"reward", "steps"}
    assert same_bits(part.per_weight, full.per_weight) and same_bits(part.metrics["steps"], full.metrics["steps"])


def test_an_unknown_metric_is_a_located_usage_error():
    genome = random_genome(random.Random(0), 2, 1, 0, 2)
    with pytest.raises(NetevoError) as caught:
        evaluate([genome], ("xor", {"outputs": 1}), WEIGHTS, device="cpu", metrics=["accuracy"])
    assert caught.value.code == "E181" and "train_accuracy" in caught.value.hint


def test_the_run_loop_asks_only_for_its_objectives_and_reports_every_metric(tmp_path):
    spec = ne.load(ROOT / "specs" / "wann_xor.net")
    s = resolve_settings(spec, overrides={"population": 12, "generations": 2, "seed": 5})
    run = Evolution(spec, s, tmp_path / "r", progress=False)
    population = run.initial_population(np.random.default_rng(0))
    lean = run.evaluate(population, 0)
    asked = {o.metric for o in s.objectives} - {"connections", "nodes"}
    assert set(lean.metrics) == {"reward", *asked}
    run.task.start_generation(s.seed, 0)  # the same minibatch again
    full = evaluate_population(population, run.task, s.weights, s.device)
    assert set(full.metrics) == set(run.task.metric_dims)
    lean_objectives, full_objectives = objective_matrix(s, population, lean)[0], objective_matrix(s, population, full)[0]
    assert lean_objectives.tobytes() == full_objectives.tobytes()
    run.execute()
    summary = json.loads((tmp_path / "r" / "champion_summary.json").read_text())
    for key in ("test accuracy, ensemble of the weights", "test accuracy, best weight"):  # per-individual metrics
        assert 0.0 <= summary[key] <= 1.0, key
    report = (tmp_path / "r" / "report.md").read_text()
    for name, dims in run.task.metric_dims.items():  # per-weight metrics: the sensitivity sweep's table
        if name != "reward" and dims == 2:
            assert f"| {name} |" in report, name
