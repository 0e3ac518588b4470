"""Tracker recommendations applied through the function-preserving transforms."""
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.apply import apply_recommendations
from netevo_dsl.runtime.tracker import NeuronTracker

SPEC = """
network n {
  input x: [B, 6]
  h = x |> linear(out=8) |> relu()
  output y = linear(h, out=3)
}
"""


def _model_with_dead_and_duplicate_units():
    spec = ne.parse(SPEC)
    model = ne.compile_module(spec).double()
    with torch.no_grad():
        w, b = model.h[0].weight, model.h[0].bias
        w[2].zero_()
        b[2] = -1.0  # unit 2 is always negative before the ReLU: dead
        w[5] = w[4]
        b[5] = b[4]  # unit 5 duplicates unit 4: redundant with correlation 1
    return spec, model


def test_dead_and_identical_units_are_removed_exactly():
    spec, model = _model_with_dead_and_duplicate_units()
    x = torch.randn(256, 6, dtype=torch.float64)
    with NeuronTracker(model, correlation=True) as tracker, torch.no_grad():
        model(x)
    recs = tracker.recommendations()
    assert any(p["layer"] == "h.1" and p["index"] == 2 and p["reason"] == "dead" for p in recs["prune"])
    assert any({m["keep"], m["remove"]} == {4, 5} for m in recs["merge"])
    result = apply_recommendations(spec, model.state_dict(), recs)
    new = ne.compile_module(result.spec).double()
    new.load_state_dict(result.weights)
    assert new.h[0].weight.shape[0] == 6
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), atol=1e-9, rtol=0)
    assert any("pruned" in a for a in result.actions) and any("merged" in a for a in result.actions)


def test_expand_widens_exactly():
    spec, model = _model_with_dead_and_duplicate_units()
    recs = {"prune": [], "merge": [], "expand": [{"layer": "h.1", "suggested_growth": 3}]}
    result = apply_recommendations(spec, model.state_dict(), recs, rng=0)
    new = ne.compile_module(result.spec).double()
    new.load_state_dict(result.weights)
    x = torch.randn(32, 6, dtype=torch.float64)
    assert new.h[0].weight.shape[0] == 11
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), atol=1e-9, rtol=0)


def test_low_activity_and_merely_correlated_units_are_skipped_by_default():
    spec, model = _model_with_dead_and_duplicate_units()
    recs = {"prune": [{"layer": "h.1", "index": 0, "reason": "low_activity"}],
            "merge": [{"layer": "h.1", "keep": 0, "remove": 1, "slope": 0.5, "intercept": 0.1, "correlation": 0.95}],
            "expand": []}
    result = apply_recommendations(spec, model.state_dict(), recs)
    assert result.spec == spec and len(result.skipped) == 2 and not result.actions


def test_track_cli_trains_reports_and_applies(tmp_path, capsys):
    from pathlib import Path

    from netevo_dsl.cli import main

    spec = Path(__file__).resolve().parents[2] / "specs" / "digits_mlp.net"
    code = main(["track", str(spec), "--data", "digits", "--epochs", "2", "--out", str(tmp_path), "--apply",
                 "--no-progress", "-D", "hidden=32"])
    out = capsys.readouterr().out
    assert code == 0
    assert "test accuracy" in out and "after applying" in out
    for name in ("recommendations.json", "summary.txt", "history.json", "applied.net"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "heatmaps").glob("*.png"))
    ne.check(ne.load(tmp_path / "applied.net"))


def test_track_cli_rejects_mismatched_dataset(tmp_path, capsys):
    from pathlib import Path

    from netevo_dsl.cli import main

    spec = Path(__file__).resolve().parents[2] / "specs" / "digits_mlp.net"
    assert main(["track", str(spec), "--data", "iris", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "features" in capsys.readouterr().err


def test_netevo_track_on_a_genome_spec_is_a_user_error(tmp_path, capsys):
    from pathlib import Path

    from netevo_dsl.cli import main

    spec = Path(__file__).resolve().parents[2] / "specs" / "wann_xor.net"
    assert main(["track", str(spec), "--data", "iris", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "has no network" in err and "netevo analyze" in err and "Traceback" not in err
