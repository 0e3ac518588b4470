"""`netevo mutate` output (issue 14, defects 6, 12, 13): each mutant's .py next to its .net,
summary.json, a used output folder cleared of the earlier mutants, mutants written as found."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import netevo_dsl as ne
from netevo_dsl.cli import main
from netevo_dsl.ir.hashing import canonical_hash

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "specs" / "wann_xor.net"
MLP = ROOT / "specs" / "digits_mlp.net"


def test_each_mutant_has_its_source_and_a_summary_entry(tmp_path, capsys):
    assert main(["mutate", str(MLP), "-n", "3", "--seed", "2", "-o", str(tmp_path), "--validate", "ir"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    valid = [r for r in summary["mutants"] if r["valid"]]
    assert summary["written"] == len(valid) == 3 and summary["mutated"] == "digits_mlp"
    for record in valid:
        spec = ne.load(tmp_path / record["file"])
        # the .py is the compiler's source for the .net written next to it
        assert (tmp_path / record["source"]).read_text() == ne.emit_source(spec, name="digits_mlp")
        assert record["hash"] == canonical_hash(spec)
        assert record["operator"] == record["description"].split()[0]
        assert record["target"] and record["target"] in record["description"]
        assert record["reason"] is None
    for record in summary["mutants"]:
        assert record["valid"] or (record["reason"] and record["file"] is None)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == [str(tmp_path / r["file"]) for r in valid]


def test_a_used_output_folder_keeps_only_this_runs_mutants(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["mutate", str(XOR), "-n", "5", "-o", str(tmp_path), "--validate", "check"]) == 0
    assert main(["mutate", str(MLP), "-n", "2", "-o", str(tmp_path), "--validate", "check"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["digits_mlp_000.net", "digits_mlp_000.py", "digits_mlp_001.net", "digits_mlp_001.py",
                     "notes.txt", "summary.json"]


def test_mutants_are_written_as_they_are_found_and_ctrl_c_keeps_them(tmp_path):
    out = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "netevo_dsl.cli", "mutate", str(XOR), "-n", "100000",
                             "-o", str(out), "--validate", "check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 300
    while len(list(out.glob("*.py"))) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    nets = sorted(out.glob("*.net"))
    assert summary["written"] == len(nets) >= 3
    assert all(n.with_suffix(".py").exists() for n in nets)  # a pair cut short by Ctrl-C is removed
    assert [r["file"] for r in summary["mutants"] if r["valid"]] == [n.name for n in nets]
    assert len(stdout.splitlines()) >= 3
