"""The numba functions of `stats_kernel.py`, in a module of their own: importing numba takes
about half a second, so this is imported at the first batch the kernel takes, not with the tracker."""
import numba
import numpy as np

from netevo_dsl.runtime.stats_kernel import FIRING, MAX, MIN, NONZERO, SATURATED, SQUARES, SUM

_jit = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract"})


@_jit
def _accumulate(x, shift, threshold, s, q, lo, hi, fire):
    """Add column j of x (n, w) to s[j] (sum of x - shift[j], float64), q[j] (its squares),
    lo[j] and hi[j] (x's dtype) and fire[j] (int32 count of x > threshold); four rows per
    step, so that each accumulator is loaded and stored once per four values. No branches:
    an optional count inside this loop halved its speed, so those have loops of their own."""
    n, w = x.shape
    n4 = n - n % 4
    for i in range(0, n4, 4):
        for j in range(w):
            k = shift[j]
            v0, v1, v2, v3 = x[i, j], x[i + 1, j], x[i + 2, j], x[i + 3, j]
            d0, d1, d2, d3 = np.float64(v0) - k, np.float64(v1) - k, np.float64(v2) - k, np.float64(v3) - k
            s[j] += (d0 + d1) + (d2 + d3)
            q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
            smallest, low_j = min(min(v0, v1), min(v2, v3)), lo[j]
            lo[j] = smallest if smallest < low_j else low_j  # a select, not a branch: it vectorises
            largest, high_j = max(max(v0, v1), max(v2, v3)), hi[j]
            hi[j] = largest if largest > high_j else high_j
            fire[j] += (np.int32(v0 > threshold) + np.int32(v1 > threshold)) + (
                np.int32(v2 > threshold) + np.int32(v3 > threshold))
    for i in range(n4, n):
        for j in range(w):
            v = x[i, j]
            d = np.float64(v) - shift[j]
            s[j] += d
            q[j] += d * d
            low_j, high_j = lo[j], hi[j]
            lo[j] = v if v < low_j else low_j
            hi[j] = v if v > high_j else high_j
            fire[j] += np.int32(v > threshold)


@_jit
def _count_nonzero(x, nonzero):
    n, w = x.shape
    for i in range(n):
        for j in range(w):
            nonzero[j] += np.int32(x[i, j] != 0)


@_jit
def _count_outside(x, low, high, outside):
    """outside[j] += the number of x[:, j] <= low or >= high (saturated values)."""
    n, w = x.shape
    for i in range(n):
        for j in range(w):
            v = x[i, j]
            outside[j] += np.int32((v <= low) | (v >= high))


@_jit
def _accumulate_all(x, shift, threshold, low, high, same_counts, saturate, s, q, lo, hi, fire, nonzero, sat):
    _accumulate(x, shift, threshold, s, q, lo, hi, fire)
    if not same_counts:
        _count_nonzero(x, nonzero)
    if saturate:
        _count_outside(x, low, high, sat)


@_jit
def _work(x, size):
    """Per-batch accumulators: sums, squares (float64), min, max (x's dtype), three int32 counts."""
    s, q = np.zeros(size), np.zeros(size)
    lo, hi = np.full(size, np.inf, dtype=x.dtype), np.full(size, -np.inf, dtype=x.dtype)
    return s, q, lo, hi, np.zeros(size, np.int32), np.zeros(size, np.int32), np.zeros(size, np.int32)


@_jit
def _has_nan(x, start, stop):
    """Whether columns start:stop of x (one neuron's values) hold a NaN."""
    for i in range(x.shape[0]):
        for j in range(start, stop):
            if x[i, j] != x[i, j]:
                return True
    return False


@_jit
def _fold(state, c, x, start, stop, s, q, lo, hi, fire, nonzero, sat, same_counts):
    """Add one neuron's batch sums to its state column c."""
    state[SUM, c] += s
    state[SQUARES, c] += q
    state[FIRING, c] += fire
    state[NONZERO, c] += fire if same_counts else nonzero
    state[SATURATED, c] += sat
    if s != s and _has_nan(x, start, stop):  # min and max propagate NaN, like torch.amin / amax
        lo = hi = np.nan
    if lo < state[MIN, c] or lo != lo:
        state[MIN, c] = lo
    if hi > state[MAX, c] or hi != hi:
        state[MAX, c] = hi


@_jit
def add_rows(x, shift, threshold, low, high, same_counts, saturate, state):
    width = x.shape[1]
    s, q, lo, hi, fire, nonzero, sat = _work(x, width)
    _accumulate_all(x, shift, threshold, low, high, same_counts, saturate, s, q, lo, hi, fire, nonzero, sat)
    for j in range(width):
        _fold(state, j, x, j, j + 1, s[j], q[j], lo[j], hi[j], fire[j], nonzero[j], sat[j], same_counts)


@_jit
def add_maps(x, inner, shift, threshold, low, high, same_counts, saturate, state):
    """x is (batch, width * inner): every (neuron, inner position) is a lane with its own
    sums over the batch, reduced into the neuron's state at the end (x is read in order)."""
    width = state.shape[1]
    lanes = width * inner
    s, q, lo, hi, fire, nonzero, sat = _work(x, lanes)
    lane_shift = np.empty(lanes)
    for c in range(width):
        lane_shift[c * inner : (c + 1) * inner] = shift[c]
    _accumulate_all(x, lane_shift, threshold, low, high, same_counts, saturate, s, q, lo, hi, fire, nonzero, sat)
    for c in range(width):
        start, stop = c * inner, (c + 1) * inner
        _fold(state, c, x, start, stop, s[start:stop].sum(), q[start:stop].sum(), lo[start:stop].min(),
              hi[start:stop].max(), fire[start:stop].sum(), nonzero[start:stop].sum(), sat[start:stop].sum(),
              same_counts)  # fmt: skip
