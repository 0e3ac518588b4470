"""netevo_dsl.from_module / `netevo import`: PyTorch models in, specs out, checked against the models themselves.

The oracle is the original nn.Module: the compiled spec and its emitted source must load the original's
state_dict with strict=True and give its outputs in float64 eval mode (random batch-norm statistics).
"""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netevo_dsl as ne
from netevo_dsl import NetevoError


class FunctionalMLP(nn.Module):
    """An MLP written with functional calls and a tensor method, as users write them."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 16, bias=False)
        self.head = nn.Linear(16, 5)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = self.norm(h)
        h = torch.tanh(self.fc2(h)).sigmoid()
        h = F.gelu(self.drop(h))
        return self.head(F.silu(h))


class ResidualCNN(nn.Module):
    """A small CNN: an nn.Sequential stem, a residual `x + conv(x)`, strided/grouped/dilated convs, a view."""

    def __init__(self, classes=7):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(2))
        self.conv1 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act = nn.SiLU()
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.bn1(self.conv1(x))
        x = self.pool(self.act(self.conv2(x)))
        x = self.gap(x)
        return self.fc(x.view(x.size(0), -1))


class ConcatNet(nn.Module):
    """Two branches joined with torch.cat, a 1-D conv path, torch.flatten and a Sequential classifier."""

    def __init__(self):
        super().__init__()
        self.left = nn.Conv1d(4, 6, 3, padding=1)
        self.right = nn.Conv1d(4, 10, 5, padding=2, bias=False)
        self.bn = nn.BatchNorm1d(16)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 9, 32), nn.GELU(approximate="tanh"),
                                        nn.Dropout(0.1), nn.Linear(32, 3))

    def forward(self, x):
        y = torch.cat([F.relu(self.left(x)), self.right(x)], dim=1)
        y = self.bn(y)
        z = torch.reshape(torch.flatten(y, 1), (y.size(0), 16, 9))
        return self.classifier(z)


def conv3x3(cin, cout, stride=1):
    """A shared helper, as in torchvision and the channel mutator."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class Basic(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)  # the same parameterless ReLU twice, as torchvision does


class SmallResNet(nn.Module):
    """Nested blocks (`layer2.0.shortcut.0`) in Sequentials, a block called directly, an empty Sequential."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(3, 8), nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(Basic(8, 8), Basic(8, 8))
        self.layer2 = nn.Sequential(Basic(8, 16, stride=2), Basic(16, 16))
        self.extra = Basic(16, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.extra(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _randomise_batchnorm(model, seed=0):
    """Random running statistics and affine parameters, so batch norm is not the identity in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g, dtype=m.weight.dtype))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g, dtype=m.bias.dtype))


CASES = [(FunctionalMLP, (3, 12)), (ResidualCNN, (2, 3, 16, 16)), (ConcatNet, (4, 4, 9)), (SmallResNet, (2, 3, 8, 8))]


@pytest.mark.parametrize("make, shape", CASES, ids=[c.__name__ for c, _ in CASES])
def test_import_reproduces_the_model(make, shape):
    torch.manual_seed(0)
    _assert_reproduces(make(), torch.randn(*shape, dtype=torch.float64))


def _torchvision():
    if os.environ.get("NETEVO_REQUIRE_TORCHVISION"):  # CI's torchvision step (.ci/run): a missing import fails
        import torchvision

        return torchvision
    return pytest.importorskip("torchvision")


