"""The ops convnext and vit need (issue 17): parameter, broadcast_add, broadcast_mul, expand_batch, select, layernorm2d.

Oracles: PyTorch in float64. The broadcasts are `a + b` / `a * b` on the same tensors and their shape rule is
`torch.broadcast_shapes`; expand_batch is `Tensor.expand`; select is `x[:, i]` / `torch.select`; layernorm2d is
torch's nn.LayerNorm applied channels-last (the definition torchvision's convnext LayerNorm2d uses). Each spec
is compiled and emitted; both must agree with the oracle, and the emitted file must load the compiled one's keys.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl import NetevoError
from netevo_dsl.compiler.emit import class_name
from netevo_dsl.errors import flatten

from .helpers import exec_source

TOKENS = """version 1

block scaled(x: [B, c, H, W]) {
  conv = conv2d(x, out=c, k=3, pad=1)
  layer_scale = parameter(shape=[c, 1, 1], init="ones")
  return broadcast_mul(layer_scale, conv)
}

network tokens {
  input x: [B, 4, 2, 3]
  class_token = parameter(shape=[1, 1, 4])
  features = x |> scaled() |> layernorm2d(eps=1e-06)
  seq = features |> flatten(start=2) |> transpose(dim0=1, dim1=2)
  joined = concat(expand_batch(class_token, seq), seq, dim=1)
  pos = parameter(shape=[1, 7, 4], init="normal")
  output out = select(broadcast_add(joined, pos), dim=1, index=0)
}
"""


def _both(text, name, state=None):
    spec = ne.parse(text)
    ne.check(spec)
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    if state is not None:
        compiled.load_state_dict(state, strict=True)
    emitted = exec_source(ne.emit_source(spec))[class_name(name)]().double().eval()
    emitted.load_state_dict(compiled.state_dict(), strict=True)
    return compiled, emitted


def test_parameters_are_state_dict_entries_at_their_statement_paths_and_compute_as_torch():
    torch.manual_seed(0)
    compiled, emitted = _both(TOKENS, "tokens")
    # a block's own parameters come before its children's, as nn.Module orders them
    assert list(compiled.state_dict()) == ["class_token", "pos", "features.0.layer_scale", "features.0.conv.weight",
                                           "features.0.conv.bias", "features.1.weight", "features.1.bias"]
    assert torch.equal(compiled.state_dict()["features.0.layer_scale"], torch.ones(4, 1, 1, dtype=torch.float64))
    assert torch.equal(compiled.state_dict()["class_token"], torch.zeros(1, 1, 4, dtype=torch.float64))
    state = {k: torch.randn_like(v) for k, v in compiled.state_dict().items()}
    compiled.load_state_dict(state)
    emitted.load_state_dict(state)
    x = torch.randn(3, 4, 2, 3, dtype=torch.float64)
    # the oracle: the same computation written in PyTorch
    h = F.conv2d(x, state["features.0.conv.weight"], state["features.0.conv.bias"], padding=1)
    h = state["features.0.layer_scale"] * h
    h = F.layer_norm(h.permute(0, 2, 3, 1), (4,), state["features.1.weight"], state["features.1.bias"], 1e-6)
    seq = h.permute(0, 3, 1, 2).flatten(2).transpose(1, 2)
    joined = torch.cat([state["class_token"].expand(3, -1, -1), seq], dim=1) + state["pos"]
    want = joined[:, 0]
    with torch.no_grad():
        for model in (compiled, emitted):
            assert torch.allclose(model(x), want, rtol=0, atol=1e-12)
    assert ne.compile_module(ne.parse(TOKENS))(torch.randn(5, 4, 2, 3)).shape == (5, 4)  # any batch size


def test_parameter_counts_and_initial_values():
    spec = ne.parse("network p {\n  input x: [B, 3]\n  w = parameter(shape=[2, 3], init=\"normal\")\n"
                    "  output y = broadcast_mul(x, w |> select(dim=0, index=1))\n}\n")
    torch.manual_seed(0)
    compiled = ne.compile_module(spec, dtype=torch.float64)
    w = compiled.state_dict()["w"]
    assert w.shape == (2, 3) and 0 < w.std() < 0.1  # normal with std 0.02 (vit's position embedding)
    from netevo_dsl.passes.measures import param_count
    assert param_count(ne.infer_shapes(spec)) == 6 == sum(p.numel() for p in compiled.parameters())


def test_a_parameter_in_a_statement_making_several_modules_is_refused():
    text = "network p {\n  input x: [B, 3]\n  y = linear(broadcast_add(x, parameter(shape=[3])), out=2)\n  output o = y\n}\n"
    with pytest.raises(NetevoError) as info:
        ne.check(ne.parse(text))
    errors = flatten(info.value)
    assert [e.code for e in errors] == ["E200"] and errors[0].span.line == 3


shapes = st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=4)  # inputs have axes


@settings(max_examples=60, deadline=None)
@given(a=shapes, b=shapes, mul=st.booleans())
def test_broadcast_shape_rule_is_torchs_where_one_operand_has_the_result_shape(a, b, mul):
    """Property: the op accepts exactly the shapes torch broadcasts to one of them, and computes torch's a + b."""
    try:
        want = tuple(torch.broadcast_shapes(tuple(a), tuple(b)))
    except RuntimeError:
        want = None
    ok = want is not None and want in (tuple(a), tuple(b))
    op = "broadcast_mul" if mul else "broadcast_add"
    text = (f"network n {{\n  input x: [{', '.join(map(str, a))}]\n  input z: [{', '.join(map(str, b))}]\n"
            f"  output y = {op}(x, z)\n}}\n")
    if not ok:
        with pytest.raises(NetevoError) as info:
            ne.check(ne.parse(text))
        assert {e.code for e in flatten(info.value)} == {"E040"}
        return
    compiled, emitted = _both(text, "n")
    x, z = torch.randn(a, dtype=torch.float64), torch.randn(b, dtype=torch.float64)
    for model in (compiled, emitted):
        assert torch.equal(model(x, z), x * z if mul else x + z)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), data=st.data())
