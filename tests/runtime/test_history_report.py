"""Training history files and reports."""
import json

import pytest
import torch
from torch import nn

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime.history import TrainingHistory
from netevo_dsl.runtime.report import (
    format_table,
    layer_summary,
    neuron_ranking,
    save_heatmaps,
    text_report,
    write_report,
)
from netevo_dsl.runtime.tracker import NeuronTracker


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a busy 2-core machine, OpenMP hand-offs between two
    threads cost 10x the arithmetic, so run single-threaded and restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tracked_model(correlation=True, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.Tanh())
    with torch.no_grad():
        model[0].bias[3] = -50.0  # a dead unit
    tracker = NeuronTracker(model, correlation=correlation)
    with tracker, torch.no_grad():
        for _ in range(3):
            model(torch.randn(40, 5))
    return model, tracker


def history_of_three_epochs():
    history, means = TrainingHistory({"run": "test"}), []
    for epoch in range(3):
        _, tracker = tracked_model(seed=epoch)
        history.record(epoch, tracker, loss=1.0 / (epoch + 1), accuracy=0.5 + 0.1 * epoch, val_loss=2.0)
        means.append(tracker.layer_stats("3")["mean"][2].item())
    return history, means


def test_history_json_round_trips(tmp_path):
    history, means = history_of_three_epochs()
    path = history.save(tmp_path / "history.json")
    loaded = TrainingHistory.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.to_dict()["schema"] == "netevo.history" and loaded.to_dict()["version"] == 1
    evolution = loaded.neuron_evolution(6 + 2)  # global id of neuron 2 of layer "3"
    assert (evolution["layer"], evolution["index"]) == ("3", 2)
    assert evolution["mean"] == pytest.approx(means, rel=1e-15)
    assert evolution["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert loaded.series("val_loss") == [2.0, 2.0, 2.0]
    assert loaded.epochs[0]["layers"]["1"]["summary"]["dead"] == 1
    assert loaded.epochs[0]["layers"]["3"]["summary"]["dead"] is None  # tanh units do not die
    assert loaded.metadata == {"run": "test"}


def test_history_is_strict_json_with_nan_as_null(tmp_path):
    history = TrainingHistory()
    history.record(0, loss=float("nan"), accuracy=None)
    path = history.save(tmp_path / "h.json")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse)["epochs"][0]["loss"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"schema": "something.else", "version": 1, "epochs": []}', "not a netevo training history"),
        ('{"schema": "netevo.history", "version": 99, "epochs": []}', "version 99"),
        ("[1, 2", "not valid JSON"),
    ],
)

def test_wrong_history_files_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        TrainingHistory.load(path)


def test_neuron_evolution_follows_layer_and_index_across_width_changes():
    history = TrainingHistory()
    for width in (3, 5):
        model = nn.Sequential(nn.Linear(2, width), nn.ReLU())
        tracker = NeuronTracker(model)
        with tracker:
            model(torch.randn(4, 2))
        history.record(width, tracker)
    evolution = history.neuron_evolution(layer="1", index=4)
    assert evolution["mean"][0] is None and evolution["mean"][1] is not None
    with pytest.raises(UsageError):
        history.neuron_evolution(99)


def test_heatmaps_are_written_and_non_empty(tmp_path):
    _, tracker = tracked_model()
    paths = save_heatmaps(tracker, tmp_path / "maps")
    assert [p.name for p in paths] == ["1.png", "3.png"]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_layer_summary_counts(tmp_path):
    _, tracker = tracked_model()
    rows = {row["layer"]: row for row in layer_summary(tracker)}
    assert rows["1"]["dead"] == 1 and rows["1"]["neurons"] == 6 and rows["1"]["saturated"] is None
    assert rows["3"]["dead"] is None and rows["3"]["saturated"] is not None
    table = format_table(list(rows.values()), ["layer", "dead"])
    assert table.splitlines()[2].split() == ["1", "1"]
    assert layer_summary(tracker, dead_rate=1.0)[0]["dead"] == 6  # the threshold is used
    assert layer_summary(tracker, saturation_threshold=0.0)[1]["saturated"] == 4


def test_ranking_orders_by_firing_rate():
    _, tracker = tracked_model()
    top, bottom = neuron_ranking(tracker, k=3)
    assert [e["firing_rate"] for e in top] == sorted((e["firing_rate"] for e in top), reverse=True)
    assert [e["firing_rate"] for e in bottom] == sorted(e["firing_rate"] for e in bottom)
    assert ("1", 3, 3) in {(e["layer"], e["index"], e["neuron_id"]) for e in bottom if e["firing_rate"] == 0}
    assert top[0]["firing_rate"] > bottom[0]["firing_rate"]


def test_write_report_writes_everything_with_the_thresholds(tmp_path):
    _, tracker = tracked_model()
    history, _ = history_of_three_epochs()
    written = write_report(tracker, tmp_path / "report", history=history, low_activity_rate=0.2)
    recommendations = json.loads(written["recommendations"].read_text())
    assert recommendations == tracker.recommendations(low_activity_rate=0.2)
    assert recommendations["thresholds"]["low_activity_rate"] == 0.2
    summary = written["summary"].read_text()
    assert "TOTAL" in summary and f"prune {recommendations['summary']['prune']}" in summary
    assert TrainingHistory.load(written["history"]).to_dict() == history.to_dict()
    assert len(written["heatmaps"]) == 2 and len(written["history_heatmaps"]) == 2
    assert all(p.stat().st_size > 1000 for p in written["heatmaps"] + written["history_heatmaps"])


def test_text_report_without_correlations_says_so():
    _, tracker = tracked_model(correlation=False)
    report = text_report(tracker, recommendations=tracker.recommendations())
    assert "correlation=True" in report
