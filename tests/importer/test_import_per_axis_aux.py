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
