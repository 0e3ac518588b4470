"""One resize planner for the `width` rule and the exact transforms (issue 20), refusals that say why,
`check` rejecting rule targets that match nothing (issue 15, item 13), and the DenseNet- and
Inception-style specs.

Expected values: the issue's own example and wording; outputs before and after a transform are
compared in float64 (atol 1e-9), the old network being the reference.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError, RuleError, TransformError
from netevo_dsl.evolve.mutations import mutants, mutate
from netevo_dsl.evolve.transforms import prune_units, widen
from netevo_dsl.ir import nodes as ir

from .test_transforms import ATOL, randomised, run

SPECS = Path(__file__).resolve().parents[2] / "specs"

ISSUE = """version 1

block res(x: [B, c, H, W], c: int{extra}) -> [B, c, H, W] {{
  h = x |> conv2d(out={inner}, k=3, pad=1) |> batchnorm2d() |> relu()
  return relu(x + conv2d(h, out=c, k=3, pad=1))
}}

network cnn {{
  input img: [B, 3, 32, 32]
  a = conv2d(img, out=16, k=3, pad=1)
  b = conv2d(img, out=8, k=1)
  x = concat(a, b, dim=1)
  x = res(x, c=24{call})
  y = x |> adaptive_avgpool(1) |> flatten()
  output logits = linear(y, out=10)
}}

