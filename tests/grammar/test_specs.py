"""One suite over every example spec in specs/: each new spec gets all of these checks for free."""
import glob
import os
import re

import pytest

from netevo_dsl import load
from netevo_dsl.errors import NetevoError, flatten
from netevo_dsl.cli import main
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir.printer import format_spec
from netevo_dsl.passes.check import check

SPECS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "specs")
SPECS = sorted(glob.glob(os.path.join(SPECS_DIR, "*.net")))


def test_there_are_example_specs():
    assert len(SPECS) >= 9


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(params=SPECS, ids=os.path.basename)
def path(request):
    return request.param


def test_check_passes(path):
    spec = load(path)
    result = check(spec)
    assert set(result.graphs) == {n.name for n in spec.networks}
    assert spec.networks or spec.genomes


def test_files_are_committed_formatted(path):
    text = _read(path)
    formatted = format_spec(parse(text, path))
    assert formatted == text
    assert format_spec(parse(formatted, path)) == formatted


def test_format_round_trips_the_ir(path):
    spec = parse(_read(path), path)
    back = parse(format_spec(spec), path)
    assert back == spec
    assert [getattr(i, "doc", None) for i in back.items] == [getattr(i, "doc", None) for i in spec.items]
    assert [c.text for c in back.comments] == [c.text for c in spec.comments]


def test_cli_check_and_fmt_check_exit_zero(path, capsys):
    assert main(["check", path]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["fmt", "--check", path]) == 0
    assert capsys.readouterr().out == ""


# --- the examples in the docs are specs too ---------------------------------------------------------

DOCS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
PACKAGE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "netevo_dsl")


def _net_blocks(text):
    return re.findall(r"```net\n(.*?)```", text, re.S)


LANGUAGE_EXAMPLES = _net_blocks(_read(os.path.join(DOCS_DIR, "language.md")))
ERRORS_DOC = _read(os.path.join(DOCS_DIR, "errors.md"))
ERROR_SECTIONS = re.findall(r"^## (E\d{3})\b(.*?)(?=^## |\Z)", ERRORS_DOC, re.S | re.M)
ERROR_EXAMPLES = [(code, block) for code, body in ERROR_SECTIONS for block in _net_blocks(body)]


def test_the_docs_have_examples():
    assert len(LANGUAGE_EXAMPLES) >= 8 and len(ERROR_EXAMPLES) >= 18


@pytest.mark.parametrize("text", LANGUAGE_EXAMPLES, ids=lambda t: t.split("\n", 3)[2][:40])
def test_language_examples_check_and_are_formatted(text):
    spec = parse(text)
    check(spec)
    assert format_spec(spec) == text


@pytest.mark.parametrize("code, text", ERROR_EXAMPLES, ids=[c for c, _ in ERROR_EXAMPLES])
def test_error_examples_give_their_code(code, text, tmp_path):
    path = tmp_path / "example.net"
    path.write_text(text)
    with pytest.raises(NetevoError) as info:
        check(load(path))
    assert code in [e.code for e in flatten(info.value)]


def test_every_error_code_in_the_code_is_documented():
    used = set()
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                used |= set(re.findall(r'code\s*=\s*"(E\d{3})"', _read(os.path.join(folder, name))))
    documented = set(re.findall(r"^## (E\d{3})\b", ERRORS_DOC, re.M))
    assert used >= {"E001", "E010", "E020", "E030", "E040", "E050", "E060", "E070", "E110"}
    assert used - documented == set()
