"""`netevo import` of the bounded activations, pooling with ceil_mode, mean, and the eval-mode identities, in every
PyTorch spelling (module, functional, tensor method), and the torchvision models that need them.

The oracle is the original nn.Module (test_import.py's `_assert_reproduces`): the compiled spec and its emitted source
load the original's state_dict with strict=True and give its outputs in float64 eval mode.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netevo_dsl as ne

from .test_import import _assert_reproduces


class BoundedActivations(nn.Module):
    """ReLU6, hardtanh, clamp / clip, hard swish and hard sigmoid as modules, functions and tensor methods."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.relu6 = nn.ReLU6(inplace=True)
        self.tanh = nn.Hardtanh(-2.0, 3.0)
        self.hswish = nn.Hardswish()
        self.hsig = nn.Hardsigmoid()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = self.relu6(self.fc1(x))
        h = F.relu6(h) + F.hardtanh(h, 0.5, 2.0)
        h = self.tanh(torch.clamp(h, min=0.25)) + h.clamp(max=4.0) + h.clip(-1.0, 1.0)
        h = self.hswish(h) + F.hardswish(h) + self.hsig(h) + F.hardsigmoid(h)
        return self.fc2(h)


class PoolsAndMeans(nn.Module):
    """Pooling with ceil_mode and count_include_pad, the functional pools, x.mean / torch.mean over axes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(8, 5)
        self.fc2 = nn.Linear(8, 5)
        self.drop = nn.Dropout2d(0.2)

    def forward(self, x):
        h = self.pool(F.relu(self.drop(self.conv(x))))  # 11 -> 5 with ceil_mode (4 without)
        h = F.max_pool2d(h, 2, stride=1, padding=1, ceil_mode=True)  # 5 -> 6
        h = h + F.avg_pool2d(h, kernel_size=3, stride=1, padding=1)
        h = self.avg(h)  # 6 -> 4, divisors without the padding
        return self.fc(h.mean([2, 3])) + self.fc2(torch.mean(h, dim=(-1, 2), keepdim=True).flatten(1))


class Identities(nn.Module):
    """Calls that are the identity in eval: contiguous, torch.cat of one tensor, nn.Identity, dropouts."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.skip = nn.Identity()
        self.drop = nn.Dropout(0.3, inplace=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.cat([self.fc(x)], 1).contiguous()
        h = self.drop(self.skip(h)) + F.dropout(h, 0.2, training=self.training)
        return self.head(h)


CASES = [(BoundedActivations, (3, 6)), (PoolsAndMeans, (2, 3, 11, 11)), (Identities, (4, 6))]


@pytest.mark.parametrize("make, shape", CASES, ids=[c.__name__ for c, _ in CASES])
def test_import_reproduces_the_model(make, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 3  # past every kink of the bounded activations
    _assert_reproduces(make(), x)


def test_each_spelling_becomes_its_op():
    torch.manual_seed(0)
    text = ne.format(ne.from_module(BoundedActivations(), torch.randn(2, 6)))
    for line in ("relu6 = relu6(fc1)", "relu6_1 = relu6(relu6)", "hardtanh(relu6, min=0.5, max=2.0)",
                 "clamp(add, min=0.25)", "tanh = hardtanh(clamp, min=-2.0, max=3.0)", "clamp(add, max=4.0)",
                 "clamp(add, min=-1.0, max=1.0)", "hswish = hardswish(add_2)", "hardswish(add_2)",
                 "hsig = hardsigmoid(add_2)"):
        assert line in text, line
    text = ne.format(ne.from_module(PoolsAndMeans(), torch.randn(2, 3, 11, 11)))
    for line in ("pool = maxpool2d(relu, k=3, stride=2, ceil_mode=true)", "maxpool2d(pool, k=2, stride=1, pad=1, "
                 "ceil_mode=true)", "avgpool2d(maxpool2d, k=3, stride=1, pad=1)",
                 "avg = avgpool2d(add, k=3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)",
                 "mean(avg, dims=[2, 3])", "mean(avg, dims=[-1, 2], keepdim=true)"):
        assert line in text, line
    assert "drop = channel_dropout(conv, p=0.2)" in text
    text = ne.format(ne.from_module(Identities(), torch.randn(2, 6)))
    assert "identity(fc)" in text and "skip = identity(" in text and "drop = dropout(skip, p=0.3)" in text


class WithStochasticDepth(nn.Module):
    def __init__(self):
        super().__init__()
        ops = pytest.importorskip("torchvision.ops")
        self.fc = nn.Linear(5, 5)
        self.sd = ops.StochasticDepth(0.3, "row")
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(x + self.sd(self.fc(x)))


def test_torchvision_stochastic_depth_imports_and_drops_as_torchvision_in_training():
    torch.manual_seed(0)
    original = WithStochasticDepth()
    spec = _assert_reproduces(original, torch.randn(4, 5, dtype=torch.float64))
    assert "stochastic_depth(" in ne.format(spec) and "p=0.3" in ne.format(spec)
    compiled = ne.compile_module(spec, dtype=torch.float64)
    compiled.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(64, 5, dtype=torch.float64)
    for seed in range(3):  # both draw their masks in the same order, from the same generator
        torch.manual_seed(seed)
        want = original.train()(x)
        torch.manual_seed(seed)
        assert torch.equal(compiled.train()(x), want)


# the torchvision models these ops import are checked in test_import.py's TORCHVISION_MODELS


def test_channel_dropout_drops_the_originals_channels_in_training():
    torch.manual_seed(0)
    original = PoolsAndMeans().double()
    compiled = ne.compile_module(ne.from_module(original.eval(), torch.randn(2, 3, 11, 11, dtype=torch.float64)), dtype=torch.float64)
    compiled.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(6, 3, 11, 11, dtype=torch.float64)
    for seed in range(3):  # nn.Dropout2d in both draws the same channel mask from the same generator
        torch.manual_seed(seed)
        want = original.train()(x)
        torch.manual_seed(seed)
        assert torch.equal(compiled.train()(x), want)
