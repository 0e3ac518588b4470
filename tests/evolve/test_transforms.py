"""Function-preserving transforms: outputs unchanged in float64 (atol 1e-9), the old spec untouched."""
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netevo_dsl as nd
from netevo_dsl.errors import TransformError
from netevo_dsl.evolve.spec_edit import get_call
from netevo_dsl.evolve.transforms import deepen, merge_units, permute, prune_units, widen
from netevo_dsl.ir import nodes as ir

from .test_groups import BRANCHES, GLU

SPECS = Path(__file__).resolve().parents[2] / "specs"
ATOL = 1e-9
FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MOBILE = """version 1

network mobile {
  input x: [B, 3, 16, 16]
  a = conv2d(x, out=8, k=1) |> batchnorm2d() |> relu()
  d = conv2d(a, out=16, k=3, pad=1, groups=8) |> relu()
  output y = linear(flatten(adaptive_avgpool(d, 1)), out=4)
}
"""


def build(spec, weights):
    """The compiled module with these weights, without paying for a random init."""
    m = nd.compile_module(spec, device="meta", dtype=torch.float64).to_empty(device="cpu")
    m.load_state_dict(weights)
    return m


def run(spec, weights, x, train=False):
    m = build(spec, weights).train(train)
    with torch.no_grad():
        return m(x)


def randomised(spec, seed=0):
    """float64 weights with non-trivial norm statistics and affine parameters."""
    torch.manual_seed(seed)
    m = nd.compile_module(spec, dtype=torch.float64)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.normal_(0, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)):
                mod.weight.normal_(1, 0.3)
                mod.bias.normal_(0, 0.3)
    return {k: v.clone() for k, v in m.state_dict().items()}


class Case:
    def __init__(self, name=None, text=None, x=None):
        self.spec = nd.load(SPECS / f"{name}.net") if name else nd.parse(text)
        self.weights = randomised(self.spec)
        self.x = x
        self.y = run(self.spec, self.weights, x)
        self.text = nd.format(self.spec)

    def same(self, result, train=False, weights=None):
        y = self.y if not train else run(self.spec, weights or self.weights, self.x, train=True)
        got = run(result.spec, result.weights, self.x, train=train)
        assert got.shape == y.shape
        assert torch.allclose(got, y, atol=ATOL, rtol=0), (got - y).abs().max()
        assert nd.format(self.spec) == self.text  # the old spec is untouched


g = torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def mlp():
    return Case("mlp", x=torch.randn(5, 784, dtype=torch.float64, generator=g))


@pytest.fixture(scope="module")
def lenet():
    return Case("lenet5", x=torch.randn(3, 1, 32, 32, dtype=torch.float64, generator=g))


@pytest.fixture(scope="module")
def resnet():
    return Case("resnet18", x=torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=g))


@pytest.fixture(scope="module")
def gpt2():
    return Case("gpt2_tiny", x=torch.randint(0, 128, (2, 12), generator=g))


def test_every_node_origin_finds_its_call():
    for path in sorted(SPECS.glob("*.net")):
        spec = nd.load(path)
        for net in spec.networks:
            for node in nd.infer_shapes(spec, net.name).nodes:
                for (_, block_name), loc in zip(node.block_path, node.origin):
                    e = get_call(spec, loc)
                    assert (e.call if isinstance(e, ir.Pipe) else e).func == block_name
                if node.origin[-1] is not None:
                    e = get_call(spec, node.origin[-1])
                    assert (e.call if isinstance(e, ir.Pipe) else e).func == node.op, node.name


# --- permute -----------------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_permute_mlp_and_lenet(mlp, lenet, data):
    for case, name in ((mlp, "fc1"), (mlp, "fc2"), (lenet, "c3.0"), (lenet, "f5.0")):
        n = {"fc1": 256, "fc2": 128, "c3.0": 16, "f5.0": 120}[name]
        perm = data.draw(st.permutations(range(n)))
        r = permute(case.spec, case.weights, name, perm)
        assert r.spec is case.spec and r.resized == {}
        case.same(r)


