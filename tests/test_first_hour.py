"""What a first user meets in the first hour (issue 15): flags in either place, help on every flag,
`netevo ops` in .net syntax, -D errors at the flag, the `//` cause named, reproducible tracking, plots
that stay readable."""
import argparse
import json
import re
from pathlib import Path

import pytest

import netevo_dsl as ne
from netevo_dsl.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_error_format_json_after_the_subcommand(tmp_path, capsys):
    bad = tmp_path / "bad.net"
    bad.write_text("network n {\n  input x: [B, 4]\n  output y = linear(x, out=nothere)\n}\n")
    assert main(["check", str(bad), "--error-format", "json"]) == 1
    after = json.loads(capsys.readouterr().out)
    assert main(["--error-format", "json", "check", str(bad)]) == 1
    before = json.loads(capsys.readouterr().out)
    assert after == before and after[0]["code"] == "E020"


def _subcommands():
    return build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_of_every_command_has_help(command):
    parser = _subcommands()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"netevo {command} {action.option_strings or action.dest}"


def test_evolve_help_lists_what_the_presets_contain():
    from netevo_dsl.evolve.settings import PRESETS

    text = _subcommands()["evolve"].format_help()
    for name, values in PRESETS.items():
        assert name in text
        for key, value in values.items():
            assert f"{key} {value}" in re.sub(r"\s+", " ", text)


def test_ops_prints_defaults_a_spec_accepts(capsys):
    """Every default `netevo ops` prints reads back, in the .net grammar, as the registry's default
    (`bias=True` was E020 `unknown name True` when pasted into a spec)."""
    from netevo_dsl.evolve.settings import _literal
    from netevo_dsl.ops.registry import all_ops

    assert main(["ops"]) == 0
    printed = {line.split("(")[0]: line.split("  - ")[0] for line in capsys.readouterr().out.splitlines()}
    assert printed["linear"] == "linear(out, bias=true, mask=?)"
    checked = 0
    for op in all_ops():
        for p in op.params:
            if p.required or p.default is None:
                continue
            value = re.search(rf"\b{p.name}=(\[[^\]]*\]|[^,)]+)", printed[op.name]).group(1)
            call = ne.parse(f"evolve _ {{ task probe(v={value}) }}").items[0].settings[0].value
            expected = tuple(p.default) if isinstance(p.default, (list, tuple)) else p.default
            assert _literal(call.kwargs[0].value) == expected, (op.name, p.name, value)
            checked += 1
    assert checked > 20


