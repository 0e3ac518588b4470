"""Issue 13, defects 7, 8 and 10: the emitted source is the compiled module, needs only torch, and
compile_module frees what it no longer needs.

Each case compiles a spec both ways and compares state-dict keys and float64 outputs; where a case
is about what the code computes, an independent torch expression is the judge.
"""
import ast
import gc
import sys
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.compiler import modules
from netevo_dsl.ops.masks import MaskSpec, make_mask, random_keep

from .helpers import emitted_network, example_inputs, exec_source


def both(text: str):
    """(compiled module, module exec'd from the emitted source with the same weights, source), float64."""
    spec = ne.parse(text)
    graph = ne.infer_shapes(spec)
    direct = ne.compile_module(spec).double().eval()
    source = ne.emit_source(spec)
    emitted = emitted_network(source, graph.name).double().eval()
    assert list(direct.state_dict()) == list(emitted.state_dict())
    emitted.load_state_dict(direct.state_dict())
    inputs = example_inputs(graph)
    with torch.no_grad():
        torch.testing.assert_close(direct(*inputs), emitted(*inputs), atol=1e-12, rtol=0)
    return direct, emitted, source, inputs


# --- defect 7: emitted source is not the compiled module ---------------------------------------------


def test_reassigned_input_keeps_the_graph_name():
    direct, emitted, source, _ = both("network n {\n input x: [B, 3]\n x = linear(x, out=4)\n output y = x\n}")
    assert list(direct.state_dict()) == ["x_1.weight", "x_1.bias"]  # the graph's name: `x` is the input


def test_fractional_padding_is_one_floor_division():
    text = ("block b(x: [B, c, L], k: int) -> [B, 8, L] {\n return conv1d(x, out=8, k=k, pad=(k - 1) / 2)\n}\n"
            "network n {\n input x: [B, 2, 16]\n output y = b(x, k=3)\n}")
    direct, emitted, source, (x,) = both(text)
    assert "padding=(k - 1) // 2" in source
    conv = direct.y.out
    with torch.no_grad():  # the judge: torch's conv1d with the padding (3 - 1) / 2 = 1 written out
        torch.testing.assert_close(emitted(x), F.conv1d(x, conv.weight, conv.bias, padding=1), atol=1e-12, rtol=0)


def test_block_passing_a_size_of_its_tensor_to_another_block():
    text = ("block inner(x: [B, c, L], c: int) {\n return conv1d(x, out=c, k=1)\n}\n"
            "block outer(x: [B, cin, L]) {\n return inner(x, c=cin)\n}\n"
            "network n {\n input x: [B, 2, 16]\n output y = outer(x)\n}")
    direct, _, source, (x,) = both(text)
    assert direct(x).shape == (2, 2, 16)
    assert "self.out = Inner(c=cin)" in source  # still one symbolic class per block


def test_cli_compile_writes_the_module_that_compile_module_builds(tmp_path):
    from netevo_dsl.cli import main

    # the file name `cin.net` holds the size name `cin`: comments must not count as uses of it
    spec_file, out = tmp_path / "cin.net", tmp_path / "net.py"
    spec_file.write_text("block inner(x: [B, c, L], c: int) {\n  return conv1d(x, out=c, k=1)\n}\n\n"
                         "block outer(x: [B, cin, L]) {\n  return inner(x, c=cin)\n}\n\n"
                         "network n {\n  input x: [B, 2, 16]\n  output y = outer(x)\n}\n")
    assert main(["compile", str(spec_file), "-o", str(out)]) == 0
    emitted = exec_source(out.read_text())["N"]().double()
    direct = ne.compile_module(ne.load(spec_file)).double()
    emitted.load_state_dict(direct.state_dict())
    x = torch.randn(2, 2, 16, dtype=torch.float64)
    torch.testing.assert_close(emitted(x), direct(x), atol=1e-12, rtol=0)
    assert "class Outer(nn.Module):\n    def __init__(self, cin):" in out.read_text()