def test_permute_resnet_neuronswap_example_and_residual_streams(resnet):
    spec, weights = resnet.spec, resnet.weights
    for layer in ("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"):
        name = f"{layer}.conv1"
        size = weights[f"{name}.weight"].shape[0]
        perm = list(range(size))
        perm[2], perm[3] = 3, 2
        weights = permute(spec, weights, name, perm).weights
    assert not torch.equal(weights["layer1.0.conv1.weight"], resnet.weights["layer1.0.conv1.weight"])
    rng = np.random.default_rng(1)
    for stream in ("conv1", "layer3.0.conv2"):  # the stem stream (conv1, bn1, layer1.*) and a strided stage
        size = weights[f"{stream}.weight"].shape[0]
        r = permute(spec, weights, stream, rng.permutation(size))
        weights = r.weights
    assert torch.equal(weights["bn1.running_mean"], r.weights["bn1.running_mean"])
    result = permute(spec, weights, "layer4.1.conv1", rng.permutation(512))
    resnet.same(result)
    resnet.same(result, train=True)  # batch statistics permute with their channels


def test_permute_gpt2_stream_heads_and_hidden(gpt2):
    rng = np.random.default_rng(2)
    w = permute(gpt2.spec, gpt2.weights, "wte", rng.permutation(64)).weights
    heads = np.concatenate([rng.permutation(16) + 16 * h for h in (2, 0, 3, 1)])  # heads move as blocks
    w = permute(gpt2.spec, w, "h.1.attn:heads", heads).weights
    r = permute(gpt2.spec, w, "h.0.mlp:hidden", rng.permutation(256))
    assert not torch.equal(r.weights["h.1.attn.c_attn.weight"], gpt2.weights["h.1.attn.c_attn.weight"])
    gpt2.same(r)
    with pytest.raises(TransformError, match="breaks the 4 heads"):
        permute(gpt2.spec, gpt2.weights, "h.0.attn:heads", rng.permutation(64))


def test_permute_refuses_fixed_groups_and_bad_permutations(mlp):
    with pytest.raises(TransformError, match="network input"):
        permute(mlp.spec, mlp.weights, "x", list(range(784)))
    with pytest.raises(TransformError, match="lists each"):
        permute(mlp.spec, mlp.weights, "fc2", [0] * 128)


def test_permute_concat_split_grouped_and_depthwise():
    case = Case(text=BRANCHES, x=torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=g))
    rng = np.random.default_rng(3)
    w = permute(case.spec, case.weights, "a.0", rng.permutation(8)).weights
    w = permute(case.spec, w, "d/0", rng.permutation(4)).weights
    w = permute(case.spec, w, "d/1", [1, 0, 2, 3, 5, 4, 7, 6]).weights  # inside the conv-group partitions
    r = permute(case.spec, w, "f.1", [1, 0, 3, 2, 4, 5, 7, 6, 9, 8, 10, 11, 13, 12, 15, 14])
    case.same(r)
    with pytest.raises(TransformError, match="conv groups"):
        permute(case.spec, w, "d/1", [2, 3, 0, 1, 4, 5, 6, 7])


# --- widen -------------------------------------------------------------------------------------------


