"""Syntax highlighting: the Pygments lexer and the TextMate grammar against the grammar's own keywords."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR = (ROOT / "netevo_dsl" / "grammar" / "netevo.lark").read_text()
# every quoted identifier in the Lark grammar is a keyword of the language
LARK_KEYWORDS = sorted(set(re.findall(r'"([a-z_]+)"', GRAMMAR)))


def _catalogue_specs_that_parse():
    from netevo_dsl.errors import NetevoError
    from netevo_dsl.grammar.parser import parse
    from tests.grammar.test_bad_specs import BAD

    out = []
    for name, _, _, _, text in BAD:
        try:
            parse(text, "bad.net")
        except NetevoError:
            continue
        out.append((name, text))
    return out


def test_the_lark_grammar_has_keywords_to_check():
    assert {"network", "block", "genome", "mutate", "evolve", "true", "false"} <= set(LARK_KEYWORDS)


def test_pygments_lexer_is_registered_and_knows_every_keyword():
    pygments = pytest.importorskip("pygments")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    from netevo_dsl.highlight import CONSTANTS, KEYWORDS, NetevoLexer

    assert isinstance(get_lexer_by_name("netevo"), NetevoLexer)  # through the entry point
    assert isinstance(get_lexer_for_filename("model.net"), NetevoLexer)
    assert set(LARK_KEYWORDS) == set(KEYWORDS) | set(CONSTANTS)
    del pygments


def test_pygments_tokenizes_shipped_and_catalogue_specs_without_errors():
    pytest.importorskip("pygments")
    from pygments.token import Error, Keyword, Name

    from netevo_dsl.highlight import NetevoLexer

    lexer = NetevoLexer(stripnl=False)
    texts = [(p.name, p.read_text()) for p in sorted((ROOT / "specs").glob("*.net"))] + _catalogue_specs_that_parse()
    assert len(texts) > 20
    for name, text in texts:
        tokens = list(lexer.get_tokens(text))
        assert not [v for t, v in tokens if t in Error], name
        assert "".join(v for _, v in tokens).rstrip("\n") == text.rstrip("\n"), name  # lossless
    tokens = list(lexer.get_tokens("network n {\n  output y = linear(x, out=2)\n}\n"))
    assert (Keyword, "network") in tokens and (Name.Function, "linear") in tokens and (Name, "x") in tokens


def test_textmate_grammar_gives_every_lark_keyword_a_scope():
    grammar = json.loads((ROOT / "editors" / "netevo.tmLanguage.json").read_text())
    assert grammar["scopeName"] == "source.netevo" and "net" in grammar["fileTypes"]
    keyword_rules = [(p["name"], re.compile(p["match"])) for p in grammar["repository"]["keywords"]["patterns"]]
    for word in LARK_KEYWORDS:
        scopes = [name for name, rx in keyword_rules if rx.fullmatch(word)]
        assert scopes, f"`{word}` has no TextMate scope"
        assert scopes[0].split(".")[0] in ("keyword", "constant", "storage"), (word, scopes)
    for pattern in grammar["patterns"]:  # every include names a repository entry
        assert pattern["include"].lstrip("#") in grammar["repository"]


def test_vscode_manifest_points_at_the_grammar_and_the_server():
    manifest = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    grammar = manifest["contributes"]["grammars"][0]
    assert (ROOT / "editors" / "vscode" / grammar["path"]).resolve() == (ROOT / "editors" / "netevo.tmLanguage.json")
    assert manifest["contributes"]["languages"][0]["extensions"] == [".net"]
    assert manifest["contributes"]["configuration"]["properties"]["netevo.command"]["default"] == ["netevo", "lsp"]
    assert "lsp" in (ROOT / "editors" / "vscode" / "extension.js").read_text()