@pytest.mark.parametrize("a, b", [("conv_1", "conv1"), ("ab", "Ab")])
def test_two_blocks_never_share_a_class(a, b):
    text = (f"block {a}(x: [B, 4]) {{\n return linear(x, out=4)\n}}\n"
            f"block {b}(x: [B, 4]) {{\n return linear(x, out=5)\n}}\n"
            f"network n {{\n input x: [B, 4]\n h = {a}(x)\n output y = {b}(h)\n}}")
    direct, emitted, source, (x,) = both(text)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == len(set(classes)) == 3
    assert emitted(x).shape == (2, 5)


@pytest.mark.parametrize("block, network", [("_1", "_0"), ("n0", "_0")])
def test_names_that_camel_case_to_a_digit_still_make_classes(block, network):
    """`_0` camel-cases to `0`, which no class may be called (found by the resize property test)."""
    text = (f"block {block}(x: [B, 4]) {{\n return linear(x, out=4)\n}}\n"
            f"network {network} {{\n input x: [B, 4]\n output y = {block}(x)\n}}")
    _, emitted, source, (x,) = both(text)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == len(set(classes)) and all(c.isidentifier() for c in classes)
    assert emitted(x).shape == (2, 4)


def test_block_and_network_never_share_a_class():
    text = "block n_(x: [B, 4]) {\n return linear(x, out=4)\n}\nnetwork n {\n input x: [B, 4]\n output y = n_(x)\n}"
    both(text)


@pytest.mark.parametrize("name", ["activation", "masked_linear", "scope", "make_mask"])
def test_block_named_like_a_helper_keeps_the_helper(name):
    text = (f"mask m = random(density=0.5, seed=3)\nblock {name}(x: [B, 4]) {{\n return linear(x, out=4, mask=m)\n}}\n"
            f"network n {{\n input x: [B, 4]\n h = {name}(x)\n r = sin(h)\n repeat 2 as q {{\n  a = linear(r, out=4)\n"
            f"  r = gauss(a) + r\n }}\n output y = r\n}}")
    _, _, source, _ = both(text)
    tree = ast.parse(source)
    defined = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert len(defined) == len(set(defined))


def test_value_named_layer_survives_a_repeat_loop():
    text = ("network n {\n input x: [B, 4]\n layer = linear(x, out=4)\n h = layer\n repeat 3 as r {\n"
            "  h = linear(h, out=4)\n }\n output y = layer + h\n}")
    direct, emitted, source, (x,) = both(text)
    with torch.no_grad():  # the judge: the same layers applied by hand
        layer = direct.layer(x)
        h = layer
        for i in range(3):
            h = direct.r[i](h)
        torch.testing.assert_close(emitted(x), layer + h, atol=1e-12, rtol=0)


@pytest.mark.parametrize("param", ["Inner", "MaskedLinear", "make_mask", "range", "Scope", "nn", "int"])
def test_scalar_block_parameter_never_shadows_what_init_uses(param):
    if param == "nn":
        pytest.skip("`nn` is refused by check (E021)")
    text = ("mask m = random(density=0.5, seed=1)\n"
            "block inner(x: [B, 4]) {\n return linear(x, out=4, mask=m)\n}\n"
            f"block b(x: [B, 4], {param}: int) {{\n h = linear(x, out={param}, mask=m)\n"
            f"  repeat 2 as r {{\n  h = linear(h, out={param})\n }}\n return inner(linear(h, out=4))\n}}\n"
            f"network n {{\n input x: [B, 4]\n output y = b(x, {param}=3)\n}}")
    both(text)


