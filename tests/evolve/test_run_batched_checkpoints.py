"""Checkpoints written every `checkpoint_seconds` instead of every generation (issue 18, a lean run
loop): a run killed at any of its checkpoints, or between them, resumes to the uninterrupted run's
files, byte for byte; the reference is the same run done in one go with a checkpoint every generation."""
from pathlib import Path

import pytest

import netevo_dsl as ne
import netevo_dsl.evolve.run as run_module
from netevo_dsl.evolve.checkpoint import load_checkpoint
from netevo_dsl.evolve.run import WANN_FIELDS, Evolution
from netevo_dsl.evolve.settings import resolve_settings

from .faults import run_contents

XOR = Path(__file__).resolve().parents[2] / "specs" / "wann_xor.net"
SETTINGS = {"population": 8, "generations": 6, "seed": 5}


def _run(out, every, resume=False):
    spec = ne.load(XOR)
    settings = resolve_settings(spec, overrides=SETTINGS)
    return Evolution(spec, settings, out, progress=False, report=False, resume=resume,
                     checkpoint_seconds=every).execute()


@pytest.fixture(scope="module")
def every_generation(tmp_path_factory):
    out = tmp_path_factory.mktemp("every") / "run"
    _run(out, 0)
    return out


def test_batched_run_writes_the_same_files_with_two_checkpoints(tmp_path, monkeypatch, every_generation):
    saved = []
    real = run_module.save_checkpoint
    monkeypatch.setattr(run_module, "save_checkpoint", lambda path, state, **kw: (saved.append(state["generation"]),
                                                                                   real(path, state, **kw)))
    _run(tmp_path / "run", float("inf"))
    assert saved == [1, SETTINGS["generations"]]  # after the first generation and the last only
    assert run_contents(tmp_path / "run") == run_contents(every_generation)


@pytest.mark.parametrize("kill_at", [1, 2])
@pytest.mark.parametrize("every", [float("inf"), 0])
def test_killed_at_a_checkpoint_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, every_generation,
                                                                 kill_at, every):
    calls = []
    real = run_module.save_checkpoint

    def killed(path, state, **kw):
        calls.append(state["generation"])
        if len(calls) == kill_at:
            raise KeyboardInterrupt  # after this generation's log lines and champion files, before its checkpoint
        real(path, state, **kw)

    monkeypatch.setattr(run_module, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "run", every)
    monkeypatch.undo()
    if kill_at == 2 and every == float("inf"):
        # the last generation's files are on disk, its checkpoint is not: resume redoes generations 1..5
        assert load_checkpoint(tmp_path / "run" / "checkpoint.json", WANN_FIELDS)["generation"] == 1
        assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == SETTINGS["generations"]
    _run(tmp_path / "run", every, resume=True)
    assert run_contents(tmp_path / "run") == run_contents(every_generation)


def test_stop_when_ends_the_run_at_that_generation_checkpointed(tmp_path, every_generation):
    spec = ne.load(XOR)
    settings = resolve_settings(spec, overrides=SETTINGS)
    seen = []

    def stop_when(generation, champion, scores):
        seen.append((generation, scores["mean(reward)"]))
        return generation == 2

    result = Evolution(spec, settings, tmp_path / "run", progress=False, report=False,
                       stop_when=stop_when).execute()
    assert [g for g, _ in seen] == [0, 1, 2] and result.generations == 3
    assert load_checkpoint(tmp_path / "run" / "checkpoint.json", WANN_FIELDS)["generation"] == 3
    # the same first three generations as the whole run: stopping changes nothing before it
    full = (every_generation / "log.jsonl").read_text().splitlines()
    assert (tmp_path / "run" / "log.jsonl").read_text().splitlines() == full[:3]


def test_wann_initial_population_draws_each_link_as_the_paper_does():
    # WANN (Gaier & Ha 2019): every input (bias included) linked to every output, each link enabled
    # with probability `density`; here against the same draws made one by one
    import numpy as np

    from netevo_dsl.evolve.population import wann_initial_population

    seed = ne.load(Path(__file__).resolve().parents[2] / "specs" / "wann_digits.net").find("digits")
    population = wann_initial_population(seed, 5, np.random.default_rng(3), 0.3)
    rng = np.random.default_rng(3)
    pairs = [(i, o.name) for o in seed.outputs for i in seed.inputs]
    for genome in population:
        draws = rng.random(len(pairs)) < 0.3
        assert [(e.src, e.dst, e.enabled) for e in genome.edges] == [(s, d, bool(x)) for (s, d), x in zip(pairs, draws)]
        assert genome.nodes == () and all(e.weight is None for e in genome.edges)


def test_a_resumed_genome_that_is_not_valid_is_refused_naming_the_field(tmp_path, every_generation):
    # children of resumed genomes are not re-checked (WANN operators keep validity), so a checkpoint's
    # genomes are validated as they are read: here one with a cycle h1 -> h2 -> h1
    import json
    import shutil

    from netevo_dsl.errors import NetevoError

    out = tmp_path / "run"
    shutil.copytree(every_generation, out)
    state = json.loads((out / "checkpoint.json").read_text())
    state["generation"] = 3
    state["log_lines"] = 3
    state["appended"] = {**state["appended"], "log.jsonl": 3, "timing.jsonl": 3}
    state["population"][0] = ("genome xor: wann {\n  inputs a, b, bias\n  outputs y: linear\n"
                              "  node h1: tanh\n  node h2: tanh\n  edge a -> h1\n  edge h1 -> h2\n"
                              "  edge h2 -> h1\n  edge h2 -> y\n}\n")
    (out / "checkpoint.json").write_text(json.dumps(state))
    with pytest.raises(NetevoError) as err:
        _run(out, 0, resume=True)
    assert err.value.code == "E112" and "population[0]" in err.value.message
    assert "not a valid genome" in err.value.message and "cycle" in err.value.message.lower()
