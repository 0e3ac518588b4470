"""Populations of layered networks in shared-weight mode: vmap per architecture equals the reference."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.evaluate_networks import evaluate_networks, reference_evaluate_networks

TEMPLATE = """mask m = random(density={density}, seed={seed})
network n {{
  input x: [B, 4]
  h = x |> linear(out={width}, mask=m) |> {act}()
  output y = linear(h, out=3, mask=random(density=0.6, seed={seed}))
}}"""

INDIVIDUAL = st.builds(lambda d, s, w, a: TEMPLATE.format(density=d, seed=s, width=w, act=a),
                       st.sampled_from([0.3, 0.5, 1.0]), st.integers(0, 50), st.sampled_from([4, 8]),
                       st.sampled_from(["tanh", "relu", "sin", "gauss"]))


@settings(max_examples=8, deadline=None)
@given(st.lists(INDIVIDUAL, min_size=1, max_size=5))
def test_batched_network_scores_equal_reference(texts):
    population = [ne.parse(t) for t in texts]
    fast = evaluate_networks(population, "iris", dtype=torch.float64)
    slow = reference_evaluate_networks(population, "iris", dtype=torch.float64)
    assert fast.metrics.keys() == slow.metrics.keys()
    for key in slow.metrics:  # the task scorer's: reward, accuracies, test reward, best weight, ensemble
        torch.testing.assert_close(fast.metrics[key], slow.metrics[key], atol=1e-9, rtol=0, equal_nan=True)
    assert fast.failures == slow.failures


def test_evaluate_dispatches_network_populations_and_reports_bad_individuals():
    good = ne.parse(TEMPLATE.format(density=0.5, seed=1, width=8, act="tanh"))
    scores = evaluate([good, good], "iris", device="cpu")
    assert scores.per_weight.shape == (2, 6) and torch.isfinite(scores.per_weight).all()
    mixed = evaluate_networks([good, ne.parse("param a: int = 1\n")], "iris", device="cpu")
    assert 1 in mixed.failures and torch.isnan(mixed.per_weight[1]).all()


def test_networks_need_a_classification_or_control_task():
    with pytest.raises(ne.NetevoError) as info:
        evaluate_networks([ne.parse(TEMPLATE.format(density=0.5, seed=1, width=8, act="tanh"))], "parity")
    assert "sequence" in info.value.hint
