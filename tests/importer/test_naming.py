"""Module paths the naming rules gained for issue 17: a Sequential inside a Sequential (`features.0.0`), a bare
nn.Sequential as the whole model (`0.weight`), and module names that are not identifiers (`block1-0`,
regnet_x's) or are keywords of the language (`input`). Oracle: the original module, as in test_import.py."""
import pytest
import torch
import torch.nn as nn

import netevo_dsl as ne
from netevo_dsl import NetevoError

from .test_import import _assert_reproduces


def _seq(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Stage(nn.Sequential):
    """Like torchvision's regnet AnyStage: an nn.Sequential whose children are named `block1-0`, `block1-1`."""

    def __init__(self, c):
        super().__init__()
        for i in range(2):
            self.add_module(f"block1-{i}", _seq(c, c))


class Dashed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _seq(3, 4)
        self.trunk = Stage(4)
        self.add_module("input", nn.Conv2d(4, 2, 1))  # a keyword of the language

    def forward(self, x):
        return getattr(self, "input")(self.trunk(self.stem(x)))


def test_a_bare_sequential_with_a_nested_sequential_keeps_its_keys():
    torch.manual_seed(0)
    model = nn.Sequential(_seq(3, 4), nn.Sequential(_seq(4, 4), _seq(4, 6)), nn.Flatten(), nn.Linear(6 * 25, 3))
    spec = _assert_reproduces(model, torch.randn(2, 3, 5, 5, dtype=torch.float64))
    keys = list(ne.compile_module(spec).state_dict())
    assert keys == list(model.state_dict()) and "1.0.0.weight" in keys


def test_names_that_are_not_identifiers_are_quoted_not_renamed():
    torch.manual_seed(0)
    model = Dashed()
    spec = _assert_reproduces(model, torch.randn(2, 3, 6, 6, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(model.state_dict())
    text = ne.format(spec)
    assert "`block1-0` = " in text and "`input` = " in text and "`0` = conv2d" in text


class Keyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module("class", nn.Linear(4, 4))

    def forward(self, x):
        return getattr(self, "class")(x)


def test_a_python_keyword_as_a_module_name_is_refused_with_its_path():
    with pytest.raises(NetevoError) as info:  # neither torch.fx nor a spec can write `self.class(x)`
        ne.from_module(Keyword(), torch.randn(2, 4))
    assert info.value.code == "E161" and "`class`" in info.value.message


def test_regnet_x_imports_exactly():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    original = torchvision.models.get_model("regnet_x_400mf", weights=None, num_classes=10)
    spec = _assert_reproduces(original, torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert list(ne.compile_module(spec).state_dict()) == list(original.state_dict())


def test_instances_of_one_class_share_a_block_whose_parameters_are_what_differs():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=10)
    spec = _assert_reproduces(original, torch.randn(2, 3, 32, 32, dtype=torch.float64))
    text = ne.format(spec)
    assert ne.format(ne.parse(text)) == text  # what `netevo fmt --check` asks
    # torchvision's BasicBlock: the first block of stages 2-4 has stride 2 and a downsample, and the stages differ
    # only in width; so two bodies, the width a parameter, the input's size its symbolic `c`
    blocks = {b.name: b for b in spec.items if type(b).__name__ == "Block"}
    assert sorted(blocks) == ["basicblock", "basicblock_1"]
    assert [p.name for p in blocks["basicblock"].params] == ["x"]
    assert [p.name for p in blocks["basicblock_1"].params] == ["x", "out"]
    assert "block basicblock(x: [B, c, H, W])" in text and "conv2d(x, out=c, k=3, pad=1, bias=false)" in text
    assert "repeat 2 as layer1 {\n    layer1 = basicblock(layer1)\n  }" in text  # a run of identical calls
    assert "block basicblock_1(x: [B, c, H, W], out: int = 128)" in text  # a tie: the first value is the default
    for stage, call in ((2, "basicblock_1()"), (3, "basicblock_1(out=256)"), (4, "basicblock_1(out=512)")):
        assert f"layer{stage} = layer{stage - 1} |> {call} |> basicblock()" in text
