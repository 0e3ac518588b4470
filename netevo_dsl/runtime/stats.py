"""Streaming per-neuron statistics with memory that does not grow with the data.

A *stream* is a sequence of batches shaped (samples, neurons), or
(batch, neurons, inner) for channel-first maps such as convolution outputs,
where every (batch, inner) position is a sample. The second form lets a
(B, C, H*W) view be reduced without first copying it into (B*H*W, C). Every
accumulator has a fixed size set by the number of neurons, so the state after
ten batches and after ten thousand is the same tensors.

Moments use Chan et al.'s parallel update (the batch form of Welford's
algorithm): each batch is reduced to (count, mean, M2) in float64 and folded
into the running (count, mean, M2). E[x^2] - E[x]^2 is never formed; it cancels
catastrophically when the mean is large next to the spread (activations near
1e6 varying by 1e-4, say).

A batch is reduced about a per-neuron *shift* K: with d = x - K,
M2 = sum(d^2) - sum(d)^2 / n, whose rounding error is about
eps * (1 + (mean - K)^2 / var). K starts as the first sample and moves to the
running mean after the first batch, so the factor stays near 1: as accurate as
a two-pass computation, without a separate pass for the mean. Means are kept
relative to K too, so batch means and the deltas between them keep full
precision instead of the 1e-10 absolute resolution of numbers near 1e6.

Every reduction is a whole-tensor torch op: no Python loop over neurons and no
`.item()`, so the work stays on the activations' device without syncs.
"""
from __future__ import annotations

import math

import torch

from netevo_dsl.errors import UsageError

F64 = torch.float64

# A neuron whose spread is below this fraction of its magnitude is constant up
# to rounding, and a correlation computed from it would be meaningless.
CONSTANT_RELATIVE_SPREAD = 1e-12


