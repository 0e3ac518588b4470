"""Issue 17, convnext and vit: parameters read in forward (`parameter`), `x[:, 0]` (`select`), a class token
expanded to the batch (`expand_batch`), parameters broadcast onto the batch, and the refusals around them.

The oracle is the original nn.Module (`_assert_reproduces`: strict state_dict loading, float64 outputs of the
compiled spec and of its emitted source).
"""
import pytest
import torch
import torch.nn as nn

import netevo_dsl as ne
from netevo_dsl import NetevoError

from .test_import import _assert_reproduces


class ScaledConv(nn.Module):
    """A residual conv scaled per channel by a parameter of the block itself (convnext's layer scale)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.gamma = nn.Parameter(torch.rand(c, 1, 1) + 0.5)

    def forward(self, x):
        return x + self.gamma * self.conv(x)


class TinyViT(nn.Module):
    """A vit in miniature, written as torchvision writes it: shape unpacking, torch._assert, a class token,
    a position embedding, self-attention and `x[:, 0]`."""

    def __init__(self, c=8, side=8, patch=4):
        super().__init__()
        self.side, self.patch = side, patch
        self.stem = nn.Sequential(ScaledConv(3), nn.Conv2d(3, 5, 1), ScaledConv(5))  # one block, its size `c`
        self.proj = nn.Conv2d(5, c, patch, stride=patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos = nn.Parameter(torch.randn(1, (side // patch) ** 2 + 1, c))
        self.attn = nn.MultiheadAttention(c, 2, batch_first=True)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        n, c, h, w = x.shape
        torch._assert(h == self.side, "wrong height")
        x = self.proj(self.stem(x))
        x = x.reshape(n, x.shape[1], (h // self.patch) * (w // self.patch)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = x + self.pos
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.head(y[:, 0])


@pytest.mark.parametrize("batch", [1, 3])
def test_parameters_read_in_forward_import_with_their_keys(batch):
    torch.manual_seed(0)
    model = TinyViT()
    spec = _assert_reproduces(model, torch.randn(batch, 3, 8, 8, dtype=torch.float64))
    text = ne.format(spec)
    assert "class_token = parameter(shape=[1, 1, 8]" in text and "gamma = parameter(shape=[c, 1, 1]" in text
    for op in ("expand_batch(class_token", "broadcast_add(", "broadcast_mul(gamma", "select("):
        assert op in text
    assert list(ne.compile_module(spec).state_dict()) == list(model.state_dict())


class ReadsBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("offset", torch.ones(4))

    def forward(self, x):
        return self.fc(x) + self.offset  # BUFFER_LINE


class SlicesTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)[:, 1:3]  # SLICE_LINE


class PicksSample(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)[0]  # SAMPLE_LINE


@pytest.mark.parametrize("model, code, words, mark", [
    (ReadsBuffer(), "E164", "forward reads the buffer `offset` directly", "# BUFFER_LINE"),
    (SlicesTokens(), "E162", "only `x[:, ..., :, i]` (full slices, then one integer) imports", "# SLICE_LINE"),
    (PicksSample(), "E162", "a position of the batch axis", "# SAMPLE_LINE")])
def test_tensors_and_indexing_that_cannot_be_kept_are_refused_at_their_line(model, code, words, mark):
    with pytest.raises(NetevoError) as info:
        ne.from_module(model, torch.randn(2, 3, 4))
    e = info.value
    assert e.code == code and words in e.message, e.render()
    with open(__file__) as f:
        line = next(i for i, text in enumerate(f, 1) if text.rstrip().endswith(mark) and "return" in text)
    assert e.span is not None and e.span.line == line
