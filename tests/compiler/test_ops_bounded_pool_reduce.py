"""The ops issue 17's models need: relu6, hardswish, hardsigmoid, hardtanh, clamp, pooling with ceil_mode and
count_include_pad, mean over axes, stochastic depth.

Oracles: the papers' formulas in float64 (ReLU6: Sandler et al. 2018; hard swish and hard sigmoid: Howard et al.
2019, "Searching for MobileNetV3"), PyTorch's own pooling layers for output sizes and values, Tensor.mean, and
torchvision.ops.stochastic_depth where torchvision is installed. Each network is compiled and emitted; both must agree
with the oracle.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl import NetevoError
from netevo_dsl.compiler.emit import class_name

from .helpers import exec_source


def _net(op_call, shape, name="n"):
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    return ne.parse(f"network {name} {{\n  input x: [{dims}]\n  output y = {op_call}\n}}\n")


def _out_shape(spec):
    graph = ne.infer_shapes(spec)
    return graph.shape_of(graph.outputs[0][1])


def _run_both(spec, x, name="n"):
    """(compiled output, emitted-source output) for input x, float64, eval mode."""
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    emitted = exec_source(ne.emit_source(spec))[class_name(name)]().double().eval()
    with torch.no_grad():
        return compiled(x), emitted(x)


def _relu6(x):
    return torch.minimum(torch.maximum(x, torch.zeros_like(x)), torch.full_like(x, 6.0))


FORMULAS = {
    "relu6(x)": _relu6,
    "hardswish(x)": lambda x: x * _relu6(x + 3.0) / 6.0,
    "hardsigmoid(x)": lambda x: _relu6(x + 3.0) / 6.0,
    "hardtanh(x)": lambda x: torch.minimum(torch.maximum(x, torch.full_like(x, -1.0)), torch.full_like(x, 1.0)),
    "hardtanh(x, min=-0.5, max=2.0)": lambda x: torch.where(x < -0.5, -0.5, torch.where(x > 2.0, 2.0, x)),
    "clamp(x, min=0.25)": lambda x: torch.where(x < 0.25, 0.25, x),
    "clamp(x, max=-1)": lambda x: torch.where(x > -1.0, -1.0, x),
    "clamp(x, min=-2.5, max=1.5)": lambda x: torch.where(x < -2.5, -2.5, torch.where(x > 1.5, 1.5, x)),
}


@pytest.mark.parametrize("call", list(FORMULAS))
def test_bounded_activations_follow_their_formulas(call):
    x = torch.linspace(-9.0, 9.0, 361, dtype=torch.float64).reshape(19, 19)  # both kinks of every op, and beyond
    want = FORMULAS[call](x)
    for got in _run_both(_net(call, (19, 19)), x):
        assert torch.equal(got, want)


def test_relu6_hardswish_hardsigmoid_are_network_activations():
    """They are activations a mutation may choose and the tracker knows, with relu6's and hardsigmoid's bounds."""
    from netevo_dsl.ops.activations import NETWORK_BY_NAME, torch_fn

    assert NETWORK_BY_NAME["relu6"].bounded == (0.0, 6.0) and NETWORK_BY_NAME["hardsigmoid"].bounded == (0.0, 1.0)
    x = torch.randn(50, dtype=torch.float64) * 5
    for name, formula in (("relu6", "relu6(x)"), ("hardswish", "hardswish(x)"), ("hardsigmoid", "hardsigmoid(x)")):
        assert torch.equal(torch_fn(name, wann=False)(x), FORMULAS[formula](x))


@pytest.mark.parametrize("call, message", [
    ("clamp(x)", "clamp needs `min`, `max` or both"),
    ("clamp(x, min=2.0, max=1.0)", "clamp: min 2.0 is above max 1.0"),
    ("hardtanh(x, min=1.0, max=1.0)", "hardtanh: min 1.0 is equal to max 1.0"),
    ("mean(x, dims=[1, -1])", "dim -1 is reduced twice"),
    ("mean(x, dims=[2])", "dim 2 is out of range for rank 2"),
    ("stochastic_depth(x, p=1.5)", "probability in [0, 1], got 1.5"),
])
def test_bad_parameters_are_shape_errors(call, message):
    with pytest.raises(NetevoError) as info:
        ne.check(_net(call, (2, 3)))
    assert info.value.code == "E040" and message in str(info.value)


# --- pooling ------------------------------------------------------------------------------------------


@st.composite
def _pools(draw):
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 5))
    pad = draw(st.integers(0, k // 2))
    size = draw(st.integers(max(1, k - 2 * pad), 17))
    return k, stride, pad, size, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from(["max", "avg"]))


@settings(max_examples=120, deadline=None)
@given(_pools())
def test_pool_shape_rule_and_values_match_pytorch(case):
    """PyTorch's nn.MaxPool2d / nn.AvgPool2d on the same arguments is the oracle, for the inferred shape (incl.
    ceil_mode's rule that the last window starts inside the input or its left padding) and for the values."""
    k, stride, pad, size, ceil, include_pad, kind = case
    extra = ", count_include_pad=false" if kind == "avg" and not include_pad else ""
    spec = _net(f"{kind}pool2d(x, k={k}, stride={stride}, pad={pad}, ceil_mode={str(ceil).lower()}{extra})",
                (2, 3, size, size + 1))
    layer = (torch.nn.MaxPool2d(k, stride, pad, ceil_mode=ceil) if kind == "max"
             else torch.nn.AvgPool2d(k, stride, pad, ceil_mode=ceil, count_include_pad=include_pad))
    x = torch.randn(2, 3, size, size + 1, dtype=torch.float64)
    want = layer(x)
    assert [int(d) for d in _out_shape(spec)[1:]] == list(want.shape[1:])
    for got in _run_both(spec, x):
        assert torch.equal(got, want)


