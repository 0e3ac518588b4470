"""Imports of per-axis kernels (inception's 1x7 / 7x1 convolutions), `x * number` (scale), and layers that only
training-mode forward calls (googlenet's and inception_v3's auxiliary classifiers).

The oracle is the original nn.Module, as in test_import.py: the compiled spec and its emitted source load the
original's state_dict with strict=True and give its eval-mode outputs in float64.
"""
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netevo_dsl as ne
from netevo_dsl import NetevoError

from .test_import import _assert_reproduces


class Factorised(nn.Module):
    """Inception-style factorised convolutions and pools with per-axis sizes, and attention's `q * scale`."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, (1, 7), padding=(0, 3))
        self.b = nn.Conv2d(6, 6, (7, 1), padding=(3, 0), bias=False)
        self.c = nn.Conv2d(6, 8, (3, 5), stride=(2, 1), padding="valid", dilation=(1, 2))
        self.pool = nn.MaxPool2d((3, 1), stride=(1, 2), padding=(1, 0), ceil_mode=True)
        self.scale = 8 ** -0.5

    def forward(self, x):
        x = self.b(F.relu(self.a(x)))
        x = F.avg_pool2d(self.c(x), kernel_size=(2, 1))
        return 0.5 * self.pool(x) * self.scale


class WithAuxHead(nn.Module):
    """An auxiliary classifier that only training-mode forward calls (as googlenet's `aux1`), registered after the
    layer that forward calls after it (as googlenet registers `aux1` after `inception5b`)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.aux = nn.Sequential(nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        aux = self.aux(x).flatten(1) if self.training else None
        x = F.adaptive_avg_pool2d(F.relu(self.body(x)), 1).flatten(1)
        x = self.fc(x)
        return (x, aux) if self.training else x


class TrainingChangesTheMainPath(WithAuxHead):
    def forward(self, x):
        x = self.stem(x)
        if self.training:
            self.aux(x)
            x = F.relu(x)
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


def test_per_axis_sizes_and_scale_import_exactly():
    torch.manual_seed(0)
    spec = _assert_reproduces(Factorised(), torch.randn(2, 3, 12, 14, dtype=torch.float64))
    text = ne.format(spec)
    assert "k=[1, 7], pad=[0, 3]" in text and "k=[7, 1], pad=[3, 0]" in text
    assert "scale(" in text and f"by={8 ** -0.5!r}" in text and "by=0.5" in text


class NumberProducts(nn.Module):
    def forward(self, x):
        return torch.mul(x, 2.5).mul(3) * -0.125


def test_every_form_of_a_tensor_times_a_number_is_scale():
    spec = _assert_reproduces(NumberProducts(), torch.randn(2, 5, dtype=torch.float64))
    text = ne.format(spec)
    assert "by=2.5" in text and "by=3.0" in text and "by=-0.125" in text


def test_layers_only_training_calls_are_declared_and_unused():
    torch.manual_seed(0)
    model = WithAuxHead()
    spec = _assert_reproduces(model, torch.randn(2, 3, 8, 8, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(model.state_dict())  # in the original's order
    lines = [line.strip() for line in ne.format(spec).splitlines()]
    assert "aux = stem |> conv2d(out=4, k=1) |> adaptive_avgpool()" in lines
    reads = [line for line in lines if re.search(r"\baux\b", line) and not line.startswith("aux =")]
    assert len(reads) == 1 and reads[0].startswith("flatten") and reads[0].partition(" = ")[0] not in " ".join(
        line.partition(" = ")[2] for line in lines)  # the branch's flatten, which nothing reads
    assert not any(m.training for m in model.modules())  # the training-mode trace left the modes as they were


def test_a_training_mode_that_changes_the_main_path_is_still_refused():
    model = TrainingChangesTheMainPath().eval()
    with pytest.raises(NetevoError) as info:
        ne.from_module(model, torch.randn(2, 3, 8, 8))
    assert info.value.code == "E164" and "aux" in info.value.message
    assert not any(m.training for m in model.modules())


# --- maxvit: window attention with a relative position bias, swapaxes, an nn.ModuleList called in a loop ---------


class ListOfBlocks(nn.Module):
    """`for block in self.blocks: x = block(x)` over an nn.ModuleList whose blocks call functions
    (`F.relu`, `torch.swapaxes`) as well as layers: the keys `blocks.0.fc.weight`, ..."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            return torch.swapaxes(F.relu(self.fc(x)), 1, 2).swapaxes(1, 2) + x

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([self.Block() for _ in range(3)])
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_a_module_list_called_in_a_loop_keeps_its_keys():
    torch.manual_seed(0)
    model = ListOfBlocks()
    spec = _assert_reproduces(model, torch.randn(2, 5, 6, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(model.state_dict())
    assert "transpose(" in ne.format(spec)


def _torchvision():
    from .test_import import _torchvision as tv

    return tv()


def test_relative_attention_equals_torchvisions_layer():
    """torchvision's RelativePositionalMultiHeadAttention is the oracle (float64, its own weights and index)."""
    maxvit = _torchvision().models.maxvit
    torch.manual_seed(0)
    layer = maxvit.RelativePositionalMultiHeadAttention(8, 4, 9).double().eval()  # 2 heads, 3x3 windows
    with torch.no_grad():
        layer.relative_position_bias_table.normal_()  # a bias that matters
    spec = ne.parse("network n {\n  input x: [B, 5, 9, 8]\n  output y = relative_attention(x, head_dim=4)\n}\n")
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    ours = {k.partition(".")[2]: v for k, v in compiled.state_dict().items()}
    assert torch.equal(ours["relative_position_index"], layer.relative_position_index)  # built, not only loaded
    compiled.load_state_dict({f"y.{k}": v for k, v in layer.state_dict().items()}, strict=True)
    x = torch.randn(2, 5, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        want = layer(x)
        assert torch.allclose(compiled(x), want, rtol=0, atol=1e-12 * want.abs().max().item())


def test_a_small_maxvit_imports_exactly():
    """torchvision's MaxVit class at a small configuration (maxvit_t itself needs 224x224; the coverage run has it):
    MBConv with squeeze-excitation, window and grid attention with relative position bias, swapaxes."""
    maxvit = _torchvision().models.maxvit
    torch.manual_seed(0)
    model = maxvit.MaxVit(input_size=(56, 56), stem_channels=8, partition_size=7, block_channels=[8, 16],
                          block_layers=[1, 1], head_dim=4, stochastic_depth_prob=0.2, num_classes=10)
    spec = _assert_reproduces(model, torch.randn(1, 3, 56, 56, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(model.state_dict())
    assert "relative_attention(" in ne.format(spec)
