"""NeuronTracker on plain torch modules: what it hooks, how it reduces, what it reports."""
import numpy as np
import pytest
import torch
from torch import nn

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime.tracker import NeuronTracker


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a busy 2-core machine, OpenMP hand-offs between two
    threads cost 10x the arithmetic, so run single-threaded and restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(widths=(6, 8, 4, 3), seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(widths[0], widths[1]), nn.ReLU(), nn.Linear(widths[1], widths[2]), nn.ReLU(),
        nn.Linear(widths[2], widths[3]),
    )  # fmt: skip


def run(model, tracker, batches):
    with tracker, torch.no_grad():
        for batch in batches:
            model(batch)
    return tracker


def random_batches(count, rows, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, width, generator=generator) for _ in range(count)]


def all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --- which outputs are neurons -----------------------------------------------------------


def test_tracks_activations_and_unfollowed_producers():
    tracker = NeuronTracker(mlp())
    assert tracker.layer_names == ["1", "3", "4"]  # the ReLUs, and the final Linear
    assert tracker.layer_info("1")["activation"] == "relu" and tracker.layer_info("1")["width"] == 8


def test_relu_unit_forced_negative_is_dead_post_activation():
    model = mlp()
    with torch.no_grad():
        model[0].weight[5] = 0.0
        model[0].bias[5] = -1.0  # pre-activation always -1: |x| > 0.01 would call it "active"
    tracker = run(model, NeuronTracker(model), random_batches(5, 64, 6))
    assert tracker.dead_neurons()["1"] == [5]
    stats = tracker.layer_stats("1")
    assert stats["firing_rate"][5] == 0 and stats["zero_fraction"][5] == 1 and stats["max"][5] == 0
    assert (stats["firing_rate"][torch.arange(8) != 5] > 0).all()
    prune = tracker.recommendations()["prune"]
    assert [(p["layer"], p["index"], p["reason"]) for p in prune] == [("1", 5, "dead")]


def test_duplicated_unit_is_redundant_with_correlation_one():
    model = mlp()
    with torch.no_grad():
        model[0].weight[6] = model[0].weight[2]
        model[0].bias[6] = model[0].bias[2]
    tracker = run(model, NeuronTracker(model, correlation=True), random_batches(6, 50, 6))
    pairs = tracker.redundant_pairs(0.999)["1"]
    assert [(i, j) for i, j, _ in pairs] == [(2, 6)]
    assert abs(pairs[0][2] - 1.0) < 1e-9
    (merge,) = [m for m in tracker.recommendations(redundancy_threshold=0.999)["merge"] if m["layer"] == "1"]
    assert (merge["keep"], merge["remove"]) == (2, 6)
    assert merge["slope"] == pytest.approx(1.0, abs=1e-9) and merge["intercept"] == pytest.approx(0.0, abs=1e-9)
    assert tracker.redundancy_summary(0.999)["1"]["redundant_neurons"] == 1


