import pytest

import netevo_dsl as ne
from netevo_dsl.errors import NetevoError
from netevo_dsl.evolve.settings import PRESETS, load_settings, resolve_settings, save_settings

from .test_run import XOR


def test_block_then_preset_then_config_then_flags(tmp_path):
    spec = ne.load(XOR)
    base = resolve_settings(spec)
    assert (base.population, base.generations, base.selection, base.task) == (64, 30, "wann", "xor")
    quick = resolve_settings(spec, preset="quick")
    assert quick.population == PRESETS["quick"]["population"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("preset: quick\ngenerations: 3\ncull: 0.1\n")
    s = resolve_settings(spec, config=cfg, overrides={"seed": 5})
    assert (s.population, s.generations, s.cull, s.seed) == (PRESETS["quick"]["population"], 3, 0.1, 5)
    save_settings(s, tmp_path / "config.yaml")
    assert load_settings(tmp_path / "config.yaml") == s


@pytest.mark.parametrize("text,match", [
    ("populaton: 3\n", "did you mean `population`?"),
    ("cull: 1.5\n", "cull"),
    ("selection: random\n", "selection"),
    ("- a list\n", "mapping"),
    ("preset: huge\n", "preset"),
    ("population: 1\n", "at least 2"),
])
def test_bad_settings_are_clear_errors(tmp_path, text, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(NetevoError) as err:
        resolve_settings(ne.load(XOR), config=cfg)
    assert match in f"{err.value.message} {err.value.hint}"


def test_paper_preset_is_the_authors_published_settings_per_task():
    """Expected values written out from the WANN authors' configuration files (google/brain-tokyo-workshop,
    WANNRelease/WANN/p/): default_wan.json (popSize 128, maxGen 2048, alg_nReps 4, select_cullRatio 0.2,
    select_eliteRatio 0.2, select_tournSize 8, prob_initEnable 0.5, alg_probMoo 0.8), swingup.json
    (popSize 192, maxGen 1024, alg_nReps 3, select_eliteRatio 0.2, select_tournSize 8) and mnist256.json
    (popSize 960, maxGen 4096, prob_initEnable 0.05, select_tournSize 32)."""
    from netevo_dsl import load
    from netevo_dsl.evolve.settings import resolve_settings

    swingup = resolve_settings(load("specs/wann_swingup.net"), preset="paper")
    assert (swingup.population, swingup.generations, swingup.tournament, swingup.elite, swingup.cull) == (
        192, 1024, 8, 0.2, 0.2)
    assert swingup.task_params["repeats"] == 3 and swingup.task_params["max_steps"] == 1000
    digits = resolve_settings(load("specs/wann_digits.net"), preset="paper")
    assert (digits.population, digits.generations, digits.tournament, digits.init_density) == (960, 4096, 32, 0.05)
    xor = resolve_settings(load("specs/wann_xor.net"), preset="paper")  # no published file: the defaults
    assert (xor.population, xor.generations, xor.tournament, xor.init_density, xor.prob_moo) == (
        128, 2048, 8, 0.5, 0.8)
    # flags still win over the preset
    assert resolve_settings(load("specs/wann_swingup.net"), preset="paper",
                            overrides={"population": 16}).population == 16
