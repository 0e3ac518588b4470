"""Dependency groups from the registry's coupling metadata: residual streams, flatten factors, heads, concat/split."""
import subprocess
import sys
from pathlib import Path

import pytest

import netevo_dsl as nd
from netevo_dsl.errors import TransformError
from netevo_dsl.evolve.groups import dependency_groups, find_group

SPECS = Path(__file__).resolve().parents[2] / "specs"

BRANCHES = """version 1

network branches {
  input x: [B, 3, 16, 16]
  a = conv2d(x, out=8, k=3, pad=1) |> relu()
  b = conv2d(x, out=4, k=1) |> relu()
  c = concat(a, b)
  d = conv2d(c, out=12, k=3, pad=1)
  p, q = split(d, sizes=[4, 8])
  e = conv2d(p, out=8, k=1) + q
  f = relu(e) |> conv2d(out=16, k=3, pad=1, groups=4) |> groupnorm(groups=2) |> relu()
  g = conv2d(f, out=32, k=3, pad=1, groups=16)
  h = flatten(adaptive_avgpool(g, 2))
  output y = linear(h, out=5)
}
"""

GLU = """version 1

network glu {
  input x: [B, 10]
  h = linear(x, out=12)
  a, b = split(h, sizes=[6, 6])
  g = a * sigmoid(b)
  output y = linear(g, out=3)
}
"""


def groups_of(name=None, text=None):
    spec = nd.load(SPECS / f"{name}.net") if name else nd.parse(text)
    return {g.name: g for g in dependency_groups(nd.infer_shapes(spec))}


def sites(g, node, tensor):
    return sorted((s.axis, s.offset, s.factor, s.role) for s in g.sites if s.node == node and s.tensor == tensor)


@pytest.fixture(scope="module")
def resnet():
    return groups_of("resnet18")