@FEW
@given(extra=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_widen_mlp(mlp, extra, seed):
    r = widen(mlp.spec, mlp.weights, "fc1", 256 + extra, rng=seed)
    assert r.resized == {"fc1": (256, 256 + extra)}
    mlp.same(r)
    fc1 = get_call(r.spec, nd.infer_shapes(r.spec).node("fc1").origin[-1])
    assert fc1.kwarg("out") == ir.Num(256 + extra)  # a literal here; the global `hidden` keeps its value
    assert r.spec.find("hidden").default == ir.Num(256)


def test_widen_lenet_through_flatten(lenet):
    r = widen(lenet.spec, lenet.weights, "c3.0", 20, rng=0)
    assert r.weights["f5.0.weight"].shape == (120, 500)
    lenet.same(r)


def test_widen_resnet_stream_and_block_group(resnet):
    # `basic(c=...)` sizes both convs of a block: the stage width moves its inner groups alike (as the
    # `width` rule does, through the same planner); the block itself is not rewritten
    r = widen(resnet.spec, resnet.weights, "conv1", 72, rng=0)
    assert r.resized == {"conv1": (64, 72), "layer1.0.conv1": (64, 72), "layer1.1.conv1": (64, 72)}
    text = nd.format(r.spec)
    assert "maxpool |> basic(c=72) |> basic(c=72)" in text and "block basic(x: [B, c, H, W], c: int)" in text
    resnet.same(r)
    resnet.same(r, train=True)  # replicated channels have identical batch statistics
    r2 = widen(r.spec, r.weights, "layer2.0.conv1", 130, rng=1)
    assert r2.resized == {"layer2.0.conv1": (128, 130), "layer2.0.conv2": (128, 130), "layer2.1.conv1": (128, 130)}
    assert "layer1 |> down(c=130) |> basic(c=130)" in nd.format(r2.spec)
    resnet.same(r2)


def test_widen_gpt2_hidden_and_refuse_before_layernorm(gpt2):
    r = widen(gpt2.spec, gpt2.weights, "h.0.mlp:hidden", 300, rng=0)
    # both repeat copies come from one call of the block: both widen, and say so
    assert r.resized == {"h.0.mlp:hidden": (256, 300), "h.1.mlp:hidden": (256, 300)}
    gpt2.same(r)
    with pytest.raises(TransformError, match="layernorm") as e:
        widen(gpt2.spec, gpt2.weights, "wte", 80)
    assert "h.0.mlp:hidden" in e.value.hint and "mean and variance" in e.value.hint


def test_widen_concat_split_and_depthwise():
    case = Case(text=BRANCHES, x=torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=g))
    r = widen(case.spec, case.weights, "a.0", 11, rng=0)  # the first part of a concat
    assert r.weights["d.weight"].shape[1] == 15
    case.same(r)
    r = widen(case.spec, case.weights, "d/0", 6, rng=0)  # the first part of a split
    assert "sizes=[6, 8]" in nd.format(r.spec)
    case.same(r)
    with pytest.raises(TransformError, match="conv groups"):
        widen(case.spec, case.weights, "d/1", 12)
    glu = Case(text=GLU, x=torch.randn(3, 10, dtype=torch.float64, generator=g))
    r = widen(glu.spec, glu.weights, "h/0", 9, rng=0)
    assert "out=18" in nd.format(r.spec) and "sizes=[9, 9]" in nd.format(r.spec)
    glu.same(r)
    mobile = Case(text=MOBILE, x=torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=g))
    r = widen(mobile.spec, mobile.weights, "a.0", 10, rng=0)
    assert "out=20, k=3, pad=1, groups=10" in nd.format(r.spec)
    mobile.same(r)


# --- deepen ------------------------------------------------------------------------------------------


def test_deepen_mlp_and_resnet(mlp, resnet):
    r = deepen(mlp.spec, mlp.weights, "act1")
    assert set(r.fresh) == {"act1.1.weight", "act1.1.bias"}
    assert torch.equal(r.weights["act1.1.weight"], torch.eye(256, dtype=torch.float64))
    mlp.same(r)
    r = deepen(resnet.spec, resnet.weights, "layer1.0.relu")  # in a block: every instance deepens
    assert "relu = relu(bn1) |> conv2d(out=c, k=1) |> relu()" in nd.format(r.spec)
    assert len(r.fresh) == 10 and "layer4.1.relu.1.weight" in r.fresh  # weight and bias in the 5 `basic` blocks
    assert not any(k.startswith("layer2.0.") for k in r.fresh)  # `down` is another block
    resnet.same(r)


def test_deepen_refuses_non_idempotent_activations(lenet, gpt2):
    with pytest.raises(TransformError, match="not idempotent") as e:
        deepen(lenet.spec, lenet.weights, "c1.1")
    assert "relu" in e.value.hint
    with pytest.raises(TransformError, match="not an activation"):
        deepen(gpt2.spec, gpt2.weights, "h.0.ln_1")


# --- prune and merge ---------------------------------------------------------------------------------


