"""One-pass CPU kernel for the per-neuron moments of `stats.py`, compiled with numba when it is installed.

The eager torch path of `stats.add_batch` makes about ten passes over each batch (a float64
copy, the shift, two column sums, the square, min, max, signs and their sums), each a separate
op with its own dispatch. This kernel reads every value once, with the same float64 arithmetic:
d = float64(x) - shift, sum(d) and sum(d * d) in float64; min and max of the values; event
counts as int32 per batch (exact: a batch has fewer than 2**31 values per lane), added to the
float64 counts. Only the order of the float64 additions differs from the torch path: both are
held to the same float64 oracle by the tests (tests/runtime/test_stats.py runs on both paths).

Comparisons (x > threshold, x <= low + margin, x >= high - margin) run in the batch's dtype
against the limits rounded outward to that dtype (`_bound_below`, `_bound_above`), which gives
the float64 comparison's answer for every value of that dtype: eight float32 lanes per
instruction instead of four float64 ones, and no rounding of the limit to float32 (the torch
path compares float32 batches against float32-rounded limits, off for values next to a limit).

It takes CPU float32 / float64 batches, contiguous, shaped (samples, width) or
(batch, width, inner), for the moments (co-moments, when tracked, take the torch path after it);
everything else (CUDA, other dtypes, non-contiguous views) takes the torch path. numba is optional
(`pip install netevo[fast]`): without it, or with NETEVO_STATS_KERNEL=0 in the environment, the
torch path runs. The first batch of each kind (rows or maps, float32 or float64) compiles the
kernel, about a second; numba caches the compiled code on disk where it can write.

NaN: a NaN in a neuron's values makes its mean, variance, min and max NaN (as on the torch
path); counts follow their definitions, so a NaN is neither firing, nor zero, nor saturated (the
torch path counts it as zero).
"""
from __future__ import annotations

import importlib.util
import math
import os
import warnings

import numpy as np
import torch

# Rows of the (ROWS, width) float64 state block that `NeuronMoments` keeps its sums in.
SUM, SQUARES, MIN, MAX, FIRING, NONZERO, SATURATED = range(7)
ROWS = 7

ENABLED = os.environ.get("NETEVO_STATS_KERNEL", "1") != "0"
_compiled = None  # the stats_numba module once imported; False when numba is missing


def available() -> bool:
    """Whether numba is installed (checked without importing it)."""
    return _compiled is not False and importlib.util.find_spec("numba") is not None


def _functions():
    global _compiled
    if _compiled is None:
        try:
            from netevo_dsl.runtime import stats_numba as _module
        except ImportError:  # numba is an optional dependency
            _module = False
        except Exception as error:  # e.g. numba finds nowhere to cache compiled code: correct, only slower
            warnings.warn(f"the statistics kernel is off ({type(error).__name__}: {error}); the torch path runs")
            _module = False
        _compiled = _module
    return _compiled


class Kernel:
    """The kernel bound to one `NeuronMoments`: numpy views of its state block and shift (both
    updated in place, never replaced) and its thresholds in each batch dtype, made once."""

    def __init__(self, state: torch.Tensor, shift: torch.Tensor, threshold: float, bounds, margin: float,
                 same_counts: bool):  # fmt: skip
        self.state, self.shift = state.numpy(), shift.numpy()
        self.width = state.shape[1]
        self.same_counts = bool(same_counts)  # values >= 0 and threshold 0: firing == non-zero
        self.saturate = bounds is not None
        low, high = -math.inf, math.inf
        if self.saturate:
            span = margin * (bounds[1] - bounds[0])
            low, high = bounds[0] + span, bounds[1] - span
        self.limits = {
            dtype: (_bound_below(threshold, numpy_dtype), _bound_below(low, numpy_dtype), _bound_above(high, numpy_dtype))
            for dtype, numpy_dtype in ((torch.float32, np.float32), (torch.float64, np.float64))
        }  # fmt: skip

    def add(self, x: torch.Tensor) -> int | None:
        """Add a (samples, width) or (batch, width, inner) batch; the number of samples added,
        or None (nothing done) when the kernel does not take it (see the module's doc)."""
        limits = self.limits.get(x.dtype)
        if limits is None or not ENABLED or x.ndim not in (2, 3) or x.shape[1] != self.width:
            return None
        if x.device.type != "cpu" or not x.is_contiguous():
            return None
        compiled = _compiled or _functions()
        if not compiled:
            return None
        inner = 1 if x.ndim == 2 else x.shape[2]
        values = x.detach().numpy().reshape(x.shape[0], self.width * inner)
        return self.add_array(values, inner) if values.size else 0

    def add_array(self, values, inner: int) -> int:
        """Add a batch already checked and laid out: a C-contiguous float32 / float64 numpy array
        (batch, width * inner); the number of samples added. For callers that repeat add()'s checks
        once per shape (the tracker) and then skip them."""
        limits = self.limits[torch.float32 if values.dtype == np.float32 else torch.float64]
        compiled = _compiled or _functions()
        if inner == 1:
            compiled.add_rows(values, self.shift, *limits, self.same_counts, self.saturate, self.state)
        else:
            compiled.add_maps(values, inner, self.shift, *limits, self.same_counts, self.saturate, self.state)
        return values.shape[0] * inner


def _bound_below(value: float, dtype):
    """The largest `dtype` number <= value: for x of that dtype, x > value iff x > it, x <= value iff x <= it.

    So the kernel compares in the batch's dtype (eight float32 lanes per instruction, not four
    float64) with the same outcome as comparing in float64.
    """
    with np.errstate(over="ignore"):  # beyond the dtype's range: +-inf, then the largest finite number
        rounded = dtype(value)
    return np.nextafter(rounded, dtype(-np.inf)) if float(rounded) > value else rounded


def _bound_above(value: float, dtype):
    """The smallest `dtype` number >= value: x >= value iff x >= it."""
    with np.errstate(over="ignore"):
        rounded = dtype(value)
    return np.nextafter(rounded, dtype(np.inf)) if float(rounded) < value else rounded
