"""One suite over every example spec in specs/: each new spec gets all of these checks for free."""
import glob
import os

import pytest

from netevo_dsl import load
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
