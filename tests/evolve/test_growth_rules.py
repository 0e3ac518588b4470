"""Growth rules (prune_dead, merge_duplicates, widen_saturated, gradient mask growth) on trained networks.

Outside definitions: the parent's outputs in float64 (PyTorch) on the training data are the oracle for
"exact"; the units to act on are forced by hand (a unit with zero weights and a negative bias is dead
under relu, a copied row is a duplicate, huge weights saturate tanh), so the expected child is known.
"""
import os

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.growth_rules import apply_growth_rule
from netevo_dsl.evolve.mutations.engine import mutants
from netevo_dsl.passes.measures import density
from netevo_dsl.runtime.datasets import load_training_data
from netevo_dsl.runtime.train_networks import Candidate, TrainConfig, train_candidates

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "specs")
CFG = TrainConfig(steps=8, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 0.01),))


@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits", {}, (64,), seed=0, dtype=torch.float64)


@pytest.fixture(scope="module")
def mlp(digits):
    spec = ne.load(os.path.join(SPECS, "digits_mlp.net"))
    return spec, train_candidates([Candidate(spec, "digits_mlp", seed=2)], digits, CFG, dtype=torch.float64)[0]


def _outputs(spec, state, x):
    model = ne.compile_module(spec, dtype=torch.float64)
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(x)


def _width(spec, node):
    return int(dict((n.name, n.shape[-1]) for n in ne.infer_shapes(spec).nodes)[node])


def test_prune_dead_removes_a_forced_dead_unit_exactly(mlp, digits):
    spec, trained = mlp
    state = {k: v.clone() for k, v in trained.state.items()}
    state["h1.0.weight"][5] = 0.0
    state["h1.0.bias"][5] = -1.0  # relu(0 x + -1) = 0 on every sample: dead
    assert apply_growth_rule("prune_dead", {"targets": ("out*",)}, spec, "digits_mlp", state, trained.opt_state,
                             digits) is None  # no dead unit in the target layers
    child, got = apply_growth_rule("prune_dead", {"targets": ("h1*",)}, spec, "digits_mlp", state, trained.opt_state,
                                   digits, seed=0)
    assert _width(child, "h1.0") == 127 and _width(child, "h2.0") == 64 and got.exact
    torch.testing.assert_close(_outputs(child, got.state, digits.x_train), _outputs(spec, state, digits.x_train),
                               rtol=0, atol=1e-9)
    keep = [i for i in range(128) if i != 5]
    old, new = trained.opt_state["state"], got.opt_state["state"]
    assert torch.equal(new[0]["exp_avg"], old[0]["exp_avg"][keep])  # h1.0.weight rows
    assert torch.equal(new[2]["exp_avg_sq"], old[2]["exp_avg_sq"][:, keep])  # h2.0.weight columns
    # the child trains on from the moved state
    out = train_candidates([Candidate(child, "digits_mlp", got.state, got.opt_state)], digits, CFG,
                           dtype=torch.float64)[0]
    assert float(out.opt_state["state"][0]["step"]) == 2 * CFG.steps


def test_merge_duplicates_merges_a_copied_unit(mlp, digits):
    spec, trained = mlp
    state = {k: v.clone() for k, v in trained.state.items()}
    state["h2.0.weight"][7] = state["h2.0.weight"][3]
    state["h2.0.bias"][7] = state["h2.0.bias"][3]
    child, got = apply_growth_rule("merge_duplicates", {"samples": 300}, spec, "digits_mlp", state, None, digits)
    assert _width(child, "h2.0") == 63 and got.exact and got.opt_state is None
    torch.testing.assert_close(_outputs(child, got.state, digits.x_train), _outputs(spec, state, digits.x_train),
                               rtol=0, atol=1e-9)


def test_widen_saturated_widens_a_saturated_tanh_layer(digits):
    spec = ne.parse(open(os.path.join(SPECS, "digits_mlp.net")).read().replace(
        "h1 = x |> linear(out=hidden) |> relu()", "h1 = x |> linear(out=hidden) |> tanh()"))
    trained = train_candidates([Candidate(spec, "digits_mlp")], digits, CFG, dtype=torch.float64)[0]
    state = {k: v.clone() for k, v in trained.state.items()}
    state["h1.0.weight"] *= 100  # tanh saturates at +-1 on most samples
    child, got = apply_growth_rule("widen_saturated", {"growth": 0.5}, spec, "digits_mlp", state,
                                   trained.opt_state, digits, seed=1)
    assert _width(child, "h1.0") == 192 and got.exact and "Net2Wider" in got.how
    torch.testing.assert_close(_outputs(child, got.state, digits.x_train), _outputs(spec, state, digits.x_train),
                               rtol=0, atol=1e-9)
    assert apply_growth_rule("widen_saturated", {}, spec, "digits_mlp", trained.state, None, digits) is None


def test_gradient_mask_growth_densifies_exactly(digits):
    spec = ne.load(os.path.join(SPECS, "sparse_mlp.net"))
    trained = train_candidates([Candidate(spec, "sparse_mlp")], digits, CFG, dtype=torch.float64)[0]
    child, got = apply_growth_rule("grow", {"targets": ("sparse10",), "rate": 0.05, "score": "gradient"}, spec,
                                   "sparse_mlp", trained.state, trained.opt_state, digits)
    assert density(ne.infer_shapes(child)) > density(ne.infer_shapes(spec)) and got.exact
    torch.testing.assert_close(_outputs(child, got.state, digits.x_train),
                               _outputs(spec, trained.state, digits.x_train), rtol=0, atol=1e-9)


def test_rules_are_checked_and_the_engine_leaves_them_to_evolve():
    text = open(os.path.join(SPECS, "digits_mlp.net")).read()
    ok = ne.parse(text + "\nmutate digits_mlp {\n  prune_dead(h1, p=0.5, rate=0.0)\n  merge_duplicates(p=0.2)\n"
                         "  widen_saturated(p=0.1, growth=0.5, samples=256)\n}\n")
    ne.check(ok)
    bad = ne.parse(text + "\nmutate digits_mlp {\n  prune_dead(p=0.5, threshold=0.1)\n}\n")
    with pytest.raises(NetevoError) as info:
        ne.check(bad)
    assert "E060" in str(info.value) or info.value.code == "E060"
    with pytest.raises(NetevoError) as info:
        mutants(ne.load(os.path.join(SPECS, "digits_mlp.net")), 1, rules="prune_dead(p=1.0)")
    assert "apply_growth_rule" in info.value.render() or "neuron statistics" in info.value.render()
