"""Weight inheritance between a parent and its mutants (real children of the mutation engine).

Outside definitions: the child's compiled module must compute the parent's outputs (PyTorch, float64,
atol 1e-9) whenever inherit says `exact`; Net2Wider's replication (Chen et al. 2016) says which rows
and moments the child holds; torch.optim.Adam's state_dict format is the optimizer-state format.
"""
import os

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.inherit import inherit, probe_inputs
from netevo_dsl.evolve.mutations.engine import mutants
from netevo_dsl.runtime.datasets import load_training_data
from netevo_dsl.runtime.train_networks import Candidate, TrainConfig, train_candidates

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "specs")
CNN = """version 1
network cnn {
  input img: [B, 1, 8, 8]
  c1 = img |> conv2d(out=6, k=3, pad="same") |> batchnorm2d() |> relu()
  c2 = c1 |> conv2d(out=8, k=3, pad="same") |> relu() |> maxpool2d(k=2)
  flat = flatten(c2)
  output logits = linear(flat, out=10)
}

mutate cnn {
  width(c1, p=0.5, choices={4, 12})
  width(c2, p=0.5, choices={16})
  kernel("c*", p=0.3, choices={1, 5})
  insert_layer(c1, p=0.3)
}
"""
CFG = TrainConfig(steps=6, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 0.01),))


def _trained(spec, network, shape):
    data = load_training_data("digits", {}, shape, seed=0, dtype=torch.float64)
    return train_candidates([Candidate(spec, network, seed=1)], data, CFG, dtype=torch.float64)[0]


def _outputs(spec, network, state, xs):
    model = ne.compile_module(spec, network, dtype=torch.float64)
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(*xs)


def _names(spec, network):
    return [n for n, _ in ne.compile_module(spec, network, device="meta").named_parameters()]


@pytest.fixture(scope="module")
def mlp():
    spec = ne.load(os.path.join(SPECS, "digits_mlp.net"))
    return spec, _trained(spec, "digits_mlp", (64,))


@pytest.fixture(scope="module")
def cnn():
    spec = ne.parse(CNN)
    return spec, _trained(spec, "cnn", (1, 8, 8))


def _check_children(spec, network, trained, rules, n):
    graph = ne.infer_shapes(spec, network)
    xs = probe_inputs(graph, seed=7)
    parent_out = _outputs(spec, network, trained.state, xs)
    seen = {"exact": 0, "inexact": 0}
    for m in mutants(spec, n, seed=3, rules=rules, strict=False):
        got = inherit(spec, trained.state, trained.opt_state, m.spec, network, seed=5)
        child_out = _outputs(m.spec, network, got.state, xs)  # the weights fit the child's module
        same = child_out.shape == parent_out.shape and torch.allclose(child_out, parent_out, rtol=0, atol=1e-9)
        assert same == got.exact, (m.description, got.how)
        seen["exact" if got.exact else "inexact"] += 1
        # the optimizer state is in torch's format for the child's parameters: Adam loads it
        model = ne.compile_module(m.spec, network, dtype=torch.float64)
        opt = torch.optim.Adam(model.parameters())
        opt.load_state_dict(got.opt_state)
        names = _names(m.spec, network)
        for i, entry in got.opt_state["state"].items():
            assert entry["exp_avg"].shape == dict(model.named_parameters())[names[i]].shape
    return seen


def test_function_preserving_mutants_of_digits_mlp_keep_outputs(mlp):
    spec, trained = mlp
    seen = _check_children(spec, "digits_mlp", trained, "width(p=1.0, choices={256})", 2)
    assert seen["exact"] == 2  # Net2Wider
    seen = _check_children(spec, "digits_mlp", trained, "insert_layer(p=1.0)", 6)
    assert seen["exact"] >= 2  # identity linear, relu after relu; tanh or gelu inserted are not exact
    # both at once: the shared groups are widened first, then the insertion is aligned
    seen = _check_children(spec, "digits_mlp", trained, "width(p=1.0, choices={256}) insert_layer(p=1.0)", 6)
    assert seen["exact"] >= 2
    seen = _check_children(spec, "digits_mlp", trained, "remove_layer(p=1.0) activation(p=1.0)", 4)
    assert seen["inexact"] == 4  # these rules change the function, and inherit says so


