"""Streaming per-neuron statistics with memory that does not grow with the data.

A *stream* is a sequence of batches shaped (samples, neurons). Every
accumulator has a fixed size set by the number of neurons, so the state after
ten batches and after ten thousand is the same tensors.

Moments use Chan et al.'s parallel update (the batch form of Welford's
algorithm): each batch is reduced two-pass to (count, mean, M2) in float64 and
folded into the running (count, mean, M2). E[x^2] - E[x]^2 is never formed;
it cancels catastrophically when the mean is large next to the spread
(activations near 1e6 varying by 1e-4, say). Means are also kept relative to
a per-neuron *shift* (the first sample seen): x - shift is exact for values
close to it, so batch means and the deltas between them keep full precision
instead of the 1e-10 absolute resolution of numbers near 1e6.

Every reduction is a whole-tensor torch op: no Python loop over neurons and no
`.item()`, so the work stays on the activations' device without syncs.
"""
from __future__ import annotations

import math

import torch

from netevo_dsl.errors import UsageError

F64 = torch.float64

# A neuron whose spread is below this fraction of its magnitude is constant up
# to rounding: its centred values are rounding noise of the batch mean, and a
# correlation computed from them would be meaningless (often +-1).
CONSTANT_RELATIVE_SPREAD = 1e-12


def initial_shift(x: torch.Tensor) -> torch.Tensor:
    """The reference point means are kept relative to: the batch's first sample."""
    return x[0].to(F64, copy=True)