def test_float_and_bool_block_parameters_emit():
    text = ("block b(x: [B, 4], p: float, bias: bool = true) {\n return dropout(linear(x, out=4, bias=bias), p=p)\n}\n"
            "network n {\n input x: [B, 4]\n h = b(x, p=0.5)\n output y = b(h, p=0.25, bias=false)\n}")
    _, emitted, source, _ = both(text)
    assert "p=0.5" in source.replace("(0.5)", "p=0.5") and "0.25" in source


def test_repeat_bodies_of_several_statements_emit():
    text = ("network n {\n input x: [B, 4]\n h = x\n repeat 3 as r {\n  a = linear(h, out=4)\n"
            "  b = a |> layernorm() |> tanh()\n  h = relu(b) + h\n }\n output y = h\n}")
    direct, emitted, source, (x,) = both(text)
    assert source.count("for layer in self.r:") == 1
    with torch.no_grad():  # the judge: the body written out by hand, copy by copy
        h = x
        for i in range(3):
            a = direct.r[i].a(h)
            b = torch.tanh(direct.r[i].b[0](a))
            h = torch.relu(b) + h
        torch.testing.assert_close(emitted(x), h, atol=1e-12, rtol=0)


def test_repeat_count_from_a_block_parameter_emits():
    text = ("block stack(x: [B, c], n: int) {\n h = x\n repeat n as r {\n  h = linear(h, out=c)\n }\n return h\n}\n"
            "network net {\n input x: [B, 4]\n a = stack(x, n=2)\n output y = stack(a, n=3)\n}")
    direct, _, _, _ = both(text)
    assert len(direct.a.r) == 2 and len(direct.y.r) == 3


# --- defect 8: emitted files need only torch, math and the standard library --------------------------

STDLIB = set(sys.stdlib_module_names)


@pytest.mark.parametrize("spec_file", ["sparse_mlp.net", "gpt2_tiny.net", "resnet18.net", "mobilenet_v2_like.net"])
def test_emitted_source_imports_only_torch_math_and_stdlib(spec_file):
    from .conftest import SPECS_DIR

    source = ne.emit_source(ne.load(f"{SPECS_DIR}/{spec_file}"))
    tree = ast.parse(source)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"torch"} | STDLIB
    assert "numpy" not in source and " np." not in source


def test_splitmix64_stream_matches_the_reference_vector():
    # With n = 2^64 the first index drawn is the generator's first output; Vigna's splitmix64.c with
    # seed 1234567 gives 6457827717110365317 first.
    assert random_keep(1 << 64, 1, 1234567) == [6457827717110365317]


def test_random_masks_choose_every_connection_equally_often():
    n, keep, seeds = 40, 10, 4000
    counts = np.zeros(n)
    for s in range(seeds):
        counts[random_keep(n, keep, s)] += 1
    expected = seeds * keep / n  # 1000 per connection; binomial sd about 27
    assert np.abs(counts - expected).max() < 6 * np.sqrt(expected * (1 - keep / n))


_MASKS = st.one_of(
    st.builds(lambda d, s: MaskSpec("random", (("density", d), ("seed", s))),
              st.floats(0.01, 1.0), st.integers(-2**40, 2**40)),
    st.builds(lambda h: MaskSpec("band", (("halfwidth", h),)), st.integers(0, 6)),
    st.builds(lambda b: MaskSpec("block", (("blocks", b),)), st.sampled_from([1, 2])),
    st.just(MaskSpec("dense", ())),
)


@settings(max_examples=200, deadline=None)
@given(_MASKS, st.integers(1, 24).map(lambda k: 2 * k), st.integers(1, 24).map(lambda k: 2 * k))
def test_masks_are_the_same_bits_in_ops_module_and_emitted_file(mask, out, inp):
    ns = _emitted_mask_namespace()
    expected = make_mask(mask, out, inp)
    kw = dict(mask.params)
    assert np.array_equal(modules.make_mask(mask.kind, out, inp, **kw).numpy(), expected)
    assert np.array_equal(ns["make_mask"](mask.kind, out, inp, **kw).numpy(), expected)
    if mask.kind == "random":
        assert expected.sum() == round(kw["density"] * out * inp)