def test_bad_define_points_at_the_flag(capsys):
    assert main(["check", str(ROOT / "specs" / "mlp.net"), "-D", "hidden=2.5", "--error-format", "json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)
    assert error["span"] is None and error["message"].startswith("-D hidden=2.5:")
    assert "declared `int`" in error["hint"]


def test_floor_division_names_the_comment():
    text = "network n {\n  input x: [B, 8]\n  y = linear(x, out=7 // 2)\n  output o = y\n}\n"
    with pytest.raises(ne.NetevoError) as info:
        ne.parse(text)
    assert "`//` starts a comment" in info.value.hint and "line 3" in info.value.hint


def test_a_trailing_comment_after_a_full_expression_keeps_the_ordinary_hint():
    with pytest.raises(ne.NetevoError) as info:
        ne.parse("network n {\n  input x: [B, 8]   // pixels\n  output o = linear(x, out=2) ]\n}\n")
    assert "comment" not in (info.value.hint or "")


def test_track_is_reproducible_with_the_default_seed(tmp_path, capsys):
    """The model used to be built before the seed was set: the same command gave 0.9472, 0.9500, 0.9444.
    Two runs in one process (the global torch RNG moved on in between) must agree exactly."""
    runs = []
    for k in range(2):
        out = tmp_path / f"t{k}"
        assert main(["track", str(ROOT / "specs" / "digits_mlp.net"), "--data", "digits", "--epochs", "1",
                     "--out", str(out), "--no-progress", "-D", "hidden=16"]) == 0
        printed = capsys.readouterr().out
        runs.append((re.search(r"test accuracy (\S+),", printed).group(1),
                     (out / "recommendations.json").read_text(), (out / "history.json").read_text()))
    assert runs[0] == runs[1]


def test_kernel_rules_select_convolutions_unless_a_pool_is_named():
    """lenet5's `kernel("c*")` also hit the average pools (stride 2 -> 3 turned 14x14 into 9x9)."""
    from netevo_dsl.evolve.mutations import mutate, mutants
    from netevo_dsl.passes.elaborate import elaborate

    spec = ne.load(ROOT / "specs" / "lenet5.net")
    described = [m.description for m in mutants(spec, 12, 0, strict=False)]
    assert any("kernel c1.0" in d or "kernel c3.0" in d for d in described)
    assert not any(re.search(r"kernel c\d\.2", d) for d in described), described
    pool, text = mutate(spec, 0, rules="kernel(\"c1.2\", choices={3})")
    assert text.startswith("kernel c1.2") and elaborate(pool).node("c1.2").param_dict["k"] == 3


@pytest.mark.parametrize("init", ["seed", "wann"])
def test_init_seed_starts_from_the_spec_genome_and_init_wann_from_the_papers_population(init, tmp_path):
    """WANN (Gaier & Ha 2019, sec. 3.1): the initial population is fully connected input-output candidate links,
    each enabled with a probability, and no hidden nodes. `init seed` starts from the spec's genome."""
    import numpy as np

    from netevo_dsl.evolve.run import Evolution
    from netevo_dsl.evolve.settings import resolve_settings

    spec = ne.load(ROOT / "specs" / "wann_xor.net")
    seed = spec.genomes[0]
    settings = resolve_settings(spec, None, None, None, {"population": 12, "init": init})
    population = Evolution(spec, settings, tmp_path / "run").initial_population(np.random.default_rng(0))
    assert len(population) == 12
    if init == "seed":
        assert population[0] == seed
        seed_edges = {(e.src, e.dst) for e in seed.edges}
        assert all(seed_edges <= {(e.src, e.dst) for e in g.edges} for g in population)  # mutants keep every gene
        assert len({repr(g) for g in population}) > 1
    else:
        links = {(i, o.name) for i in seed.inputs for o in seed.outputs}
        assert all(not g.nodes and {(e.src, e.dst) for e in g.edges} == links for g in population)


def test_init_must_be_seed_or_wann():
    text = (ROOT / "specs" / "wann_xor.net").read_text().replace("selection wann", "selection wann\n  init random")
    with pytest.raises(ne.NetevoError) as info:
        ne.check(ne.parse(text))
    assert "init is `seed`" in str(info.value) or any("init is `seed`" in str(e) for e in getattr(info.value, "errors", []))


def test_the_no_evolve_block_hint_names_specs_that_check(capsys):
    """`netevo evolve specs/mlp.net` suggested a block that was then E070; the hint must not mislead."""
    assert main(["evolve", str(ROOT / "specs" / "mlp.net"), "--error-format", "json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)
    named = re.findall(r"specs/\w+\.net", error["hint"])
    assert named
    for spec in named:
        ne.check(ne.load(ROOT / spec))


# --- plots and reports -------------------------------------------------------------------------------


def test_robust_limits_keep_an_outlier_from_flattening_the_view():
    """Tukey's fences (Q1 - 3 IQR, Q3 + 3 IQR): the -15,000 of the bug report stays off the axis, and says so."""
    from netevo_dsl.evolve.report import robust_limits

    values = [-3.0, -2.8, -2.6, -2.5, -2.4, -2.3, -2.2, -15000.0]
    low, high, note = robust_limits(values)
    assert -4 < low < -3.0 and -2.2 < high < -1.9
    assert "lowest -1.5e+04" in note
    assert robust_limits([-3.0, -2.0])[2] == ""


def test_fitness_limits_follow_the_max_and_median_lines():
    """The bug report's run: a noisy min line (down to -15,000) flattened the mean-reward panel to a line."""
    from netevo_dsl.evolve.report import _fitness_limits

    series = {"max": [-3.0, -2.5, -2.0, -1.6], "median": [-3.8, -3.0, -2.4, -1.8],
              "min": [-5.0, -15000.0, -9.0, -4.5]}
    low, high, note = _fitness_limits(series)
    assert -6.5 < low < -3.8 and -1.6 < high < -1.0  # at most one span of the max/median lines below them
    assert note.startswith("2 value(s) off the axis") and "-1.5e+04" in note


def test_topology_layout_is_layered_hides_unused_inputs_and_is_deterministic(tmp_path):
    from netevo_dsl.evolve.report import layered_positions, plot_topology

    genome = ne.load(ROOT / "specs" / "wann_digits.net").genomes[0]
    pos, unused = layered_positions(genome)
    used = {e.src for e in genome.edges if e.enabled}
    assert set(unused) == set(genome.inputs) - used and len(unused) == 55
    assert {n for n, (x, _) in pos.items() if x == 0} == used
    last = max(x for x, _ in pos.values())
    assert [n for n, (x, _) in sorted(pos.items(), key=lambda kv: -kv[1][1]) if x == last] == \
        [o.name for o in genome.outputs]  # outputs in declared order, top to bottom
    assert len(set(pos.values())) == len(pos), "no two nodes on one spot"
    plot_topology(genome, tmp_path / "a.png")
    plot_topology(genome, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_analyze_reports_its_phases():
    from netevo_dsl.runtime import analysis

    genome = ne.load(ROOT / "specs" / "wann_xor.net").genomes[0]
    phases = []
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        analysis.analyze(genome, ("xor", {"outputs": 1}), out, device="cpu", progress=phases.append)
        summary = (Path(out) / "summary.md").read_text()
    assert phases == ["weight sweep", "ensemble", "ablation", "plots"]
    assert summary.count("*Weight sensitivity.*") == 1 and "*Ablation.*" in summary


def test_evolve_writes_tensorboard_scalars_equal_to_its_log(tmp_path, capsys):
    """Read back with TensorBoard's own reader: one scalar per generation, the values of log.jsonl."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["evolve", str(ROOT / "specs" / "wann_xor.net"), "--generations", "3", "--population", "8",
                 "--out", str(out), "--no-progress", "--tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert "champion after 3 generations" in printed and f"report: {out / 'report.md'}" in printed
    report = (out / "report.md").read_text()
    assert "Made by `netevo evolve" in report and report.count("*Fitness per generation.*") == 1
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    series = events.Scalars("mean(reward)/max")
    assert [s.step for s in series] == [0, 1, 2]
    assert [s.value for s in series] == pytest.approx([l["objectives"]["mean(reward)"]["max"] for l in log], rel=1e-6)


def test_tracker_heatmap_has_one_row_per_layer_and_a_labelled_bar(tmp_path):
    """Rows are layers in order, each row that layer's firing rates as the tracker reports them."""
    import numpy as np
    import torch

    from netevo_dsl.runtime.report import KEY_LABELS, layer_grid, save_heatmaps

    spec = ne.load(ROOT / "specs" / "digits_mlp.net")
    torch.manual_seed(0)
    model = ne.compile_module(spec, overrides={"hidden": 12})
    tracker = ne.NeuronTracker(model)
    with tracker:
        model(torch.randn(64, 64))
    grid, names = layer_grid(tracker)
    layers = [n for n in tracker.layer_names if tracker.layer_info(n)["samples"]]
    assert grid.shape == (len(layers), max(tracker.layer_info(n)["width"] for n in layers))
    for k, name in enumerate(layers):
        rate = tracker.layer_stats(name)["firing_rate"].numpy()
        np.testing.assert_array_equal(grid[k, : rate.size], rate)
        assert np.isnan(grid[k, rate.size:]).all() and names[k].startswith(name)
    save_heatmaps(tracker, tmp_path)
    assert (tmp_path / "layers.png").stat().st_size > 1000 and "firing rate" in KEY_LABELS["firing_rate"]


def test_track_tensorboard_scalars_are_the_history(tmp_path):
    """training_rows + write_scalars, read back with TensorBoard's reader: loss and accuracies per epoch."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from netevo_dsl.runtime.history import TrainingHistory
    from netevo_dsl.runtime.tensorboard import training_rows, write_scalars

    history = TrainingHistory()
    for epoch, (loss, acc, test) in enumerate([(2.0, 0.3, 0.25), (1.0, 0.6, 0.5), (0.5, 0.9, 0.8)]):
        history.record(epoch, loss=loss, accuracy=acc, test_accuracy=test)
    events = EventAccumulator(str(write_scalars(tmp_path / "tb", training_rows(history))))
    events.Reload()
    assert [s.value for s in events.Scalars("train/loss")] == [2.0, 1.0, 0.5]
    assert [s.value for s in events.Scalars("test/accuracy")] == pytest.approx([0.25, 0.5, 0.8])
    assert [s.step for s in events.Scalars("train/accuracy")] == [0, 1, 2]
