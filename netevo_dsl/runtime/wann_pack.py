"""Pack a population of WANN genomes into flat tensors and run them as one batch.

Layout. All genomes share one value buffer ``V[rows, W, B]`` (rows x shared
weights x samples), without padding. Its rows are

* with per-genome inputs (control: each genome drives its own carts), first
  ``n_obs + 1`` input rows per genome (observations, then the bias);
* then one row per *live* hidden or output node of every genome (a hidden node
  is live when an enabled path leads from it to an output; the others cannot
  change any output and are skipped), sorted by (level, activation, genome).

So each topological level is a contiguous row range and each activation a
contiguous sub-range of it: a level costs one or two gather-sums and one call
per activation, whatever the population size. With shared inputs
(classification: every genome sees the same samples) the inputs form a separate
``[n_obs + 1, B]`` table, copied to the first rows of ``V`` at every weight.

A node's pre-activation is ``w * (sum of its enabled sources)``, summed one
source after another, its input sources first, then its hidden ones, each in
the genome's edge order (the reference evaluator sums in the same order, so the
two agree to the bit on sums, even where a step activation meets an exact 0).
A level whose nodes have only shared inputs as sources does not depend on w, so
it is gathered once per node (``embedding_bag`` over the input table); any other
level gathers all its sources per weight (``embedding_bag`` over ``V`` seen as
``[rows * W, B]``, bag ``(node, j)`` taking rows ``src * W + j``; the input
rows of ``V`` hold the inputs at every weight). The multiplication by w is folded
into the activation's first operation. Every node is computed the same way,
whatever else is packed with it: an individual's scores do not depend on its
batch. (Gathering the input sources once per node and adding them to each
weight's hidden sum was measured: no faster, since a node has few input sources
and their sum is written and read back once per weight; benchmarks/RESULTS.md.)
Disabled edges are simply absent. All outputs form the last level; when they
share an activation they are one contiguous block of rows, genome by genome,
and are read without a copy.

Packing starts from each genome's integer arrays (`wann_arrays`: read from the
IR once per genome and carried with it; WANN mutations edit the parent's), and
is vectorised over the population with numpy (depths and cycle check by Kahn's
algorithm, liveness backwards from the outputs); a genome that fails a fast
check is handed to `validate_genome` for its messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.activations import WANN_ACTIVATIONS
from .wann_arrays import (  # noqa: F401  (io_mismatch, rejection_reason: re-exported)
    ACTIVATION_IDS, _live_nodes, _Population, io_mismatch, population_of, rejection_reason,
)


@dataclass
class Gather:
    """One embedding_bag: `indices` rows of a table, bag b spanning offsets[b]:offsets[b + 1],
    each row scaled by its `scale` when given (the shared weight of the bag)."""

    indices: torch.Tensor
    offsets: torch.Tensor
    scale: torch.Tensor | None = None

    def sum(self, table: torch.Tensor) -> torch.Tensor:
        return F.embedding_bag(self.indices, table, self.offsets, mode="sum", per_sample_weights=self.scale)


@dataclass
class Level:
    start: int  # first node row
    stop: int
    from_inputs: Gather | None  # bag k: shared-input sources of node k (no weight dimension)
    from_rows: Gather | None  # bag k * W + j: sources of node k in V at weight j
    groups: list[tuple[int, int, int]]  # (activation id, first row, stop row), covering the level in order

    def __post_init__(self):
        self.sizes = [stop - first for _, first, stop in self.groups]  # for one `split` per level and step
        self.functions = [_SCALED_BY_ID[act] for act, _, _ in self.groups]


@dataclass
class PackedPopulation:
    members: list[int]  # population indices packed here, in row-block order
    n_obs: int  # observation inputs per genome
    n_outputs: int
    shared_inputs: bool
    n_input_rows: int  # input rows at the top of V: n_obs + 1 shared, or n_obs + 1 per genome
    n_rows: int
    weights: torch.Tensor  # [W]
    levels: list[Level] = field(default_factory=list)
    output_rows: torch.Tensor | None = None  # [P, O]
    output_range: tuple[int, int] | None = None  # (first, stop) when output_rows is one contiguous run
    linear_outputs: Level | None = None  # the last level, when it is exactly the outputs, all linear
    scales: dict = field(default_factory=dict)  # named per-weight constants, each [1, W, 1]
    _outputs: torch.Tensor | None = None  # reused [P * O, W, B] output buffer
    _rows: dict = field(default_factory=dict)  # per value buffer: each level's group views (`_group_rows`)

    def __post_init__(self):
        w = self.weights.view(1, -1, 1)
        self.scales = {"w": w, "-w": -w, "|w|": w.abs(), "pi*w": math.pi * w, "w^2": w * w,
                       "-w^2/2": -0.5 * w * w}

    @property
    def n_weights(self) -> int:
        return len(self.weights)

    def buffer(self, n_samples: int) -> torch.Tensor:
        return torch.empty(self.n_rows, self.n_weights, n_samples, dtype=self.weights.dtype,
                           device=self.weights.device)

    def forward(self, inputs: torch.Tensor, buffer: torch.Tensor | None = None, *,
                fresh_outputs: bool = False) -> torch.Tensor:
        """Outputs [P, W, B, O] of every packed genome at every weight.

        inputs: [B, n_obs] when `shared_inputs`, else [P, W, B, n_obs].
        `buffer` (from `buffer(B)`) is reused between calls, and so is the result's
        storage (a view of [P, O, W, B]): fresh pages cost more than the arithmetic on
        some machines. Use the result before the next call. Calls on several threads at
        once need a buffer each and `fresh_outputs` (the result never in storage the pack
        keeps).
        """
        W, B, n_obs = self.n_weights, inputs.shape[-2], self.n_obs
        V = buffer if buffer is not None else self.buffer(B)
        input_table = None
        if self.shared_inputs:
            input_table = torch.cat([inputs.t(), inputs.new_ones(1, B)])  # [n_obs + 1, B]
            V[: n_obs + 1] = input_table.unsqueeze(1)  # the same inputs at every weight
        else:
            grouped = V[: self.n_input_rows].view(len(self.members), n_obs + 1, W, B)
            grouped[:, :n_obs] = inputs.permute(0, 3, 1, 2)
            grouped[:, n_obs] = 1.0
        table = V.view(self.n_rows * W, B)
        scales = self.scales
        for level, outs in zip(self.levels, self._group_rows(V)):
            K = level.stop - level.start
            if level.from_rows is not None:  # f(w * s), the reference's rounding (see `_layout`)
                s = level.from_rows.sum(table).view(K, W, B)
                if level is self.linear_outputs:  # the outputs themselves: w * s in place, no copy into V
                    return s.mul_(scales["w"]).view(len(self.members), self.n_outputs, W, B).permute(0, 2, 3, 1)
            # f(w * s) where s, a sum over shared inputs only, is the same for every weight
            elif level.from_inputs is not None:
                s = level.from_inputs.sum(input_table).view(K, 1, B)
            else:  # no node of this level has an enabled source
                s = V.new_zeros(K, 1, B)
            pieces = (s,) if len(level.sizes) == 1 else s.split_with_sizes(level.sizes)
            for function, piece, out in zip(level.functions, pieces, outs):
                function(piece, scales, out)
        P, O = self.output_rows.shape
        if self.output_range is not None:  # outputs are one contiguous block, genome by genome
            outputs = V[self.output_range[0]: self.output_range[1]]
        elif fresh_outputs:
            outputs = torch.index_select(V, 0, self.output_rows.view(-1))
        else:
            if self._outputs is None or self._outputs.shape != (P * O, W, B):
                self._outputs = V.new_empty(P * O, W, B)
            outputs = torch.index_select(V, 0, self.output_rows.view(-1), out=self._outputs)
        return outputs.view(P, O, W, B).permute(0, 2, 3, 1)


    def _group_rows(self, V: torch.Tensor) -> list:
        """Per level, the views of `V` its activation groups write, made once per buffer (a control
        rollout calls the forward a thousand times on one buffer; slicing them each step cost about
        as much as the small steps' arithmetic)."""
        key = (V.data_ptr(), tuple(V.shape), V.stride())
        rows = self._rows.get(key)
        if rows is None:
            if len(self._rows) >= 4:  # buffers of earlier sizes or threads
                self._rows.clear()
            rows = self._rows[key] = [[V[first:stop] for _, first, stop in level.groups] for level in self.levels]
        return rows


# f(w * s) written into `out` [k, W, B]; s is [k, W, B] or [k, 1, B] (a sum over shared
# inputs, the same for every weight), c holds per-weight constants shaped [1, W, 1].
# These are twins of the table in ops/activations.py; the differential tests hold them to
# `torch_fn` through the reference evaluator.
def _squared_times(s, c, out):
    """c * s^2 into out; squares the smaller tensor when s is shared across weights."""
    if s.shape[1] == 1:
        return torch.mul(s * s, c, out=out)
    return torch.mul(s, s, out=out).mul_(c)


def _abs_times(s, c, out):
    if s.shape[1] == 1:
        return torch.mul(s.abs(), c, out=out)
    return torch.abs(s, out=out).mul_(c)


_SCALED = {
    "linear": lambda s, c, out: torch.mul(s, c["w"], out=out),
    "inverse": lambda s, c, out: torch.mul(s, c["-w"], out=out),
    "step": lambda s, c, out: torch.gt(torch.mul(s, c["w"], out=out), 0, out=out),
    "sin": lambda s, c, out: torch.mul(s, c["pi*w"], out=out).sin_(),
    "cos": lambda s, c, out: torch.mul(s, c["pi*w"], out=out).cos_(),
    "gauss": lambda s, c, out: _squared_times(s, c["-w^2/2"], out).exp_(),
    "tanh": lambda s, c, out: torch.mul(s, c["w"], out=out).tanh_(),
    # 1 / (1 + e^-ws) in four ops: torch.sigmoid computes the last elements of a loop with a
    # scalar formula and the rest with a vector one, which round differently, so a node's value
    # would depend on where its row falls in the batch
    "sigmoid": lambda s, c, out: torch.mul(s, c["-w"], out=out).exp_().add_(1.0).reciprocal_(),
    "abs": lambda s, c, out: _abs_times(s, c["|w|"], out),
    "relu": lambda s, c, out: torch.mul(s, c["w"], out=out).clamp_min_(0.0),
    "square": lambda s, c, out: _squared_times(s, c["w^2"], out),
}
_SCALED_BY_ID = {a.id: _SCALED[a.name] for a in WANN_ACTIVATIONS}


def pack_population(
    genomes: list,
    n_obs: int,
    n_outputs: int,
    weights: torch.Tensor,
    shared_inputs: bool = True,
    indices: list[int] | None = None,
) -> tuple[PackedPopulation, dict[int, str]]:
    """Pack `genomes` (population positions `indices`); returns the pack and {position: reason}."""
    indices = list(range(len(genomes))) if indices is None else list(indices)
    packed, population, failures = population_of(genomes, n_obs, n_outputs, indices)
    return _layout(packed, population, n_obs, n_outputs, weights, shared_inputs), failures


def _layout(packed, pop: "_Population | None", n_obs: int, n_outputs: int, weights: torch.Tensor,
            shared_inputs: bool) -> PackedPopulation:
    P = len(packed)
    n_input_rows = (n_obs + 1) * (1 if shared_inputs else P)
    pack = PackedPopulation(members=[position for position, _, _ in packed], n_obs=n_obs, n_outputs=n_outputs,
                            shared_inputs=shared_inputs, n_input_rows=n_input_rows, n_rows=n_input_rows,
                            weights=weights)
    if not packed:
        pack.output_rows = torch.zeros(0, n_outputs, dtype=torch.long, device=weights.device)
        return pack
    src, dst = pop.src[pop.enabled], pop.dst[pop.enabled]
    depth = _depths(pop.is_input, src, dst)  # inputs 0; a node without sources 1
    live = _live_nodes(pop.is_output, src, dst)
    # Every output goes to one last level (none feeds another node, so this is a valid order):
    # sorted by (activation, genome), the outputs then form one contiguous block of rows in
    # genome order whenever they share an activation, and are read without a copy.
    depth[pop.is_output] = depth[live & ~pop.is_input & ~pop.is_output].max(initial=0) + 1

    computed = np.flatnonzero(live & ~pop.is_input)
    # by (depth, activation, node), as one distinct key: a quicksort instead of lexsort's three stable passes
    n, n_acts = len(depth), int(pop.activation.max(initial=0)) + 2
    computed = computed[np.argsort((depth[computed] * n_acts + pop.activation[computed] + 1) * n + computed)]
    row = np.full(len(depth), -1, dtype=np.int64)
    row[computed] = n_input_rows + np.arange(len(computed))
    inputs = np.flatnonzero(pop.is_input)
    # shared: the same row of the input table and of V; per genome: a row of V
    row[inputs] = pop.input_slot[inputs] + (0 if shared_inputs else pop.genome_of_node[inputs] * (n_obs + 1))
    pack.n_rows = n_input_rows + len(computed)

    keep = live[dst]
    src, dst = src[keep], dst[keep]
    # the order a node sums its sources in: inputs first, then each in the genome's edge order
    # (edges are numbered genome by genome, in order), whatever else is packed. All edges sorted
    # once by (destination row, that order): each level's edges are then one run, node by node.
    rank = np.flatnonzero(keep) + len(keep) * ~pop.is_input[src]
    dst_row = row[dst]
    order = np.argsort(dst_row * (2 * len(keep)) + rank)  # keys are distinct: any sort gives this order
    src_row, dst_row, from_input = row[src][order], dst_row[order], pop.is_input[src][order]
    sources = np.bincount(dst_row - n_input_rows, minlength=len(computed))  # edges into each computed row
    not_input_before = np.concatenate([[0], np.cumsum(~from_input)])  # edges from non-inputs before each edge
    row_depth, row_act = depth[computed], pop.activation[computed]
    starts = np.flatnonzero(np.diff(row_depth, prepend=-1))
    stops = np.append(starts[1:], len(computed))
    edge_starts = np.searchsorted(dst_row, starts + n_input_rows)
    edge_stops = np.append(edge_starts[1:], len(dst_row))
    device, W = weights.device, len(weights)
    for first, stop, a, z in zip(starts.tolist(), stops.tolist(), edge_starts.tolist(), edge_stops.tolist()):
        lo, hi = first + n_input_rows, stop + n_input_rows
        acts = row_act[first:stop]
        bounds = np.flatnonzero(np.diff(acts, prepend=-1)).tolist() + [stop - first]
        # A level fed by shared inputs alone is gathered once for all weights; any other
        # level gathers all its sources (inputs too) from V. Either way a node computes
        # f(w * (sum of its sources)), as the reference does, with its sources in the same
        # order: a node's value never depends on which other genomes share its pack (scaling
        # inside the gather, sum of w * source, rounded differently, and only some levels did).
        inputs_only = shared_inputs and not_input_before[z] == not_input_before[a]
        gather = _gather(src_row[a:z], sources[first:stop], 1 if inputs_only else W, device)
        pack.levels.append(Level(
            lo, hi,
            from_inputs=gather if inputs_only else None,
            from_rows=None if inputs_only else gather,
            groups=[(int(acts[a]), lo + a, lo + b) for a, b in zip(bounds[:-1], bounds[1:])],
        ))
    output_rows = row[np.flatnonzero(pop.is_output)]  # genome by genome, in output order
    pack.output_rows = torch.as_tensor(output_rows.reshape(P, n_outputs), device=device)
    if np.all(np.diff(output_rows) == 1):
        pack.output_range = (int(output_rows[0]), int(output_rows[-1]) + 1)
        last = pack.levels[-1]
        if (last.start, last.stop) == pack.output_range and last.from_rows is not None and \
                [act for act, _, _ in last.groups] == [ACTIVATION_IDS["linear"]]:
            pack.linear_outputs = last
    return pack


def _depths(is_input: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Longest-path depth of every node of a DAG: inputs 0, other nodes without sources 1, the rest
    1 + their deepest source's. Kahn's algorithm one whole frontier at a time: frontier t holds the
    nodes whose last source was in frontier t - 1, so a node's depth is its frontier's number (inputs
    start frontier 0, the other nodes without sources join frontier 1). Each step masks all edges
    (a depth is a few dozen steps at most): measured faster than visiting each edge once through
    edges sorted by source, whose sort and per-step index arithmetic cost more (RESULTS.md)."""
    n = len(is_input)
    depth = np.zeros(n, dtype=np.int64)
    indegree = np.bincount(dst, minlength=n)
    sourceless = ~is_input & (indegree == 0)
    frontier, step = is_input, 0
    while True:
        depth[frontier] = step
        hits = np.bincount(dst[frontier[src]], minlength=n)
        indegree -= hits
        frontier = (indegree == 0) & (hits > 0)
        if step == 0:
            frontier |= sourceless
        if not frontier.any():
            return depth
        step += 1


def _gather(src_rows: np.ndarray, counts: np.ndarray, W: int, device) -> Gather | None:
    """Bags (node k, weight j) at k * W + j over table rows src * W + j; `src_rows` are the edges
    node by node, each node's in summation order, `counts` the edges of each node. None if no edges."""
    if len(src_rows) == 0:
        return None
    first = np.cumsum(counts) - counts
    if W == 1:
        return Gather(torch.as_tensor(src_rows, device=device), torch.as_tensor(first, device=device))
    node = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(src_rows)) - first[node]
    j = np.arange(W)
    slot = (W * first[node] + position)[:, None] + j[None, :] * counts[node][:, None]  # [E, W]
    indices = np.empty(len(src_rows) * W, dtype=np.int64)
    indices[slot.ravel()] = (src_rows[:, None] * W + j[None, :]).ravel()
    offsets = (W * first[:, None] + j[None, :] * counts[:, None]).ravel()
    return Gather(torch.as_tensor(indices, device=device), torch.as_tensor(offsets, device=device))


def plan_chunks(n_genomes: int, rows_per_genome: float, n_weights: int, min_samples: int, dtype_bytes: int,
                budget_bytes: int) -> list[range]:
    """Population ranges whose value buffer for `min_samples` samples fits in `budget_bytes`."""
    per_genome = max(rows_per_genome, 1.0) * n_weights * min_samples * dtype_bytes
    size = max(1, int(budget_bytes // per_genome))
    return [range(i, min(i + size, n_genomes)) for i in range(0, n_genomes, size)]