# name -> (get_model keywords, input batch and side): issue 17's ten models and the others whose ops the
# tests/importer files add, each at the smallest input it takes, for test time
TORCHVISION_MODELS = {
    "resnet18": ({}, 2, 64),
    "resnet50": ({}, 2, 64),
    "vgg11_bn": ({}, 2, 64),
    "mobilenet_v2": ({}, 1, 32),
    "mobilenet_v3_small": ({}, 2, 64),
    "squeezenet1_1": ({}, 1, 32),
    "densenet121": ({}, 1, 32),
    "shufflenet_v2_x1_0": ({}, 2, 64),
    "efficientnet_b0": ({}, 2, 64),
    "regnet_y_400mf": ({}, 2, 64),
    "googlenet": ({"init_weights": False}, 1, 32),  # aux1 / aux2, called in training only, are declared
    "inception_v3": ({"aux_logits": False, "init_weights": False}, 1, 75),  # 1x7 / 7x1 convs; its aux needs 299
    "swin_t": ({}, 1, 32),  # shifted_window_attention, patch_merging; maps of 8x8 down to 1x1 (padded windows)
    "mnasnet1_0": ({}, 1, 32),
    "efficientnet_v2_s": ({}, 1, 32),
    # `parameter` (layer scale, class token, position embedding), layernorm2d, select, expand_batch, broadcasts
    "convnext_tiny": ({}, 2, 32),
    "convnext_small": ({}, 1, 32),
    "convnext_base": ({}, 1, 32),
    # `image_size` is a constructor argument of torchvision's VisionTransformer (224 by default): 32 gives 2x2
    # patches of 16 and one of 32, with every layer of the 224 model; batch 1 tells a parameter [1, 5, 768]
    # from a tensor of the batch by where it comes from, not by its shape
    "vit_b_16": ({"image_size": 32}, 1, 32),
    "vit_b_32": ({"image_size": 32}, 2, 32),
}


@pytest.mark.parametrize("name", list(TORCHVISION_MODELS))
def test_torchvision_models_import_exactly(name):
    torchvision = _torchvision()
    kwargs, batch, side = TORCHVISION_MODELS[name]
    torch.manual_seed(0)
    original = torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs)
    spec = _assert_reproduces(original, torch.randn(batch, 3, side, side, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(original.state_dict())  # same keys, same order


def _assert_reproduces(original, x):
    """Compiled spec and emitted source load the original's weights strictly and give its outputs (float64)."""
    original = original.double()
    _randomise_batchnorm(original)
    original.eval()
    spec = ne.from_module(original, x)
    assert ne.format(spec) == ne.format(ne.parse(ne.format(spec)))
    compiled = ne.compile_module(spec, dtype=torch.float64)
    compiled.load_state_dict(original.state_dict(), strict=True)
    compiled.eval()
    emitted = _emitted_source_model(spec).double()
    emitted.load_state_dict(original.state_dict(), strict=True)
    emitted.eval()
    # a second batch size: the batch axis is `B`, not the example's size; where the importer named the
    # spatial sizes (`[B, 3, H, W]`), a larger input too, still against the original model
    x2 = torch.randn(x.shape[0] + 3, *x.shape[1:], dtype=torch.float64)
    examples = [x, x2]
    if _symbolic_input(spec):
        examples.append(torch.randn(x.shape[0], x.shape[1], *[s + 16 for s in x.shape[2:]], dtype=torch.float64))
    with torch.no_grad():
        for inputs in examples:
            want = original(inputs)
            scale = want.abs().max().item()
            for model in (compiled, emitted):
                assert torch.allclose(model(inputs), want, rtol=0, atol=1e-9 * scale)
    return spec


def _symbolic_input(spec) -> bool:
    text = ne.format(spec)
    return any(line.strip().startswith("input") and ("H, W]" in line or ", L]" in line) for line in text.splitlines())


class _FlattenThenLinear(nn.Module):
    """A Linear after a flatten fixes the input's size: the import keeps the example's numbers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class _PooledSequence(nn.Module):
    """A mean over the length leaves any length possible: the import names it `L`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean(2))


def test_spatial_sizes_are_named_only_where_the_model_takes_any_size():
    torch.manual_seed(0)
    fixed = ne.format(ne.from_module(_FlattenThenLinear().double(), torch.randn(2, 1, 8, 8, dtype=torch.float64)))
    assert "input x: [B, 1, 8, 8]" in fixed
    spec = _assert_reproduces(_PooledSequence(), torch.randn(2, 2, 10, dtype=torch.float64))  # also at length 26
    assert "input x: [B, 2, L]" in ne.format(spec)


def _emitted_source_model(spec):
    namespace = {"__name__": "emitted"}
    exec(compile(ne.emit_source(spec), "<emitted>", "exec"), namespace)
    net_name = [item.name for item in spec.items if type(item).__name__ == "Network"][0]
    classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module)
               and v.__module__ == "emitted"]
    return next(c for c in classes if c.__name__.lower().replace("_", "") == net_name.replace("_", ""))()


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cumsum(self.fc(x), dim=1)  # UNSUPPORTED_LINE


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Module()
        self.block.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.block.fc(x)


