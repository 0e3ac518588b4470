"""Streaming statistics against float64 two-pass numpy on the same activations."""
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime.stats import CoMoments, NeuronMoments, StreamingStats


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a busy 2-core machine, OpenMP hand-offs between two
    threads cost 10x the arithmetic, so run single-threaded and restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, params=["kernel", "torch"])
def stats_path(request, monkeypatch):
    """Every test here runs through both paths of `add_batch`: the one-pass numba kernel
    (stats_kernel.py; skipped where numba is not installed) and the eager torch reductions."""
    from netevo_dsl.runtime import stats_kernel

    if request.param == "kernel" and not stats_kernel.available():
        pytest.skip("numba is not installed: only the torch path runs")
    monkeypatch.setattr(stats_kernel, "ENABLED", request.param == "kernel")
    return request.param


def stream(data: torch.Tensor, sizes):
    """Split rows into batches of the given sizes (the last takes the rest)."""
    batches, start = [], 0
    for size in sizes:
        batches.append(data[start : start + size])
        start += size
    batches.append(data[start:])
    return batches


def feed(accumulator, batches):
    for batch in batches:
        accumulator.update(batch)
    return accumulator


def two_pass_columns(data: torch.Tensor) -> np.ndarray:
    """Columns as contiguous float64 rows, so numpy reduces each with pairwise summation
    (reducing a strided axis sums sequentially, which is itself off by ~1e-9 at offset 3e8)."""
    return np.ascontiguousarray(data.double().numpy().T)


