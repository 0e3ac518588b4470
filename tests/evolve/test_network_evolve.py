"""Network search (`netevo evolve` on a network): check, selection, determinism, resume after SIGKILL,
Ray == local, the test split unread until the end, and every shipped network spec via the CLI."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

import netevo_dsl as ne
from netevo_dsl.cli import main
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.network_run import NetworkEvolution
from netevo_dsl.evolve.network_selection import aging_parent, hypervolume_2d
from netevo_dsl.evolve.network_settings import resolve_network_settings
from netevo_dsl.ir import nodes as ir

SPECS = Path(__file__).resolve().parents[2] / "specs"
TINY = """version 1

network iris_mlp {
  input x: [B, 4]
  h = x |> linear(out=8) |> relu()
  output logits = linear(h, out=3)
}

mutate iris_mlp {
  width(h, p=0.5, choices={4, 8, 16})
  activation(p=0.3, choices={relu, tanh})
}

evolve iris_mlp {
  population 4
  generations 3
  seed 1
  selection SELECTION
  inherit INHERIT
  objective maximize accuracy
  objective minimize params
  train {
    task iris
    steps 4
    batch_size 16
    optimizer Adam(lr=0.01)
    scheduler CosineAnnealingLR(T_max=4)
  }
}
"""


def _tiny(tmp_path, selection="nsga2", inherit="on") -> Path:
    path = tmp_path / f"tiny_{selection}_{inherit}.net"
    path.write_text(TINY.replace("SELECTION", selection).replace("INHERIT", inherit))
    return path


def _run(spec_path, out, **kw):
    spec = ne.load(spec_path)
    overrides = kw.pop("overrides", None)
    settings = resolve_network_settings(spec, overrides=overrides)
    run = NetworkEvolution(spec, settings, out, progress=False, **kw)
    return run, run.execute()


# --- language ------------------------------------------------------------------------------------


def test_check_reads_the_train_part_and_the_formatter_keeps_it(tmp_path):
    path = _tiny(tmp_path, "aging", "off")
    spec = ne.load(path)
    ne.check(spec)
    s = resolve_network_settings(spec)
    assert (s.selection, s.inherit, s.task, s.steps, s.epochs, s.batch_size) == ("aging", False, "iris", 4, None, 16)
    assert (s.optimizer, s.optimizer_args, s.scheduler, s.scheduler_args) == (
        "Adam", (("lr", 0.01),), "CosineAnnealingLR", (("T_max", 4),))
    from netevo_dsl.ir.printer import format_spec

    assert format_spec(spec) == path.read_text()


def test_check_of_a_network_evolve_block_never_imports_torch(tmp_path):
    code = ("import sys; from netevo_dsl import load, check; check(load(sys.argv[1])); "
            "assert 'torch' not in sys.modules, 'check imported torch'")
    subprocess.run([sys.executable, "-c", code, str(SPECS / "digits_cnn.net")], check=True, timeout=120)


@pytest.mark.parametrize("setting, code", [
    ("selection wann", "E135"), ("inherit maybe", "E135"), ("population 1", "E135"),
    ("objective minimize connections", "E079"), ("weights {1, 2}", "E074"),
])
def test_check_rejects_bad_settings_with_their_codes(tmp_path, setting, code):
    path = tmp_path / "bad.net"
    path.write_text(TINY.replace("SELECTION", "nsga2").replace("INHERIT", "on")
                    .replace("  population 4\n", f"  population 4\n  {setting}\n"))
    if setting.startswith("population"):
        path.write_text(path.read_text().replace("  population 4\n", "", 1))
    with pytest.raises(NetevoError) as info:
        ne.check(ne.load(path))
    from netevo_dsl.errors import flatten

    assert code in [e.code for e in flatten(info.value)]


# --- selection -------------------------------------------------------------------------------------


@given(st.lists(st.floats(0, 1), min_size=2, max_size=30), st.integers(1, 10), st.integers(0, 2 ** 32 - 1))
@hsettings(max_examples=60, deadline=None)
def test_aging_parent_is_the_best_of_a_sample_without_replacement(fitness, sample, seed):
    """Real et al. (2019), Algorithm 1: sample S members uniformly, the best of the sample is the parent."""
    fitness = np.array(fitness)
    parent = aging_parent(fitness, sample, np.random.default_rng(seed))
    drawn = np.random.default_rng(seed).choice(len(fitness), size=min(sample, len(fitness)), replace=False)
    assert len(set(drawn.tolist())) == len(drawn)  # without replacement
    assert parent in drawn.tolist() and fitness[parent] == fitness[drawn].max()


@given(st.lists(st.tuples(st.floats(0.01, 1), st.floats(1, 999)), min_size=1, max_size=12))
@hsettings(max_examples=60, deadline=None)
def test_hypervolume_equals_moocores(points):
    """moocore's exact hypervolume (minimisation; the package DEAP's benchmarks.tools.hypervolume calls)
    as the outside reference."""
    moocore = pytest.importorskip("moocore")

    acc, params = zip(*points)
    ref = 1000.0
    expected = moocore.hypervolume([[-a, p] for a, p in points], ref=[0.0, ref]) / ref
    assert hypervolume_2d(acc, params, ref) == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- runs --------------------------------------------------------------------------------------------


def _files(out: Path) -> dict:
    keep = [out / "log.jsonl", out / "test.json"] + sorted((out / "front").glob("*.net")) + \
        sorted((out / "generations").glob("*/*.net"))
    return {str(p.relative_to(out)): p.read_text() for p in keep}


@pytest.mark.parametrize("selection, inherit", [("nsga2", "on"), ("aging", "on"), ("random", "on"), ("nsga2", "off")])
def test_same_seed_gives_an_identical_run(tmp_path, selection, inherit):
    path = _tiny(tmp_path, selection, inherit)
    _run(path, tmp_path / "a")
    _, b = _run(path, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    lines = [json.loads(l) for l in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [l["trained"] for l in lines] == [4, 8, 12]
    assert all(lines[i + 1]["hypervolume"] >= lines[i]["hypervolume"] for i in range(len(lines) - 1))
    if selection == "random":
        assert all(r["parent"] is None for l in lines for r in l["new"])
    else:
        assert all(r["parent"] is not None for l in lines[1:] for r in l["new"])
    for k in range(len(b.front)):  # the final champions: spec, source and weights
        for ext in ("net", "py", "pt"):
            assert (tmp_path / "b" / "front" / f"champion_{k:03d}.{ext}").exists()
    assert (tmp_path / "b" / "front.png").exists() and (tmp_path / "b" / "hypervolume.png").exists()


def test_the_test_split_is_not_read_before_the_final_evaluation(tmp_path):
    from netevo_dsl.runtime.datasets import TestSplitLocked

    run, result = _run(_tiny(tmp_path, inherit="off"), tmp_path / "locked", final_test=False, report=False)
    assert result.test == [] and not (tmp_path / "locked" / "test.json").exists()
    with pytest.raises(TestSplitLocked):  # nothing unlocked it during the three generations
        run.data.test_split()
    run, result = _run(_tiny(tmp_path, inherit="off"), tmp_path / "full", report=False)
    assert [t["id"] for t in result.test] == [r["id"] for r in result.front]
    x, y = run.data.test_split()  # unlocked by the final evaluation, and scored there
    assert len(y) > 0 and all(0.0 <= t["test_accuracy"] <= 1.0 for t in result.test)


def test_sigkill_at_a_random_point_then_resume_gives_the_identical_run(tmp_path):
    path = _tiny(tmp_path)
    path.write_text(path.read_text().replace("generations 3", "generations 5"))
    cmd = [sys.executable, "-m", "netevo_dsl.cli", "evolve", str(path), "--no-progress"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cmd + ["--out", str(full)], check=True, capture_output=True, timeout=600)
    rng = random.Random(os.getpid())
    proc = subprocess.Popen(cmd + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, target = time.time() + 300, rng.choice([1, 2, 3])
    while time.time() < deadline and proc.poll() is None:
        ckpt = killed / "checkpoint.json"
        if ckpt.exists() and json.loads(ckpt.read_text() or "{}").get("generation", 0) >= target:
            break
        time.sleep(0.02)
    time.sleep(rng.random() * 0.5)  # somewhere inside the next generation
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before the kill: nothing was resumed"
    subprocess.run(cmd + ["--resume", str(killed)], check=True, capture_output=True, timeout=600)
    assert _files(killed) == _files(full)
    for k in range(len(list((full / "front").glob("*.pt")))):
        a = (full / "front" / f"champion_{k:03d}.pt").read_bytes()
        assert a == (killed / "front" / f"champion_{k:03d}.pt").read_bytes()


def test_ray_with_two_workers_equals_local(tmp_path):
    if os.environ.get("NETEVO_REQUIRE_RAY"):
        import ray
    else:
        ray = pytest.importorskip("ray")
    from netevo_dsl.evolve.ray_backend import ensure_ray

    ensure_ray(num_cpus=2)
    try:
        path = _tiny(tmp_path)
        _run(path, tmp_path / "local", report=False)
        _run(path, tmp_path / "ray", report=False, overrides={"backend": "ray"})
    finally:
        ray.shutdown()
    local = (tmp_path / "local" / "log.jsonl").read_text()
    assert local == (tmp_path / "ray" / "log.jsonl").read_text()
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")


def _network_specs_with_evolve():
    out = []
    for path in sorted(SPECS.glob("*.net")):
        spec = ne.load(path)
        if any(spec.find(b.target, (ir.Network,)) is not None for b in spec.of_kind(ir.EvolveBlock)):
            out.append(path)
    return out


@pytest.mark.parametrize("path", _network_specs_with_evolve(), ids=lambda p: p.stem)
def test_every_shipped_network_spec_with_an_evolve_block_runs(tmp_path, path, capsys):
    assert main(["evolve", str(path), "--population", "2", "--generations", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "best validation accuracy" in printed and "params" in printed and "report:" in printed
    assert (tmp_path / "run" / "report.md").exists()


def test_the_showcase_specs_have_evolve_blocks():
    names = {p.stem for p in _network_specs_with_evolve()}
    assert {"digits_cnn", "digits_mlp"} <= names


def test_every_network_objective_is_measured_and_logged(tmp_path):
    path = _tiny(tmp_path, inherit="off")
    text = path.read_text().replace("  objective minimize params\n", "  objective minimize loss\n  objective minimize "
                                    "params\n  objective minimize flops\n  objective minimize latency\n  objective "
                                    "minimize density\n")
    path.write_text(text.replace("generations 3", "generations 1"))
    run, result = _run(path, tmp_path / "run", report=False)
    from netevo_dsl.passes.measures import flops, param_count
    from netevo_dsl.runtime.train_networks import network_graph

    for r in result.front:
        graph = network_graph(ne.parse(r["text"]), "iris_mlp")
        m = r["metrics"]
        assert m["params"] == param_count(graph) and m["flops"] == flops(graph) and m["density"] == 1.0
        assert m["latency"] > 0 and m["loss"] > 0
    # the front holds exactly the non-dominated candidates of all five objectives
    line = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert {f["id"] for f in line["front"]} <= {n["id"] for n in line["new"]}


def test_growth_rules_in_the_mutate_block_grow_trained_parents(tmp_path):
    """The tracker's advice as rules (issue 12 item 4): a child grown from its trained parent, then trained."""
    path = _tiny(tmp_path)
    path.write_text(path.read_text().replace("  activation(p=0.3, choices={relu, tanh})\n",
                                             "  prune_dead(h, p=0.8, rate=0.5)\n"))
    _, result = _run(path, tmp_path / "run", report=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    grown = [r for l in lines[1:] for r in l["new"] if r["how"].startswith("prune_dead")]
    assert grown, "no child came from the growth rule"
    by_id = {r["id"]: r for l in lines for r in l["new"]}
    for r in grown:  # pruning removes units: fewer parameters than the parent, and the child was trained
        assert r["params"] < by_id[r["parent"]]["params"] and r["accuracy"] is not None
