"""Sites are call sites: reused modules and functional activations (issue 21), post-activation
defaults for compiled networks (issue 15, item 15).

The oracle for statistics is float64 numpy on activations captured by hand (our own forward hooks
and a copy of the model's arithmetic), never the tracker's own code.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netevo_dsl.errors import NetevoError, UsageError
from netevo_dsl.runtime.history import TrainingHistory
from netevo_dsl.runtime.report import text_report, write_report
from netevo_dsl.runtime.tracker import NeuronTracker


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


class Reuse(nn.Module):
    """One ReLU module called twice (as torchvision's BasicBlock does), and a functional tanh."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.act, self.out = nn.Linear(5, 6), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.act(self.b(self.act(self.a(x))))))


def numpy_stats(values: np.ndarray, threshold: float = 0.0) -> dict:
    """Per-column statistics in float64, straight from their definitions."""
    return {
        "mean": values.mean(0),
        "var": values.var(0),  # population variance, ddof 0
        "min": values.min(0),
        "max": values.max(0),
        "firing_rate": (values > threshold).mean(0),
        "zero_fraction": (values == 0).mean(0),
    }


@pytest.mark.parametrize("trace", [True, False])
def test_reused_module_gives_one_site_per_call_with_its_own_statistics(trace):
    model = Reuse()
    captured = []  # the ReLU's output at each call, in call order
    handle = model.act.register_forward_hook(lambda m, i, o: captured.append(o.detach().double().numpy().copy()))
    tracker = NeuronTracker(model, trace=trace)
    generator = torch.Generator().manual_seed(1)
    with tracker, torch.no_grad():
        for _ in range(4):
            model(torch.randn(7, 5, generator=generator))
    handle.remove()
    assert tracker.method == ("fx" if trace else "hooks")
    names = [name for name in tracker.layer_names if tracker.layer_info(name)["module"] == "act"]
    assert names == ["act#0", "act#1"]
    assert [tracker.layer_info(n)["call"] for n in names[:2]] == [0, 1]
    assert {tracker.layer_info(n)["module"] for n in names[:2]} == {"act"}
    assert [tracker.layer_info(n)["width"] for n in names[:2]] == [6, 4]
    calls = [np.concatenate(captured[k::2]) for k in range(2)]  # even captures: call 0, odd: call 1
    for name, values in zip(names, calls):
        got = tracker.layer_stats(name)
        for key, expected in numpy_stats(values).items():
            np.testing.assert_allclose(got[key].numpy(), expected, rtol=1e-12, atol=1e-15, err_msg=f"{name} {key}")
        assert int(got["count"][0]) == 28
    if trace:  # the fx path also finds the functional tanh, named after the function
        assert tracker.layer_names == ["act#0", "act#1", "tanh()", "out"]
        assert tracker.layer_info("tanh()")["module"] is None and tracker.layer_info("tanh()")["activation"] == "tanh"
    else:  # module order: `a` is followed by another Linear there, so it counts as unfollowed
        assert tracker.layer_names == ["a", "act#0", "act#1", "out"]


def test_site_order_is_stable_and_a_changed_call_count_is_an_error():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.steps = nn.Linear(3, 3), nn.ReLU(), 2

        def forward(self, x):
            for _ in range(self.steps):
                x = self.act(self.fc(x))
            return x

    model = Loop()
    tracker = NeuronTracker(model, trace=False)
    with tracker, torch.no_grad():
        model(torch.randn(4, 3))
        first = tracker.layer_names
        model(torch.randn(4, 3))
        assert tracker.layer_names == first == ["act#0", "act#1"]
        model.steps = 3
        with pytest.raises(NetevoError) as error:
            model(torch.randn(4, 3))
        assert error.value.code == "E170" and "2" in error.value.message
        model.steps = 1
        with pytest.raises(NetevoError, match="ran 1 time") as error:
            model(torch.randn(4, 3))
        assert error.value.code == "E170"
        model.steps = 2
        model(torch.randn(4, 3))  # back to two calls: fine again
        with pytest.raises(NetevoError) as error:
            model.act(torch.randn(4, 3))  # one call outside the model's forward: which site?
        assert error.value.code == "E171"
    # passes 1, 2 and 5, and the second call of the three-call pass (recorded before its third call failed)
    assert int(tracker.layer_stats("act#1")["count"][0]) == 4 * 4


class FunctionalMLP(nn.Module):
    """Activations written as functions, the way most hand-written models are."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 5), nn.Linear(5, 3)
        with torch.no_grad():
            self.fc1.weight[3] = 0.0
            self.fc1.bias[3] = -1.0  # unit 3 of the first layer never fires: dead after the ReLU

    def forward(self, x):
        return self.fc3(self.fc2(F.relu(self.fc1(x))).relu())


def test_functional_relu_is_tracked_and_its_dead_unit_found():
    model = FunctionalMLP()
    tracker = NeuronTracker(model)
    with tracker, torch.no_grad():
        for batch in torch.randn(5, 20, 6).unbind():
            model(batch)
    assert tracker.layer_names == ["relu()#0", "relu()#1", "fc3"]
    assert [tracker.layer_info(n)["width"] for n in tracker.layer_names] == [8, 5, 3]
    # the expected answer from the weights: unit 3 has weight 0 and bias -1, so relu(fc1(x))[3] == 0 always
    assert tracker.dead_neurons()["relu()#0"] == [3]
    recs = tracker.recommendations()
    assert [(p["layer"], p["index"], p["reason"]) for p in recs["prune"]] == [("relu()#0", 3, "dead")]
    assert recs["sites"]["relu()#0"] == {"module": None, "call": 0, "op": "relu"}
    chosen = NeuronTracker(model, layers=["relu()#1"])  # a functional site chosen by name
    with chosen, torch.no_grad():
        model(torch.randn(4, 6))
    assert chosen.method == "fx" and chosen.layer_names == ["relu()#1"] and chosen.layer_info("relu()#1")["samples"]
    # module hooks cannot see functions: the raw Linear outputs are all they find, and the notes say so
    hooked = NeuronTracker(model, trace=False)
    assert hooked.layer_names == ["fc1", "fc2", "fc3"]
    assert "`<model>` (relu)" in hooked.notes[0]


def test_untraceable_model_falls_back_to_hooks_and_says_what_may_be_missing():
    class Branchy(FunctionalMLP):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                x = -x
            return self.fc3(nn.functional.relu(self.fc2(F.relu(self.fc1(x)))))

    model = Branchy()
    tracker = NeuronTracker(model)
    assert tracker.method == "hooks" and tracker.layer_names == ["fc1", "fc2", "fc3"]
    (note,) = tracker.notes
    assert "torch.fx could not trace Branchy" in note and "`<model>` (relu)" in note and "may be missing" in note
    with tracker, torch.no_grad():
        model(torch.randn(4, 6))
    assert note in tracker.recommendations()["notes"]
    assert note in text_report(tracker)


def test_traced_graph_follows_the_training_mode_and_replaced_modules():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):  # `self.training` is a Python bool: fx bakes it into each trace
            return F.relu(F.dropout(self.fc(x), 0.5, training=self.training))

    model = Noisy().train()
    tracker = NeuronTracker(model)
    x = torch.randn(6, 4)
    with tracker, torch.no_grad():
        torch.manual_seed(3)
        trained = model(x)
        model.eval()
        evaluated = model(x)
    torch.manual_seed(3)
    assert torch.equal(trained, model.train()(x).detach())  # the same dropout draw as the plain model
    assert torch.equal(evaluated, model.eval()(x).detach())  # and no dropout in eval mode
    model.fc = nn.Linear(4, 4)  # replaced after tracing: start() traces again
    with tracker, torch.no_grad():
        assert torch.equal(model(x), F.relu(model.fc(x)))
    assert int(tracker.layer_stats("relu()")["count"][0]) == 18


def test_reports_history_and_recommendations_are_per_site(tmp_path):
    model = Reuse()
    tracker = NeuronTracker(model, correlation=True)
    history = TrainingHistory()
    with tracker, torch.no_grad():
        model(torch.randn(30, 5))
    history.record(0, tracker)
    assert list(history.epochs[0]["layers"]) == tracker.layer_names
    assert history.neuron_evolution(layer="act#1", index=2)["mean"] == [
        pytest.approx(float(tracker.layer_stats("act#1")["mean"][2]))
    ]
    written = write_report(tracker, tmp_path, history=history)
    assert len(written["heatmaps"]) == 4 and len({p.name for p in written["heatmaps"]}) == 4
    summary = written["summary"].read_text()
    assert "act#0" in summary and "act#1" in summary and "tanh()" in summary


def test_compiled_network_tracks_post_activation_sites_by_default():
    from netevo_dsl import compile_module, load

    model = compile_module(load("specs/digits_mlp.net"))
    tracker = NeuronTracker(model)
    with tracker, torch.no_grad():
        model(torch.randn(16, 64))
    # the spec: hidden=128 -> relu, hidden/2=64 -> relu, then a 10-way linear output: 128 + 64 + 10 neurons
    assert [tracker.layer_info(n)["activation"] for n in tracker.layer_names] == ["relu", "relu", None]
    assert tracker.num_neurons == 128 + 64 + 10
    pre = [name for name, site in model.neuron_sites.items() if site["op"] == "linear"][0]
    explicit = NeuronTracker(model, layers=[pre])  # pre-activation sites stay available by name
    assert explicit.layer_names == [pre] and explicit.layer_info(pre)["activation"] is None


def test_apply_recommendations_on_a_plain_module_explains_what_is_needed():
    from netevo_dsl.evolve.apply import apply_recommendations

    model = FunctionalMLP()
    tracker = NeuronTracker(model)
    with tracker, torch.no_grad():
        model(torch.randn(10, 6))
    with pytest.raises(NetevoError) as error:
        apply_recommendations(model, model.state_dict(), tracker.recommendations())
    assert error.value.code == "E172" and "FunctionalMLP" in error.value.message and ".net" in error.value.hint


def test_unknown_layer_names_still_suggest():
    with pytest.raises(UsageError, match="no module named"):
        NeuronTracker(Reuse(), layers=["actt"])


# --- a property: any mix of reused modules and functions, each call its own site -------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ACTIVATIONS = {
    "module": None,  # the one shared nn.ReLU
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": lambda t: t.sigmoid(),
}


class Planned(nn.Module):
    """Linear layers, each followed by the activation its plan names; `capture` keeps every
    activation output (read by the test from a plain, untracked forward pass)."""

    def __init__(self, plan, widths):
        super().__init__()
        self.plan, self.capture = list(plan), None
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.shared = nn.ReLU()

    def forward(self, x):
        for fc, kind in zip(self.fcs, self.plan):
            x = fc(x)
            x = self.shared(x) if kind == "module" else _ACTIVATIONS[kind](x)
            if self.capture is not None:
                self.capture.append(x.detach().double().numpy().copy())
        return x


@settings(max_examples=12, deadline=None)
@given(
    plan=st.lists(st.sampled_from(sorted(_ACTIVATIONS)), min_size=1, max_size=5),
    data=st.data(),
)
def test_every_activation_call_is_a_site_with_the_statistics_of_that_call(plan, data):
    widths = data.draw(st.lists(st.integers(1, 6), min_size=len(plan) + 1, max_size=len(plan) + 1))
    torch.manual_seed(0)
    model = Planned(plan, widths).eval()
    batches = list(torch.randn(3, 5, widths[0]).unbind())
    model.capture = []
    with torch.no_grad():
        for batch in batches:
            model(batch)
    calls = [np.concatenate(model.capture[k :: len(plan)]) for k in range(len(plan))]  # per call, all batches
    model.capture = None
    traced, hooked = NeuronTracker(model), NeuronTracker(model, trace=False)
    with traced, hooked, torch.no_grad():
        for batch in batches:
            model(batch)
    assert len(set(traced.layer_names)) == len(traced.layer_names) == len(plan)  # one site per call, in call order
    module_calls = [k for k, kind in enumerate(plan) if kind == "module"]
    hooked_relus = [  # a plan without module calls leaves the shared ReLU tracked but never run
        name for name in hooked.layer_names
        if hooked.layer_info(name)["module"] == "shared" and hooked.layer_info(name)["samples"]
    ]  # fmt: skip
    assert len(hooked_relus) == len(module_calls)
    expected = list(zip(traced.layer_names, range(len(plan)), [traced] * len(plan)))
    expected += list(zip(hooked_relus, module_calls, [hooked] * len(module_calls)))
    for name, call, tracker in expected:
        got = tracker.layer_stats(name)
        for key, value in numpy_stats(calls[call]).items():
            np.testing.assert_allclose(got[key].numpy(), value, rtol=1e-12, atol=1e-15, err_msg=f"{name} {key}")
