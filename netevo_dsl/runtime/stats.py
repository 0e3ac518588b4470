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

Values are taken about a per-neuron *shift* K: with d = x - K, the stream
keeps sum(d) and sum(d^2) in float64, and M2 = sum(d^2) - sum(d)^2 / n, whose
rounding error is about eps * (1 + (mean - K)^2 / var). K starts as the first
sample and moves to the running mean after the first batch (and after every
merge), so the factor stays near 1: as accurate as a two-pass computation,
without a separate pass for the mean. Means are kept relative to K too, so
they keep full precision instead of the 1e-10 absolute resolution of numbers
near 1e6. With K fixed after the first batch, adding a batch is adding its
sums: mean and M2 are formed when read, not per batch (the per-batch Chan
update gives the same M2: each batch's M2 was also taken about K).

Every reduction is a whole-tensor torch op: no Python loop over neurons and no
`.item()`, so the work stays on the activations' device without syncs.
"""
from __future__ import annotations

import math

import torch

from netevo_dsl.errors import UsageError
from netevo_dsl.runtime import stats_kernel

F64 = torch.float64

# A neuron whose spread is below this fraction of its magnitude is constant up
# to rounding, and a correlation computed from it would be meaningless.
CONSTANT_RELATIVE_SPREAD = 1e-12


class Scratch:
    """Reusable work buffers that only ever grow, and vectors of ones for column sums.

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

    def ones(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = ("ones", (n,), dtype, device)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = torch.ones(n, dtype=dtype, device=device)
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


def shifted_batch(x3: torch.Tensor, shift: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """x - shift in float64 (in a scratch buffer) for a (batch, width, inner) chunk.

    Reductions over its samples take the contiguous inner axis first (it
    vectorises), leaving a small (batch, width) tensor for the rest.

    Copy, then subtract in place: `torch.sub(x, shift, out=f64_buffer)` takes a
    slow mixed-dtype path on CPU (tens of times slower here).
    """
    shifted = scratch.get("shifted", x3.shape, F64, x3.device)
    return shifted.copy_(x3).sub_(shift[:, None])


# Batches are reduced in chunks of about this many values (a 512 KiB float64
# work copy), so that the several passes over a chunk (copy, shift, sums,
# extremes, event counts) read it from cache: on a 2-core Xeon (2 MiB L2 per
# core) the statistics of a (512, 16, 28, 28) map took 2x as long with 8 MiB
# chunks. A (512, 64, 56, 56) map never needs an 800 MB copy either.
CHUNK_VALUES = 1 << 16


class RowPartials:
    """Per-(batch row, neuron) reductions of a (batch, width, inner) batch.

    Each chunk reduces its inner axis straight into its rows of a (batch, width)
    buffer (one op per statistic, no per-chunk merge); the batch axis is reduced
    once per batch.
    """

    def __init__(self, scratch: Scratch, batch: int, width: int, device):
        self.scratch, self.shape, self.device = scratch, (batch, width), device
        self.start = self.stop = 0
        self.dtypes: dict[str, torch.dtype] = {}

    def chunk(self, rows: int) -> None:
        """The next chunk covers the next `rows` batch rows."""
        self.start, self.stop = self.stop, self.stop + rows

    def out(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """The current chunk's rows of the `name` buffer, to be written with out=."""
        self.dtypes[name] = dtype
        return self.buffer(name)[self.start : self.stop]

    def buffer(self, name: str) -> torch.Tensor:
        return self.scratch.get("rows:" + name, self.shape, self.dtypes[name], self.device)

    def total(self, name: str, reduce=torch.sum) -> torch.Tensor:
        """The `name` buffer reduced over the batch rows."""
        return reduce(self.buffer(name), dim=0)


# Event counts (0/1 values) are summed over a row's inner axis in the batch's
# dtype: exact in float32 while the axis is shorter than 2**24.
EXACT_FLOAT32_COUNT = 1 << 24


def add_batch(x: torch.Tensor, scratch: Scratch, moments=None, comoments=None) -> None:
    """Feed one batch, (samples, width) or (batch, width, inner), to moments and/or co-moments.

    The batch is taken a chunk at a time; each chunk's sums about the shared
    shift are added to the running sums (directly for (samples, width)
    batches, through RowPartials otherwise), and the batch's count is added last.
    """
    if moments is not None and moments.kernel is not None:
        if moments.count == 0 and x.ndim in (2, 3) and x.shape[0]:
            moments.begin(as_3d(x))
        n = moments.kernel.add(x)  # one pass over the batch instead of ten (see stats_kernel.py)
        if n is not None:
            if n:
                moments.end_batch(n)
            if comoments is None:
                return
            moments = None  # done: the co-moments take the torch path below, about their own shift
    x3 = as_3d(x)
    n = sample_count(x3)
    if n == 0:
        return
    batch, width, inner = x3.shape
    if x3.dtype != F64 and (x3.dtype != torch.float32 or inner >= EXACT_FLOAT32_COUNT):
        x3 = x3.to(F64)  # event counts are summed in the batch's dtype: keep them exact
    accumulators = [acc for acc in (moments, comoments) if acc is not None]
    for accumulator in accumulators:
        accumulator.begin(x3)  # same first sample, same shift: they can share `shifted`
    if inner == 1:
        _add_rows(x3[:, :, 0], scratch, accumulators, moments, comoments)
    else:
        _add_maps(x3, scratch, accumulators, moments, comoments)
    for accumulator in accumulators:
        accumulator.end_batch(n)


def _add_rows(x2: torch.Tensor, scratch: Scratch, accumulators: list, moments, comoments) -> None:
    """A (samples, width) batch: column sums are matrix-vector products added in place.

    Its chunks may be twice as large: these reductions make fewer passes.
    """
    rows_per_chunk = max(1, 2 * CHUNK_VALUES // max(1, x2.shape[1]))
    shift = accumulators[0].shift
    for chunk in x2.split(rows_per_chunk) if x2.shape[0] > rows_per_chunk else (x2,):
        shifted = scratch.get("shifted", chunk.shape, F64, chunk.device).copy_(chunk).sub_(shift)
        ones = scratch.ones(chunk.shape[0], F64, chunk.device)
        if len(accumulators) == 1:
            accumulators[0].sum_rel.addmv_(shifted.T, ones)
        else:
            chunk_sum = torch.mv(shifted.T, ones)
            for accumulator in accumulators:
                accumulator.sum_rel.add_(chunk_sum)
        if comoments is not None:
            comoments.add_products(shifted[:, :, None])
        if moments is not None:  # after the products: squares `shifted` in place
            moments.squares_rel.addmv_(shifted.square_().T, ones)
            moments.observe_rows(chunk)


def _add_maps(x3: torch.Tensor, scratch: Scratch, accumulators: list, moments, comoments) -> None:
    """A (batch, width, inner) batch: each chunk reduces its inner axis into RowPartials."""
    batch, width, inner = x3.shape
    rows_per_chunk = max(1, CHUNK_VALUES // (width * inner))
    rows = RowPartials(scratch, batch, width, x3.device)
    for chunk in x3.split(rows_per_chunk) if batch > rows_per_chunk else (x3,):
        shifted = shifted_batch(chunk, accumulators[0].shift, scratch)
        rows.chunk(chunk.shape[0])
        torch.sum(shifted, dim=2, out=rows.out("sum", F64))
        if comoments is not None:
            comoments.add_products(shifted)
        if moments is not None:
            torch.linalg.vector_norm(shifted, dim=2, out=rows.out("norm", F64))  # one read, no write
            moments.observe_maps(chunk, rows)
    total = rows.total("sum")
    for accumulator in accumulators:
        accumulator.sum_rel.add_(total)
    if moments is not None:
        moments.squares_rel.add_(rows.buffer("norm").square_().sum(dim=0))
        moments.add_row_partials(rows)


def _check_same(kind: str, mine, theirs) -> None:
    if mine != theirs:
        raise UsageError(
            f"cannot merge {kind} statistics: {mine!r} here, {theirs!r} in the other",
            hint="merge only accumulators built with the same width and options",
        )


def _nbytes(tensors) -> int:
    return sum(t.nelement() * t.element_size() for t in tensors if t is not None)


def _sum_into_rows(t: torch.Tensor, name: str, rows: RowPartials) -> None:
    dtype = torch.int64 if t.dtype == torch.bool else t.dtype
    torch.sum(t, dim=2, dtype=dtype, out=rows.out(name, dtype))


class _ShiftedSums:
    """Count of a stream and per-neuron sum(x - shift); subclasses add the second-order sums.

    The shift is the first sample until the first batch ends, then the running
    mean (and the merged mean after a merge), where later sums are best conditioned.
    """

    def __init__(self, width: int, device):
        self.width = int(width)
        self.count = 0
        self.shift = torch.zeros(self.width, dtype=F64, device=device)
        self.sum_rel = torch.zeros(self.width, dtype=F64, device=device)

    def begin(self, x3: torch.Tensor) -> None:
        """Take the first sample of a stream's first (3-d) batch as the shift."""
        if self.count == 0 and sample_count(x3):
            self.shift.copy_(x3[0, :, 0])

    def end_batch(self, n: int) -> None:
        """Count a batch of n samples whose sums were added; after the first, move the shift to the mean."""
        first = self.count == 0
        self.count += n
        if first:
            self._recenter(self.mean_rel, self._centered())

    @property
    def mean_rel(self) -> torch.Tensor:
        return self.sum_rel / max(self.count, 1)

    @property
    def mean(self) -> torch.Tensor:
        return self.shift + self.mean_rel

    def _recenter(self, mean_rel: torch.Tensor, centered: torch.Tensor) -> None:
        """Set the state from the mean (relative to the current shift) and the centred
        second-order sums (M2, or the co-moment matrix), moving the shift to the mean."""
        new_shift = self.shift + mean_rel
        residual = mean_rel + (self.shift - new_shift)  # the mean relative to new_shift: its rounding
        self.shift.copy_(new_shift)
        self.sum_rel.copy_(residual).mul_(self.count)
        self._set_centered(centered, residual)

    def _merge_means(self, other: "_ShiftedSums") -> tuple[torch.Tensor, torch.Tensor, float]:
        """Chan et al.'s merge of the means: the merged mean relative to this shift,
        delta = mean_b - mean_a, and the weight n_a * n_b / n of M2's cross term delta^2."""
        if self.count == 0:
            self.shift.copy_(other.shift)
        device = self.shift.device
        mean_a = self.mean_rel
        mean_b = other.mean_rel.to(device) + (other.shift.to(device) - self.shift)
        total = self.count + other.count
        delta = mean_b - mean_a
        return mean_a + delta * (other.count / total), delta, self.count * other.count / total


class NeuronMoments(_ShiftedSums):
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
        # The sums are rows of one float64 block, which stats_kernel updates in one call.
        # Counts live in float64: exact up to 2**53 samples, and adding a float
        # batch count needs no dtype conversion on the hot path.
        self.state = torch.zeros(stats_kernel.ROWS, self.width, dtype=F64, device=device)
        self.sum_rel = self.state[stats_kernel.SUM]
        self.squares_rel = self.state[stats_kernel.SQUARES]  # sum((x - shift)^2)
        self.min = self.state[stats_kernel.MIN].fill_(math.inf)
        self.max = self.state[stats_kernel.MAX].fill_(-math.inf)
        self.firing = self.state[stats_kernel.FIRING]
        self.nonzero = self.state[stats_kernel.NONZERO]
        self.saturated = self.state[stats_kernel.SATURATED] if self.bounds is not None else None
        self.kernel = self._new_kernel()
        self.scratch = Scratch()

    def _new_kernel(self) -> "stats_kernel.Kernel | None":
        if self.state.device.type != "cpu":
            return None
        same_counts = self.nonnegative and not self.threshold
        return stats_kernel.Kernel(self.state, self.shift, self.threshold, self.bounds, self.saturation_margin, same_counts)

    def __getstate__(self) -> dict:
        return self.__dict__ | {"kernel": None}  # it holds numpy views of this object's tensors

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for row, name in self._STATE_ROWS:  # plain pickle does not keep views: make them views again
            if getattr(self, name) is not None:
                setattr(self, name, self.state[row].copy_(getattr(self, name)))
        self.kernel = self._new_kernel()

    _STATE_ROWS = [
        (stats_kernel.SUM, "sum_rel"), (stats_kernel.SQUARES, "squares_rel"), (stats_kernel.MIN, "min"),
        (stats_kernel.MAX, "max"), (stats_kernel.FIRING, "firing"), (stats_kernel.NONZERO, "nonzero"),
        (stats_kernel.SATURATED, "saturated"),
    ]  # fmt: skip

    # --- updates ------------------------------------------------------------------

    def update(self, x: torch.Tensor) -> None:
        """Add a batch shaped (samples, width) or (batch, width, inner)."""
        add_batch(x, self.scratch, moments=self)

    @property
    def m2(self) -> torch.Tensor:
        """sum((x - mean)^2) = sum(d^2) - sum(d)^2 / n, with d = x - shift."""
        return torch.addcmul(self.squares_rel, self.sum_rel, self.sum_rel, value=-1.0 / max(self.count, 1))

    _centered = m2.fget

    def _set_centered(self, m2: torch.Tensor, mean_rel: torch.Tensor) -> None:
        self.squares_rel.copy_(m2).addcmul_(mean_rel, mean_rel, value=self.count)

    def observe_rows(self, x2: torch.Tensor) -> None:
        """Add the extremes and event counts (these need no shift) of a (samples, width) chunk."""
        torch.minimum(self.min, x2.amin(dim=0), out=self.min)
        torch.maximum(self.max, x2.amax(dim=0), out=self.max)
        self._add_events(self._event_sums(x2, self._sum_rows))

    def observe_maps(self, x3: torch.Tensor, rows: RowPartials) -> None:
        """Reduce the extremes and event counts of a (batch, width, inner) chunk over the
        inner axis into its rows; add_row_partials adds the batch's."""
        torch.amin(x3, dim=2, out=rows.out("min", x3.dtype))
        torch.amax(x3, dim=2, out=rows.out("max", x3.dtype))
        self._event_names = tuple(self._event_sums(x3, lambda t, name: _sum_into_rows(t, name, rows)))

    def add_row_partials(self, rows: RowPartials) -> None:
        torch.minimum(self.min, rows.total("min", torch.amin), out=self.min)
        torch.maximum(self.max, rows.total("max", torch.amax), out=self.max)
        self._add_events({name: rows.total(name) for name in self._event_names})

    def _sum_rows(self, t: torch.Tensor, name: str) -> torch.Tensor:
        if t.dtype == torch.bool:
            return t.sum(dim=0)
        return torch.mv(t.T, self.scratch.ones(t.shape[0], t.dtype, t.device))

    def _event_sums(self, x3: torch.Tensor, reduce) -> dict:
        """Per-neuron event sums of a chunk, each through reduce(values, name).

        sign() plus float sums is several times faster on CPU than summing bool
        masks. With s = sign(x - t): sum(s) = above - below and sum(|s|) =
        above + below, hence above = (sum(s) + sum(|s|)) / 2.
        """
        sign = self.scratch.get("sign", x3.shape, x3.dtype, x3.device)
        if self.threshold:
            torch.sub(x3, self.threshold, out=sign).sign_()
        else:
            torch.sign(x3, out=sign)
        sums = {"sign": reduce(sign, "sign")}
        if self.threshold or not self.nonnegative:  # else x >= 0: sign is 1 where x fires, 0 where it is zero
            sums["nonequal"] = reduce(sign.abs_(), "nonequal")
            if self.threshold:  # with threshold 0, "above or below" is "not zero"
                sums["nonzero"] = reduce(torch.sign(x3, out=sign).abs_(), "nonzero")
        if self.saturated is not None:
            low, high = self.bounds
            margin = self.saturation_margin * (high - low)
            near_low = self.scratch.get("near_low", x3.shape, torch.bool, x3.device)
            near_high = self.scratch.get("near_high", x3.shape, torch.bool, x3.device)
            torch.le(x3, low + margin, out=near_low)
            torch.ge(x3, high - margin, out=near_high)
            sums["saturated"] = reduce(near_low.logical_or_(near_high), "saturated")
        return sums

    def _add_events(self, sums: dict) -> None:
        if "nonequal" in sums:
            self.firing.add_(torch.add(sums["sign"], sums["nonequal"]), alpha=0.5)
            self.nonzero.add_(sums.get("nonzero", sums["nonequal"]))
        else:
            self.firing.add_(sums["sign"])
            self.nonzero.add_(sums["sign"])
        if self.saturated is not None:
            self.saturated.add_(sums["saturated"])

    def merge(self, other: "NeuronMoments") -> None:
        """Fold another accumulator (e.g. from another worker) into this one."""
        _check_same("width", self.width, other.width)
        _check_same("threshold", self.threshold, other.threshold)
        _check_same("bounds", self.bounds, other.bounds)
        if other.count == 0:
            return
        device = self.shift.device
        mean_rel, delta, cross = self._merge_means(other)
        m2 = self.m2.add_(other.m2.to(device)).add_(delta * delta, alpha=cross)
        self.count += other.count
        self._recenter(mean_rel, m2)
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
            "count": torch.full((self.width,), self.count, dtype=torch.int64, device=self.shift.device),
        }
        if self.saturated is not None:
            result["saturation"] = self.saturated / count
        return result

    def state_nbytes(self) -> int:
        tensors = [self.shift, self.sum_rel, self.squares_rel, self.min, self.max, self.firing, self.nonzero]
        return _nbytes(tensors + [self.saturated])


class CoMoments(_ShiftedSums):
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
        # sum((x - shift)(x - shift)^T) per diagonal block
        self.products_rel = torch.zeros(self.blocks, self.block, self.block, dtype=F64, device=device)
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
        """Add sum((x - shift)(x - shift)^T) of a 3-d chunk; centring happens when read."""
        rows = self._rows(shifted)
        if self.blocks == 1:
            if rows.dtype == F64:
                self.products_rel[0].addmm_(rows.T, rows)
            else:
                product = self.scratch.get("product", self.products_rel[0].shape, rows.dtype, rows.device)
                self.products_rel[0].add_(torch.mm(rows.T, rows, out=product))
        else:
            blocked = self._as_blocks(rows, "blocked", self.product_dtype)  # (blocks, n, block)
            product = self.scratch.get("product", self.products_rel.shape, self.product_dtype, rows.device)
            self.products_rel.add_(torch.bmm(blocked.transpose(1, 2), blocked, out=product))

    @property
    def comoment(self) -> torch.Tensor:
        """sum((x - mean)(x - mean)^T) per block = products - sum(d) sum(d)^T / n, with d = x - shift."""
        sums = self._as_blocks(self.sum_rel[None, :])
        return torch.baddbmm(self.products_rel, sums.transpose(1, 2), sums, alpha=-1.0 / max(self.count, 1))

    _centered = comoment.fget

    def _set_centered(self, comoment: torch.Tensor, mean_rel: torch.Tensor) -> None:
        means = self._as_blocks(mean_rel[None, :])
        self.products_rel.copy_(comoment).baddbmm_(means.transpose(1, 2), means, alpha=self.count)

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
        mean_rel, delta, cross = self._merge_means(other)
        comoment = self.comoment.add_(other.comoment.to(self.shift.device))
        d = self._as_blocks(delta[None, :])
        comoment.baddbmm_(d.transpose(1, 2), d, alpha=cross)
        self.count += other.count
        self._recenter(mean_rel, comoment)

    # --- results --------------------------------------------------------------------

    def _block_variances(self, comoment: torch.Tensor) -> torch.Tensor:
        """Diagonal co-moments per block, with constant neurons set to 0."""
        diag = torch.diagonal(comoment, dim1=1, dim2=2).reshape(-1)
        magnitude = torch.nn.functional.pad(self.mean.abs(), (0, self.padded_width - self.width))
        floor = max(self.count, 1) * (CONSTANT_RELATIVE_SPREAD * magnitude) ** 2
        return torch.where(diag > floor, diag, torch.zeros_like(diag)).reshape(self.blocks, self.block)

    def correlation_blocks(self) -> torch.Tensor:
        """Pearson correlations per block, (blocks, block, block); NaN where a neuron is constant."""
        comoment = self.comoment
        std = self._block_variances(comoment).sqrt()
        denom = std[:, :, None] * std[:, None, :]
        corr = torch.where(denom > 0, comoment / denom, torch.full_like(denom, math.nan))
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
        comoment = self.comoment
        var_i = self._block_variances(comoment)[block, row]
        cov = comoment[block, row, col]
        slope = torch.where(var_i > 0, cov / var_i, torch.zeros_like(cov))
        mean = self.mean
        return slope, mean[j] - slope * mean[i]

    def state_nbytes(self) -> int:
        return _nbytes([self.shift, self.sum_rel, self.products_rel])


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