def test_function_preserving_mutants_of_a_cnn_keep_outputs(cnn):
    spec, trained = cnn
    seen = _check_children(spec, "cnn", trained, None, 8)
    assert seen["exact"] >= 2 and seen["inexact"] >= 1


def test_net2wider_carries_rows_and_adam_moments(mlp):
    spec, trained = mlp
    child = ne.parse(ne.format(spec).replace("linear(out=hidden / 2)", "linear(out=96)"))
    got = inherit(spec, trained.state, trained.opt_state, child, "digits_mlp", seed=0)
    assert got.exact and "Net2Wider" in got.how
    names = _names(child, "digits_mlp")
    old, new = trained.opt_state["state"], got.opt_state["state"]
    i_w, i_out = names.index("h2.0.weight"), names.index("logits.weight")
    # Net2Wider keeps the old units in place and appends replicas of old units
    w_old, w_new = trained.state["h2.0.weight"], got.state["h2.0.weight"]
    assert torch.equal(w_new[:64], w_old)
    for j in range(64, 96):
        src = [k for k in range(64) if torch.equal(w_new[j], w_old[k])]
        assert src, j
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(new[i_w][key][j], old[i_w][key][src[0]])
            assert torch.equal(new[i_out][key][:, j], old[i_out][key][:, src[0]])  # moments gathered, not split
        assert float(new[i_w]["step"]) == float(old[i_w]["step"])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(new[i_w][key][:64], old[i_w][key])
        assert torch.equal(new[names.index("h1.0.weight")][key], old[names.index("h1.0.weight")][key])
    # the child trains on from the carried state
    data = load_training_data("digits", {}, (64,), seed=0, dtype=torch.float64)
    out = train_candidates([Candidate(child, "digits_mlp", got.state, got.opt_state)], data, CFG, dtype=torch.float64)
    assert float(out[0].opt_state["state"][i_w]["step"]) == float(old[i_w]["step"]) + CFG.steps


def test_mask_growth_is_exact_and_pruning_live_weights_is_not():
    spec = ne.load(os.path.join(SPECS, "sparse_mlp.net"))
    trained = _trained(spec, "sparse_mlp", (64,))
    seen = _check_children(spec, "sparse_mlp", trained, "grow(sparse10, p=1.0, rate=0.05)", 2)
    assert seen["exact"] == 2
    seen = _check_children(spec, "sparse_mlp", trained, "prune(sparse10, p=1.0, rate=0.05)", 2)
    assert seen["inexact"] == 2


def test_unrelated_changes_keep_surviving_tensors(cnn):
    spec, trained = cnn
    child = ne.parse(CNN.replace("c2 = c1 |> conv2d(out=8, k=3", "c2 = c1 |> conv2d(out=8, k=5"))
    got = inherit(spec, trained.state, trained.opt_state, child, "cnn", seed=0)
    assert not got.exact
    for key in ("c1.0.weight", "c1.1.running_mean", "logits.weight"):
        assert torch.equal(got.state[key], trained.state[key])
    torch.manual_seed(0)  # the new kernel is initialised as the compiler does from the seed
    assert torch.equal(got.state["c2.0.weight"], ne.compile_module(child, "cnn").state_dict()["c2.0.weight"].double())
    names = _names(child, "cnn")
    assert names.index("c2.0.weight") not in got.opt_state["state"]
    assert torch.equal(got.opt_state["state"][names.index("logits.weight")]["exp_avg"],
                       trained.opt_state["state"][names.index("logits.weight")]["exp_avg"])