class Scratch:
    """Reusable work buffers that only ever grow.

    Not statistics state: their size follows the largest chunk seen, not the
    stream. Reuse matters on CPU, where a fresh multi-megabyte tensor per batch
    costs page faults that can exceed the arithmetic.
    """

    def __init__(self):
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._views: dict[tuple, torch.Tensor] = {}  # batches repeat their shape: skip re-slicing

    def get(self, name: str, shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (name, tuple(shape), dtype, device)
        view = self._views.get(key)
        if view is not None:
            return view
        size = math.prod(shape)
        buffer = self._buffers.get((name, dtype, device))
        if buffer is None or buffer.numel() < size:
            buffer = self._buffers[(name, dtype, device)] = torch.empty(size, dtype=dtype, device=device)
            self._views = {k: v for k, v in self._views.items() if k[0] != name}  # they alias the old buffer
        view = self._views[key] = buffer[:size].view(shape)
        return view


def as_3d(x: torch.Tensor) -> torch.Tensor:
    """(samples, neurons) -> (samples, neurons, 1); (batch, neurons, inner) as is."""
    if x.ndim == 2:
        return x[:, :, None]
    if x.ndim == 3:
        return x
    raise UsageError(
        f"statistics take (samples, neurons) or (batch, neurons, inner) tensors, got shape {tuple(x.shape)}"
    )


def sample_count(x3: torch.Tensor) -> int:
    return x3.shape[0] * x3.shape[2]


# Reductions over every sample axis of a (batch, neurons, inner) tensor, giving
# one value per neuron. With inner > 1 the contiguous inner axis goes first: it
# vectorises, and leaves only a small (batch, neurons) tensor for the rest.


def sum_over_samples(t: torch.Tensor) -> torch.Tensor:
    return t.sum(dim=(0, 2)) if t.shape[2] == 1 else t.sum(dim=2).sum(dim=0)


def sum_of_squares_over_samples(t: torch.Tensor) -> torch.Tensor:
    """Sum of t^2 per neuron; may overwrite t."""
    if t.shape[2] == 1:
        return t.square_().sum(dim=(0, 2))
    return torch.linalg.vector_norm(t, dim=2).square_().sum(dim=0)  # one read, no write


def min_over_samples(t: torch.Tensor) -> torch.Tensor:
    return t.amin(dim=(0, 2)) if t.shape[2] == 1 else t.amin(dim=2).amin(dim=0)


def max_over_samples(t: torch.Tensor) -> torch.Tensor:
    return t.amax(dim=(0, 2)) if t.shape[2] == 1 else t.amax(dim=2).amax(dim=0)


def shifted_batch(x3: torch.Tensor, shift: torch.Tensor, scratch: Scratch) -> tuple[torch.Tensor, torch.Tensor]:
    """x - shift in float64 (in a scratch buffer) for a 3-d batch, and its per-neuron sums.

    Copy, then subtract in place: `torch.sub(x, shift, out=f64_buffer)` takes a
    slow mixed-dtype path on CPU (tens of times slower here).
    """
    shifted = scratch.get("shifted", x3.shape, F64, x3.device)
    shifted.copy_(x3).sub_(shift[:, None])
    return shifted, sum_over_samples(shifted)


# Batches are reduced in chunks of about this many values, so the float64 work
# copy is at most 8 MiB: a (512, 64, 56, 56) convolution map would otherwise
# need an 800 MB copy. Larger chunks mean fewer small ops per batch; smaller
# ones gave no measurable cache benefit on a 2-core AMD EPYC.
CHUNK_VALUES = 1 << 20


def add_batch(x: torch.Tensor, scratch: Scratch, moments=None, comoments=None) -> None:
    """Feed one batch, (samples, width) or (batch, width, inner), to moments and/or co-moments.

    The batch is taken a chunk at a time; chunk sums relative to the shared
    shift add up to the batch's, and one Chan update per batch folds them in.
    """
    x3 = as_3d(x)
    n = sample_count(x3)
    if n == 0:
        return
    accumulators = [acc for acc in (moments, comoments) if acc is not None]
    for accumulator in accumulators:
        accumulator.begin(x3)  # same first sample, same shift: they can share `shifted`
    rows_per_chunk = max(1, CHUNK_VALUES // max(1, x3.shape[1] * x3.shape[2]))
    chunks = x3.split(rows_per_chunk) if x3.shape[0] > rows_per_chunk else (x3,)
    total_sum = total_squares = None
    for chunk in chunks:
        shifted, chunk_sum = shifted_batch(chunk, accumulators[0].shift, scratch)
        total_sum = chunk_sum if total_sum is None else total_sum.add_(chunk_sum)
        if comoments is not None:
            comoments.add_products(shifted)
        if moments is not None:
            squares = sum_of_squares_over_samples(shifted)  # may overwrite `shifted`: after the products
            total_squares = squares if total_squares is None else total_squares.add_(squares)
            moments.observe(chunk)
    if comoments is not None:
        comoments.fold(n, total_sum)
    if moments is not None:
        moments.fold(n, total_sum, total_squares)


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
    """Count and mean of a stream, the mean held relative to a per-neuron shift."""

    def __init__(self, width: int, device):
        self.width = int(width)
        self.count = 0
        self.shift = torch.zeros(self.width, dtype=F64, device=device)
        self.mean_rel = torch.zeros(self.width, dtype=F64, device=device)

    def begin(self, x3: torch.Tensor) -> None:
        """Take the first sample of a stream's first (3-d) batch as the shift."""
        if self.count == 0 and sample_count(x3):
            self.shift.copy_(x3[0, :, 0])

    def recenter(self) -> None:
        """Move the shift to the running mean, keeping the mean itself unchanged."""
        new_shift = self.shift + self.mean_rel
        self.mean_rel.add_(self.shift - new_shift)  # the rounding residual of new_shift
        self.shift.copy_(new_shift)

    def _add_batch_mean(self, n: int, shifted_sum: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Fold a batch's sums (relative to the shift) into the running count and mean.

        Returns n * delta, delta being batch mean minus the old running mean, and
        the weight w for which Chan's cross term delta^2 * n_a * n / (n_a + n)
        equals w * (n * delta)^2. After the first batch the shift moves from the
        first sample to the mean, where later shifted sums are best conditioned.
        """
        before, total = self.count, self.count + n
        scaled_delta = torch.add(shifted_sum, self.mean_rel, alpha=-n)
        self.mean_rel.add_(scaled_delta, alpha=1.0 / total)
        self.count = total
        if before == 0:
            self.recenter()
        return scaled_delta, before / (n * total)

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
    either bound. Without bounds no saturation is counted. `nonnegative`
    promises values >= 0 (ReLU outputs): then, at threshold 0, firing and
    zero counts come from one pass instead of two.
    """

    def __init__(
        self,
        width: int,
        threshold: float = 0.0,
        bounds: tuple[float, float] | None = None,
        saturation_margin: float = 0.02,
        device: torch.device | str | None = None,
        nonnegative: bool = False,
    ):
        super().__init__(width, device)
        self.threshold = float(threshold)
        self.nonnegative = bool(nonnegative)
        self.bounds = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        self.saturation_margin = float(saturation_margin)
        f64 = dict(dtype=F64, device=device)
        self.m2 = torch.zeros(self.width, **f64)
        self.min = torch.full((self.width,), math.inf, **f64)
        self.max = torch.full((self.width,), -math.inf, **f64)
        # Counts live in float64: exact up to 2**53 samples, and adding a float
        # batch count needs no dtype conversion on the hot path.
        self.firing = torch.zeros(self.width, **f64)
        self.nonzero = torch.zeros(self.width, **f64)
        self.saturated = torch.zeros(self.width, **f64) if self.bounds is not None else None
        self.scratch = Scratch()

    # --- updates ------------------------------------------------------------------

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width) or (batch, width, inner)."""
        add_batch(x, self.scratch, moments=self)

    def fold(self, n: int, shifted_sum: torch.Tensor, shifted_squares: torch.Tensor) -> None:
        """Chan-merge a batch of n samples given its sums of (x - shift) and (x - shift)^2."""
        scaled_delta, cross = self._add_batch_mean(n, shifted_sum)
        # M2 += (batch M2 = sum(d^2) - sum(d)^2 / n) + Chan's cross term
        self.m2.add_(shifted_squares).addcmul_(shifted_sum, shifted_sum, value=-1.0 / n)
        if cross:
            self.m2.addcmul_(scaled_delta, scaled_delta, value=cross)

    def observe(self, x3: torch.Tensor) -> None:
        """Extremes and event counts of a 3-d chunk (these need no shift)."""
        torch.minimum(self.min, min_over_samples(x3), out=self.min)
        torch.maximum(self.max, max_over_samples(x3), out=self.max)
        self._count_events(x3, sample_count(x3))

    def _count_events(self, x3: torch.Tensor, n: int) -> None:
        # sign() plus float sums is several times faster on CPU than summing
        # bool masks. With s = sign(x - t): sum(s) = above - below and
        # sum(|s|) = above + below, hence above = (sum(s) + sum(|s|)) / 2.
        sign = self.scratch.get("sign", x3.shape, x3.dtype, x3.device)
        if self.threshold:
            torch.sub(x3, self.threshold, out=sign).sign_()
        else:
            torch.sign(x3, out=sign)
        signed_sum = sum_over_samples(sign)
        if self.nonnegative and not self.threshold:
            self.firing.add_(signed_sum)  # x >= 0: sign is 1 where x fires, 0 where it is zero
            self.nonzero.add_(signed_sum)
        else:
            nonequal = sum_over_samples(sign.abs_())
            self.firing.add_(signed_sum.add_(nonequal), alpha=0.5)
            if self.threshold:
                nonequal = sum_over_samples(torch.sign(x3, out=sign).abs_())
            self.nonzero.add_(nonequal)  # with threshold 0, "above or below" is "not zero"
        if self.saturated is not None:
            low, high = self.bounds
            margin = self.saturation_margin * (high - low)
            near_low = self.scratch.get("near_low", x3.shape, torch.bool, x3.device)
            near_high = self.scratch.get("near_high", x3.shape, torch.bool, x3.device)
            torch.le(x3, low + margin, out=near_low)
            torch.ge(x3, high - margin, out=near_high)
            self.saturated.add_(sum_over_samples(near_low.logical_or_(near_high)))

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
        self.nonzero.add_(other.nonzero.to(device))
        if self.saturated is not None:
            self.saturated.add_(other.saturated.to(device))

    # --- results --------------------------------------------------------------------

    def summary(self) -> dict[str, torch.Tensor]:
        """Per-neuron statistics; `var` is the population variance (ddof 0)."""
        count = max(self.count, 1)  # an empty stream reports zeros, not NaN
        result = {
            "mean": self.mean if self.count else torch.zeros_like(self.mean_rel),
            "var": self.m2.clamp(min=0.0) / count,  # rounding can leave a constant's M2 at -1e-30
            "min": self.min.clone(),
            "max": self.max.clone(),
            "firing_rate": self.firing / count,
            "zero_fraction": (self.count - self.nonzero) / count,
            "count": torch.full((self.width,), self.count, dtype=torch.int64, device=self.m2.device),
        }
        if self.saturated is not None:
            result["saturation"] = self.saturated / count
        return result

    def state_nbytes(self) -> int:
        tensors = [self.shift, self.mean_rel, self.m2, self.min, self.max, self.firing, self.nonzero, self.saturated]
        return _nbytes(tensors)


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
        """Add a batch shaped (samples, width) or (batch, width, inner)."""
        add_batch(x, self.scratch, comoments=self)

    def _rows(self, shifted: torch.Tensor) -> torch.Tensor:
        """(samples, width) rows of a 3-d shifted chunk in the product dtype, copied only when needed."""
        batch, width, inner = shifted.shape
        if inner == 1 and self.product_dtype == F64:
            return shifted[:, :, 0]
        rows = self.scratch.get("rows", (batch * inner, width), self.product_dtype, shifted.device)
        rows.view(batch, inner, width).copy_(shifted.transpose(1, 2))
        return rows

    def add_products(self, shifted: torch.Tensor) -> None:
        """Add sum((x - shift)(x - shift)^T) of a 3-d chunk; fold() later re-centres on the batch mean."""
        rows = self._rows(shifted)
        if self.blocks == 1:
            if rows.dtype == F64:
                self.comoment[0].addmm_(rows.T, rows)
            else:
                product = self.scratch.get("product", self.comoment[0].shape, rows.dtype, rows.device)
                self.comoment[0].add_(torch.mm(rows.T, rows, out=product))
        else:
            blocked = self._as_blocks(rows, "blocked", self.product_dtype)  # (blocks, n, block)
            product = self.scratch.get("product", self.comoment.shape, self.product_dtype, rows.device)
            self.comoment.add_(torch.bmm(blocked.transpose(1, 2), blocked, out=product))

    def fold(self, n: int, shifted_sum: torch.Tensor) -> None:
        """Finish a batch of n samples whose products were added: centre them on the
        batch mean (subtract sum sum^T / n) and add Chan's cross term."""
        scaled_delta, cross = self._add_batch_mean(n, shifted_sum)
        if self.blocks == 1:
            self.comoment[0].addr_(shifted_sum, shifted_sum, alpha=-1.0 / n)
            if cross:
                self.comoment[0].addr_(scaled_delta, scaled_delta, alpha=cross)
        else:
            sums = self._as_blocks(shifted_sum[None, :])
            self.comoment.baddbmm_(sums.transpose(1, 2), sums, alpha=-1.0 / n)
            if cross:
                d = self._as_blocks(scaled_delta[None, :])
                self.comoment.baddbmm_(d.transpose(1, 2), d, alpha=cross)

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
    """Moments, and optionally co-moments, of one layer's neurons, sharing one pass per batch."""

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
        nonnegative: bool = False,
    ):
        self.moments = NeuronMoments(width, threshold, bounds, saturation_margin, device, nonnegative)
        self.comoments = CoMoments(width, corr_block_size, device, corr_product_dtype) if correlation else None
        self.scratch = Scratch()

    @property
    def count(self) -> int:
        return self.moments.count

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width) or (batch, width, inner)."""
        add_batch(x, self.scratch, self.moments, self.comoments)

    def merge(self, other: "StreamingStats") -> None:
        if (self.comoments is None) != (other.comoments is None):
            raise UsageError("cannot merge statistics with and without correlation tracking")
        self.moments.merge(other.moments)
        if self.comoments is not None:
            self.comoments.merge(other.comoments)

    def state_nbytes(self) -> int:
        return self.moments.state_nbytes() + (self.comoments.state_nbytes() if self.comoments else 0)
