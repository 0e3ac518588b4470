"""Populations of layered networks with mixed widths: exact groups, padded groups and the reference agree."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import netevo_dsl as ne
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.evaluate_networks import (evaluate_networks, network_graphs, network_task, prefer_padding,
                                                  reference_evaluate_networks)
from netevo_dsl.runtime.network_groups import network_groups
from netevo_dsl.testing.strategies import shared_weight_populations

CLASSIFY = ("iris", {"batch_size": 64})  # a minibatch: the reward and the accuracies see different samples
SWINGUP = ("swingup", {"max_steps": 8, "repeats": 2})
CARTPOLE = ("cartpole", {"max_steps": 8, "repeats": 2})
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_scores(fast, slow, atol=1e-9):
    assert fast.failures == slow.failures
    assert fast.metrics.keys() == slow.metrics.keys()
    for key in slow.metrics:
        torch.testing.assert_close(fast.metrics[key], slow.metrics[key], atol=atol, rtol=0, equal_nan=True,
                                   msg=lambda m, key=key: f"{key}: {m}")


def check_all_modes(population, task, weights=None):
    """Exact groups and padded groups both give the reference's scores and failures (float64)."""
    slow = reference_evaluate_networks(population, task, weights, dtype=torch.float64)
    for widths in ("group", "pad"):
        assert_same_scores(evaluate_networks(population, task, weights, dtype=torch.float64, widths=widths), slow)
    return slow


def groups_of(population, task, widths="pad"):
    graphs, _ = network_graphs(population, network_task(task))
    return network_groups(graphs, widths)


@SETTINGS
@given(shared_weight_populations(4, 3))
def test_mixed_widths_classification_equals_reference(population):
    slow = check_all_modes(population, CLASSIFY)
    assert set(slow.metrics) >= {"reward", "test_reward", "best_weight", "ensemble_test_accuracy"}


@SETTINGS
@given(shared_weight_populations(5, 1))
def test_mixed_widths_swingup_equals_reference(population):
    check_all_modes(population, SWINGUP, weights=[-1.5, 0.5, 2.0])


@SETTINGS
@given(shared_weight_populations(4, 1))
def test_mixed_widths_cartpole_equals_reference(population):
    check_all_modes(population, CARTPOLE, weights=[-1.5, 0.5, 2.0])


@settings(SETTINGS, max_examples=6)
@given(shared_weight_populations(4, 3, max_size=3))
def test_a_tiny_chunk_budget_gives_the_same_scores(population):
    # one network and one sample per call
    whole = evaluate_networks(population, CLASSIFY, dtype=torch.float64, widths="pad")
    tiny = evaluate_networks(population, CLASSIFY, dtype=torch.float64, widths="pad", chunk_bytes=1)
    assert_same_scores(tiny, whole, atol=1e-12)
    control = evaluate_networks(population[:2], CARTPOLE, dtype=torch.float64, chunk_bytes=1)
    assert_same_scores(control, evaluate_networks(population[:2], CARTPOLE, dtype=torch.float64), atol=1e-12)


SAFE = """network n {{
  input x: [B, 4]
  c = reshape(x, shape=[B, 1, 2, 2]) |> conv2d(out={a}, k=3, pad=1, mask=random(density=0.6, seed={s})) |> cos()
  c = c |> batchnorm2d() |> maxpool2d(k=2, stride=1, pad=1)
  c = c + (c |> conv2d(out={a}, k=1) |> sigmoid())
  f = c |> transpose(dim0=1, dim1=3) |> flatten()
  g = concat(f, x |> linear(out={b}) |> gauss(), dim=1) |> dropout(p=0.2)
  output y = linear(g, out=3, mask=random(density=0.7, seed={s}))
}}"""


def test_padding_is_used_where_it_is_exact():
    population = [ne.parse(SAFE.format(a=a, b=b, s=s)) for s, (a, b) in enumerate([(1, 2), (3, 1), (2, 4), (3, 1)])]
    (group,) = groups_of(population, "iris")
    assert group.padded and group.members == (0, 1, 2, 3) and group.cost > group.exact_cost
    assert len(groups_of(population, "iris", "group")) == 3
    check_all_modes(population, "iris")


def member(body: str, width: int, seed: int = 0):
    """A network on iris's 4 features from `body` with `{w}` = width and `{w2}` = 2 x width."""
    return ne.parse("network n {\n  input x: [B, 4]\n" + body.format(w=width, w2=2 * width, s=seed) + "\n}")


INEXACT = {
    "layernorm over the units": "  h = x |> linear(out={w}) |> tanh() |> layernorm()\n  output y = linear(h, out=3)",
    "softmax over the units": "  h = x |> linear(out={w}) |> softmax()\n  output y = linear(h, out=3)",
    "groupnorm": "  c = reshape(x, shape=[B, 1, 4]) |> conv1d(out={w2}, k=1) |> groupnorm(groups=2)\n"
                 "  output y = linear(flatten(c), out=3)",
    "grouped conv": "  c = reshape(x, shape=[B, 2, 2]) |> conv1d(out={w2}, k=1, groups=2) |> relu()\n"
                    "  output y = linear(flatten(c), out=3)",
    "a layer over an unpadded axis": "  c = reshape(x, shape=[B, 1, 4]) |> conv1d(out={w}, k=1) |> linear(out=2)\n"
                                     "  output y = linear(flatten(c), out=3)",
    "operands padded differently":
        "  c = reshape(x, shape=[B, 2, 2]) |> conv1d(out={w}, k=1) |> transpose(dim0=1, dim1=2) |> flatten()\n"
        "  output y = linear(c + (x |> linear(out={w2}) |> sigmoid()), out=3)",
}


