"""Evolutionary runs under faults (issue 14): damaged checkpoints, disk errors, kills at random
points, resume that cuts every append-only file back, changed specs, bad settings.

The reference in every resume test is the same run done without interruption, in the same
process or by the same command: a resumed run must end with the same files, byte for byte.
"""
import errno
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import netevo_dsl as ne
from netevo_dsl.cli import main
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.checkpoint import load_checkpoint
from netevo_dsl.evolve.run import WANN_FIELDS, Evolution, resume_settings
from netevo_dsl.evolve.settings import resolve_settings

from .faults import WriteFaults, run_contents

ROOT = Path(__file__).resolve().parents[2]
XOR = ROOT / "specs" / "wann_xor.net"
CLI = [sys.executable, "-m", "netevo_dsl.cli"]


def _settings(**flags):
    return resolve_settings(ne.load(XOR), overrides={"population": 8, "generations": 4, "seed": 7, **flags})


def _run(out, settings=None, spec=None, **kw):
    return Evolution(spec or ne.load(XOR), settings or _settings(), out, progress=False, report=False, **kw).execute()


RUN_FLAGS = {"population": 8, "generations": 4, "seed": 7}


def _resume(out, spec=None, **flags):
    """`--resume out` with the run's flags repeated (they matter only to a run killed before it
    saved its settings) and `flags` changed."""
    spec = spec or ne.load(XOR)
    settings = resume_settings(spec, out, {**RUN_FLAGS, **flags})
    return _run(out, settings, spec, resume=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every test compares with."""
    out = tmp_path_factory.mktemp("reference") / "run"
    _run(out)
    return out


def _error(capsys, argv) -> tuple[int, str]:
    """Exit status and stderr of the CLI; a traceback there fails the test."""
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# --- 1, 2: damaged checkpoints --------------------------------------------------------------------

def test_random_bytes_in_the_checkpoint_are_a_clear_error(tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "checkpoint.json").write_bytes(random.Random(0).randbytes(300) + b"\xff\xfe")
    with pytest.raises(NetevoError) as err:
        _resume(out)
    assert err.value.code == "E111" and "checkpoint.json" in err.value.message
    code, text = _error(capsys, ["evolve", str(XOR), "--resume", str(out), "--no-progress"])
    assert code == 1 and "error[E111]" in text and "checkpoint.json" in text


def _edited(data: dict, edit: str) -> dict:
    data = json.loads(json.dumps(data))
    if edit == "no evaluations":
        del data["evaluations"]
    elif edit == "generation as text":
        data["generation"] = "3"
    elif edit == "bad rng":
        data["rng"] = {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1}, "has_uint32": 0, "uinteger": 0}
    elif edit == "negative log_lines":
        data["log_lines"] = -3
    elif edit == "generation 99":
        data["generation"] = 99
    elif edit == "bad population text":
        data["population"][2] = "genome x: wann { inputs a  outputs"
    elif edit == "population of numbers":
        data["population"] = [1, 2]
    elif edit == "more timing lines than the file":
        data["appended"]["timing.jsonl"] = 9
    return data


@pytest.mark.parametrize("edit,code,field", [
    ("no evaluations", "E112", "evaluations"),
    ("generation as text", "E112", "generation"),
    ("bad rng", "E112", "rng"),
    ("negative log_lines", "E112", "log_lines"),
    ("generation 99", "E113", "generation"),
    ("bad population text", "E112", "population[2]"),
    ("population of numbers", "E112", "population"),
    ("more timing lines than the file", "E113", "timing.jsonl"),
])
def test_checkpoint_fields_are_validated_naming_file_and_field(tmp_path, reference, capsys, edit, code, field):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    path = out / "checkpoint.json"
    path.write_text(json.dumps(_edited(json.loads(path.read_text()), edit)))
    log = (out / "log.jsonl").read_bytes()
    status, text = _error(capsys, ["evolve", str(XOR), "--resume", str(out), "--no-progress"])
    assert status == 1 and f"error[{code}]" in text
    assert str(path) in text and field in text
    assert (out / "log.jsonl").read_bytes() == log  # nothing was cut on a refused resume


# --- 3: disk and folder errors ---------------------------------------------------------------------

@pytest.mark.parametrize("code,words", [(errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")])
def test_disk_errors_are_one_line_and_leave_the_checkpoint_intact(tmp_path, monkeypatch, capsys, code, words):
    out = tmp_path / "run"
    _run(out, _settings(generations=2))
    before = (out / "checkpoint.json").read_bytes()
    faults = WriteFaults(out, fail_at=1, code=code).install(monkeypatch)
    status, text = _error(capsys, ["evolve", str(XOR), "--resume", str(out), "--generations", "4", "--no-progress"])
    monkeypatch.undo()
    assert faults.failed and status == 1
    assert "error[E114]" in text and words in text and "is intact" in text and "--resume" in text, text
    assert (out / "checkpoint.json").read_bytes() == before
    load_checkpoint(out / "checkpoint.json", WANN_FIELDS)


def test_out_pointing_at_a_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("mine")
    status, text = _error(capsys, ["evolve", str(XOR), "--out", str(target), "--generations", "1", "--no-progress"])
    assert status == 1 and "error[E115]" in text and "is a file" in text
    assert target.read_text() == "mine"


# --- the fault-injection sweep ---------------------------------------------------------------------

def test_every_write_in_the_run_folder_failing_once_then_resume(tmp_path, monkeypatch, reference):
    """Write number N (each N in turn, ENOSPC or EROFS alternately) fails; the run ends with a clear
    error (never another exception) and a loadable last checkpoint; resuming then gives the
    uninterrupted run's files. Stops at the first N past the run's last write."""
    settings = _settings()
    expected = run_contents(reference)
    spec = ne.load(XOR)
    points = 0
    for n in range(1, 500):
        out = tmp_path / f"n{n}"
        out.mkdir()
        code = (errno.ENOSPC, errno.EROFS)[n % 2]
        faults = WriteFaults(out, fail_at=n, code=code).install(monkeypatch)
        try:
            Evolution(spec, settings, out, progress=False, report=True).execute()
        except NetevoError as e:
            assert e.code == "E114", (n, e)
            assert ("disk is full" if code == errno.ENOSPC else "read-only") in e.message
        finally:
            monkeypatch.undo()
        if faults.failed is None:
            break  # the run has fewer writes than n: every point was tried
        points += 1
        if (out / "checkpoint.json").exists():
            load_checkpoint(out / "checkpoint.json", WANN_FIELDS)  # the last checkpoint is whole
        _resume(out, spec)
        assert run_contents(out) == expected, f"write {n} ({faults.failed})"
        shutil.rmtree(out)
    assert points >= 30
    record = os.environ.get("NETEVO_FAULT_POINTS_FILE")
    if record:  # benchmarks/RESULTS.md quotes this count
        Path(record).write_text(str(points))


# --- 4, 10, 11: what resume does with the folder ---------------------------------------------------

def test_resume_cuts_every_append_only_file_back_to_the_checkpoint(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    state = json.loads((out / "checkpoint.json").read_text())
    # a generation killed after its lines were appended, before its checkpoint
    for name in state["appended"]:
        with open(out / name, "a") as f:
            f.write('{"generation": 4, "id": "x", "reason": "written by a killed generation"}\n{"torn": ')
    _resume(out, generations=4)
    for name, lines in state["appended"].items():
        assert len((out / name).read_text().splitlines()) == lines, name
    assert run_contents(out) == run_contents(reference)


def test_failures_jsonl_is_not_duplicated_by_a_kill_and_resume(tmp_path, monkeypatch):
    """A run with real failures (shared weight 1e20 overflows float32 in `square` nodes), killed
    between its failures and its checkpoint, then resumed: failures.jsonl as in a whole run."""
    spec = ne.load(XOR)
    settings = resolve_settings(spec, overrides={"population": 16, "generations": 6, "seed": 3,
                                                 "weights": [-1e20, 1e20]})
    _run(tmp_path / "full", settings)
    full = (tmp_path / "full" / "failures.jsonl").read_text()
    assert len(full.splitlines()) >= 2  # the premise: this run has failures
    import netevo_dsl.evolve.run as run_module

    real = run_module.save_checkpoint
    calls = []

    def killed_at_fifth(path, state, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(path, state, **kw)

    monkeypatch.setattr(run_module, "save_checkpoint", killed_at_fifth)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", settings, checkpoint_seconds=0)  # a checkpoint every generation
    monkeypatch.undo()
    _run(tmp_path / "killed", settings, resume=True)
    assert (tmp_path / "killed" / "failures.jsonl").read_text() == full
    assert run_contents(tmp_path / "killed") == run_contents(tmp_path / "full")


def test_a_folder_left_before_the_first_checkpoint_resumes_from_scratch(tmp_path, reference):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("population: 8\n")  # torn: killed while writing it
    (out / "log.jsonl").write_text("")
    (out / "champions").mkdir()
    (out / "champions" / "gen_0000.net").write_text("partial")
    _resume(out)
    assert run_contents(out) == run_contents(reference)
    # a folder with other people's files is not taken over
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NetevoError) as err:
        _resume(other)
    assert err.value.code == "E115" and (other / "notes.txt").read_text() == "mine"


def test_a_finished_run_extended_equals_a_run_started_with_more_generations(tmp_path, reference):
    out = tmp_path / "run"
    _run(out, _settings(generations=2))
    _resume(out, generations=4)
    assert run_contents(out) == run_contents(reference)
    with pytest.raises(NetevoError) as err:  # fewer generations than done cannot be resumed
        _resume(out, generations=3)
    assert err.value.code == "E113"


# --- 5: a changed spec ------------------------------------------------------------------------------

def test_resume_refuses_a_changed_spec_naming_what_changed(tmp_path, reference, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    changed = tmp_path / "xor.net"
    changed.write_text(XOR.read_text().replace("add_node(p=0.25)", "add_node(p=0.5)")
                       .replace("weights {-2, -1, -0.5, 0.5, 1, 2}", "weights {-2, 2}"))
    status, text = _error(capsys, ["evolve", str(changed), "--resume", str(out), "--no-progress"])
    assert status == 1 and "error[E116]" in text and "`mutate xor`" in text and "`genome xor`" in text
    # comments and layout are not meaning: the reformatted spec resumes
    reformatted = tmp_path / "same.net"
    reformatted.write_text("// a comment\n" + XOR.read_text().replace("  population 64", "population   64"))
    _resume(out, spec=ne.load(reformatted))


# --- 6: --overwrite ---------------------------------------------------------------------------------

def test_overwrite_leaves_nothing_of_the_earlier_run(tmp_path, reference):
    out = tmp_path / "run"
    _run(out, _settings(generations=6))
    (out / "notes.txt").write_text("mine")
    _run(out, overwrite=True)
    assert run_contents(out) == run_contents(reference)
    assert sorted(p.name for p in (out / "champions").iterdir()) == sorted(
        p.name for p in (reference / "champions").iterdir())
    assert (out / "notes.txt").read_text() == "mine"  # not a file of the run: left alone


# --- 8, 9: settings are validated before the folder exists ------------------------------------------

@pytest.mark.parametrize("text,words", [
    ("weights: abc\n", "weights"),
    ("weights: 5\n", "weights"),
    ("task_params: 5\n", "task_params"),
    ("objectives: abc\n", "objectives"),
    ("tournament: 0\n", "tournament"),
    ("generations: 0\n", "generations"),
    ("population: 1000000000\n", "GiB"),
    ("objectives: [[maximize, nosuchmetric, null]]\n", "nosuchmetric"),
])
def test_bad_settings_fail_before_the_run_folder_is_created(tmp_path, capsys, text, words):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    status, err = _error(capsys, ["evolve", str(XOR), "--config", str(config), "--out", str(out), "--no-progress"])
    assert status == 1 and words in err and not out.exists()


def test_memory_estimate_refuses_with_the_figure(tmp_path):
    from netevo_dsl.evolve.resources import check_memory, estimate_bytes

    spec = ne.load(XOR)
    settings = _settings(population=1000)
    need, per = estimate_bytes(spec.find("xor"), settings)
    assert need == 3 * 1000 * per  # three generations held at once
    check_memory(spec.find("xor"), settings, available=need)  # fits exactly
    with pytest.raises(NetevoError) as err:
        check_memory(spec.find("xor"), settings, available=need - 1)
    assert err.value.code == "E119" and "GiB" in err.value.message


# --- 12: file modes, topology, Ctrl-C ---------------------------------------------------------------

def test_run_files_have_the_usual_mode(reference):
    umask = os.umask(0)
    os.umask(umask)
    for path in [reference / "checkpoint.json", reference / "champion.net", reference / "champion.py",
                 reference / "log.jsonl", *reference.glob("champions/*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_topology_png_is_the_same_whatever_the_hash_seed(tmp_path, reference):
    script = ("import sys; from netevo_dsl.evolve.population import genome_from_text; "
              "from netevo_dsl.evolve.report import plot_topology; from pathlib import Path; "
              "plot_topology(genome_from_text(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))")
    pngs = []
    for seed in ("1", "2"):
        png = tmp_path / f"t{seed}.png"
        subprocess.run([sys.executable, "-c", script, str(reference / "champion.net"), str(png)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]


def test_repeated_ctrl_c_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(CLI + ["evolve", str(XOR), "--population", "8", "--generations", "200",
                                   "--out", str(out), "--no-progress"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoint.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    for _ in range(6):  # the first asks for a stop after the generation; the rest land during the exit
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    load_checkpoint(out / "checkpoint.json", WANN_FIELDS)


# --- real SIGKILLs ----------------------------------------------------------------------------------

def _evolve(args, **kw):
    return subprocess.run(CLI + ["evolve", str(XOR), "--no-progress", *args], capture_output=True, text=True,
                          timeout=600, **kw)


def _kill_when(args, ready, delay=0.0):
    """Start a run, SIGKILL it `delay` s after `ready()` holds (or when it ends); return its status."""
    proc = subprocess.Popen(CLI + ["evolve", str(XOR), "--no-progress", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_run(tmp_path):
    """Kills before the first checkpoint, at random instants of the generations, and during the
    final report; each killed run is resumed (once more if the resume itself is killed)."""
    args = ["--population", "8", "--generations", "5", "--seed", "7"]
    full = tmp_path / "full"
    assert _evolve(args + ["--out", str(full)]).returncode == 0
    expected = run_contents(full)
    rng = random.Random(14)
    started = lambda out: lambda: (out / "config.yaml").exists()  # noqa: E731
    at_generation = lambda out, g: lambda: (out / "log.jsonl").exists() and \
        len((out / "log.jsonl").read_text().splitlines()) >= g  # noqa: E731
    in_report = lambda out: lambda: (out / "plots").exists()  # noqa: E731
    cases = [("before first checkpoint", started, 0.0), ("in the report", in_report, 0.0)]
    cases += [(f"random {k}", lambda out, g=rng.randint(0, 4): at_generation(out, g), rng.uniform(0, 0.3))
              for k in range(3)]
    for name, ready, delay in cases:
        out = tmp_path / name.replace(" ", "_")
        _kill_when(args + ["--out", str(out)], ready(out), delay)
        if out.exists():
            resumed = _evolve(["--resume", str(out)] + args)
        else:  # killed before it made its folder: nothing to resume
            resumed = _evolve(args + ["--out", str(out)])
        assert resumed.returncode == 0, (name, resumed.stderr)
        assert "Traceback" not in resumed.stderr
        assert run_contents(out) == expected, name
        assert (out / "report.md").exists()
