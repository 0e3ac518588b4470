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