@pytest.mark.parametrize("case", sorted(INEXACT))
def test_padding_is_refused_where_it_would_change_results(case):
    population = [member(INEXACT[case], width, seed) for seed, width in enumerate([1, 2, 3, 2])]
    groups = groups_of(population, "iris")
    assert sorted(g.members for g in groups) == [(0,), (1, 3), (2,)]
    assert all(not g.padded and g.refused for g in groups)
    check_all_modes(population, "iris")


OVERFLOW = """network n {{
  input x: [B, 4]
  h = x |> linear(out=2) |> square() |> square() |> square() |> square() |> square() |> square() |> square()
  g = h |> linear(out={b}) |> tanh()
  output y = linear(g, out=3)
}}"""


def test_padded_units_stay_zero_when_real_units_overflow():
    # Real units overflow to inf and tanh brings them back to +-1. A padded unit fed by them would be
    # 0 x inf = NaN, and would turn the next layer's real units into NaN unless it is zeroed first.
    population = [ne.parse(OVERFLOW.format(b=b)) for b in (1, 3)]
    (group,) = groups_of(population, "iris")
    assert group.padded
    slow = reference_evaluate_networks(population, "iris", dtype=torch.float32)
    assert not slow.failures and torch.isfinite(slow.per_weight).all()
    assert_same_scores(evaluate_networks(population, "iris", dtype=torch.float32, widths="pad"), slow, atol=1e-5)


BAD = {
    "two networks": "network a {\n input x: [B, 4]\n output y = linear(x, out=3)\n}\n"
                    "network b {\n input x: [B, 4]\n output y = linear(x, out=3)\n}",
    "a check error": "network n {\n input x: [B, 4]\n output y = linear(x, out=3, mask=random(density=3.0))\n}",
    "inputs": "network n {\n input x: [B, 5]\n output y = linear(x, out=3)\n}",
    "outputs": "network n {\n input x: [B, 4]\n output y = linear(x, out=2)\n}",
    "attention": "network n {\n input x: [B, 4]\n"
                 " output y = x |> reshape(shape=[B, 1, 4]) |> attention(heads=2) |> flatten() |> linear(out=3)\n}",
    "batch axis": "network n {\n input x: [B, 4]\n output y = x |> linear(out=3) |> softmax(dim=0)\n}",
    "a fixed batch": "network n {\n input x: [8, 4]\n output y = linear(x, out=3)\n}",
}


def test_failures_are_reported_alike_and_never_scored():
    good = member("  output y = x |> linear(out={w}) |> tanh() |> linear(out=3)", 3)
    population = [good] + [ne.parse(text) for text in BAD.values()] + [good]
    slow = check_all_modes(population, "iris")
    assert sorted(slow.failures) == list(range(1, len(BAD) + 1))
    assert torch.isnan(slow.per_weight[1:-1]).all() and torch.isfinite(slow.per_weight[[0, -1]]).all()
    assert "attention" in slow.failures[5] and "batch" in slow.failures[6]
    five = "network n {{\n input x: [B, 5]\n output y = linear(x, out={})\n}}"
    control = evaluate_networks([good, ne.parse(five.format(3)), ne.parse(five.format(1))], SWINGUP)
    assert sorted(control.failures) == [0, 1] and torch.isfinite(control.per_weight[2]).all()
    assert "feeds [B, 5]" in control.failures[0] and "reads [B, 1]" in control.failures[1]


def test_networks_without_weight_bearing_layers_give_the_same_outputs_at_every_weight():
    population = [ne.parse("network n {\n input x: [B, 2]\n output y = x |> tanh()\n}")] * 2
    slow = check_all_modes(population, "xor")
    assert not slow.failures and (slow.per_weight == slow.per_weight[:, :1]).all()


def test_usage_errors():
    good = member("  output y = linear(x, out=3)", 1)
    with pytest.raises(ne.NetevoError, match="widths"):
        evaluate_networks([good], "iris", widths="sometimes")
    with pytest.raises(ne.NetevoError, match="list"):
        evaluate_networks(good, "iris")


def test_evaluate_dispatches_networks_on_control_tasks():
    population = [ne.parse(OVERFLOW.replace("out=3", "out=1").format(b=b)) for b in (1, 2)]
    scores = evaluate(population, CARTPOLE, device="cpu")
    assert scores.metrics["steps"].shape == (2, 6) and (scores.metrics["steps"] >= 1).all()


def test_auto_pads_overhead_bound_populations_and_groups_compute_bound_ones():
    # control: 8 widths, 2 repeats per call; padding saves 7 calls per step for little arithmetic
    control = [member("  output y = x |> linear(out={w}) |> tanh() |> linear(out=1)", w) for w in range(1, 9)]
    graphs, _ = network_graphs(control, network_task(CARTPOLE))
    assert len(graphs) == 8
    assert len(network_groups(graphs, "auto", lambda p, e: prefer_padding(p, e, 2, 6, 4, 16 << 20))) == 1
    # classification: padding 16 units to 4096 for 150 samples costs more than the call it saves
    wide = [member("  output y = x |> linear(out={w}) |> tanh() |> linear(out=3)", w) for w in (16, 4096)]
    graphs, _ = network_graphs(wide, network_task("iris"))
    assert len(network_groups(graphs, "auto", lambda p, e: prefer_padding(p, e, 150, 6, 4, 16 << 20))) == 2