def test_stats_equal_numpy_on_captured_activations():
    model = mlp()
    batches = random_batches(4, 33, 6)
    tracker = run(model, NeuronTracker(model, threshold=0.1), batches)
    with torch.no_grad():
        post_relu = torch.cat([model[1](model[0](b)) for b in batches]).double().numpy()
    stats = tracker.layer_stats("1")
    np.testing.assert_allclose(stats["mean"].numpy(), post_relu.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(stats["var"].numpy(), post_relu.var(axis=0), rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(stats["firing_rate"].numpy(), (post_relu > 0.1).mean(axis=0))
    np.testing.assert_array_equal(stats["zero_fraction"].numpy(), (post_relu == 0).mean(axis=0))


def test_sequence_outputs_reduce_per_hidden_unit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
    batches = [torch.randn(4, 3, 5) for _ in range(3)]  # (B, T, H_in) with T=3 != H=7
    tracker = run(model, NeuronTracker(model), batches)
    with torch.no_grad():
        hidden = torch.cat([model(b).reshape(-1, 7) for b in batches]).double()
    stats = tracker.layer_stats("1")
    assert stats["mean"].shape == (7,) and int(stats["count"][0]) == 4 * 3 * 3
    torch.testing.assert_close(stats["mean"], hidden.mean(dim=0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(stats["var"], hidden.var(dim=0, correction=0), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("conv, shape", [(nn.Conv2d(3, 4, 3), (2, 3, 8, 8)), (nn.Conv1d(3, 4, 3), (2, 3, 9))])
def test_convolutions_reduce_per_channel(conv, shape):
    torch.manual_seed(0)
    model = nn.Sequential(conv, nn.BatchNorm2d(4) if len(shape) == 4 else nn.BatchNorm1d(4), nn.ReLU()).eval()
    batches = [torch.randn(*shape) for _ in range(3)]
    tracker = run(model, NeuronTracker(model), batches)
    assert tracker.layer_names == ["2"]
    with torch.no_grad():
        channels = torch.cat([model(b).movedim(1, -1).reshape(-1, 4) for b in batches]).double()
    stats = tracker.layer_stats("2")
    torch.testing.assert_close(stats["mean"], channels.mean(dim=0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(stats["firing_rate"], (channels > 0).double().mean(dim=0))


class TinyBlock(nn.Module):
    def __init__(self, width=8, heads=2):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 12), nn.GELU(), nn.Linear(12, width))

    def forward(self, x):
        x = self.norm(x + self.attn(x, x, x, need_weights=False)[0])
        return x + self.mlp(x)


def test_attention_and_mlp_block_outputs():
    torch.manual_seed(0)
    model = TinyBlock()
    tracker = run(model, NeuronTracker(model, correlation=True), [torch.randn(3, 5, 8) for _ in range(2)])
    assert tracker.layer_names == ["attn", "mlp.1", "mlp.2"]
    assert [tracker.layer_info(n)["width"] for n in tracker.layer_names] == [8, 12, 8]
    assert int(tracker.layer_stats("attn")["count"][0]) == 2 * 3 * 5
    assert tracker.layer_info("mlp.1")["activation"] == "gelu"


class SiteModel(nn.Module):
    """Declares its neurons the way compiled netevo modules do."""

    neuron_sites = {"body": {"axis": 1, "op": "conv1d", "activation": "tanh"}}

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 3, 1), nn.Tanh())
        self.head = nn.Linear(6, 2)

    def forward(self, x):  # (B, 2, 6) -> (B, 3, 6) -> ...
        return self.head(self.body(x))


def test_neuron_sites_choose_layers_axis_and_bounds():
    torch.manual_seed(0)
    model = SiteModel()
    tracker = run(model, NeuronTracker(model), [4 * torch.randn(5, 2, 6)])
    assert tracker.layer_names == ["body"]
    stats = tracker.layer_stats("body")
    assert stats["mean"].shape == (3,)  # channels, although the last axis has 6 entries
    assert "saturation" in stats and tracker.layer_info("body")["bounds"] == (-1.0, 1.0)


def test_bad_neuron_sites_and_layer_names_are_usage_errors():
    model = SiteModel()
    model.neuron_sites = {"bdy": {"axis": 1, "op": "conv1d", "activation": None}}
    with pytest.raises(UsageError) as error:
        NeuronTracker(model)
    assert "body" in (error.value.hint or "")
    with pytest.raises(UsageError):
        NeuronTracker(mlp(), layers=["5"])
    with pytest.raises(UsageError):
        NeuronTracker(mlp()).layer_stats("1")  # no data yet


def test_explicit_layers_and_neuron_subset():
    model = mlp()
    batches = random_batches(3, 40, 6)
    full = run(model, NeuronTracker(model), batches)
    subset = run(model, NeuronTracker(model, layers=["0", "1"], neurons={"1": [5, 0]}), batches)
    assert subset.layer_names == ["0", "1"]
    stats = subset.layer_stats("1")
    assert stats["index"].tolist() == [0, 5]
    torch.testing.assert_close(stats["mean"], full.layer_stats("1")["mean"][[0, 5]])
    assert subset.layer_info("0")["activation"] is None  # the pre-activation Linear, on request


# --- ids, hooks, state -------------------------------------------------------------------------


def test_global_ids_round_trip():
    tracker = NeuronTracker(mlp())
    assert tracker.num_neurons == 8 + 4 + 3
    assert tracker.neuron_id("3", 2) == 10
    assert tracker.lookup(10) == ("3", 2)
    assert all(tracker.lookup(tracker.neuron_id(n, 0)) == (n, 0) for n in tracker.layer_names)
    with pytest.raises(UsageError):
        tracker.neuron_id("3", 4)
    with pytest.raises(UsageError):
        tracker.lookup(15)


@pytest.mark.parametrize("trace", [True, False])
def test_hooks_exist_only_while_started(trace):
    model = mlp()
    tracker = NeuronTracker(model, trace=trace)
    assert tracker.method == ("fx" if trace else "hooks")
    assert all_hooks(model) == 0 and "forward" not in vars(model)
    with tracker:
        assert tracker.active
        assert all_hooks(model) == (0 if trace else 3 + 2)  # the fx path observes inside its graph: no hooks
        assert ("forward" in vars(model)) == trace  # the fx path runs the traced graph while started
    assert all_hooks(model) == 0 and "forward" not in vars(model)
    with pytest.raises(RuntimeError), tracker:
        raise RuntimeError("a failing forward")
    assert all_hooks(model) == 0 and not tracker.active and "forward" not in vars(model)
    tracker.start()
    tracker.start()  # idempotent: no second set of hooks
    assert tracker.active and ("forward" in vars(model)) == trace
    assert all_hooks(model) == (0 if trace else 3 + 2)  # hooks: the root's two, plus one per hooked module
    tracker.stop()
    assert all_hooks(model) == 0


def test_no_statistics_outside_the_context():
    model = mlp()
    tracker = run(model, NeuronTracker(model), random_batches(2, 10, 6))
    model(torch.randn(10, 6))
    assert int(tracker.layer_stats("1")["count"][0]) == 20


def test_state_size_identical_after_10_and_1000_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU())  # one tracked layer keeps 1000 batches quick
    tracker = NeuronTracker(model, correlation=True)
    batches = random_batches(1000, 4, 6)
    with tracker, torch.no_grad():
        for k, batch in enumerate(batches):
            model(batch)
            if k == 9:
                after_ten = tracker.state_nbytes()
    assert tracker.state_nbytes() == after_ten > 0
    assert int(tracker.layer_stats("1")["count"][0]) == 4000


def test_training_forward_and_inference_mode():
    model = mlp()
    tracker = NeuronTracker(model)
    with tracker:
        model(torch.randn(8, 6)).sum().backward()  # hooks must not break autograd
        with torch.inference_mode():
            model(torch.randn(8, 6))
    assert model[0].weight.grad is not None
    assert int(tracker.layer_stats("1")["count"][0]) == 16


def test_wide_layers_use_block_diagonal_co_moments():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU())
    with torch.no_grad():
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
    narrow = run(model, NeuronTracker(model, correlation=True, corr_max_width=4), random_batches(3, 30, 4))
    wide = run(model, NeuronTracker(model, correlation=True), random_batches(3, 30, 4))
    assert [(i, j) for i, j, _ in narrow.redundant_pairs(0.999)["1"]] == [(0, 1)]
    assert narrow.state_nbytes() < wide.state_nbytes()


def test_correlation_queries_need_correlation_tracking():
    model = mlp()
    tracker = run(model, NeuronTracker(model), random_batches(1, 10, 6))
    with pytest.raises(UsageError) as error:
        tracker.redundant_pairs()
    assert "correlation=True" in error.value.hint
    recommendations = tracker.recommendations()
    assert recommendations["merge"] == [] and recommendations["notes"]


# --- recommendations use their thresholds ------------------------------------------------------


def designed_activity(rows=1000):
    """Inputs whose ReLU outputs have known firing rates and one known correlation."""
    generator = torch.Generator().manual_seed(3)
    x = -torch.ones(rows, 6)
    x[:5, 1] = 1.0  # fires on 0.5% of samples
    x[:20, 2] = 1.0  # 2%
    x[::2, 3] = 1.0  # 50%
    base = torch.rand(rows, generator=generator) + 1.0
    x[:, 4] = base
    x[:, 5] = base + 0.1 * torch.randn(rows, generator=generator)
    return x


def test_recommendations_use_the_given_thresholds():
    model = nn.Sequential(nn.ReLU())
    x = designed_activity()
    tracker = run(model, NeuronTracker(model, correlation=True), x.split(100))
    corr = float(np.corrcoef(torch.relu(x[:, 4]).numpy(), torch.relu(x[:, 5]).numpy())[0, 1])

    def pruned(**kwargs):
        return {(p["index"], p["reason"]) for p in tracker.recommendations(**kwargs)["prune"]}

    assert pruned() == {(0, "dead"), (1, "low_activity")}
    assert pruned(low_activity_rate=0.05) == {(0, "dead"), (1, "low_activity"), (2, "low_activity")}
    assert pruned(dead_rate=0.01, low_activity_rate=0.0) == {(0, "dead"), (1, "dead")}
    assert tracker.dead_neurons(max_firing_rate=0.03)["0"] == [0, 1, 2]

    def merged(threshold):
        return [(m["keep"], m["remove"]) for m in tracker.recommendations(redundancy_threshold=threshold)["merge"]]

    assert merged(corr - 0.01) == [(4, 5)]
    assert merged(corr + 0.001) == []
    assert tracker.recommendations(redundancy_threshold=0.5)["thresholds"]["redundancy_threshold"] == 0.5


def test_expand_recommendation_uses_saturation_thresholds():
    model = nn.Sequential(nn.Tanh())
    x = torch.zeros(400, 4)
    x[:, 0] = 5.0  # always saturated
    x[::2, 1] = -5.0  # saturated on half the samples
    tracker = run(model, NeuronTracker(model), x.split(100))
    assert tracker.saturated_neurons(0.9)["0"] == [0]
    assert tracker.saturated_neurons(0.4)["0"] == [0, 1]

    def expand(**kwargs):
        return tracker.recommendations(**kwargs)["expand"]

    assert expand(saturation_threshold=0.9, saturated_layer_fraction=0.25)[0]["saturated"] == 1
    assert expand(saturation_threshold=0.9, saturated_layer_fraction=0.5) == []
    assert expand(saturation_threshold=0.4, saturated_layer_fraction=0.5)[0]["saturated"] == 2
    assert expand(growth_fraction=0.5)[0]["suggested_growth"] == 2
    assert expand(growth_fraction=1.0)[0]["suggested_growth"] == 4
    with pytest.raises(UsageError):
        tracker.recommendations(saturation_threshold=1.5)