def test_resnet_residual_streams_are_one_group_each(resnet):
    stem = find_group(resnet.values(), "conv1")
    assert stem.size == 64
    assert set(stem.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert set(stem.consumers) == {"layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0"}
    assert {"bn1", "relu", "maxpool", "layer1.0.bn2", "layer1.1.out"} <= set(stem.followers)
    stage2 = find_group(resnet.values(), "layer2.0.downsample.0")
    assert set(stage2.producers) == {"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2"}
    assert "layer2.0.downsample.1" in stage2.followers
    assert not stem.fixed and not stem.no_resize


def test_resnet_block_inner_groups_and_neuronswap_layers(resnet):
    for name in ("layer1.0.conv1", "layer2.1.conv1", "layer4.1.conv1"):
        g = resnet[name]
        assert g.producers == (name,)
        assert g.consumers == (name.replace("conv1", "conv2"),)
        assert set(g.followers) == {name.replace("conv1", "bn1"), name.replace("conv1", "relu")}
    assert len([g for g in resnet.values() if not g.fixed]) == 4 + 8  # four streams, eight inner groups


def test_resnet_classifier_reads_the_last_stream_through_flatten(resnet):
    last = find_group(resnet.values(), "layer4.1.conv2")
    assert "fc" in last.consumers
    assert sites(last, "fc", "weight") == [(1, 0, 1, "consume")]
    assert resnet["img"].fixed and "network input" in resnet["img"].fixed[0]
    assert any("network output" in r for r in resnet["fc"].fixed)


def test_resnet_bn_statistics_follow_their_channels(resnet):
    g = resnet["layer3.0.conv1"]
    tensors = {s.tensor for s in g.sites if s.node == "layer3.0.bn1" and s.role == "follow"}
    assert tensors == {"weight", "bias", "running_mean", "running_var"}


def test_lenet_flatten_factor_is_five_by_five():
    g = groups_of("lenet5")["c3.0"]
    assert g.size == 16 and g.consumers == ("f5.0",)
    assert sites(g, "f5.0", "weight") == [(1, 0, 25, "consume")]
    assert "(x25)" in g.describe()


def test_gpt2_residual_stream_heads_and_hidden():
    gs = groups_of("gpt2_tiny")
    stream = gs["wte"]
    assert set(stream.producers) == {"wte", "h.0.attn", "h.0.mlp", "h.1.attn", "h.1.mlp"}
    assert {"h.0.ln_1", "h.1.ln_2", "ln_f", "wpe"} <= set(stream.followers)
    assert "logits" in stream.consumers
    assert any("layernorm" in r for r in stream.no_resize)
    heads = gs["h.0.attn:heads"]
    assert heads.size == 64 and [(b.count, b.movable) for b in heads.blocks] == [(4, True)]
    # q, k and v are three copies of the heads space on c_attn's rows
    assert {(s.tensor, s.axis, s.copies) for s in heads.sites} == {
        ("c_attn.weight", 0, 3), ("c_attn.bias", 0, 3), ("c_proj.weight", 1, 1)}
    hidden = gs["h.1.mlp:hidden"]
    assert hidden.size == 256 and not hidden.no_resize and not hidden.fixed
    assert [(sp.node, sp.param) for sp in hidden.size_params] == [("h.1.mlp", "hidden")]


def test_concat_offsets_split_and_tie():
    gs = groups_of(text=BRANCHES)
    assert sites(gs["a.0"], "d", "weight") == [(1, 0, 1, "consume")]
    assert sites(gs["b.0"], "d", "weight") == [(1, 8, 1, "consume")]
    # split cuts d's output into two groups; the second is tied to e by the residual +
    head, tail = gs["d/0"], gs["d/1"]
    assert (head.size, tail.size) == (4, 8)
    assert sites(tail, "d", "weight") == [(0, 4, 1, "produce")]
    assert set(tail.producers) == {"d", "e"}
    assert {(sp.node, sp.param, sp.index) for sp in tail.size_params} >= {("p_split", "sizes", 1), ("e", "out", None)}


def test_grouped_conv_groupnorm_and_depthwise():
    gs = groups_of(text=BRANCHES)
    tail = gs["d/1"]  # read by the grouped conv f.1 (groups=4)
    assert [(b.count, b.movable, b.what) for b in tail.blocks] == [(4, False, "conv groups")]
    assert 4 in tail.divisors
    f = gs["f.1"]
    assert {(b.count, b.movable) for b in f.blocks} == {(4, False), (2, True)}
    assert any("groupnorm" in r for r in f.no_resize)
    # depthwise g (groups = channels, 2 outputs each) is tied to f: its rows follow with factor 2
    assert sites(f, "g", "weight") == [(0, 0, 2, "follow")]
    assert {(sp.node, sp.param) for sp in f.size_params} == {("f.1", "out"), ("g", "out"), ("g", "groups")}
    assert sites(f, "y", "weight") == [(1, 0, 8, "consume")]  # 2 depthwise outputs x 2 x 2 pooled


def test_split_halves_tied_by_mul_are_one_group():
    gs = groups_of(text=GLU)
    g = gs["h/0"]
    assert g.size == 6 and g.name == "h/0" and "h/1" not in gs
    assert sites(g, "h", "weight") == [(0, 0, 1, "produce"), (0, 6, 1, "produce")]
    assert dict(next(sp for sp in g.size_params if sp.param == "out").terms) == {"h/0": 2}


def test_describe_and_lookup():
    gs = groups_of("mlp")
    line = gs["fc1"].describe()
    assert line.startswith("fc1: 256 units") and "read by fc2" in line and "through act1" in line
    assert find_group(gs.values(), "act1") is gs["fc1"]
    with pytest.raises(TransformError, match="no dependency group"):
        find_group(gs.values(), "fc9")


def test_check_groups_does_not_import_torch():
    code = ("import sys, io, contextlib; from netevo_dsl.cli import main\n"
            "out = io.StringIO()\n"
            f"with contextlib.redirect_stdout(out): rc = main(['check', '--groups', r'{SPECS / 'resnet18.net'}'])\n"
            "assert rc == 0 and 'torch' not in sys.modules, sys.modules.get('torch')\n"
            "print(out.getvalue())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "conv1: 64 units | produced by conv1, layer1.0.conv2, layer1.1.conv2" in out.stdout