mutate cnn {{
  width(a, p=0.5, choices={{8, 16, 32}})
  width(b, p=0.5, choices={{4, 8, 16}})
}}
"""
SEPARATE = ISSUE.format(extra=", m: int", inner="m", call=", m=24")
SHARED = ISSUE.format(extra="", inner="c", call="")
REASON = ("the block parameter `c` of `res` sizes both `x.h.0` (group `x.h.0`, 24) and `x.out.0` "
          "(groups `a` and `b`); give `res` a separate parameter for each")


def weights_of(spec):
    return randomised(spec)


# --- the issue's example -------------------------------------------------------------------------


def test_the_example_mutates_once_the_block_has_separate_parameters():
    spec = ne.parse(SEPARATE)
    stats = {}
    found = mutants(spec, 6, seed=0, stats=stats)  # emitted source runs for each (validate="source")
    assert len(found) == 6 and stats["invalid"] == 0
    child, text = mutate(spec, 0, rules="width(a, choices={32})")
    assert "a = conv2d(img, out=32, k=3, pad=1)" in ne.format(child)
    assert "x = res(x, c=40, m=24)" in ne.format(child), "the block's second conv holds a + b"
    # the exact transform makes the same spec, and keeps the outputs
    w = weights_of(spec)
    r = widen(spec, w, "a", 32, rng=0)
    assert ne.format(r.spec) == ne.format(child)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(run(r.spec, r.weights, x), run(spec, w, x), atol=ATOL, rtol=0)


def test_one_shared_parameter_is_refused_with_the_reason():
    spec = ne.parse(SHARED)
    with pytest.raises(RuleError) as e:
        mutate(spec, 0)
    assert e.value.code == "E060" and "no rule can change `cnn`" in e.value.message
    notes = [text for _, text in e.value.notes]
    assert notes == [f"`width(a)`: {REASON} (for 8, 32)", f"`width(b)`: {REASON} (for 4, 16)"]
    assert [span.line for span, _ in e.value.notes] == [19, 20], "each note points at its rule"
    with pytest.raises(TransformError) as t:
        widen(spec, weights_of(spec), "a", 32)
    assert REASON in t.value.message, "widen refuses for the same reason: one planner"


def test_netevo_mutate_prints_the_reasons(tmp_path):
    path = tmp_path / "shared.net"
    path.write_text(SHARED)
    out = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "mutate", str(path), "-n", "2", "-o",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "error[E060]" in out.stderr and f"`width(a)`: {REASON}" in out.stderr


def test_refusals_for_equal_choices_and_targets_that_match_nothing():
    spec = ne.parse(SEPARATE)
    with pytest.raises(RuleError) as e:
        mutate(spec, 0, rules="width(a, choices={16}) width(nothere, choices={8}) width(logits, choices={5}) "
                              "kernel(conv9, choices={5})")
    notes = [text for _, text in e.value.notes]
    assert "`kernel(conv9)`: matches no node" in notes
    assert "`width(a)`: every choice equals the current width of `a` (16)" in notes
    assert "`width(nothere)`: matches no node" in notes
    assert "`width(logits)`: `logits` cannot change size: network output `logits`" in notes


# --- check: targets must name nodes (issue 15, item 13) ------------------------------------------


def test_check_rejects_a_target_that_matches_no_node_with_did_you_mean():
    text = SEPARATE.replace("width(b, p=0.5", "width(bb, p=0.5")
    with pytest.raises(NetevoError) as e:
        ne.check(ne.parse(text))
    assert e.value.code == "E061" and "`width` target `bb` matches no node of `cnn`" in e.value.message
    assert e.value.hint == "did you mean `b`?" and e.value.span.line == 20
    ne.check(ne.parse(SEPARATE.replace("width(b, p=0.5", 'width("x.*", p=0.5')))  # globs that match pass


def test_check_of_rule_targets_does_not_import_torch(tmp_path):
    path = tmp_path / "typo.net"
    path.write_text(SEPARATE.replace("width(b, p=0.5", "width(nothere, p=0.5"))
    code = ("import sys; from netevo_dsl.cli import main; rc = main(['check', sys.argv[1]]); "
            "assert 'torch' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 1 and "error[E061]" in out.stderr and "Traceback" not in out.stderr


def test_children_that_remove_a_targeted_node_drop_that_target():
    spec = ne.load(SPECS / "mlp.net")  # its own rules target act1 and act2
    child, _ = mutate(spec, 0, rules="remove_layer(act1)")
    ne.check(child)
    (block,) = child.of_kind(ir.MutateBlock)
    targets = [a.id for rule in block.rules for a in rule.args]
    assert targets == ["fc1", "fc2", "act2"]


# --- DenseNet- and Inception-style specs ---------------------------------------------------------


def _run_cli(argv):
    from netevo_dsl.evolve.mutate_cli import add_parser

    parser = argparse.ArgumentParser(prog="netevo")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("name", ["densenet_like", "inception_like"])
def test_netevo_mutate_gives_only_valid_mutants(name, tmp_path, capsys):
    assert _run_cli(["mutate", str(SPECS / f"{name}.net"), "-n", "8", "--seed", "2", "-o", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "dropped" not in captured.err and "only" not in captured.err, captured.err  # 100% valid
    files = sorted(tmp_path.glob("*.net"))
    assert len(files) == 8
    for f in files:
        ne.check(ne.load(f))
    stats = {}
    found = mutants(ne.load(SPECS / f"{name}.net"), 10, seed=5, stats=stats)  # each child's source runs
    assert len(found) == 10 and stats["invalid"] == 0


def _killed(weights, keys_rows):
    """Dead units: zero weight rows and bias -1 before a ReLU, so the ReLU gives 0 wherever it is read."""
    w = dict(weights)
    for weight_key, bias_key, rows in keys_rows:
        w[weight_key], w[bias_key] = w[weight_key].clone(), w[bias_key].clone()
        w[weight_key][rows] = 0
        w[bias_key][rows] = -1.0
    return w


WIDEN = {
    "densenet_like": [("stem", 20), ("d1.0.h.2", 15), ("t1.2", 30), ("d2.1.h.2", 13)],
    "inception_like": [("stem.0", 40), ("i1.b1.0", 20), ("i1.b3.0", 19), ("i1.bp.1", 11), ("i2.b5.2", 17)],
}
PRUNE = {  # group, units, (weight, bias) pairs of the norm or conv before each ReLU that reads them
    "densenet_like": [("stem", [1, 7], [("d1.0.h.0.weight", "d1.0.h.0.bias"), ("d1.1.h.0.weight", "d1.1.h.0.bias"),
                                        ("t1.0.weight", "t1.0.bias")]),
                      ("t1.2", [0, 5, 23], [("d2.0.h.0.weight", "d2.0.h.0.bias"),
                                            ("d2.1.h.0.weight", "d2.1.h.0.bias"), ("y.0.weight", "y.0.bias")])],
    "inception_like": [("i1.b3.0", [2, 3, 11], [("i1.b3.0.weight", "i1.b3.0.bias")]),
                       ("i2.b5.0", [0, 6], [("i2.b5.0.weight", "i2.b5.0.bias")])],
}


@pytest.mark.parametrize("name", ["densenet_like", "inception_like"])
def test_widen_and_prune_preserve_outputs_in_float64(name):
    spec = ne.load(SPECS / f"{name}.net")
    w = weights_of(spec)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = run(spec, w, x)
    for group, size in WIDEN[name]:
        r = widen(spec, w, group, size, rng=3)
        assert r.resized[group][1] == size
        assert torch.allclose(run(r.spec, r.weights, x), y, atol=ATOL, rtol=0), group
    for group, units, norms in PRUNE[name]:
        dead = _killed(w, [(wk, bk, units) for wk, bk in norms])
        r = prune_units(spec, dead, group, units)
        assert torch.allclose(run(r.spec, r.weights, x), run(spec, dead, x), atol=ATOL, rtol=0), group
        # `width` reaches the same spec through the same planner
        child, _ = mutate(spec, 0, rules=f'width("{group}", choices={{{r.resized[group][1]}}})')
        assert ne.format(child) == ne.format(r.spec)
