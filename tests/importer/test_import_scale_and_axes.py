"""Issue 17, new ops batch 2: channel_scale (squeeze-excitation's `scale * x`), permute, narrow (chunk/split pieces).

Oracles: PyTorch's own broadcasting `*`, `Tensor.permute` and `Tensor.narrow` in float64 for the ops, and the
original nn.Modules for the imports (compiled spec and emitted source load the original's state_dict with
strict=True and give its outputs, as in test_import.py).
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netevo_dsl as ne
from netevo_dsl import NetevoError
from netevo_dsl.evolve.groups import dependency_groups, find_group

from .test_import import _assert_reproduces, _emitted_source_model


def _run(text, *inputs):
    spec = ne.parse(text)
    compiled = ne.compile_module(spec, dtype=torch.float64)
    emitted = _emitted_source_model(spec).double()
    return compiled(*inputs), emitted(*inputs)


def test_the_ops_equal_pytorch():
    text = """version 1

network n {
  input x: [B, 6, H, W]
  input s: [B, 6, 1, 1]
  a = channel_scale(x, s)
  b = channel_scale(s, a)
  c = permute(b, dims=[0, 2, 3, 1])
  d = narrow(c, dim=-1, start=2, length=3)
  output y = d
}
"""
    x, s = torch.randn(2, 6, 4, 5, dtype=torch.float64), torch.randn(2, 6, 1, 1, dtype=torch.float64)
    want = (s * (x * s)).permute(0, 2, 3, 1).narrow(-1, 2, 3)  # PyTorch's broadcasting, permute and narrow
    for got in _run(text, x, s):
        assert got.shape == (2, 4, 5, 3) and torch.equal(got, want)


def _groups(text):
    return dependency_groups(ne.infer_shapes(ne.parse(text)))


def test_the_gate_and_the_tensor_it_scales_share_one_channel_group():
    groups = _groups("""version 1

network n {
  input x: [B, 3, 8, 8]
  h = conv2d(x, out=8, k=3, pad=1)
  pooled = adaptive_avgpool(h)
  gate = pooled |> conv2d(out=2, k=1) |> relu() |> conv2d(out=8, k=1) |> sigmoid()
  output y = channel_scale(h, gate) |> conv2d(out=4, k=1)
}
""")
    group = find_group(groups, "h")
    assert set(group.producers) == {"h", "gate.2"} and not group.frozen


def test_a_channel_shuffle_freezes_the_channels_and_a_permute_carries_them():
    shuffle = _groups("""version 1

network n {
  input x: [B, 3, 4, 4]
  h = conv2d(x, out=8, k=1)
  g = reshape(h, shape=[B, 2, 4, 4, 4])
  t = transpose(g, dim0=1, dim1=2)
  output y = reshape(t, shape=[B, 8, 4, 4]) |> conv2d(out=4, k=1)
}
""")
    # the shuffle permutes channels: widening through it is refused, and the reason names the reshape
    assert any("`g_reshape`" in why for why in find_group(shuffle, "h").fixed)
    last = _groups("""version 1

network n {
  input x: [B, 3, 4, 4]
  h = conv2d(x, out=8, k=1)
  output y = h |> permute(dims=[0, 2, 3, 1]) |> linear(out=5)
}
""")
    group = find_group(last, "h")
    assert not group.frozen and group.consumers == ("y",)  # the linear reads the channels, now last


class SqueezeExcite(nn.Module):
    """torchvision.ops.SqueezeExcitation's forward, both operand orders, and a channels-last head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.conv(x))
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = scale * x
        x = torch.mul(x, scale)
        return self.head(x.permute(0, 2, 3, 1)).flatten(1)


class ShuffleBlock(nn.Module):
    """shufflenet_v2's stride-1 unit: chunk, a branch, torch.cat, then the channel shuffle; and a split."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 1)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        x1, x2 = self.conv(x).chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        n, c, h, w = out.size()
        out = out.view(n, 2, c // 2, h, w)
        out = torch.transpose(out, 1, 2).reshape(n, -1, h, w)
        small, big = torch.split(out, [3, 5], dim=1)
        return torch.cat([big, small], 1)


@pytest.mark.parametrize("make, shape", [(SqueezeExcite, (2, 3, 6, 6)), (ShuffleBlock, (2, 4, 5, 5))],
                         ids=["squeeze_excite", "shuffle_block"])
def test_import_reproduces_the_model(make, shape):
    torch.manual_seed(0)
    spec = _assert_reproduces(make(), torch.randn(*shape, dtype=torch.float64))
    text = ne.format(spec)
    assert ("channel_scale(" in text) == (make is SqueezeExcite) and ("narrow(" in text) == (make is ShuffleBlock)


@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_is_torchs_multihead_attention(bias):
    spec = ne.parse(f"""version 1

network n {{
  input x: [B, T, 12]
  output attn = self_attention(x, heads=3, bias={'true' if bias else 'false'})
}}
""")
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(12, 3, bias=bias, batch_first=True).double().eval()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    want = mha(x, x, x, need_weights=False)[0]  # PyTorch's own attention is the oracle
    for model in (ne.compile_module(spec, dtype=torch.float64), _emitted_source_model(spec).double()):
        model.load_state_dict({f"attn.{k}": v for k, v in mha.state_dict().items()}, strict=True)
        assert torch.allclose(model.eval()(x), want, rtol=0, atol=1e-12)


class Encoder(nn.Module):
    """A pre-norm transformer encoder layer with torch's nn.MultiheadAttention, as users write one."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.ln1, self.ln2 = nn.LayerNorm(16), nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 4, dropout=0.1, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        x = self.embed(x)
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return self.head(x).flatten(1)


def test_an_encoder_with_multihead_attention_imports_exactly():
    torch.manual_seed(0)
    spec = _assert_reproduces(Encoder(), torch.randn(2, 5, 6, dtype=torch.float64))
    assert "self_attention(ln1, heads=4, dropout=0.1)" in ne.format(spec)


class CrossAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, torch.tanh(x), x)[0]  # CROSS_LINE


class WholeChunk(nn.Module):
    def forward(self, x):
        return torch.cat(x.chunk(2, dim=1), dim=1)  # CHUNK_LINE


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.attend = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        return x * self.attend(x)  # GATE_LINE: one factor per position, [B, 1, H, W]


def _line(marker):
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, start=1) if marker in line and "_line(" not in line)


@pytest.mark.parametrize("model, code, words, marker, shape", [
    (WholeChunk(), "E160", "`Tensor.chunk` gives a value that is not one tensor", "# CHUNK_LINE", (2, 4, 3, 3)),
    (SpatialGate(), "E162", "one factor per sample and channel", "# GATE_LINE", (2, 4, 3, 3)),
    (CrossAttention(), "E162", "query, key and value are different tensors", "# CROSS_LINE", (2, 3, 8))])
def test_what_the_ops_cannot_keep_is_refused_at_the_users_line(model, code, words, marker, shape):
    with pytest.raises(NetevoError) as info:
        ne.from_module(model, torch.randn(*shape))
    assert info.value.code == code and words in info.value.message
    assert info.value.span.file == __file__ and info.value.span.line == _line(marker)


# torchvision models these ops complete (with the activations, stochastic depth, mean and contiguous of the
# other batches of issue 17); 64x64 inputs keep them fast.
# the torchvision models these ops import are checked in test_import.py's TORCHVISION_MODELS
# transformers' GPT2LMHeadModel imports through torch.export: tests/importer/test_gpt2_import.py