def offset_data(offset, scale, rows=1200, width=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return offset + scale * torch.randn(rows, width, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (1e6, 1e-4), (-3e8, 1e-2)])
def test_moments_equal_float64_two_pass(offset, scale):
    data = offset_data(offset, scale)
    moments = feed(NeuronMoments(5), stream(data, [1, 7, 300, 2, 511]))
    result = moments.summary()
    columns = two_pass_columns(data)
    mean = columns.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(result["mean"].numpy(), mean[:, 0], rtol=1e-14, atol=1e-14 * scale)
    np.testing.assert_allclose(result["var"].numpy(), ((columns - mean) ** 2).mean(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(result["min"].numpy(), columns.min(axis=1))
    np.testing.assert_array_equal(result["max"].numpy(), columns.max(axis=1))
    assert (result["count"] == 1200).all()


def test_variance_with_offset_is_exact_to_rounding():
    data = offset_data(1e6, 1e-4, rows=300, width=1)
    values = [Fraction(v) for v in data[:, 0].tolist()]
    mean = sum(values) / len(values)
    exact = float(sum((v - mean) ** 2 for v in values) / len(values))
    ours = float(feed(NeuronMoments(1), data.split(64)).summary()["var"][0])
    assert ours == pytest.approx(exact, rel=1e-14)


def test_naive_variance_fails_where_chan_merge_holds():
    data = offset_data(1e6, 1e-4)
    reference = two_pass_columns(data).var(axis=1)
    naive = (data**2).mean(dim=0) - data.mean(dim=0) ** 2  # E[x^2] - E[x]^2, in float64
    naive_error = np.abs(naive.numpy() / reference - 1).max()
    ours = feed(NeuronMoments(5), data.split(64)).summary()["var"].numpy()
    assert naive_error > 1.0  # catastrophic cancellation: not even the order of magnitude
    assert np.abs(ours / reference - 1).max() < 1e-9


def test_float32_activations_match_two_pass_of_the_same_values():
    data = offset_data(1e3, 1e-2).float()
    result = feed(NeuronMoments(5), data.split(100)).summary()
    columns = two_pass_columns(data)
    np.testing.assert_allclose(result["var"].numpy(), columns.var(axis=1), rtol=1e-10)
    np.testing.assert_allclose(result["mean"].numpy(), columns.mean(axis=1), rtol=1e-14)


def test_firing_zero_and_saturation_counts():
    generator = torch.Generator().manual_seed(1)
    data = torch.tanh(3 * torch.randn(500, 4, generator=generator))
    data[::7, 0] = 0.0  # exact zeros
    data[::5, 1] = 0.25  # values equal to the threshold do not fire
    moments = feed(NeuronMoments(4, threshold=0.25, bounds=(-1.0, 1.0), saturation_margin=0.05), data.split(33))
    result = moments.summary()
    values = data.numpy()
    np.testing.assert_array_equal(result["firing_rate"].numpy(), (values > 0.25).mean(axis=0))
    np.testing.assert_array_equal(result["zero_fraction"].numpy(), (values == 0).mean(axis=0))
    near_bound = (values <= -1 + 0.1) | (values >= 1 - 0.1)
    np.testing.assert_array_equal(result["saturation"].numpy(), near_bound.mean(axis=0))
    assert result["zero_fraction"][0] > 0.1


def test_no_saturation_without_bounds():
    result = feed(NeuronMoments(3), [torch.ones(4, 3)]).summary()
    assert "saturation" not in result


@settings(max_examples=25, deadline=None, database=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=8), st.integers(min_value=0, max_value=2**31 - 1))
def test_any_batching_gives_the_same_statistics(sizes, seed):
    data = offset_data(50.0, 3.0, rows=200, width=3, seed=seed)
    whole = feed(StreamingStats(3, correlation=True), [data])
    pieces = feed(StreamingStats(3, correlation=True), stream(data, sizes))
    for key, value in whole.moments.summary().items():
        torch.testing.assert_close(pieces.moments.summary()[key], value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pieces.comoments.correlation(), whole.comoments.correlation(), rtol=1e-12, atol=1e-12)


def test_parallel_merge_equals_one_stream():
    data = offset_data(1e6, 1e-4, rows=900)
    single = feed(StreamingStats(5, correlation=True), data.split(100))
    left = feed(StreamingStats(5, correlation=True), data[:250].split(100))
    right = feed(StreamingStats(5, correlation=True), data[250:].split(100))
    left.merge(right)
    for key, value in single.moments.summary().items():
        torch.testing.assert_close(left.moments.summary()[key], value, rtol=1e-10, atol=0)
    torch.testing.assert_close(left.comoments.correlation(), single.comoments.correlation(), rtol=1e-9, atol=1e-12)


def test_merge_rejects_different_options():
    with pytest.raises(UsageError, match="threshold"):
        NeuronMoments(3, threshold=0.0).merge(NeuronMoments(3, threshold=0.5))
    with pytest.raises(UsageError, match="width"):
        CoMoments(3).merge(CoMoments(4))


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_correlation_equals_numpy(offset):
    data = offset_data(offset, 1e-3, rows=700, width=6)
    data[:, 4] = 0.5 * data[:, 1] + 0.5 * data[:, 2]
    corr = feed(CoMoments(6), data.split(128)).correlation()
    np.testing.assert_allclose(corr.numpy(), np.corrcoef(data.numpy().T), atol=1e-9)


def test_duplicate_neuron_correlates_exactly_and_constants_never_pair():
    data = offset_data(0.0, 1.0, rows=400, width=5)
    data[:, 3] = data[:, 1]
    data[:, 0] = 0.1  # constant: no correlation is defined
    data[:, 4] = 0.1
    comoments = feed(CoMoments(5), data.split(50))
    i, j, corr = comoments.pairs_above(0.9)
    assert list(zip(i.tolist(), j.tolist())) == [(1, 3)]
    assert abs(float(corr[0]) - 1.0) < 1e-9
    assert torch.isnan(comoments.correlation()[0, 4])


def test_block_diagonal_co_moments_are_the_blocks_of_the_full_matrix():
    data = offset_data(3.0, 2.0, rows=300, width=10)
    data[:, 5] = -2 * data[:, 4] + 1  # same block (4..7) when blocks are 4 wide
    data[:, 9] = data[:, 0]  # different blocks: not found
    full = feed(CoMoments(10), data.split(64))
    blocked = feed(CoMoments(10, block_size=4), data.split(64))
    corr, blocks = full.correlation(), blocked.correlation_blocks()
    torch.testing.assert_close(blocks[1], corr[4:8, 4:8], rtol=0, atol=1e-12)
    torch.testing.assert_close(blocks[2, :2, :2], corr[8:, 8:], rtol=0, atol=1e-12)
    assert torch.isnan(blocks[2, 3, 3])  # padding is not a neuron
    i, j, c = blocked.pairs_above(0.99)
    assert list(zip(i.tolist(), j.tolist())) == [(4, 5)] and float(c[0]) == pytest.approx(-1.0, abs=1e-12)
    assert blocked.state_nbytes() < full.state_nbytes()
    with pytest.raises(UsageError):
        blocked.correlation()


def test_affine_fit_recovers_the_linear_relation():
    data = offset_data(0.0, 1.0, rows=200, width=2)
    data[:, 1] = 3.0 * data[:, 0] - 2.0
    slope, intercept = feed(CoMoments(2), data.split(30)).affine_fit(torch.tensor([0]), torch.tensor([1]))
    assert float(slope[0]) == pytest.approx(3.0, rel=1e-12)
    assert float(intercept[0]) == pytest.approx(-2.0, rel=1e-12)


def test_float32_products_stay_close_to_float64():
    data = offset_data(1.0, 1.0, rows=600, width=8).float()
    exact = feed(CoMoments(8), data.split(100)).correlation()
    fast = feed(CoMoments(8, product_dtype=torch.float32), data.split(100)).correlation()
    assert (exact - fast).abs().max() < 1e-6


def test_state_size_does_not_grow_with_batches():
    def state_after(batches):
        stats = StreamingStats(6, bounds=(0.0, 1.0), correlation=True, corr_block_size=4)
        for k in range(batches):
            stats.update(torch.rand(8, 6, generator=torch.Generator().manual_seed(k)))
        return stats.state_nbytes()

    assert state_after(10) == state_after(1000) > 0


def test_channel_first_batches_equal_their_transposed_rows():
    generator = torch.Generator().manual_seed(5)
    maps = [torch.relu(torch.randn(3, 4, 10, generator=generator)) for _ in range(3)]  # (batch, channels, inner)
    rows = [m.transpose(1, 2).reshape(-1, 4) for m in maps]
    options = dict(threshold=0.0, bounds=(0.0, 6.0), correlation=True)
    by_map = feed(StreamingStats(4, nonnegative=True, **options), maps)
    by_rows = feed(StreamingStats(4, **options), rows)
    for key, value in by_rows.moments.summary().items():
        torch.testing.assert_close(by_map.moments.summary()[key], value, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(by_map.comoments.correlation(), by_rows.comoments.correlation(), rtol=1e-12, atol=1e-12)
    assert int(by_map.moments.summary()["count"][0]) == 3 * 3 * 10
    assert 0 < float(by_map.moments.summary()["zero_fraction"][0]) < 1


def test_chunked_batches_equal_whole_batches(monkeypatch):
    from netevo_dsl.runtime import stats as stats_module

    generator = torch.Generator().manual_seed(6)
    maps = [1e3 + torch.randn(9, 4, 7, generator=generator, dtype=torch.float64) for _ in range(2)]
    whole = feed(StreamingStats(4, correlation=True, corr_block_size=3), maps)
    monkeypatch.setattr(stats_module, "CHUNK_VALUES", 2 * 4 * 7)  # two batch rows per chunk, a ragged last one
    chunked = feed(StreamingStats(4, correlation=True, corr_block_size=3), maps)
    for key, value in whole.moments.summary().items():
        torch.testing.assert_close(chunked.moments.summary()[key], value, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(
        chunked.comoments.correlation_blocks(),
        whole.comoments.correlation_blocks(),
        rtol=1e-10,
        atol=1e-12,
        equal_nan=True,
    )


def numpy_definitions(values: np.ndarray, threshold: float, bounds, margin: float) -> dict[str, np.ndarray]:
    """Per-neuron statistics straight from their definitions, float64, on (samples, neurons) values."""
    values = values.astype(np.float64)
    result = {
        "mean": values.mean(axis=0),
        "var": values.var(axis=0),
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "firing_rate": (values > threshold).mean(axis=0),
        "zero_fraction": (values == 0).mean(axis=0),
    }
    if bounds is not None:
        span = margin * (bounds[1] - bounds[0])
        result["saturation"] = ((values <= bounds[0] + span) | (values >= bounds[1] - span)).mean(axis=0)
    return result


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.sampled_from(["relu", "tanh", "offset"]),
    st.sampled_from([0.0, 0.25, -0.5]),
    st.booleans(),
    st.sampled_from([torch.float32, torch.float64]),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=3),
    st.sampled_from([1, 4 * 6, 4 * 6 * 2, 1 << 16]),
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_channel_first_statistics_equal_their_definitions(kind, threshold, bounded, dtype, batches, chunk, seed):
    """(batch, channels, inner) maps through the per-row reductions (any chunking, ragged last chunk,
    every event-count branch: threshold 0 or not, nonnegative or not, bounds or not) against numpy."""
    from netevo_dsl.runtime import stats as stats_module

    generator = torch.Generator().manual_seed(seed)
    maps = [torch.randn(size, 4, 6, generator=generator, dtype=torch.float64) for size in batches]
    if kind == "relu":
        maps = [torch.relu(m) for m in maps]
    elif kind == "tanh":
        maps = [torch.tanh(2 * m) for m in maps]
    else:
        maps = [1e3 + 1e-2 * m for m in maps]
    maps = [m.to(dtype) for m in maps]
    bounds = (-1.0, 1.0) if bounded else None
    saved = stats_module.CHUNK_VALUES
    stats_module.CHUNK_VALUES = chunk
    try:
        moments = feed(NeuronMoments(4, threshold, bounds, 0.1, nonnegative=kind == "relu"), maps)
    finally:
        stats_module.CHUNK_VALUES = saved
    values = torch.cat([m.transpose(1, 2).reshape(-1, 4) for m in maps]).double().numpy()
    result = moments.summary()
    expected = numpy_definitions(values, threshold, bounds, 0.1)
    assert sorted(result) == sorted(list(expected) + ["count"])
    np.testing.assert_allclose(result["mean"].numpy(), expected["mean"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result["var"].numpy(), expected["var"], rtol=1e-9, atol=1e-15)
    for key in ("min", "max", "firing_rate", "zero_fraction") + (("saturation",) if bounded else ()):
        np.testing.assert_array_equal(result[key].numpy(), expected[key], err_msg=key)
    assert (result["count"] == len(values)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_batches_count_exactly(dtype):
    """Event counts of half-precision maps: summed in float16 they would stop being exact at 2048."""
    generator = torch.Generator().manual_seed(7)
    maps = torch.relu(torch.randn(8, 3, 40 * 40, generator=generator)).to(dtype)  # 12,800 samples per channel
    result = feed(NeuronMoments(3, nonnegative=True), [maps]).summary()
    values = maps.transpose(1, 2).reshape(-1, 3).double().numpy()
    expected = numpy_definitions(values, 0.0, None, 0.0)
    np.testing.assert_array_equal(result["firing_rate"].numpy(), expected["firing_rate"])
    np.testing.assert_allclose(result["var"].numpy(), expected["var"], rtol=1e-12)


def test_merging_streams_with_distant_means_keeps_two_pass_precision():
    """Merging moves the shift to the merged mean, so later sums stay well conditioned."""
    left_data = offset_data(1e6, 1e-4, rows=300, seed=1)
    right_data = offset_data(1e6 + 0.5, 1e-4, rows=500, seed=2)  # 5000 standard deviations away
    more = offset_data(1e6 + 0.25, 1e-4, rows=200, seed=3)
    left = feed(StreamingStats(5, correlation=True), left_data.split(64))
    right = feed(StreamingStats(5, correlation=True), right_data.split(64))
    empty = StreamingStats(5, correlation=True)
    empty.merge(left)  # into an empty accumulator: takes the other's state
    empty.merge(right)
    feed(empty, more.split(64))  # and keeps streaming after the merge
    data = torch.cat([left_data, right_data, more])
    columns = two_pass_columns(data)
    mean = columns.mean(axis=1, keepdims=True)
    result = empty.moments.summary()
    np.testing.assert_allclose(result["mean"].numpy(), mean[:, 0], rtol=1e-14)
    np.testing.assert_allclose(result["var"].numpy(), ((columns - mean) ** 2).mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(empty.comoments.correlation().numpy(), np.corrcoef(columns), atol=1e-9)
    assert empty.count == 1000
