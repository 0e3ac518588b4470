"""Evolutionary runs: determinism, resume after a kill, clear errors, NSGA-II on a transformer genome."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve import checkpoint as checkpoint_module
from netevo_dsl.evolve.run import Evolution
from netevo_dsl.evolve.settings import resolve_settings

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "specs" / "wann_xor.net"


def _settings(**flags):
    return resolve_settings(ne.load(XOR), overrides={"population": 16, "generations": 5, "seed": 7, **flags})


def _run(out, settings=None, **kw):
    return Evolution(ne.load(XOR), settings or _settings(), out, progress=False, report=False, **kw).execute()


def test_same_seed_gives_identical_log_and_champion(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    log_a = (tmp_path / "a" / "log.jsonl").read_text()
    assert log_a == (tmp_path / "b" / "log.jsonl").read_text()
    assert len(log_a.splitlines()) == 5
    assert (tmp_path / "a" / "champion.net").read_text() == (tmp_path / "b" / "champion.net").read_text()
    assert a.champion == b.champion
    c = _run(tmp_path / "c", _settings(seed=8))
    assert (tmp_path / "c" / "log.jsonl").read_text() != log_a or c.champion != a.champion


def test_crash_between_log_and_checkpoint_then_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    _run(tmp_path / "full")
    real_save = checkpoint_module.save_checkpoint
    calls = {"n": 0}

    def crash_on_third(path, state, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # generation 2's log line is written, its checkpoint is not
            raise KeyboardInterrupt
        real_save(path, state, **kw)

    import netevo_dsl.evolve.run as run_module

    monkeypatch.setattr(run_module, "save_checkpoint", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", checkpoint_seconds=0)  # a checkpoint every generation
    assert len((tmp_path / "killed" / "log.jsonl").read_text().splitlines()) == 3
    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    _run(tmp_path / "killed", resume=True)
    for name in ("log.jsonl", "champion.net"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "full" / name).read_text()


def test_sigkill_at_any_point_then_resume_matches_uninterrupted_run(tmp_path):
    """A real `netevo evolve` process killed with SIGKILL mid-run, then resumed with --resume."""
    args = ["--population", "16", "--generations", "6", "--seed", "3", "--no-progress"]
    cmd = [sys.executable, "-m", "netevo_dsl.cli", "evolve", str(XOR)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cmd + args + ["--out", str(full)], check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(cmd + args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        ckpt = killed / "checkpoint.json"
        if ckpt.exists() and json.loads(ckpt.read_text() or "{}").get("generation", 0) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(cmd + ["--resume", str(killed), "--no-progress"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("log.jsonl", "champion.net", "champion.py"):
        assert (killed / name).read_text() == (full / name).read_text(), name
    assert "Traceback" not in resumed.stderr


def test_corrupt_checkpoint_is_a_clear_error_naming_the_file(tmp_path):
    _run(tmp_path / "r", _settings(generations=2))
    (tmp_path / "r" / "checkpoint.json").write_text('{"schema": "netevo.checkpoint", "version": 1, "gen')
    with pytest.raises(NetevoError, match="checkpoint.json.*corrupt"):
        _run(tmp_path / "r", _settings(generations=2), resume=True)


def test_existing_run_folder_is_not_overwritten_without_asking(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(NetevoError, match="not empty"):
        _run(out)
    assert (out / "keep.txt").read_text() == "mine"


def test_resume_refuses_changed_settings(tmp_path):
    _run(tmp_path / "r", _settings(generations=2))
    with pytest.raises(NetevoError, match="settings differ"):
        _run(tmp_path / "r", _settings(generations=2, seed=99), resume=True)


def test_outputs_and_report(tmp_path):
    result = Evolution(ne.load(XOR), _settings(generations=3), tmp_path / "r", progress=False).execute()
    out = tmp_path / "r"
    assert sorted(p.name for p in (out / "champions").glob("*.net")) == [f"gen_000{i}.net" for i in range(3)]
    assert all(ne.parse(p.read_text()).genomes for p in (out / "pareto").glob("*.net"))
    assert list((out / "pareto").glob("*.net"))
    for png in ("fitness", "pareto", "sensitivity", "topology"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
    report = result.report.read_text()
    assert "plots/fitness.png" in report and "Champion" in report
    line = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert {"generation", "evaluations", "front_size", "objectives", "champion", "failures"} <= set(line)
    assert set(line["objectives"]) == {"mean(reward)", "max(reward)", "connections"}
    assert (out / "config.yaml").exists()
    champion_py = (out / "champion.py").read_text()
    compile(champion_py, "champion.py", "exec")


def test_nsga2_run_on_a_transformer_genome(tmp_path):
    spec = ne.load(ROOT / "specs" / "wann_gpt.net")
    settings = resolve_settings(spec, overrides={"population": 4, "generations": 2})
    result = Evolution(spec, settings, tmp_path / "g", progress=False, report=False).execute()
    lines = (tmp_path / "g" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["ranking"] == "nsga2"
    assert result.champion_scores["mean(reward)"] is not None


def test_cli_evolve_prints_report_location(tmp_path):
    from netevo_dsl.cli import main

    out = tmp_path / "cli"
    code = main(["evolve", str(XOR), "--population", "8", "--generations", "2", "--out", str(out), "--no-progress"])
    assert code == 0 and (out / "report.md").exists()
    assert main(["evolve", str(XOR), "--out", str(out), "--no-progress"]) == 1  # exists, not overwritten
