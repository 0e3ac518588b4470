"""The tracker's short way from a site's output to the statistics kernel (`_FastPath`): taken for
outputs shaped like the last one, left for others. Whatever the sequence of batches, every
statistic equals numpy's float64 definitions over the concatenated activations."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from netevo_dsl.runtime import stats_kernel
from netevo_dsl.runtime.tracker import NeuronTracker

pytest.importorskip("numba")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def rows_model():
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Tanh())


def maps_model():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Sigmoid())


MODELS = {"rows": (rows_model, lambda n, g: torch.randn(n, 5, generator=g)),
          "sequence": (rows_model, lambda n, g: torch.randn(n, 2, 5, generator=g)),
          "maps": (maps_model, lambda n, g: torch.randn(n, 2, 5, 6, generator=g))}  # fmt: skip


def site_outputs(model: nn.Sequential, batch: torch.Tensor) -> dict[str, np.ndarray]:
    """Each activation's output as (samples, neurons) float64 rows, from running the layers one by one."""
    result, value = {}, batch
    with torch.no_grad():
        for name, module in model.named_children():
            value = module(value)
            if isinstance(module, (nn.ReLU, nn.Tanh, nn.Sigmoid)):
                result[name] = value.movedim(1, -1).reshape(-1, value.shape[1]) if value.ndim == 4 else value.reshape(-1, value.shape[-1])
    return {name: rows.double().numpy() for name, rows in result.items()}


@settings(max_examples=30, deadline=None, database=None)
@given(
    st.sampled_from(sorted(MODELS)),
    st.booleans(),  # fx graph or module hooks
    st.lists(st.sampled_from([1, 3, 4]), min_size=1, max_size=6),  # repeated sizes take the fast path
    st.one_of(st.none(), st.integers(min_value=0, max_value=5)),  # reset() before this batch
    st.one_of(st.none(), st.integers(min_value=0, max_value=5)),  # kernel off from this batch on
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_any_sequence_of_batches_gives_the_definitions(kind, trace, sizes, reset_at, kernel_off_at, seed):
    make_model, make_batch = MODELS[kind]
    torch.manual_seed(seed)
    model = make_model()
    generator = torch.Generator().manual_seed(seed)
    batches = [make_batch(size, generator) for size in sizes]
    tracker = NeuronTracker(model, threshold=0.1, trace=trace)
    counted = batches
    try:
        with tracker, torch.no_grad():
            for step, batch in enumerate(batches):
                if step == reset_at:
                    tracker.reset()
                    counted = batches[step:]
                if step == kernel_off_at:
                    stats_kernel.ENABLED = False
                model(batch)
    finally:
        stats_kernel.ENABLED = True
    seen: dict[str, list[np.ndarray]] = {}  # the activations, captured with the tracker stopped
    for batch in counted:
        for name, rows in site_outputs(model, batch).items():
            seen.setdefault(name, []).append(rows)
    for name, parts in seen.items():
        values = np.concatenate(parts)
        stats = {key: value.numpy() for key, value in tracker.layer_stats(name).items()}
        assert (stats["count"] == len(values)).all()
        np.testing.assert_allclose(stats["mean"], values.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(stats["var"], values.var(axis=0), rtol=1e-9, atol=1e-15)
        np.testing.assert_array_equal(stats["min"], values.min(axis=0))
        np.testing.assert_array_equal(stats["max"], values.max(axis=0))
        np.testing.assert_array_equal(stats["firing_rate"], (values > 0.1).mean(axis=0))
        np.testing.assert_array_equal(stats["zero_fraction"], (values == 0).mean(axis=0))
        bounds = tracker.layer_info(name)["bounds"]
        if bounds is not None:  # tanh, sigmoid: the default margin of 2% of the range
            span = 0.02 * (bounds[1] - bounds[0])
            near = (values <= bounds[0] + span) | (values >= bounds[1] - span)
            np.testing.assert_array_equal(stats["saturation"], near.mean(axis=0))


def test_the_fast_path_is_taken_for_repeated_shapes_only():
    model = rows_model()
    tracker = NeuronTracker(model)
    with tracker, torch.no_grad():
        model(torch.randn(4, 5))
        first = tracker._fast["1"]
        model(torch.randn(4, 5))
        assert tracker._fast["1"] is first and first.takes(tracker._layer("1"), torch.zeros(4, 7))
        assert not first.takes(tracker._layer("1"), torch.zeros(3, 7))  # another batch size
        assert not first.takes(tracker._layer("1"), torch.zeros(7, 4).T)  # not contiguous
        assert not first.takes(tracker._layer("1"), torch.zeros(4, 7, dtype=torch.float64))
        tracker.reset()
        assert not first.takes(tracker._layer("1"), torch.zeros(4, 7))  # statistics of the past