def test_select_is_torch_select(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    index = data.draw(st.integers(-shape[dim], shape[dim] - 1))
    text = (f"network n {{\n  input x: [B, {', '.join(map(str, shape[1:]))}]\n"
            f"  output y = select(x, dim={dim}, index={index})\n}}\n")
    compiled, emitted = _both(text, "n")
    x = torch.randn(shape, dtype=torch.float64)
    for model in (compiled, emitted):
        assert torch.equal(model(x), torch.select(x, dim, index))


def test_expand_batch_is_tensor_expand_to_the_other_tensors_batch():
    text = "network n {\n  input t: [1, 2, 3]\n  input x: [B, 5]\n  output y = expand_batch(t, x)\n}\n"
    compiled, emitted = _both(text, "n")
    t, x = torch.randn(1, 2, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    for model in (compiled, emitted):
        assert torch.equal(model(t, x), t.expand(4, -1, -1))


@pytest.mark.parametrize("eps, affine", [(1e-6, True), (1e-5, False)])
def test_layernorm2d_is_layer_norm_over_the_channels_at_each_position(eps, affine):
    text = (f"network n {{\n  input x: [B, 6, H, W]\n  output y = layernorm2d(x, eps={eps!r}, "
            f"affine={'true' if affine else 'false'})\n}}\n")
    torch.manual_seed(1)
    compiled, emitted = _both(text, "n")
    assert [k for k in compiled.state_dict()] == (["y.weight", "y.bias"] if affine else [])
    reference = torch.nn.LayerNorm(6, eps=eps, elementwise_affine=affine).double()
    if affine:
        state = {"y.weight": torch.randn(6, dtype=torch.float64), "y.bias": torch.randn(6, dtype=torch.float64)}
        compiled.load_state_dict(state)
        emitted.load_state_dict(state)
        reference.load_state_dict({"weight": state["y.weight"], "bias": state["y.bias"]})
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64) * 3 + 1
    want = reference(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    with torch.no_grad():
        for model in (compiled, emitted):
            assert torch.allclose(model(x), want, rtol=0, atol=1e-12)


def test_a_pipeline_with_a_functional_op_between_modules_emits_every_stage():
    """convnext's classifier, `layernorm2d |> flatten |> identity |> linear`: the emitter once folded it into one
    nn.Sequential call and dropped the flatten (a bracket of the flatten taken for the call's own)."""
    text = "network n {\n  input x: [B, 3, 1, 1]\n  output y = x |> layernorm2d() |> flatten() |> identity() |> linear(out=2)\n}\n"
    torch.manual_seed(0)
    compiled, emitted = _both(text, "n")
    x = torch.randn(4, 3, 1, 1, dtype=torch.float64)
    state = compiled.state_dict()
    want = F.linear(F.layer_norm(x.flatten(1), (3,), state["y.0.weight"], state["y.0.bias"]), state["y.2.weight"],
                    state["y.2.bias"])
    with torch.no_grad():
        for model in (compiled, emitted):
            assert torch.allclose(model(x), want, rtol=0, atol=1e-12)
