"""Per-axis kernel, stride, padding and dilation for conv1d/conv2d and the pools (`k=[1, 7], pad=[0, 3]`), and
scale(x, by), a tensor times a constant number.

Oracles: PyTorch's nn.Conv2d / nn.MaxPool2d / nn.AvgPool2d built on the same per-axis arguments (output shape,
and values in float64 with the same weights), its parameter count, and `x * by` in float64. The compiled network
and its emitted source must both agree with the oracle.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl import NetevoError
from netevo_dsl.compiler.emit import class_name
from netevo_dsl.passes.measures import param_count

from .helpers import exec_source


def _spec(call, shape):
    dims = ", ".join(["B"] + [str(d) for d in shape[1:]])
    return ne.parse(f"network n {{\n  input x: [{dims}]\n  output y = {call}\n}}\n")


def _both(spec):
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    emitted = exec_source(ne.emit_source(spec))[class_name("n")]().double().eval()
    return compiled, emitted


def _out_shape(spec):
    graph = ne.infer_shapes(spec)
    return [int(d) for d in graph.shape_of(graph.outputs[0][1])[1:]]


def _net_list(values):
    return "[" + ", ".join(str(v) for v in values) + "]"


@st.composite
def _convs(draw):
    k = [draw(st.integers(1, 4)) for _ in range(2)]
    dilation = [draw(st.integers(1, 2)) for _ in range(2)]
    stride = [draw(st.integers(1, 3)) for _ in range(2)]
    pad = [draw(st.integers(0, 2)) for _ in range(2)]
    size = [draw(st.integers(d * (kk - 1) + 1, 12)) for kk, d in zip(k, dilation)]
    return k, stride, pad, dilation, size, draw(st.sampled_from([1, 2]))


@settings(max_examples=60, deadline=None)
@given(_convs())
def test_conv2d_per_axis_matches_pytorch(case):
    k, stride, pad, dilation, size, groups = case
    call = (f"conv2d(x, out=4, k={_net_list(k)}, stride={_net_list(stride)}, pad={_net_list(pad)}, "
            f"dilation={_net_list(dilation)}, groups={groups})")
    spec = _spec(call, (2, 4, *size))
    oracle = torch.nn.Conv2d(4, 4, tuple(k), stride=tuple(stride), padding=tuple(pad), dilation=tuple(dilation),
                             groups=groups).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    want = oracle(x)
    assert _out_shape(spec) == list(want.shape[1:])
    assert param_count(ne.infer_shapes(spec)) == sum(p.numel() for p in oracle.parameters())
    for model in _both(spec):
        model.load_state_dict({f"y.{name}": value for name, value in oracle.state_dict().items()}, strict=True)
        with torch.no_grad():
            assert torch.equal(model(x), want)


def test_conv1d_takes_a_one_item_list_and_same_padding_per_axis():
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    spec = _spec('conv2d(x, out=5, k=[1, 7], pad="same")', x.shape)
    oracle = torch.nn.Conv2d(3, 5, (1, 7), padding=(0, 3)).double()  # "same" is (k - 1) / 2 on each axis
    for model in _both(spec):
        model.load_state_dict({f"y.{n}": v for n, v in oracle.state_dict().items()}, strict=True)
        with torch.no_grad():
            assert torch.equal(model(x), oracle(x))
    assert _out_shape(_spec("conv1d(x, out=2, k=[3], stride=[2])", (2, 3, 9))) == [2, 4]


@st.composite
def _pools(draw):
    k = [draw(st.integers(1, 4)) for _ in range(2)]
    stride = [draw(st.integers(1, 4)) for _ in range(2)]
    pad = [draw(st.integers(0, kk // 2)) for kk in k]
    size = [draw(st.integers(max(1, kk - 2 * p), 11)) for kk, p in zip(k, pad)]
    return k, stride, pad, size, draw(st.booleans()), draw(st.sampled_from(["max", "avg"]))


@settings(max_examples=80, deadline=None)
@given(_pools())
def test_pools_per_axis_match_pytorch(case):
    k, stride, pad, size, ceil, kind = case
    spec = _spec(f"{kind}pool2d(x, k={_net_list(k)}, stride={_net_list(stride)}, pad={_net_list(pad)}, "
                 f"ceil_mode={str(ceil).lower()})", (2, 3, *size))
    layer = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(tuple(k), tuple(stride), tuple(pad),
                                                                          ceil_mode=ceil)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    want = layer(x)
    assert _out_shape(spec) == list(want.shape[1:])
    for model in _both(spec):
        with torch.no_grad():
            assert torch.equal(model(x), want)


def test_pool_stride_defaults_to_the_kernel_on_each_axis():
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    spec = _spec("avgpool2d(x, k=[3, 2])", x.shape)
    want = torch.nn.AvgPool2d((3, 2))(x)  # PyTorch: stride = kernel_size, per axis
    assert _out_shape(spec) == list(want.shape[1:]) == [2, 3, 4]
    for model in _both(spec):
        assert torch.equal(model(x), want)


@pytest.mark.parametrize("call, code, message", [
    ("conv2d(x, out=2, k=[1, 3, 3])", "E204", "`k` gives 3 size(s) for 2 spatial axes"),
    ("maxpool2d(x, k=[2])", "E204", "`k` gives 1 size(s) for 2 spatial axes"),
    ("conv2d(x, out=2, k=3, pad=[1, 1, 1])", "E204", "`pad` gives 3 size(s) for 2 spatial axes"),
    ("conv2d(x, out=2, k=[0, 3])", "E034", "`k` must be at least 1, got [0, 3]"),
    ("conv2d(x, out=2, k=[1, true])", "E033", "`k` must be an integer or a list of integers"),
    ("conv2d(x, out=2, k=[])", "E033", "`k` must be an integer or a list of integers"),
    ('conv2d(x, out=2, k=3, pad="full")', "E033", 'or one of "same", "valid"'),
])
def test_bad_per_axis_sizes(call, code, message):
    with pytest.raises(NetevoError) as info:
        ne.check(_spec(call, (2, 3, 8, 8)))
    assert info.value.code == code and message in str(info.value)


def test_per_axis_sizes_print_and_parse_back():
    text = "network n {\n  input x: [B, 3, 8, 8]\n  output y = conv2d(x, out=4, k=[1, 7], pad=[0, 3])\n}\n"
    assert ne.format(ne.parse(text)) == text


# --- scale ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", [0.17677669529663687, -3.0, 2, 1e-300])
def test_scale_is_x_times_the_number(by):
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    spec = _spec(f"scale(x, by={by!r})", x.shape)
    assert ne.format(ne.parse(ne.format(spec))) == ne.format(spec)
    for model in _both(spec):
        assert torch.equal(model(x), x * by)  # PyTorch's tensor times a Python number, bit for bit


def test_scale_needs_a_finite_number():
    with pytest.raises(NetevoError) as info:
        ne.check(_spec("scale(x, by=true)", (2, 3)))
    assert info.value.code == "E033"
