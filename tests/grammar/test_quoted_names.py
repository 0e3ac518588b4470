"""Quoted value names (`block1-0`, `0`, `input`): module names that are not identifiers (docs/language.md,
"Quoted names"). The oracle for the keys is PyTorch itself: an nn.Sequential inside an nn.Sequential and a
module added as `block1-0` give the state-dict keys the compiled spec and its emitted source must have."""
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import netevo_dsl as ne
from netevo_dsl import NetevoError
from netevo_dsl.errors import flatten
from netevo_dsl.grammar.parser import lark_parser

SPEC = """version 1

block seq(x: [B, c, H, W]) {
  `0` = conv2d(x, out=4, k=3, pad=1)
  `1` = batchnorm2d(`0`)
  `2` = relu(`1`)
  return `2`
}

block stage(x: [B, c, H, W]) {
  `block1-0` = seq(x)
  `block1-1` = `block1-0` |> conv2d(out=4, k=1) |> relu()
  return `block1-1`
}

network q {
  input x: [B, 3, 8, 8]
  features = x |> seq() |> seq()
  `input` = stage(features)
  output y = `input`
}
"""


class Reference(nn.Module):
    """The same network written in PyTorch: `features.0.0`, `input.block1-0.0`, `input.block1-1.0`."""

    def __init__(self):
        super().__init__()

        def seq(cin):
            return nn.Sequential(nn.Conv2d(cin, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

        self.features = nn.Sequential(seq(3), seq(4))
        stage = nn.Module()
        stage.add_module("block1-0", seq(4))
        stage.add_module("block1-1", nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU()))
        self.add_module("input", stage)

    def forward(self, x):
        stage = getattr(self, "input")
        return stage._modules["block1-1"](stage._modules["block1-0"](self.features(x)))


def test_the_grammar_stays_lalr_without_conflicts():
    lark_parser(strict=True).parse(SPEC)


def test_quoted_names_print_back_and_reparse():
    spec = ne.parse(SPEC)
    assert ne.format(spec) == SPEC
    assert spec.networks[0].body[2].targets == ("input",)


def test_keys_and_outputs_are_pytorchs_for_compiled_and_emitted():
    spec = ne.parse(SPEC)
    reference = Reference().double().eval()
    compiled = ne.compile_module(spec, dtype=torch.float64).eval()
    assert list(compiled.state_dict()) == list(reference.state_dict())
    compiled.load_state_dict(reference.state_dict(), strict=True)
    namespace = {"__name__": "emitted"}
    exec(compile(ne.emit_source(spec), "<emitted>", "exec"), namespace)
    emitted = namespace["Q"]().double().eval()
    emitted.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        want = reference(x)
        assert torch.allclose(compiled(x), want, rtol=0, atol=1e-12)
        assert torch.allclose(emitted(x), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["class", "__init__", "self", "forward"])
def test_quoting_does_not_open_reserved_names(name):
    spec = ne.parse(f"version 1\n\nnetwork n {{\n  input x: [B, 4]\n  `{name}` = linear(x, out=2)\n"
                    f"  output y = `{name}`\n}}\n")
    with pytest.raises(NetevoError) as info:
        ne.check(spec)
    assert {e.code for e in flatten(info.value)} == {"E021"}


@pytest.mark.parametrize("text", ["`a.b`", "`a b`", '`a"b`', "`-a`", "``", "`a\nb`"])
def test_a_quoted_name_holds_letters_digits_underscore_and_dash_only(text):
    with pytest.raises(NetevoError) as info:
        ne.parse(f"version 1\n\nnetwork n {{\n  input x: [B, 4]\n  {text} = linear(x, out=2)\n  output y = x\n}}\n")
    assert flatten(info.value)[0].code.startswith("E00")


@settings(max_examples=40, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,8}", fullmatch=True).filter(lambda s: not s.startswith("__") and s not in ("x", "y")))  # x, y: the input and output
def test_any_quoted_name_round_trips_and_names_its_module(name):
    text = f"version 1\n\nnetwork n {{\n  input x: [B, 4]\n  `{name}` = linear(x, out=2)\n  output y = `{name}`\n}}\n"
    spec = ne.parse(text)
    assert ne.parse(ne.format(spec)) == spec
    try:
        graph = ne.check(spec).graphs["n"]
    except NetevoError as e:  # a Python keyword or a reserved name, spelt like an identifier
        assert name.isidentifier() and {err.code for err in flatten(e)} == {"E021"}
        return
    assert graph.node(name).op == "linear"