_NS: dict = {}


def _emitted_mask_namespace():
    if not _NS:
        source = ne.emit_source(ne.parse("mask m = random(density=0.3, seed=2)\n"
                                         "network n {\n input x: [B, 6]\n output y = linear(x, out=4, mask=m)\n}"))
        _NS.update(exec_source(source))
    return _NS


# --- defect 10: compile_module frees every value after its last use ----------------------------------


def test_compiled_forward_frees_values_after_their_last_use():
    text = "network n {\n input x: [B, 8]\n" + "".join(
        f" h{i} = linear({'x' if i == 0 else f'h{i - 1}'}, out=8)\n" for i in range(6)) + " output y = h5 + h4\n}"
    module = ne.compile_module(ne.parse(text)).eval()
    alive = {}

    def remember(name):
        def hook(mod, args, out):
            alive[name] = weakref.ref(out)
            if name == "h5":  # h0..h3 had their last use before h5 ran; h4 is still needed by `+`
                gc.collect()
                alive["dead_at_h5"] = [k for k in ("h0", "h1", "h2", "h3", "h4") if alive[k]() is None]
        return hook

    for i in range(6):
        getattr(module, f"h{i}").register_forward_hook(remember(f"h{i}"))
    with torch.no_grad():
        module(torch.randn(2, 8))
    assert alive["dead_at_h5"] == ["h0", "h1", "h2", "h3"]


@pytest.mark.parametrize("spec_file, n_blocks", [("resnet18.net", 2), ("mobilenet_v2_like.net", 4)])
def test_shipped_blocks_stay_one_symbolic_class_each(spec_file, n_blocks):
    from .conftest import SPECS_DIR

    source = ne.emit_source(ne.load(f"{SPECS_DIR}/{spec_file}"))
    classes = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == n_blocks + 1  # no block fell back to one class per set of concrete values


# --- hostile names everywhere: Hypothesis over blocks, parameters, values and repeats ---------------

_HOSTILE = ["activation", "masked_linear", "masked_conv2d", "scope", "Scope", "make_mask", "random_keep",
            "layer", "range", "len", "int", "sum", "Inner", "MaskedLinear", "Activation", "conv_1", "conv1",
            "ab", "Ab", "n_", "n", "x_1", "h", "out", "F_", "list", "print", "super_"]


@st.composite
def _hostile_networks(draw):
    names = draw(st.lists(st.sampled_from(_HOSTILE), min_size=9, max_size=9, unique=True))
    block_a, block_b, width, rate, value, loop, net, v_net, w_net = names
    n_copies = draw(st.integers(0, 3))
    text = f"""block {block_a}(x: [B, c], {width}: int = 3, {rate}: float = 0.25) {{
  {value} = linear(x, out={width})
  repeat {n_copies} as {loop} {{
    t = linear({value}, out={width})
    {value} = tanh(t) + {value}
  }}
  return {value} |> dropout(p={rate}) |> linear(out=c)
}}

block {block_b}(x: [B, c], k: int) {{
  return {block_a}(x, {width}=k) |> relu()
}}

network {net} {{
  input x: [B, 4]
  {v_net} = {block_a}(x, {width}={draw(st.integers(1, 5))}, {rate}=0.5)
  {w_net} = {block_b}({v_net}, k={draw(st.integers(1, 5))})
  x = {block_a}({w_net})
  output y = x + {v_net}
}}
"""
    return text


@settings(max_examples=25, deadline=None)
@given(_hostile_networks())
def test_hostile_names_compile_and_emit_alike(text):
    try:
        ne.check(ne.parse(text))
    except ne.NetevoError:
        assume(False)  # a name the parser or checker refuses (E021, keywords) is the front end's business
    _, _, source, _ = both(text)
    tree = ast.parse(source)
    defined = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert len(defined) == len(set(defined))
