"""resolve + infer_shapes: module-path naming, torchvision-compatible resnet18 names, graph views, -D overrides."""
import os

import pytest

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.ir.dims import Dim
from netevo_dsl.passes.elaborate import elaborate, parse_override

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "specs")
BLOCK = "block blk(x: [B, c]) -> [B, c] {\n  h = linear(x, out=c)\n  return relu(h) + x\n}\n\n"


def graph(body, prelude="", **kwargs):
    return elaborate(ne.parse(prelude + "network n {\n  input x: [B, 8]\n" + body + "\n}\n"), **kwargs)


def names(body, prelude=""):
    return [(node.name, node.op) for node in graph(body, prelude).nodes]


# --- naming rules (docs/language.md, "Names") -------------------------------------------------


def test_one_module_op_is_named_by_its_target():
    assert names("  fc1 = linear(x, out=3)\n  output y = fc1") == [("fc1", "linear")]
    assert names("  output y = linear(x, out=3)") == [("y", "linear")]


def test_several_module_ops_are_numbered_in_evaluation_order():
    assert names("  h = x |> linear(out=3) |> relu()\n  output y = h") == [("h.0", "linear"), ("h.1", "relu")]
    assert names("  h = relu(linear(x, out=3))\n  output y = h") == [("h.0", "linear"), ("h.1", "relu")]


def test_functional_ops_are_named_target_underscore_op():
    assert names("  h = flatten(x)\n  output y = h") == [("h_flatten", "flatten")]
    assert names("  h = linear(x, out=8) + x\n  output y = h") == [("h", "linear"), ("h_add", "add")]
    assert names("  a, b = split(x, sizes=[3, 5])\n  output y = concat(a, b)") == [("a_split", "split"),
                                                                                    ("y_concat", "concat")]


def test_reassignment_gets_a_suffix():
    assert names("  h = linear(x, out=3)\n  h = linear(h, out=3)\n  h = relu(h)\n  output y = h") == [
        ("h", "linear"), ("h_1", "linear"), ("h_2", "relu")]
    # An input already holds the name `x`.
    assert names("  x = linear(x, out=8)\n  output y = x") == [("x_1", "linear")]
    # A taken suffix is skipped, and a pipeline's paths count as taken.
    assert names("  h = linear(x, out=3)\n  h_1 = linear(x, out=3)\n  h = linear(x, out=3)\n  output y = h") == [
        ("h", "linear"), ("h_1", "linear"), ("h_2", "linear")]
    assert names("  h = x |> linear(out=3)\n  h = h |> linear(out=3) |> relu()\n  output y = h") == [
        ("h", "linear"), ("h_1.0", "linear"), ("h_1.1", "relu")]


def test_repeat_names_its_copies():
    one = "  repeat 2 as r {\n    x = linear(x, out=8)\n  }\n  output y = x"
    assert names(one) == [("r.0", "linear"), ("r.1", "linear")]
    two = "  repeat 2 as r {\n    x = linear(x, out=8)\n    x = relu(x)\n  }\n  output y = x"
    assert names(two) == [("r.0.x", "linear"), ("r.0.x_1", "relu"), ("r.1.x", "linear"), ("r.1.x_1", "relu")]
    pipe = "  repeat 2 as r {\n    x = x |> linear(out=8) |> relu()\n  }\n  output y = x"
    assert names(pipe) == [("r.0.x.0", "linear"), ("r.0.x.1", "relu"), ("r.1.x.0", "linear"), ("r.1.x.1", "relu")]
    assert names("  repeat 0 as r {\n    x = relu(x)\n  }\n  output y = x") == []


def test_blocks_are_inlined_under_their_instance_path():
    assert names("  repeat 2 as layer {\n    x = blk(x)\n  }\n  output y = x", BLOCK) == [
        ("layer.0.h", "linear"), ("layer.0.out", "relu"), ("layer.0.out_add", "add"),
        ("layer.1.h", "linear"), ("layer.1.out", "relu"), ("layer.1.out_add", "add")]
    g = graph("  h = blk(x) |> blk()\n  output y = h", BLOCK)
    assert [n.name for n in g.nodes if n.module] == ["h.0.h", "h.0.out", "h.1.h", "h.1.out"]
    assert g.node("h.1.h").block_path == (("h.1", "blk"),)
    assert g.node("h.1.h").inputs == ("h.0.out_add",)


# --- resnet18 module names are torchvision's ---------------------------------------------------

