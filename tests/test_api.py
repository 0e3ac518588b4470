"""The public Python surface (issue 15): `import netevo_dsl as ne` gives every name a user needs, without
deep module paths, and importing it stays free of torch until a torch-backed name is used."""
import subprocess
import sys
from pathlib import Path

import pytest

import netevo_dsl as ne

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ne.__all__)
def test_every_public_name_imports(name):
    value = getattr(ne, name)
    assert value is not None
    exec(f"from netevo_dsl import {name}", {})


def test_the_names_are_the_objects_of_their_modules():
    from netevo_dsl.evolve import mutations, transforms
    from netevo_dsl.runtime import evaluate, tracker

    assert ne.mutate is mutations.mutate and ne.mutants is mutations.mutants
    assert ne.evaluate is evaluate.evaluate and callable(ne.evaluate)  # the function, not the module
    assert ne.NeuronTracker is tracker.NeuronTracker
    assert ne.transforms is transforms and callable(ne.transforms.widen)
    assert callable(ne.evolve.run_evolution)
    with pytest.raises(AttributeError):
        ne.no_such_name


def test_import_and_check_stay_free_of_torch():
    code = ("import sys, netevo_dsl as ne; ne.check(ne.load('specs/mlp.net')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_evaluate_and_run_evolution_work_from_the_top_level(tmp_path):
    spec = ne.load(ROOT / "specs" / "wann_xor.net")
    scores = ne.evaluate([spec.genomes[0]], ne.make_task(("xor", {"outputs": 1})), weights=(-1.0, 1.0))
    assert tuple(scores.per_weight.shape) == (1, 2)
    result = ne.evolve.run_evolution(ROOT / "specs" / "wann_xor.net", generations=2, population=8,
                                     out=tmp_path / "run")
    assert result.generations == 2 and (tmp_path / "run" / "report.md").exists()
    champion = ne.parse((tmp_path / "run" / "champion.net").read_text())
    assert champion.genomes[0] == result.champion
