"""`netevo check` and `netevo fmt`: exit codes, diagnostics, JSON errors, safety of fmt, no torch."""
import json
import os
import subprocess
import sys

import pytest

from netevo_dsl.cli import main

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
RESNET = os.path.join(ROOT, "specs", "resnet18.net")
BAD = "network n {\n  input x: [B, 3]\n  output y = lienar(x, out=3)\n}\n"


@pytest.fixture
def bad_spec(tmp_path):
    path = tmp_path / "bad.net"
    path.write_text(BAD)
    return str(path)


def test_bad_spec_exits_1_without_a_traceback(bad_spec, capsys):
    assert main(["check", bad_spec]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith(f"{bad_spec}:3:14: error[E022]: unknown op `lienar`")
    assert "help: did you mean `linear`?" in err


def test_json_errors(bad_spec, capsys):
    assert main(["--error-format", "json", "check", bad_spec]) == 1
    (error,) = json.loads(capsys.readouterr().out)
    assert error["code"] == "E022"
    assert error["span"] == {"file": bad_spec, "line": 3, "col": 14, "end_line": 3, "end_col": 30}
    assert error["hint"] == "did you mean `linear`?"
    assert error["message"] == "unknown op `lienar`" and error["notes"] == []


def test_json_lists_every_error(tmp_path, capsys):
    path = tmp_path / "two.net"
    path.write_text("param a int = 1\nparam b int = 2\n")
    assert main(["--error-format", "json", "fmt", str(path)]) == 1
    errors = json.loads(capsys.readouterr().out)
    assert [(e["code"], e["span"]["line"]) for e in errors] == [("E001", 1), ("E001", 2)]


def test_usage_errors_exit_1(capsys):
    assert main(["check", RESNET, "-D", "classes"]) == 1
    assert "error[E110]: bad -D `classes`" in capsys.readouterr().err
    assert main(["check", "no/such/file.net"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_define_overrides_a_param(capsys):
    assert main(["check", "--shapes", RESNET, "-D", "classes=10"]) == 0
    assert "[B, 10]" in capsys.readouterr().out


def test_fmt_check_exits_1_on_an_unformatted_file(tmp_path, capsys):
    path = tmp_path / "ugly.net"
    ugly = "param   a: int=1\nnetwork n { input x: [B,3]\n output y=relu(x) }\n"
    path.write_text(ugly)
    assert main(["fmt", "--check", str(path)]) == 1
    assert capsys.readouterr().out == f"would reformat {path}\n"
    assert path.read_text() == ugly  # --check writes nothing
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == "param a: int = 1\n\nnetwork n {\n  input x: [B, 3]\n  output y = relu(x)\n}\n"
    assert main(["fmt", "--check", str(path)]) == 0


def test_fmt_refuses_to_write_when_the_reparse_differs(tmp_path, monkeypatch, capsys):
    import netevo_dsl.ir.printer as printer

    path = tmp_path / "a.net"
    original = "param a: int = 1\n"
    path.write_text(original + "\n")  # not formatted, so fmt would write
    monkeypatch.setattr(printer, "format_spec", lambda spec: "param a: int = 2\n")
    assert main(["fmt", str(path)]) == 1
    assert "error[E002]" in capsys.readouterr().err
    assert path.read_text() == original + "\n"


def test_check_shapes_prints_every_op(capsys):
    assert main(["check", "--shapes", RESNET]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "network resnet18"
    assert out[1].split() == ["input", "img", "[B,", "3,", "H,", "W]"]
    rows = {line.split()[1]: line for line in out[2:-1]}
    assert rows["conv1"].split()[0] == "conv2d" and "[B, 64, H / 2, W / 2]" in rows["conv1"]
    assert "[B, 128, H / 8, W / 8]" in rows["layer2.0.downsample.0"]
    assert "[B, 512, 1, 1]" in rows["avgpool"] and "[B, 1000]" in rows["fc"]
    assert out[-1] == f"{RESNET}: ok (1 network(s), 0 genome(s))"


def test_check_and_fmt_never_import_torch(bad_spec):
    # One fresh interpreter for the whole check: a good spec, a formatted one, and a bad one (exit 1, no traceback).
    code = ("import sys; from netevo_dsl.cli import main; "
            "assert main(['check', '-q', 'specs/resnet18.net', 'specs/wann_gpt.net', 'specs/sparse_mlp.net']) == 0; "
            "assert main(['fmt', '--check', 'specs/resnet18.net']) == 0; "
            f"assert main(['check', {bad_spec!r}]) == 1; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "error[E022]" in proc.stderr and "Traceback" not in proc.stderr
