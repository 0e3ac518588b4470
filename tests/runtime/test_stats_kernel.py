"""The one-pass numba kernel of the neuron statistics (runtime/stats_kernel.py) against float64 numpy
computed from the definitions on the concatenated activations; and its fallbacks to the torch path."""
import copy
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.runtime import stats_kernel
from netevo_dsl.runtime.stats import NeuronMoments

from .test_stats import numpy_definitions  # the statistics from their definitions, numpy float64

pytest.importorskip("numba")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def samples_of(batch: torch.Tensor) -> np.ndarray:
    """(samples, neurons) rows of a (samples, neurons) or (batch, neurons, inner) batch."""
    if batch.ndim == 3:
        batch = batch.transpose(1, 2).reshape(-1, batch.shape[1])
    return batch.double().numpy()


def near(values: torch.Tensor, points: list[float], generator) -> torch.Tensor:
    """Replace about half of the values by float32 neighbours (-2..2 ulps) of the given points,
    where comparing in float32 against a rounded limit would go wrong."""
    anchors = torch.tensor(points, dtype=torch.float32)[torch.randint(len(points), values.shape, generator=generator)]
    steps = torch.randint(-2, 3, values.shape, generator=generator)
    neighbours = anchors.clone()
    for _ in range(2):
        up = torch.nextafter(neighbours, torch.tensor(float("inf")))
        down = torch.nextafter(neighbours, torch.tensor(float("-inf")))
        neighbours = torch.where(steps > 0, up, torch.where(steps < 0, down, neighbours))
        steps = steps - steps.sign()
    pick = torch.rand(values.shape, generator=generator) < 0.5
    return torch.where(pick, neighbours.to(values.dtype), values)


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.sampled_from(["relu", "tanh", "offset", "near", "nan"]),
    st.sampled_from([0.0, 0.25, -0.5, 0.1, 1 / 3]),  # 0.1 and 1/3 are not float32 numbers
    st.sampled_from([None, (-1.0, 1.0), (0.0, 1.0)]),
    st.sampled_from([torch.float32, torch.float64]),
    st.sampled_from([(), (1,), (5,), (3, 4)]),  # () -> (samples, neurons); else the inner shape of maps
    st.lists(st.integers(min_value=0, max_value=11), min_size=1, max_size=4),
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_kernel_equals_the_definitions(kind, threshold, bounds, dtype, inner, batches, seed):
    generator = torch.Generator().manual_seed(seed)
    width, margin = 5, 0.07  # margin * span is not a float32 number either
    shapes = [(size, width, *inner) for size in batches]
    data = [torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in shapes]
    if kind == "relu":
        data = [torch.relu(x) for x in data]
    elif kind == "tanh":
        data = [torch.tanh(2 * x) for x in data]
    elif kind == "offset":
        data = [1e3 + 1e-2 * x for x in data]  # mean far larger than the spread
    elif kind == "near":
        limits = [threshold, 0.0] + ([bounds[0] + margin * (bounds[1] - bounds[0]), bounds[1] - margin * (bounds[1] - bounds[0])] if bounds else [])
        data = [near(x, limits, generator) for x in data]
    else:
        data = [torch.where(torch.rand(x.shape, generator=generator) < 0.1, float("nan"), x) for x in data]
    data = [x.to(dtype).flatten(2) if inner else x.to(dtype) for x in data]  # maps: (batch, width, inner)
    moments = NeuronMoments(width, threshold, bounds, margin, nonnegative=kind == "relu")
    for x in data:
        assert moments.kernel.add(x.new_empty(0, *x.shape[1:])) == 0  # an empty batch is taken and adds nothing
        moments.update(x)
    values = np.concatenate([samples_of(x) for x in data])
    result = {key: value.numpy() for key, value in moments.summary().items()}
    assert (result["count"] == len(values)).all()
    if not len(values):
        return
    expected = numpy_definitions(values, threshold, bounds, margin)
    assert sorted(result) == sorted(list(expected) + ["count"])
    np.testing.assert_allclose(result["mean"], expected["mean"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result["var"], expected["var"], rtol=1e-9, atol=1e-15)
    for key in ("min", "max", "firing_rate", "zero_fraction") + (("saturation",) if bounds else ()):
        np.testing.assert_array_equal(result[key], expected[key], err_msg=key)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.floats(allow_nan=False, width=32),
    st.floats(allow_nan=False, allow_infinity=True),
)
def test_limits_rounded_to_float32_compare_like_float64(value, limit):
    """x > t, x <= t and x >= t for float32 x, compared in float32 against the rounded limits,
    equal the float64 comparisons (what numpy's definitions do)."""
    x = np.float32(value)
    below = stats_kernel._bound_below(limit, np.float32)
    above = stats_kernel._bound_above(limit, np.float32)
    assert (x > below) == (float(x) > limit)
    assert (x <= below) == (float(x) <= limit)
    assert (x >= above) == (float(x) >= limit)


def reference(batches, **options) -> dict:
    """The torch path's statistics of the same batches."""
    moments = NeuronMoments(batches[0].shape[1], **options)
    saved, stats_kernel.ENABLED = stats_kernel.ENABLED, False
    try:
        for x in batches:
            moments.update(x)
    finally:
        stats_kernel.ENABLED = saved
    return moments.summary()


def assert_same(result: dict, expected: dict) -> None:
    assert sorted(result) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(result[key], value, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_batches_the_kernel_does_not_take_fall_back_to_torch():
    generator = torch.Generator().manual_seed(3)
    rows = torch.randn(64, 6, generator=generator)
    transposed = torch.randn(6, 64, generator=generator).T  # not contiguous
    half = torch.randn(64, 6, generator=generator).half()
    moments = NeuronMoments(6)
    assert moments.kernel.add(transposed) is None and moments.kernel.add(half) is None
    assert moments.kernel.add(rows[:, :5]) is None  # another width: the torch path's error
    for x in (rows, transposed, half):
        moments.update(x)
    assert_same(moments.summary(), reference([rows, transposed, half]))


def test_inference_mode_and_autograd_tensors_are_read():
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(32, 3, generator=generator)
    moments = NeuronMoments(3)
    with torch.inference_mode():
        inferred = x @ weight.detach()
        moments.update(inferred)
    tracked = x @ weight  # requires grad
    moments.update(tracked)
    assert_same(moments.summary(), reference([inferred.clone(), tracked.detach()]))


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copy_updates_its_own_state(clone):
    """The kernel holds numpy views of the state: a copy must get views of its own tensors."""
    generator = torch.Generator().manual_seed(5)
    first, second = (torch.randn(40, 4, generator=generator) for _ in range(2))
    original = NeuronMoments(4, bounds=(-1.0, 1.0))
    original.update(first)
    copied = clone(original)
    copied.update(second)
    assert_same(original.summary(), reference([first], bounds=(-1.0, 1.0)))
    assert_same(copied.summary(), reference([first, second], bounds=(-1.0, 1.0)))


def test_disabled_kernel_leaves_the_torch_path(monkeypatch):
    monkeypatch.setattr(stats_kernel, "ENABLED", False)
    assert NeuronMoments(2).kernel.add(torch.ones(3, 2)) is None