def killed(weights, rows, bias_key, weight_key):
    """Units whose pre-activation is always negative, so their ReLU output is 0 (dead)."""
    w = dict(weights)
    w[weight_key] = w[weight_key].clone()
    w[weight_key][rows] = 0
    w[bias_key] = w[bias_key].clone()
    w[bias_key][rows] = -1.0
    return w


@FEW
@given(st.sets(st.integers(0, 255), min_size=1, max_size=30))
def test_prune_dead_units_mlp(mlp, dead):
    dead = sorted(dead)
    w = killed(mlp.weights, dead, "fc1.bias", "fc1.weight")
    r = prune_units(mlp.spec, w, "fc1", dead)
    assert r.weights["fc2.weight"].shape == (128, 256 - len(dead))
    y = run(mlp.spec, w, mlp.x)
    assert torch.allclose(run(r.spec, r.weights, mlp.x), y, atol=ATOL, rtol=0)


def test_prune_dead_channels_lenet_and_resnet(lenet, resnet):
    w = dict(lenet.weights)
    for k in ("c3.0.weight", "c3.0.bias"):
        w[k] = w[k].clone()
        w[k][[3, 7]] = 0  # tanh(0) = 0 after pooling: dead channels, 25 features each after flatten
    r = prune_units(lenet.spec, w, "c3.0", [3, 7])
    assert r.weights["f5.0.weight"].shape == (120, 350)
    assert torch.allclose(run(r.spec, r.weights, lenet.x), run(lenet.spec, w, lenet.x), atol=ATOL, rtol=0)
    # `c` of `basic` sizes the stage and both blocks' inner convs: pruning one prunes all alike, so the
    # channels must be dead in each of them (bn -> relu gives 0; the stream's relu(bn2 + x) too)
    w = resnet.weights
    for bn in ("bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.1.bn1", "layer1.1.bn2"):
        w = killed(w, [5, 9, 60], f"{bn}.bias", f"{bn}.weight")
    r = prune_units(resnet.spec, w, "layer1.1.conv1", [5, 9, 60])
    assert set(r.resized) == {"layer1.1.conv1", "layer1.0.conv1", "conv1"}
    assert r.weights["layer1.1.bn1.running_var"].shape == (61,) and r.weights["conv1.weight"].shape[0] == 61
    assert torch.allclose(run(r.spec, r.weights, resnet.x), run(resnet.spec, w, resnet.x), atol=ATOL, rtol=0)


def test_merge_identical_units(mlp, gpt2):
    w = dict(mlp.weights)
    for k in ("fc2.weight", "fc2.bias"):
        w[k] = w[k].clone()
        w[k][[10, 20]] = w[k][[3, 4]]
    r = merge_units(mlp.spec, w, "fc2", keep=[3, 4], drop=[10, 20])
    assert r.weights["logits.weight"].shape == (10, 126)
    assert torch.allclose(run(r.spec, r.weights, mlp.x), run(mlp.spec, w, mlp.x), atol=ATOL, rtol=0)
    w = dict(gpt2.weights)
    for layer in ("h.0", "h.1"):  # one spec call makes both: they merge alike
        for k in (f"{layer}.mlp.c_fc.weight", f"{layer}.mlp.c_fc.bias"):
            w[k] = w[k].clone()
            w[k][7] = w[k][5]
    r = merge_units(gpt2.spec, w, "h.0.mlp:hidden", 5, 7)
    assert torch.allclose(run(r.spec, r.weights, gpt2.x), run(gpt2.spec, w, gpt2.x), atol=ATOL, rtol=0)
    with pytest.raises(TransformError, match="layernorm"):
        prune_units(gpt2.spec, gpt2.weights, "wte", [0])


# --- optimizer state ---------------------------------------------------------------------------------


def trained_adam(case, steps=3):
    model = build(case.spec, case.weights).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        model(case.x).square().mean().backward()
        opt.step()
    return model, opt