def test_ceil_mode_rounds_up_but_never_starts_a_window_in_the_right_padding():
    # size 5, k 2, stride 2, pad 1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the 4th would start at 6 >= 5 + 1
    spec = _net("maxpool1d(x, k=2, stride=2, pad=1, ceil_mode=true)", (2, 1, 5))
    assert [int(d) for d in _out_shape(spec)[1:]] == [1, 3] == list(
        torch.nn.MaxPool1d(2, 2, 1, ceil_mode=True)(torch.zeros(1, 1, 5)).shape[1:])


def test_ceil_mode_on_symbolic_sizes():
    """stride <= k - pad: the correction never applies, so the size stays symbolic (checked against PyTorch at
    sizes the stride divides, as symbolic sizes assume); a larger stride needs a concrete size."""
    from netevo_dsl.ir.dims import Dim

    text = "network n {\n  input x: [B, 4, H, H]\n  output y = maxpool2d(x, k=3, stride=2, ceil_mode=true)\n}\n"
    out = _out_shape(ne.parse(text))[2]
    for h in (8, 12, 30):
        pooled = torch.nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, h, h)).shape[2]
        assert int(Dim.of(out).substitute({"H": Dim.of(h)})) == pooled
    with pytest.raises(NetevoError) as info:
        ne.check(ne.parse(text.replace("stride=2", "stride=4")))
    assert "needs a concrete size" in str(info.value)


# --- mean -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims, keepdim", [([2, 3], False), ([2, 3], True), ([-1], False), ([1], True)])
def test_mean_is_tensor_mean(dims, keepdim):
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    want = x.mean(dims, keepdim=keepdim)
    spec = _net(f"mean(x, dims={dims}{', keepdim=true' if keepdim else ''})", x.shape)
    assert tuple(int(d) for d in _out_shape(spec)[1:]) == tuple(want.shape[1:])
    for got in _run_both(spec, x):
        assert torch.allclose(got, want, rtol=0, atol=1e-15)


def test_mean_over_spatial_axes_keeps_the_channels_in_one_dependency_group():
    """A width change of the conv must reach the linear after `mean` (mnasnet's head); a mean over the channels
    leaves no channel axis to follow."""
    from netevo_dsl.evolve.groups import dependency_groups

    text = ("network n {\n  input x: [B, 3, 8, 8]\n  c = conv2d(x, out=6, k=3)\n  m = mean(c, dims=[2, 3])\n"
            "  output y = linear(m, out=2)\n}\n")
    groups = dependency_groups(ne.infer_shapes(ne.parse(text)))
    conv_group = next(g for g in groups if any(s.node == "c" and s.role == "produce" for s in g.sites))
    assert any(s.node == "y" and s.role == "consume" for s in conv_group.sites)


# --- stochastic depth ---------------------------------------------------------------------------------------


def test_stochastic_depth_is_the_identity_in_eval_and_drops_whole_rows_in_training():
    x = torch.randn(400, 3, 2, dtype=torch.float64) + 5.0
    spec = _net("stochastic_depth(x, p=0.25)", x.shape)
    for model in (ne.compile_module(spec, dtype=torch.float64),
                  exec_source(ne.emit_source(spec))[class_name("n")]().double()):
        with torch.no_grad():
            assert torch.equal(model.eval()(x), x)
            torch.manual_seed(1)
            y = model.train()(x)
        kept = (y != 0).all(dim=(1, 2))
        assert torch.equal(kept, (y != 0).any(dim=(1, 2)))  # a row is dropped whole or kept whole
        assert torch.allclose(y[kept], x[kept] / 0.75, rtol=1e-15, atol=0)  # survivors scaled by 1 / (1 - p)
        assert abs(kept.double().mean().item() - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 400)  # binomial, 4 sigma


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_in_training_matches_torchvision(mode):
    ops = pytest.importorskip("torchvision.ops")
    x = torch.randn(16, 4, 3, dtype=torch.float64)
    model = ne.compile_module(_net(f'stochastic_depth(x, p=0.4, mode="{mode}")', x.shape), dtype=torch.float64)
    for seed in range(5):
        torch.manual_seed(seed)
        got = model.train()(x)
        torch.manual_seed(seed)
        assert torch.equal(got, ops.stochastic_depth(x, 0.4, mode, training=True))


# --- channel dropout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(300, 4, 5), (300, 4, 3, 2), (300, 4, 2, 2, 2)])
def test_channel_dropout_zeroes_whole_channels_in_training(shape):
    """Tompson et al. 2015 (spatial dropout): each (sample, channel) is zeroed whole with probability p, the rest
    scaled by 1 / (1 - p); the identity in eval mode."""
    x = torch.rand(*shape, dtype=torch.float64) + 1.0  # no zeros of its own
    spec = _net("channel_dropout(x, p=0.3)", shape)
    for model in (ne.compile_module(spec, dtype=torch.float64),
                  exec_source(ne.emit_source(spec))[class_name("n")]().double()):
        with torch.no_grad():
            assert torch.equal(model.eval()(x), x)
            y = model.train()(x).flatten(2)
        kept = (y != 0).all(dim=2)
        assert torch.equal(kept, (y != 0).any(dim=2))
        assert torch.allclose(y[kept], x.flatten(2)[kept] / 0.7, rtol=1e-15, atol=0)
        n = kept.numel()
        assert abs(kept.double().mean().item() - 0.7) < 4 * math.sqrt(0.7 * 0.3 / n)


def test_channel_dropout_needs_a_channel_layout():
    with pytest.raises(NetevoError) as info:
        ne.check(_net("channel_dropout(x, p=0.3)", (2, 3)))
    assert info.value.code == "E040" and "channel dropout takes [B, C, L]" in str(info.value)
