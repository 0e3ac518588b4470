"""`netevo lsp` driven over stdio as an editor drives it (JSON-RPC, LSP 3.17 base protocol)."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")

from .lsp_client import LspClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.net"))


@pytest.fixture(scope="module")
def client():
    c = LspClient(cwd=ROOT)
    c.initialize(ROOT, {"defines": {"hidden": 64}})
    yield c
    c.close()


def _pos(text: str, needle: str, offset: int = 0) -> dict:
    for i, line in enumerate(text.split("\n")):
        j = line.find(needle)
        if j >= 0:
            return {"line": i, "character": j + offset}
    raise AssertionError(needle)


def test_capabilities_cover_the_features():
    c = LspClient(cwd=ROOT)
    try:
        caps = c.initialize(ROOT)["capabilities"]
    finally:
        c.close()
    for key in ("hoverProvider", "definitionProvider", "referencesProvider", "completionProvider",
                "documentSymbolProvider", "documentFormattingProvider", "inlayHintProvider"):
        assert caps.get(key), key


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_each_shipped_spec_opens_without_diagnostics(client, path):
    uri = client.open(path)
    assert client.wait_notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []


def test_broken_spec_reports_every_error_with_code_and_hint(client, tmp_path):
    bad = tmp_path / "broken.net"
    text = "network n {\n  input x: [B, 3]\n  h = lienar(x, out=3)\n  output y = linear(q, out=2)\n}\n"
    uri = client.open(bad, text)
    diags = client.wait_notification("textDocument/publishDiagnostics", uri)["diagnostics"]
    assert [d["code"] for d in diags] == ["E022", "E020"]
    assert diags[0]["range"]["start"] == {"line": 2, "character": 6}
    assert "help: did you mean `linear`?" in diags[0]["message"]
    assert diags[0]["source"] == "netevo"


def test_change_is_debounced_then_reanalysed(client, tmp_path):
    spec = tmp_path / "edit.net"
    good = "network n {\n  input x: [B, 3]\n  output y = linear(x, out=2)\n}\n"
    uri = client.open(spec, good)
    assert client.wait_notification("textDocument/publishDiagnostics", uri)["diagnostics"] == []
    for version in range(2, 6):  # a burst of keystrokes: one analysis at the end
        client.change(uri, good.replace("out=2", "out=" + "2" * (version - 1)).replace("linear(x", "linear(z"),
                      version)
    diags = client.wait_notification("textDocument/publishDiagnostics", uri)
    assert diags["version"] == 5 and [d["code"] for d in diags["diagnostics"]] == ["E020"]


def test_hover_inlay_definition_references_completion_symbols_formatting(client):
    path = ROOT / "specs" / "resnet18.net"
    text = path.read_text()
    uri = client.open(path)
    client.wait_notification("textDocument/publishDiagnostics", uri)
    doc = {"uri": uri}
    hover = client.request("textDocument/hover", {"textDocument": doc, "position": _pos(text, "conv2d(x, out=c", 2)})
    assert hover["contents"]["kind"] == "markdown" and "conv2d(out, k, stride=1" in hover["contents"]["value"]
    hover = client.request("textDocument/hover", {"textDocument": doc, "position": _pos(text, "flatten(avgpool)", 9)})
    assert "[B, 512, 1, 1]" in hover["contents"]["value"]
    hints = client.request("textDocument/inlayHint", {"textDocument": doc, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}})
    by_line = {h["position"]["line"]: h["label"] for h in hints}
    assert by_line[_pos(text, "fc = linear(flat")["line"]].endswith("[B, 1000]")
    loc = client.request("textDocument/definition", {"textDocument": doc, "position": _pos(text, "down(c=128)", 1)})
    assert loc["range"]["start"] == {"line": _pos(text, "block down(")["line"], "character": 6}
    refs = client.request("textDocument/references", {"textDocument": doc, "position": _pos(text, "down(c=128)", 1),
                                                      "context": {"includeDeclaration": False}})
    assert len(refs) == 3
    items = client.request("textDocument/completion", {"textDocument": doc,
                                                       "position": _pos(text, "maxpool2d(relu, ", 16)})["items"]
    assert {"k=", "stride=", "pad="} <= {i["label"] for i in items}
    symbols = client.request("textDocument/documentSymbol", {"textDocument": doc})
    assert [s["name"] for s in symbols] == ["classes", "basic", "down", "resnet18", "mutate resnet18"]
    assert client.request("textDocument/formatting", {"textDocument": doc,
                                                      "options": {"tabSize": 2, "insertSpaces": True}}) == []


def test_formatting_returns_the_canonical_text(client, tmp_path):
    uri = client.open(tmp_path / "messy.net", "network n{input x:[B,3]\n output y=linear(x,out=2)}\n")
    client.wait_notification("textDocument/publishDiagnostics", uri)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                       "options": {"tabSize": 2, "insertSpaces": True}})
    assert edits[0]["newText"] == "network n {\n  input x: [B, 3]\n  output y = linear(x, out=2)\n}\n"


def test_defines_from_initialization_options_reach_the_analysis(client, tmp_path):
    text = "param hidden: int = 32\nnetwork n {\n  input x: [B, 4]\n  output y = linear(x, out=hidden)\n}\n"
    uri = client.open(tmp_path / "defines.net", text)
    client.wait_notification("textDocument/publishDiagnostics", uri)
    hover = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": _pos(text, "y = linear")})
    assert "[B, 64]" in hover["contents"]["value"]  # hidden=64 came from initializationOptions.defines


NETEVO = Path(sys.executable).parent / "netevo"


@pytest.mark.skipif(not NETEVO.exists(), reason="the console script is not installed next to this Python")
def test_the_console_command_starts_the_server():
    c = LspClient(args=(str(NETEVO), "lsp"), cwd=ROOT)
    try:
        assert c.initialize(ROOT)["serverInfo"]["name"] == "netevo"
    finally:
        c.close()
