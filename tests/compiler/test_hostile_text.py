"""User text that reaches emitted source (file names, doc comments) can never become code.

Issue 13, defects 1 and 2: a spec file named `m\"\"\"+__import__("os").system("touch PWNED")+\"\"\".net`
ran a command when its emitted file was imported, a newline in the name did the same through the
`# file.net:LINE` comments, and doc comments with quotes or a NUL made the emitted file unparsable.
The oracle here is Python itself: the emitted text must compile, run, create no sentinel file, and
carry the doc text unchanged as the class's `__doc__`.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from netevo_dsl import emit_source, parse
from netevo_dsl.compiler.safe_text import comment_text, docstring_body

from .helpers import exec_source

BODY = """
{doc}network n {{
  input x: [B, 3]
  output y = linear(x, out=2)
}}
"""


def _spec_text(doc: str | None) -> str:
    if doc is None:
        return BODY.format(doc="")
    return BODY.format(doc="".join(f"///{line}\n" for line in doc.split("\n")))


def _import_emitted(source: str, where: Path) -> dict:
    """Write the file and import it in a fresh interpreter, as a user would; returns nothing but must not fail."""
    out = where / "emitted_model.py"
    out.write_text(source, encoding="utf-8")
    code = "import emitted_model, torch; m = emitted_model.N(); print(m(torch.zeros(1, 3)).shape)"
    run = subprocess.run([sys.executable, "-c", code], cwd=where, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "torch.Size([1, 2])" in run.stdout


def test_file_name_with_triple_quotes_runs_nothing(tmp_path):
    name = 'm"""+__import__("os").system("touch PWNED")+""".net'
    spec = parse(_spec_text(None), path=str(tmp_path / name))
    source = emit_source(spec)
    _assert_only_definitions(source)
    _import_emitted(source, tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_file_name_with_newline_stays_in_its_comment(tmp_path):
    name = 'm\n        __import__("os").system("touch PWNED")\n.net'
    spec = parse(_spec_text(None), path=str(tmp_path / "d" / name))
    source = emit_source(spec)
    _import_emitted(source, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    _assert_only_definitions(source)


def _assert_only_definitions(source: str):
    """The module's top level holds its docstring, imports, classes and functions: nothing that runs."""
    tree = ast.parse(source)
    allowed = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)
    for i, node in enumerate(tree.body):
        is_docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        assert is_docstring or isinstance(node, allowed), ast.dump(node)[:200]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for i, node in enumerate(cls.body):
            is_docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            assert is_docstring or isinstance(node, (ast.FunctionDef, ast.Assign)), ast.dump(node)[:200]


def test_cli_compile_of_hostile_file_name(tmp_path):
    name = 'm"""+__import__("os").system("touch PWNED")+""".net'
    spec_file = tmp_path / name
    spec_file.write_text(_spec_text(None), encoding="utf-8")
    out = tmp_path / "out.py"
    run = subprocess.run([sys.executable, "-m", "netevo_dsl.cli", "compile", str(spec_file), "-o", str(out)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "PWNED").exists()


def test_doc_comment_with_quotes_and_nul_compiles_and_is_kept():
    doc = " ''' '''' \"\"\"\" \" \\ \x00 end\""
    source = emit_source(parse(_spec_text(doc)))
    compile(source, "<emitted>", "exec")  # SyntaxError / null-byte ValueError were the defect
    assert "\x00" not in source
    net = exec_source(source)["N"]
    assert net.__doc__ == doc.strip()  # the parser strips the line; the docstring carries the user's text exactly (Python decodes the escapes)


def test_escapers_keep_one_line_and_one_literal():
    hostile = 'a\nb\rc\x00d\u2028e"""f\\'
    assert "\n" not in comment_text(hostile) and "\r" not in comment_text(hostile)
    assert "\u2028" not in comment_text(hostile)
    body = docstring_body(hostile)
    assert eval('"""' + body + '"""') == hostile  # noqa: S307 - the literal is the thing under test


_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_texts.filter(lambda s: "/" not in s and s not in ("", ".", "..")), doc=_texts)
def test_hostile_names_and_docs_never_execute(tmp_path, name, doc):
    """Any file name and any doc text: the emitted file compiles, runs and does nothing else."""
    sentinel = tmp_path / "PWNED"
    payload_doc = doc + '"""+__import__("os").system("touch ' + str(sentinel) + '")+"""'
    payload_name = name + '\n__import__("os").system("touch ' + str(sentinel) + '")#'
    one_line_doc = payload_doc.replace("\n", " ").replace("\r", " ")
    spec = parse(_spec_text(one_line_doc), path=os.path.join(str(tmp_path), payload_name + ".net"))
    source = emit_source(spec)
    _assert_only_definitions(source)
    ns = exec_source(source)
    assert not sentinel.exists()
    assert ns["N"]()(torch.zeros(1, 3)).shape == (1, 2)
    # the parser strips each `///` line; what it kept reaches __doc__ unchanged
    assert ns["N"].__doc__ == spec.networks[0].doc