TORCHVISION_RESNET18 = [
    "conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2", "layer1.0.bn2", "layer1.1.conv1",
    "layer1.1.bn1", "layer1.1.conv2", "layer1.1.bn2", "layer2.0.conv1", "layer2.0.bn1", "layer2.0.conv2",
    "layer2.0.bn2", "layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.1.conv1", "layer2.1.bn1",
    "layer2.1.conv2", "layer2.1.bn2", "layer3.0.conv1", "layer3.0.bn1", "layer3.0.conv2", "layer3.0.bn2",
    "layer3.0.downsample.0", "layer3.0.downsample.1", "layer3.1.conv1", "layer3.1.bn1", "layer3.1.conv2",
    "layer3.1.bn2", "layer4.0.conv1", "layer4.0.bn1", "layer4.0.conv2", "layer4.0.bn2",
    "layer4.0.downsample.0", "layer4.0.downsample.1", "layer4.1.conv1", "layer4.1.bn1", "layer4.1.conv2",
    "layer4.1.bn2", "fc",
]  # the prefixes of torchvision.models.resnet18().state_dict(), in order


def test_resnet18_module_names_match_torchvision():
    g = elaborate(ne.load(os.path.join(SPECS, "resnet18.net")))
    weighted = [n.name for n in g.nodes if n.op in ("conv2d", "batchnorm2d", "linear")]
    assert weighted == TORCHVISION_RESNET18
    assert g.outputs == (("logits", "fc"),)
    assert len({n.name for n in g.nodes}) == len(g.nodes)


def test_resnet18_shapes_are_symbolic():
    g = elaborate(ne.load(os.path.join(SPECS, "resnet18.net")))
    B, H = Dim.sym("B"), Dim.sym("H")
    assert g.node("layer4.1.bn2").shape == (B, 512, H / 32, Dim.sym("W") / 32)
    assert g.node("fc").shape == (B, 1000)


# --- views and overrides -----------------------------------------------------------------------


def test_networkx_view():
    g = graph("  a, b = split(x, sizes=[3, 5])\n  h = linear(b, out=3)\n  output y = a + h")
    view = g.to_networkx()
    assert set(view.nodes) == {"x", "a_split", "h", "y_add"}
    assert set(view.edges) == {("x", "a_split"), ("a_split", "h"), ("a_split", "y_add"), ("h", "y_add")}
    assert view.edges["a_split", "h"]["ref"] == "a_split:1"
    assert view.nodes["x"]["op"] == "input" and view.nodes["h"]["params"]["out"] == 3
    assert view.nodes["y_add"]["output"] == "y"
    assert g.shape_of("a_split:1") == (Dim.sym("B"), 5)


def test_define_overrides_params():
    spec = ne.load(os.path.join(SPECS, "mlp.net"))
    assert elaborate(spec).node("fc1").shape[-1] == 256
    g = elaborate(spec, overrides={"hidden": 512})
    assert g.node("fc1").shape[-1] == 512 and g.node("fc2").shape[-1] == 256  # hidden / 2 follows
    with pytest.raises(NetevoError, match="-D hiden: no param named `hiden`"):
        elaborate(spec, overrides={"hiden": 512})
    with pytest.raises(NetevoError, match="must be an int"):
        elaborate(spec, overrides={"hidden": 1.5})


def test_parse_override():
    assert parse_override("width=32") == ("width", 32)
    assert parse_override(" rate = 0.5 ") == ("rate", 0.5)
    assert parse_override("flag=true") == ("flag", True)
    with pytest.raises(NetevoError, match="bad -D"):
        parse_override("width")
    with pytest.raises(NetevoError, match="bad value"):
        parse_override("width=wide")


def test_choosing_the_network():
    text = ("network a {\n  input x: [B, 2]\n  output y = relu(x)\n}\n\n"
            "network b {\n  input x: [B, 2]\n  output y = x\n}\n")
    spec = ne.parse(text)
    with pytest.raises(NetevoError, match="the spec has 2 networks"):
        elaborate(spec)
    assert elaborate(spec, "a").name == "a" and elaborate(spec, "b").nodes == ()
    with pytest.raises(NetevoError, match="no network named `aa`") as info:
        elaborate(spec, "aa")
    assert info.value.hint == "did you mean `a`?"


def test_masks_resolve_and_none_or_false_mean_no_mask():
    prelude = "mask m = random(density=0.25, seed=3)\n\n"
    g = graph("  a = linear(x, out=4, mask=m)\n  b = linear(x, out=4, mask=none)\n  c = linear(x, out=4, mask=false)\n"
              "  output y = a + b + c", prelude)
    mask = g.node("a").param_dict["mask"]
    assert (mask.kind, mask.name, mask.get("density"), mask.get("seed")) == ("random", "m", 0.25, 3)
    assert g.node("b").param_dict["mask"] is None and g.node("c").param_dict["mask"] is None