def batch_centered(
    x: torch.Tensor, shift: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 column means of a (samples, width) batch relative to `shift`, and the centred batch.

    The first pass of the two-pass algorithm; callers feeding both moments and
    co-moments center once and share the result. `out` (float64, x's shape)
    receives the centred batch.
    """
    centered = torch.sub(x, shift, out=out)  # promotes to float64
    mean = centered.mean(dim=0)
    centered.sub_(mean)
    return mean, centered


class Scratch:
    """Reusable work buffers, reallocated only when a batch's shape changes.

    Not statistics state: it is sized by the batch, not the stream. Reusing it
    matters on CPU, where a fresh multi-megabyte tensor per batch costs page
    faults that can exceed the arithmetic.
    """

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype or buffer.device != device:
            buffer = self._buffers[name] = torch.empty(shape, dtype=dtype, device=device)
        return buffer


def _chan_merge(count_a: int, mean_a: torch.Tensor, count_b: int, mean_b: torch.Tensor):
    """Move running mean (a) to the merged mean in place; return delta and the M2 cross weight.

    mean = mean_a + delta * n_b / n
    M2   = M2_a + M2_b + delta^2 * n_a * n_b / n
    """
    total = count_a + count_b
    delta = mean_b - mean_a
    mean_a.add_(delta, alpha=count_b / total)
    return delta, count_a * count_b / total


def _check_same(kind: str, mine, theirs) -> None:
    if mine != theirs:
        raise UsageError(
            f"cannot merge {kind} statistics: {mine!r} here, {theirs!r} in the other",
            hint="merge only accumulators built with the same width and options",
        )


def _nbytes(tensors) -> int:
    return sum(t.nelement() * t.element_size() for t in tensors if t is not None)


class _ShiftedMean:
    """Count and mean of a stream, the mean held relative to a fixed per-neuron shift."""

    def __init__(self, width: int, device):
        self.width = int(width)
        self.count = 0
        self.shift = torch.zeros(self.width, dtype=F64, device=device)
        self.mean_rel = torch.zeros(self.width, dtype=F64, device=device)

    def begin(self, x: torch.Tensor) -> None:
        """Fix the shift from the first batch of the stream."""
        if self.count == 0 and x.shape[0]:
            self.shift.copy_(x[0])

    @property
    def mean(self) -> torch.Tensor:
        return self.shift + self.mean_rel

    def _other_mean_rel(self, other: "_ShiftedMean") -> torch.Tensor:
        """The other stream's mean, re-expressed relative to this stream's shift."""
        if self.count == 0:
            self.shift.copy_(other.shift)
        return other.mean_rel.to(self.shift.device) + (other.shift.to(self.shift.device) - self.shift)


class NeuronMoments(_ShiftedMean):
    """Per-neuron count, mean, M2, min, max, and firing / exact-zero / saturation counts.

    A value *fires* when it is strictly greater than `threshold`. `bounds` =
    (low, high) of a bounded activation (tanh, sigmoid, ...); a value is
    *saturated* when it lies within `saturation_margin * (high - low)` of
    either bound. Without bounds no saturation is counted.
    """

    def __init__(
        self,
        width: int,
        threshold: float = 0.0,
        bounds: tuple[float, float] | None = None,
        saturation_margin: float = 0.02,
        device: torch.device | str | None = None,
    ):
        super().__init__(width, device)
        self.threshold = float(threshold)
        self.bounds = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        self.saturation_margin = float(saturation_margin)
        f64 = dict(dtype=F64, device=device)
        self.m2 = torch.zeros(self.width, **f64)
        self.min = torch.full((self.width,), math.inf, **f64)
        self.max = torch.full((self.width,), -math.inf, **f64)
        # Counts live in float64: exact up to 2**53 samples, and adding a float
        # batch count needs no dtype conversion on the hot path.
        self.firing = torch.zeros(self.width, **f64)
        self.zeros = torch.zeros(self.width, **f64)
        self.saturated = torch.zeros(self.width, **f64) if self.bounds is not None else None
        self.scratch = Scratch()

    # --- updates ------------------------------------------------------------------

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width)."""
        self.begin(x)
        if x.shape[0]:
            out = self.scratch.get("centered", x.shape, F64, x.device)
            self.update_centered(x, *batch_centered(x, self.shift, out))

    def update_centered(self, x: torch.Tensor, batch_mean_rel: torch.Tensor, centered: torch.Tensor) -> None:
        """Add a batch whose float64 mean (relative to `self.shift`) and centred values are known."""
        n = x.shape[0]
        if n == 0:
            return
        batch_m2 = torch.linalg.vecdot(centered, centered, dim=0)
        delta, cross = _chan_merge(self.count, self.mean_rel, n, batch_mean_rel)
        self.m2.add_(batch_m2)
        if cross:
            self.m2.add_(delta * delta, alpha=cross)
        self.count += n
        torch.minimum(self.min, x.amin(dim=0), out=self.min)
        torch.maximum(self.max, x.amax(dim=0), out=self.max)
        self._count_events(x, n)

    def _count_events(self, x: torch.Tensor, n: int) -> None:
        # sign() plus float sums is several times faster on CPU than summing
        # bool masks. With s = sign(x - t): sum(s) = above - below and
        # sum(|s|) = above + below, hence above = (sum(s) + sum(|s|)) / 2.
        sign = self.scratch.get("sign", x.shape, x.dtype, x.device)
        if self.threshold:
            torch.sub(x, self.threshold, out=sign).sign_()
        else:
            torch.sign(x, out=sign)
        signed_sum = sign.sum(dim=0)
        nonequal = sign.abs_().sum(dim=0)
        self.firing.add_(signed_sum.add_(nonequal), alpha=0.5)
        if self.threshold:
            nonequal = torch.sign(x, out=sign).abs_().sum(dim=0)
        self.zeros.add_(n - nonequal)  # with threshold 0, "not above or below" is "exactly zero"
        if self.saturated is not None:
            low, high = self.bounds
            margin = self.saturation_margin * (high - low)
            near_low = self.scratch.get("near_low", x.shape, torch.bool, x.device)
            near_high = self.scratch.get("near_high", x.shape, torch.bool, x.device)
            torch.le(x, low + margin, out=near_low)
            torch.ge(x, high - margin, out=near_high)
            self.saturated.add_(near_low.logical_or_(near_high).sum(dim=0))

    def merge(self, other: "NeuronMoments") -> None:
        """Fold another accumulator (e.g. from another worker) into this one."""
        _check_same("width", self.width, other.width)
        _check_same("threshold", self.threshold, other.threshold)
        _check_same("bounds", self.bounds, other.bounds)
        if other.count == 0:
            return
        device = self.m2.device
        delta, cross = _chan_merge(self.count, self.mean_rel, other.count, self._other_mean_rel(other))
        self.m2.add_(other.m2.to(device)).add_(delta * delta, alpha=cross)
        self.count += other.count
        torch.minimum(self.min, other.min.to(device), out=self.min)
        torch.maximum(self.max, other.max.to(device), out=self.max)
        self.firing.add_(other.firing.to(device))
        self.zeros.add_(other.zeros.to(device))
        if self.saturated is not None:
            self.saturated.add_(other.saturated.to(device))

    # --- results --------------------------------------------------------------------

    def summary(self) -> dict[str, torch.Tensor]:
        """Per-neuron statistics; `var` is the population variance (ddof 0)."""
        count = max(self.count, 1)  # an empty stream reports zeros, not NaN
        result = {
            "mean": self.mean if self.count else torch.zeros_like(self.mean_rel),
            "var": self.m2 / count,
            "min": self.min.clone(),
            "max": self.max.clone(),
            "firing_rate": self.firing / count,
            "zero_fraction": self.zeros / count,
            "count": torch.full((self.width,), self.count, dtype=torch.int64, device=self.m2.device),
        }
        if self.saturated is not None:
            result["saturation"] = self.saturated / count
        return result

    def state_nbytes(self) -> int:
        return _nbytes([self.shift, self.mean_rel, self.m2, self.min, self.max, self.firing, self.zeros, self.saturated])


class CoMoments(_ShiftedMean):
    """Streaming co-moment matrix sum((x_i - mean_i)(x_j - mean_j)), float64.

    Memory is O(width^2), independent of the number of samples. With
    `block_size` smaller than the width only the block-diagonal part is kept
    (width * block_size numbers): memory stays bounded for wide layers, at the
    price of missing pairs that fall in different blocks.

    `product_dtype` is the dtype of each batch's matrix product; the running
    matrix is float64 either way. float32 halves the cost of the product and is
    accurate to about 1e-7 relative, plenty for redundancy detection.
    """

    def __init__(
        self,
        width: int,
        block_size: int | None = None,
        device: torch.device | str | None = None,
        product_dtype: torch.dtype = F64,
    ):
        super().__init__(width, device)
        self.block = self.width if not block_size or block_size >= self.width else int(block_size)
        self.blocks = math.ceil(self.width / self.block) if self.width else 0
        self.product_dtype = product_dtype
        self.comoment = torch.zeros(self.blocks, self.block, self.block, dtype=F64, device=device)
        self.scratch = Scratch()

    @property
    def padded_width(self) -> int:
        return self.blocks * self.block

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width)."""
        self.begin(x)
        if x.shape[0]:
            out = self.scratch.get("centered", x.shape, F64, x.device)
            self.update_centered(x.shape[0], *batch_centered(x, self.shift, out))

    def update_centered(self, n: int, batch_mean_rel: torch.Tensor, centered: torch.Tensor) -> None:
        """Add a batch whose mean (relative to `self.shift`) and centred values are known."""
        if n == 0:
            return
        delta, cross = _chan_merge(self.count, self.mean_rel, n, batch_mean_rel)
        if self.blocks == 1:
            matrix = self.comoment[0]
            if self.product_dtype == F64:
                matrix.addmm_(centered.T, centered)
            else:
                rows = self.scratch.get("rows", centered.shape, self.product_dtype, centered.device)
                rows.copy_(centered)
                product = self.scratch.get("product", matrix.shape, self.product_dtype, centered.device)
                matrix.add_(torch.mm(rows.T, rows, out=product))
            if cross:
                matrix.addr_(delta, delta, alpha=cross)
        else:
            blocked = self._as_blocks(centered, "rows", self.product_dtype)  # (blocks, n, block)
            product = self.scratch.get("product", self.comoment.shape, self.product_dtype, centered.device)
            self.comoment.add_(torch.bmm(blocked.transpose(1, 2), blocked, out=product))
            if cross:
                d = self._as_blocks(delta[None, :])  # (blocks, 1, block)
                self.comoment.baddbmm_(d.transpose(1, 2), d, alpha=cross)
        self.count += n

    def _as_blocks(self, rows: torch.Tensor, scratch_name: str | None = None, dtype=F64) -> torch.Tensor:
        """(n, width) -> (blocks, n, block), zero-padding the last block."""
        n, full = rows.shape[0], self.width // self.block
        shape = (self.blocks, n, self.block)
        if scratch_name is None:
            blocked = torch.empty(shape, dtype=dtype, device=rows.device)
        else:
            blocked = self.scratch.get(scratch_name, shape, dtype, rows.device)
        if full:
            blocked[:full].copy_(rows[:, : full * self.block].reshape(n, full, self.block).transpose(0, 1))
        rest = self.width - full * self.block
        if rest:
            blocked[full, :, :rest].copy_(rows[:, full * self.block :])
            blocked[full, :, rest:].zero_()
        return blocked

    def merge(self, other: "CoMoments") -> None:
        _check_same("width", self.width, other.width)
        _check_same("block size", self.block, other.block)
        if other.count == 0:
            return
        delta, cross = _chan_merge(self.count, self.mean_rel, other.count, self._other_mean_rel(other))
        self.comoment.add_(other.comoment.to(self.comoment.device))
        d = self._as_blocks(delta[None, :])
        self.comoment.baddbmm_(d.transpose(1, 2), d, alpha=cross)
        self.count += other.count

    # --- results --------------------------------------------------------------------

    def _block_variances(self) -> torch.Tensor:
        """Diagonal co-moments per block, with constant neurons set to 0."""
        diag = torch.diagonal(self.comoment, dim1=1, dim2=2).reshape(-1)
        magnitude = torch.nn.functional.pad(self.mean.abs(), (0, self.padded_width - self.width))
        floor = max(self.count, 1) * (CONSTANT_RELATIVE_SPREAD * magnitude) ** 2
        return torch.where(diag > floor, diag, torch.zeros_like(diag)).reshape(self.blocks, self.block)

    def correlation_blocks(self) -> torch.Tensor:
        """Pearson correlations per block, (blocks, block, block); NaN where a neuron is constant."""
        std = self._block_variances().sqrt()
        denom = std[:, :, None] * std[:, None, :]
        corr = torch.where(denom > 0, self.comoment / denom, torch.full_like(denom, math.nan))
        return corr.clamp_(-1.0, 1.0)  # trims rounding beyond +-1; NaN stays NaN

    def correlation(self) -> torch.Tensor:
        """The (width, width) correlation matrix; only when one block covers the layer."""
        if self.blocks > 1:
            raise UsageError(
                f"a full correlation matrix is not kept for width {self.width} "
                f"(block-diagonal with blocks of {self.block})",
                hint="use correlation_blocks() or pairs_above(), or raise the block size",
            )
        return self.correlation_blocks()[0] if self.blocks else torch.zeros(0, 0, dtype=F64)

    def pairs_above(self, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Index pairs i < j (within the layer) with |correlation| >= threshold, and their correlations."""
        corr = self.correlation_blocks()
        upper = torch.ones(self.block, self.block, dtype=torch.bool, device=corr.device).triu_(diagonal=1)
        hits = (corr.abs() >= threshold) & upper  # NaN compares False, so constant neurons never pair
        block, row, col = hits.nonzero(as_tuple=True)
        offset = block * self.block
        return offset + row, offset + col, corr[block, row, col]

    def affine_fit(self, i: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Least-squares x_j ~ slope * x_i + intercept, for pairs in the same block.

        This is what merging j into i needs: the consumer's weight for i gains
        slope * w_j and its bias gains intercept * w_j.
        """
        block, row, col = i // self.block, i % self.block, j % self.block
        var_i = self._block_variances()[block, row]
        cov = self.comoment[block, row, col]
        slope = torch.where(var_i > 0, cov / var_i, torch.zeros_like(cov))
        mean = self.mean
        return slope, mean[j] - slope * mean[i]

    def state_nbytes(self) -> int:
        return _nbytes([self.shift, self.mean_rel, self.comoment])


class StreamingStats:
    """Moments, and optionally co-moments, of one layer's neurons, centred once per batch."""

    def __init__(
        self,
        width: int,
        threshold: float = 0.0,
        bounds: tuple[float, float] | None = None,
        saturation_margin: float = 0.02,
        correlation: bool = False,
        corr_block_size: int | None = None,
        corr_product_dtype: torch.dtype = F64,
        device: torch.device | str | None = None,
    ):
        self.moments = NeuronMoments(width, threshold, bounds, saturation_margin, device)
        self.comoments = (
            CoMoments(width, corr_block_size, device, corr_product_dtype) if correlation else None
        )

    @property
    def count(self) -> int:
        return self.moments.count

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width)."""
        if x.shape[0] == 0:
            return
        self.moments.begin(x)
        mean_rel, centered = batch_centered(x, self.moments.shift)
        self.moments.update_centered(x, mean_rel, centered)
        if self.comoments is not None:
            self.comoments.begin(x)  # the same first sample, so the same shift
            self.comoments.update_centered(x.shape[0], mean_rel, centered)

    def merge(self, other: "StreamingStats") -> None:
        self.moments.merge(other.moments)
        if (self.comoments is None) != (other.comoments is None):
            raise UsageError("cannot merge statistics with and without correlation tracking")
        if self.comoments is not None:
            self.comoments.merge(other.comoments)

    def state_nbytes(self) -> int:
        return self.moments.state_nbytes() + (self.comoments.state_nbytes() if self.comoments else 0)