def test_adam_state_follows_widen_and_prune(mlp):
    model, opt = trained_adam(mlp)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    before = {n: {k: v.clone() for k, v in opt.state[p].items()} for n, p in model.named_parameters()}
    r = widen(mlp.spec, weights, "fc1", 260, rng=0)
    new = build(r.spec, r.weights).train()
    r.apply_to_optimizer(opt, new)  # parameters matched by order
    after = {n: opt.state[p] for n, p in new.named_parameters()}
    src = list(r.maps["fc1"].src)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(after["fc1.weight"][key][:256], before["fc1.weight"][key])  # kept units unchanged
        assert torch.equal(after["fc1.weight"][key][256:], before["fc1.weight"][key][src[256:]])  # copies
        assert torch.equal(after["fc2.weight"][key][:, :256], before["fc2.weight"][key])
        assert torch.equal(after["fc2.weight"][key][:, 256:], before["fc2.weight"][key][:, src[256:]])
        assert torch.equal(after["logits.weight"][key], before["logits.weight"][key])
    assert after["fc1.bias"]["step"] == before["fc1.bias"]["step"]
    opt.zero_grad()
    new(mlp.x).square().mean().backward()
    opt.step()  # the optimizer runs on the new parameters
    assert all(p in opt.state for p in new.parameters())

    model, opt = trained_adam(mlp)
    before = {n: opt.state[p]["exp_avg"].clone() for n, p in model.named_parameters()}
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    r = prune_units(mlp.spec, weights, "fc2", [0, 5])
    new = build(r.spec, r.weights)
    r.apply_to_optimizer(opt, new, old_model=model)
    kept = [i for i in range(128) if i not in (0, 5)]
    assert torch.equal(opt.state[new.fc2.weight]["exp_avg"], before["fc2.weight"][kept])
    assert torch.equal(opt.state[new.logits.weight]["exp_avg"], before["logits.weight"][:, kept])


def test_sgd_momentum_follows_permute_and_deepen(mlp):
    model = build(mlp.spec, mlp.weights).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model(mlp.x).square().mean().backward()
    opt.step()
    before = {n: opt.state[p]["momentum_buffer"].clone() for n, p in model.named_parameters()}
    perm = np.random.default_rng(0).permutation(256)
    r = permute(mlp.spec, mlp.weights, "fc1", perm)
    new = build(r.spec, r.weights)
    r.apply_to_optimizer(opt, new, old_model=model)
    assert torch.equal(opt.state[new.fc1.weight]["momentum_buffer"], before["fc1.weight"][perm])
    assert torch.equal(opt.state[new.fc2.weight]["momentum_buffer"], before["fc2.weight"][:, perm])
    r2 = deepen(r.spec, r.weights, "act2")
    deeper = build(r2.spec, r2.weights)
    r2.apply_to_optimizer(opt, deeper, old_model=new)
    assert torch.equal(opt.state[deeper.logits.weight]["momentum_buffer"], before["logits.weight"])
    inserted = dict(deeper.named_parameters())["act2.1.weight"]
    assert inserted not in opt.state and any(inserted is p for p in opt.param_groups[0]["params"])


def test_masked_layers_carry_their_masks():
    case = Case("sparse_mlp", x=torch.randn(4, 64, dtype=torch.float64, generator=g))
    perm = np.random.default_rng(4).permutation(128)
    r = permute(case.spec, case.weights, "h1.0", perm)
    assert torch.equal(r.weights["h2.0.mask"], case.weights["h2.0.mask"][:, perm])
    case.same(r)
    case.same(widen(case.spec, case.weights, "h2.0", 140, rng=0))
    w = dict(case.weights)
    for k in ("h1.0.weight", "h1.0.bias", "h1.0.mask"):
        w[k] = w[k].clone()
        w[k][9] = w[k][4]
    r = merge_units(case.spec, w, "h1.0", 4, 9)  # h2.0 reads both through different mask columns
    assert torch.equal(r.weights["h2.0.mask"][:, 4], w["h2.0.mask"][:, 4] | w["h2.0.mask"][:, 9])
    assert torch.allclose(run(r.spec, r.weights, case.x), run(case.spec, w, case.x), atol=ATOL, rtol=0)
    with pytest.raises(TransformError, match="4 blocks do not divide"):
        widen(case.spec, case.weights, "h3.0", 70)