class Wrapped(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def _line_of(marker):
    import inspect

    lines = inspect.getsource(sys.modules[__name__]).splitlines()
    return next(i for i, line in enumerate(lines, start=1) if marker in line and "def _line_of" not in line)


def test_an_unsupported_op_names_the_op_and_the_users_line():
    with pytest.raises(NetevoError) as info:
        ne.from_module(Unsupported(), torch.randn(2, 4))
    e = info.value
    assert e.code == "E160" and "cumsum" in e.message and "top-level module" in e.message
    assert e.span.file == __file__ and e.span.line == _line_of("# UNSUPPORTED_LINE")


def test_an_unsupported_module_inside_a_sequential_names_its_path():
    with pytest.raises(NetevoError) as info:
        ne.from_module(Wrapped(nn.Linear(4, 4), nn.Softshrink()), torch.randn(2, 4))
    assert info.value.code == "E160" and "torch.nn.Softshrink" in info.value.message and "`body.1`" in info.value.message


@pytest.mark.parametrize("layer, words", [(nn.MaxPool2d(2, dilation=2), "dilation"),
                                          (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
                                          (nn.Conv2d(3, 3, 3, padding_mode="reflect"), "padding_mode")])
def test_arguments_an_op_cannot_keep_are_refused(layer, words):
    with pytest.raises(NetevoError) as info:
        ne.from_module(Wrapped(layer), torch.randn(2, 3, 8, 8))
    assert info.value.code == "E162" and words in info.value.message and "`body.0`" in info.value.message


class OutOfOrder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))

    def forward(self, x):
        return self.body[0](self.body[1](x))


def test_a_path_the_naming_rules_cannot_express_is_refused_not_renamed():
    with pytest.raises(NetevoError) as info:  # a pipeline names its stages in call order: `body.1` first
        ne.from_module(OutOfOrder(), torch.randn(2, 4))
    assert info.value.code == "E161" and "`body.1`" in info.value.message
    spec = ne.from_module(Nested(), torch.randn(2, 4))  # a keyword of the language as a module name: quoted
    assert list(ne.compile_module(spec).state_dict()) == list(Nested().state_dict())


def test_cli_writes_a_formatted_spec_and_weights(tmp_path):
    (tmp_path / "usermodels.py").write_text(
        "import torch.nn as nn\n"
        "class Small(nn.Module):\n"
        "    def __init__(self, width=8):\n"
        "        super().__init__()\n"
        "        self.features = nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.ReLU())\n"
        "        self.fc = nn.Linear(width * 36, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.features(x).flatten(1))\n")
    out, weights = tmp_path / "model.net", tmp_path / "model.pt"
    netevo = [sys.executable, "-m", "netevo_dsl.cli"]
    run = subprocess.run(netevo + ["import", "usermodels:Small", "--args", json.dumps({"width": 6}),
                                   "--input", "x=2,3,8,8", "-o", str(out), "--weights", str(weights)],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for command in (["fmt", "--check", str(out)], ["check", str(out)]):
        assert subprocess.run(netevo + command, capture_output=True, text=True).returncode == 0
    sys.path.insert(0, str(tmp_path))
    try:
        original = __import__("usermodels").Small(6).double().eval()
    finally:
        sys.path.remove(str(tmp_path))
    original.load_state_dict(torch.load(weights))
    compiled = ne.compile_module(ne.load(out), dtype=torch.float64).eval()
    compiled.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(compiled(x), original(x), rtol=0, atol=1e-9 * original(x).abs().max().item())


def test_cli_refusal_writes_nothing(tmp_path):
    (tmp_path / "bad.py").write_text("import torch.nn as nn\nimport torch.nn.functional as F\n"
                                     "class Bad(nn.Module):\n"
                                     "    def forward(self, x):\n        return x.cumsum(1)\n")
    out = tmp_path / "model.net"
    run = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "import", "bad:Bad", "--input", "x=2,3",
                          "-o", str(out)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1 and "error[E160]" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
