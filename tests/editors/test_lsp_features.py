"""The editor features, answered from the same analysis as `netevo check`.

Expected shapes come from the arithmetic of the layers (conv output = (H + 2 pad - k) / stride + 1, as
PyTorch's Conv2d documents it); expected diagnostics from `netevo check` itself run as a command, so the
server and the CLI are held to one another.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from netevo_dsl.lsp import features as F
from netevo_dsl.lsp.analysis import analyze

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.net"))
LENET = ROOT / "specs" / "lenet5.net"
RESNET = ROOT / "specs" / "resnet18.net"


def _analysis(path: Path, text: str | None = None):
    return analyze(text if text is not None else path.read_text(encoding="utf-8"), str(path))


def _position(a, needle: str, occurrence: int = 0, offset: int = 0):
    """0-based (line, character) of the n-th occurrence of `needle` (plus `offset` characters)."""
    seen = 0
    for i, line in enumerate(a.lines):
        start = 0
        while (j := line.find(needle, start)) >= 0:
            if seen == occurrence:
                return i, j + offset
            seen, start = seen + 1, j + 1
    raise AssertionError(f"{needle!r} not found")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_analyses_cleanly(path):
    a = _analysis(path)
    assert a.errors == []
    assert F.diagnostics(a) == []
    if a.spec.networks:
        assert a.hints, "a network spec gets a shape hint after its statements"


def test_lenet_inlay_hints_follow_the_conv_arithmetic():
    a = _analysis(LENET)
    labels = {a.lines[line].split("=")[0].strip(): label for line, _, label in F.inlay_hints(a)}
    # 32x32 -> conv k=5 -> 28 -> pool 2 -> 14; 14 -> conv k=5 -> 10 -> pool 2 -> 5 (LeCun et al. 1998)
    assert labels["c1"].endswith("[B, 6, 14, 14]")
    assert labels["c3"].endswith("[B, 16, 5, 5]")
    assert labels["flat"].endswith("[B, 400]")  # 16 * 5 * 5
    assert labels["output logits"].endswith("[B, 10]")


def test_block_hints_are_symbolic_in_the_block_parameters():
    a = _analysis(RESNET)
    line, _ = _position(a, "conv1 = conv2d(x, out=c, k=3, pad=1")
    assert [label for ln, _, label in F.inlay_hints(a) if ln == line] == ["  ⟶ [B, c, H, W]"]
    # the network's own statements are concrete where the spec is: 7x7 stride 2 halves H
    line, _ = _position(a, "conv1 = conv2d(img")
    assert [label for ln, _, label in F.inlay_hints(a) if ln == line] == ["  ⟶ [B, 64, H / 2, W / 2]"]


def test_hover_on_an_op_shows_its_registry_signature_in_net_syntax():
    a = _analysis(LENET)
    text = F.hover(a, *_position(a, "conv2d", offset=2))
    assert "conv2d(out, k, stride=1, pad=0" in text and "bias=true" in text  # .net syntax, not Python's True
    assert "True" not in text


def test_hover_on_a_value_shows_its_shape_and_on_a_param_its_value(tmp_path):
    a = _analysis(LENET)
    assert "[B, 16, 5, 5]" in F.hover(a, *_position(a, "flatten(c3)", offset=8))
    spec = tmp_path / "p.net"
    spec.write_text("param hidden: int = 32\nnetwork n {\n  input x: [B, 4]\n  output y = linear(x, out=hidden)\n}\n")
    a = _analysis(spec)
    assert "value `32`" in F.hover(a, *_position(a, "out=hidden", offset=5))
    a = analyze(spec.read_text(), str(spec), overrides={"hidden": 64})
    hover = F.hover(a, *_position(a, "out=hidden", offset=5))
    assert "64" in hover and "-D hidden=64" in hover
    assert "[B, 64]" in F.hover(a, *_position(a, "y = ", offset=0))


def test_definition_and_references_of_a_block():
    a = _analysis(RESNET)
    use = _position(a, "basic(c=64)", offset=1)
    path, span = F.definition(a, *use)
    assert path == str(RESNET) and a.lines[span.line - 1].startswith("block basic(")
    refs = F.references(a, *use, include_declaration=False)
    assert len(refs) == 5  # layer1 twice, then one basic in each of layer2..4
    assert len(F.references(a, *use, include_declaration=True)) == 6


def test_definition_of_a_local_value_and_of_an_import(tmp_path):
    (tmp_path / "lib.net").write_text("block mlp(x: [B, n], m: int) -> [B, m] {\n  return linear(x, out=m)\n}\n")
    main = tmp_path / "main.net"
    main.write_text('import "lib.net"\nnetwork n {\n  input x: [B, 4]\n  h = relu(x)\n  output y = mlp(h, m=2)\n}\n')
    a = _analysis(main)
    assert a.errors == []
    path, span = F.definition(a, *_position(a, "mlp(h", offset=5))
    assert path == str(main) and span.line == 4  # `h` is defined on line 4
    path, _ = F.definition(a, *_position(a, "lib.net", offset=1))
    assert Path(path) == (tmp_path / "lib.net").resolve()
    path, span = F.definition(a, *_position(a, "mlp(h", offset=1))
    assert Path(path).name == "lib.net"


def test_diagnostics_equal_netevo_check_json(tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("network n {\n  input x: [B, 3]\n  h = lienar(x, out=3)\n  output y = linear(q, out=2)\n}\n")
    run = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "check", str(bad), "--error-format", "json"],
                         capture_output=True, text=True, timeout=120)
    expected = json.loads(run.stdout)
    a = _analysis(bad)
    got = F.diagnostics(a)
    assert [d.code for d in got] == [e["code"] for e in expected] and len(got) >= 2
    for d, e in zip(got, expected):
        assert d.range[0] == (e["span"]["line"] - 1, e["span"]["col"] - 1)
        assert d.message.startswith(e["message"])
        if e.get("hint"):
            assert f"help: {e['hint']}" in d.message


def test_a_syntax_error_is_a_diagnostic_not_a_crash():
    a = analyze("network n {\n  input x: [B, 3\n}\n", "broken.net")
    diags = F.diagnostics(a)
    assert diags and diags[0].code == "E001"
    assert F.hover(a, 0, 9) is None or isinstance(F.hover(a, 0, 9), str)
    assert F.document_symbols(a) == []


def test_completion_lists_come_from_the_registries():
    from netevo_dsl.ops.registry import all_ops
    from netevo_dsl.ops.rules import RULES
    from netevo_dsl.ops.tasks import task_names

    text = LENET.read_text()
    a = _analysis(LENET)
    labels = lambda items: {c.label for c in items}  # noqa: E731
    # inside a network body: every registry op, and the values defined so far
    line, _ = _position(a, "flat = flatten(c3)")
    body = labels(F.completions(a, text, line, 2))
    assert {op.name for op in all_ops()} <= body and "c1" in body
    # inside an op call after a comma: the op's keyword parameters
    line, ch = _position(a, "linear(out=120)", offset=len("linear("))
    assert labels(F.completions(a, text, line, ch)) == {f"{p.name}=" for p in dict(
        (op.name, op) for op in all_ops())["linear"].params}
    # in a mutate block: the network rules
    line, _ = _position(a, 'kernel("c*"')
    rules = labels(F.completions(a, text, line, 2))
    assert rules == {r.name for r in RULES.values() if "network" in r.applies_to}
    # after `task` in an evolve block: the task names
    wann = (ROOT / "specs" / "wann_xor.net").read_text()
    aw = analyze(wann, str(ROOT / "specs" / "wann_xor.net"))
    line, _ = _position(aw, "  task ")
    assert set(task_names()) <= labels(F.completions(aw, wann, line, len("  task ")))
    # after `name:` in a genome: WANN activations
    line, ch = _position(aw, "outputs ")
    ch = aw.lines[line].index(":") + 1
    assert {"tanh", "gauss", "sin", "step"} <= labels(F.completions(aw, wann, line, ch))


def test_document_symbols_outline():
    a = _analysis(RESNET)
    outline = {s.name: s for s in F.document_symbols(a)}
    assert list(outline) == ["classes", "basic", "down", "resnet18", "mutate resnet18"]
    assert [c.name for c in outline["resnet18"].children][:3] == ["img", "conv1", "bn1"]
    assert outline["resnet18"].span.end_line > outline["resnet18"].span.line
    assert [c.kind for c in outline["mutate resnet18"].children] and \
        all(c.kind == "rule" for c in outline["mutate resnet18"].children)
    wann = ROOT / "specs" / "wann_xor.net"
    evolve = {s.name: s for s in F.document_symbols(_analysis(wann))}["evolve xor"]
    assert "objective maximize mean(reward)" in [c.name for c in evolve.children]
    assert any(c.name.startswith("task xor") for c in evolve.children)


def test_formatting_is_netevo_fmt(tmp_path):
    messy = "network n{input x:[B,3]\n output y=linear(x,out=2)}\n"
    out = F.format_text(messy, "m.net")
    spec = tmp_path / "m.net"
    spec.write_text(messy)
    subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "fmt", str(spec)], check=True, timeout=120,
                   capture_output=True)
    assert out == spec.read_text()


def test_utf16_positions_round_trip():
    lines = ["x = \"𝄞\" // é", "y"]
    for col in range(1, len(lines[0]) + 2):
        assert F.from_lsp(lines, *F.to_lsp(lines, 1, col)) == (1, col)
    assert F.to_lsp(lines, 1, 7) == (0, 7)  # the clef before it is two UTF-16 units


def test_the_server_and_analysis_never_import_torch():
    code = ("import sys; import netevo_dsl.lsp.server as s; from netevo_dsl.lsp.analysis import analyze; "
            "from netevo_dsl.lsp import features as F; a = analyze(open('specs/resnet18.net').read(), "
            "'specs/resnet18.net'); F.hover(a, 8, 12); F.completions(a, a.text, 8, 20); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
