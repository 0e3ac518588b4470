"""Pack a population of WANN genomes into flat tensors and run them as one batch.

Layout. All genomes share one value buffer ``V[rows, W, B]`` (rows x shared
weights x samples), without padding:

* input rows first: ``n_obs`` observation features then the bias, shared by
  the whole population (classification: every genome sees the same samples) or
  one such group per genome (control: each genome drives its own cart);
* then one row per *live* hidden or output node of every genome (a hidden node
  is live when an enabled path leads from it to an output; the others cannot
  change any output and are skipped), sorted by (level, activation, genome). Each
  topological level is a contiguous row range and each activation a contiguous
  sub-range of it, so a level is one gather-sum and one call per activation,
  whatever the population size.

A level's pre-activations are ``w_j * sum of V[src, j]`` over each node's enabled
sources, for every weight j at once: one ``embedding_bag`` over the buffer seen as
``[rows * W, B]`` with bag ``(node, j)`` gathering rows ``src * W + j`` scaled by
``w_j``. Disabled edges are simply absent.

Packing is vectorised over the population with numpy (depths, cycle check,
liveness); only reading each genome's names and edges is a Python loop, and a
genome that fails a fast check is handed to `validate_genome` for its messages.
"""
from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..ir import nodes as ir
from ..ir.wann import BIAS, shared_weights, validate_genome
from ..errors import GenomeError, NetevoError
from ..ops.activations import WANN_ACTIVATIONS

ACTIVATION_IDS = {a.name: a.id for a in WANN_ACTIVATIONS}
_NAME_LIST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*\Z")
_KEYWORDS = frozenset(keyword.kwlist)


@dataclass
class Level:
    start: int  # first node row
    stop: int
    indices: torch.Tensor  # [members * W] rows of V.view(rows * W, B)
    offsets: torch.Tensor  # [(stop - start) * W] start of bag (node, j)
    scales: torch.Tensor  # [members * W] the shared weight of each member
    groups: list[tuple[int, int, int]]  # (activation id, first row, stop row)


@dataclass
class PackedPopulation:
    members: list[int]  # population indices packed here, in row-block order
    n_obs: int  # observation inputs per genome
    n_outputs: int
    shared_inputs: bool
    n_input_rows: int
    n_rows: int
    weights: torch.Tensor  # [W]
    levels: list[Level] = field(default_factory=list)
    output_rows: torch.Tensor | None = None  # [P, O]

    @property
    def n_weights(self) -> int:
        return len(self.weights)

    def buffer(self, n_samples: int) -> torch.Tensor:
        return torch.empty(self.n_rows, self.n_weights, n_samples, dtype=self.weights.dtype,
                           device=self.weights.device)

    def forward(self, inputs: torch.Tensor, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs [P, W, B, O] of every packed genome at every weight.

        inputs: [B, n_obs] when `shared_inputs`, else [P, W, B, n_obs].
        `buffer` (from `buffer(B)`) is reused between calls: allocating fresh
        pages costs more than the arithmetic on some machines.
        """
        W = self.n_weights
        B = inputs.shape[-2]
        V = buffer if buffer is not None else self.buffer(B)
        n_obs = self.n_obs
        if self.shared_inputs:
            V[:n_obs] = inputs.t().unsqueeze(1)
            V[n_obs] = 1.0
        else:
            P = len(self.members)
            grouped = V[: self.n_input_rows].view(P, n_obs + 1, W, B)
            grouped[:, :n_obs] = inputs.permute(0, 3, 1, 2)
            grouped[:, n_obs] = 1.0
        table = V.view(self.n_rows * W, B)
        for level in self.levels:
            pre = F.embedding_bag(level.indices, table, level.offsets, mode="sum",
                                  per_sample_weights=level.scales).view(level.stop - level.start, W, B)
            for act, first, stop in level.groups:
                apply_activation(act, pre[first - level.start: stop - level.start], V[first:stop])
        P, O = self.output_rows.shape
        return V[self.output_rows.view(-1)].view(P, O, W, B).permute(0, 2, 3, 1)


def _linear(x, out):
    out.copy_(x)


def _step(x, out):
    torch.gt(x, 0, out=out)


def _sin(x, out):
    torch.mul(x, math.pi, out=out)
    out.sin_()


def _cos(x, out):
    torch.mul(x, math.pi, out=out)
    out.cos_()


def _gauss(x, out):
    torch.mul(x, x, out=out)
    out.mul_(-0.5)
    out.exp_()


# In-place twins of the table in ops/activations.py, writing straight into the value
# buffer; the differential tests hold them to `torch_fn`.
_APPLY = {
    "linear": _linear,
    "step": _step,
    "sin": _sin,
    "gauss": _gauss,
    "tanh": lambda x, out: torch.tanh(x, out=out),
    "sigmoid": lambda x, out: torch.sigmoid(x, out=out),
    "inverse": lambda x, out: torch.neg(x, out=out),
    "abs": lambda x, out: torch.abs(x, out=out),
    "relu": lambda x, out: torch.clamp_min(x, 0.0, out=out),
    "cos": _cos,
    "square": lambda x, out: torch.mul(x, x, out=out),
}
_APPLY_BY_ID = {a.id: _APPLY[a.name] for a in WANN_ACTIVATIONS}


def apply_activation(act_id: int, x: torch.Tensor, out: torch.Tensor) -> None:
    _APPLY_BY_ID[act_id](x, out)


# --- packing -------------------------------------------------------------------------


class _Rejected(Exception):
    """A genome failed a fast check; `validate_genome` will explain why."""


@dataclass
class _GenomeArrays:
    n_nodes: int
    input_slots: list[int]  # per declared input: observation index, or n_obs for the bias
    activations: list[int]  # per hidden node then output
    n_hidden: int
    edges: list[tuple[int, int, bool]]  # local ids: inputs, hidden, outputs


def _genome_arrays(genome: ir.WannGenome, n_obs: int, n_outputs: int) -> _GenomeArrays:
    """Read one genome into local integer ids; raise _Rejected or NetevoError (I/O mismatch)."""
    if not isinstance(genome, ir.WannGenome):
        raise NetevoError(f"not a WANN genome: {type(genome).__name__}")
    inputs = genome.inputs
    hidden = [n.name for n in genome.nodes]
    outputs = [o.name for o in genome.outputs]
    names = list(inputs) + hidden + outputs
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names) or not outputs or not _NAME_LIST.match(" ".join(names)) or \
            not _KEYWORDS.isdisjoint(names):
        raise _Rejected
    try:
        activations = [ACTIVATION_IDS[n.activation] for n in genome.nodes]
        activations += [ACTIVATION_IDS[o.activation] for o in genome.outputs]
        edges = [(index[e.src], index[e.dst], e.enabled) for e in genome.edges]
        shared_weights(genome)
    except (KeyError, GenomeError):
        raise _Rejected from None
    n_in, first_output = len(inputs), len(inputs) + len(hidden)
    pairs = {(s, d) for s, d, _ in edges}
    if len(pairs) != len(edges) or any(d < n_in or s >= first_output for s, d in pairs):
        raise _Rejected
    mismatch = io_mismatch(genome, n_obs, n_outputs)
    if mismatch is not None:
        raise mismatch
    slots, k = [], 0
    for name in inputs:
        slots.append(n_obs if name == BIAS else k)
        k += name != BIAS
    return _GenomeArrays(len(names), slots, activations, len(hidden), edges)


def io_mismatch(genome: ir.WannGenome, n_obs: int, n_outputs: int) -> NetevoError | None:
    """The error for a genome whose inputs or outputs do not fit the task, else None."""
    observed = sum(name != BIAS for name in genome.inputs)
    if observed == n_obs and len(genome.outputs) == n_outputs:
        return None
    return NetevoError(
        f"genome `{genome.name}` has {observed} observation inputs and {len(genome.outputs)} outputs; "
        f"the task gives {n_obs} and expects {n_outputs}",
        genome.span,
        "the `bias` input is extra; inputs and outputs map to the task's features and actions in order",
    )


def rejection_reason(genome, error: NetevoError | None = None) -> str:
    """The message a failed genome is reported with."""
    if error is None and isinstance(genome, ir.WannGenome):
        errors = validate_genome(genome)
        if errors:
            return "; ".join(e.message for e in errors)
        return "genome failed the evaluator's structural checks"
    return error.message if error is not None else f"not a WANN genome: {type(genome).__name__}"


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
    failures: dict[int, str] = {}
    arrays: list[tuple[int, _GenomeArrays]] = []
    for position, genome in zip(indices, genomes):
        try:
            arrays.append((position, _genome_arrays(genome, n_obs, n_outputs)))
        except _Rejected:
            failures[position] = rejection_reason(genome)
        except NetevoError as error:
            failures[position] = rejection_reason(genome, error)
    cyclic = _cyclic_genomes(arrays)
    for k in sorted(cyclic, reverse=True):
        position, _ = arrays.pop(k)
        failures[position] = rejection_reason(genomes[indices.index(position)])
    return _layout(arrays, n_obs, n_outputs, weights, shared_inputs), failures


def _concatenate(arrays: list[tuple[int, _GenomeArrays]]):
    """Global node ids over all genomes: base offsets, edge endpoints, node roles."""
    sizes = np.array([a.n_nodes for _, a in arrays], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(arrays) else np.zeros(0, np.int64)
    edge_lists = [np.array(a.edges, dtype=np.int64).reshape(-1, 3) for _, a in arrays]
    counts = np.array([len(e) for e in edge_lists], dtype=np.int64)
    edges = np.concatenate(edge_lists) if edge_lists else np.zeros((0, 3), np.int64)
    edge_base = np.repeat(base, counts)
    src, dst, enabled = edges[:, 0] + edge_base, edges[:, 1] + edge_base, edges[:, 2].astype(bool)
    genome_of_node = np.repeat(np.arange(len(arrays)), sizes)
    n_inputs = np.array([len(a.input_slots) for _, a in arrays], dtype=np.int64)
    is_input = (np.arange(int(sizes.sum())) - base[genome_of_node]) < n_inputs[genome_of_node]
    return sizes, base, src, dst, enabled, genome_of_node, is_input


def _relax_longest_paths(depth: np.ndarray, src: np.ndarray, dst: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """depth[dst] >= depth[src] + 1 until stable; returns nodes whose depth passed `limit`
    (their genome has a cycle: a DAG's longest path is shorter than its node count)."""
    exceeded = np.zeros(len(depth), dtype=bool)
    if len(src) == 0:
        return exceeded
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    targets, starts = np.unique(dst, return_index=True)
    for _ in range(int(limit.max(initial=0)) + 2):
        candidate = np.maximum.reduceat(depth[src] + 1, starts)
        old = depth[targets]
        new = np.maximum(old, candidate)
        changed = (new != old) & ~exceeded[targets]
        if not changed.any():
            break
        depth[targets] = new
        exceeded[targets] |= new > limit[targets]
    return exceeded


def _cyclic_genomes(arrays) -> set[int]:
    sizes, base, src, dst, enabled, genome_of_node, is_input = _concatenate(arrays)
    depth = np.zeros(int(sizes.sum()), dtype=np.int64)
    exceeded = _relax_longest_paths(depth, src, dst, sizes[genome_of_node])
    return set(np.unique(genome_of_node[exceeded]).tolist())


def _layout(arrays, n_obs: int, n_outputs: int, weights: torch.Tensor, shared_inputs: bool) -> PackedPopulation:
    device, W = weights.device, len(weights)
    P = len(arrays)
    n_input_rows = (n_obs + 1) * (1 if shared_inputs else P)
    sizes, base, src, dst, enabled, genome_of_node, is_input = _concatenate(arrays)
    n_nodes = int(sizes.sum())
    src, dst = src[enabled], dst[enabled]

    # Levels: longest path over enabled edges (inputs 0, every other node at least 1).
    depth = (~is_input).astype(np.int64)
    _relax_longest_paths(depth, src, dst, np.full(n_nodes, n_nodes + 1))

    # Liveness: outputs, and every node with an enabled path to an output.
    n_outputs_of = np.array([len(a.activations) - a.n_hidden for _, a in arrays], dtype=np.int64)
    local = np.arange(n_nodes) - base[genome_of_node]
    is_output = local >= (sizes - n_outputs_of)[genome_of_node]
    live = _live_nodes(is_output, src, dst)

    activation = np.full(n_nodes, -1, dtype=np.int64)
    activation[~is_input] = np.concatenate([a.activations for _, a in arrays]) if arrays else []
    computed = np.flatnonzero(live & ~is_input)
    order = np.lexsort((computed, activation[computed], depth[computed]))
    row = np.full(n_nodes, -1, dtype=np.int64)
    row[computed[order]] = n_input_rows + np.arange(len(computed))
    slots = np.concatenate([a.input_slots for _, a in arrays]) if arrays else np.zeros(0, np.int64)
    inputs = np.flatnonzero(is_input)
    row[inputs] = slots + (0 if shared_inputs else genome_of_node[inputs] * (n_obs + 1))

    keep = live[dst]
    edge_src, edge_dst = row[src[keep]], row[dst[keep]]
    edge_order = np.lexsort((edge_src, edge_dst))
    edge_src, edge_dst = edge_src[edge_order], edge_dst[edge_order]

    sorted_rows = computed[order]
    row_depth, row_act = depth[sorted_rows], activation[sorted_rows]
    pack = PackedPopulation(
        members=[position for position, _ in arrays], n_obs=n_obs, n_outputs=n_outputs,
        shared_inputs=shared_inputs, n_input_rows=n_input_rows, n_rows=n_input_rows + len(computed),
        weights=weights,
    )
    level_starts = np.flatnonzero(np.diff(row_depth, prepend=-1)) if len(row_depth) else np.zeros(0, np.int64)
    level_stops = np.append(level_starts[1:], len(row_depth))
    for first, stop in zip(level_starts.tolist(), level_stops.tolist()):
        pack.levels.append(_level(first + n_input_rows, stop + n_input_rows, row_act[first:stop], edge_src,
                                  edge_dst, weights))
    output_nodes = np.flatnonzero(is_output)
    pack.output_rows = torch.as_tensor(row[output_nodes].reshape(P, n_outputs), device=device)
    return pack


def _live_nodes(is_output: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    live = is_output.copy()
    if len(src) == 0:
        return live
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    sources, starts = np.unique(src, return_index=True)
    while True:
        reaches = np.maximum.reduceat(live[dst].astype(np.uint8), starts).astype(bool)
        grown = reaches & ~live[sources]
        if not grown.any():
            return live
        live[sources[grown]] = True


def _level(start: int, stop: int, activations: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray,
           weights: torch.Tensor) -> Level:
    """Index, offset and scale arrays of one level's embedding_bag, bag (node k, weight j) at k * W + j."""
    W = len(weights)
    K = stop - start
    lo, hi = np.searchsorted(edge_dst, [start, stop])
    src, dst = edge_src[lo:hi], edge_dst[lo:hi] - start
    counts = np.bincount(dst, minlength=K)
    first = np.cumsum(counts) - counts  # position of each node's first member
    position = np.arange(len(src)) - first[dst]
    j = np.arange(W)
    member_slot = (W * first[dst] + position)[:, None] + j[None, :] * counts[dst][:, None]  # [E, W]
    indices = np.empty(len(src) * W, dtype=np.int64)
    indices[member_slot.ravel()] = (src[:, None] * W + j[None, :]).ravel()
    scale_of_slot = np.empty(len(src) * W, dtype=np.int64)
    scale_of_slot[member_slot.ravel()] = np.broadcast_to(j, (len(src), W)).ravel()
    offsets = (W * first[:, None] + j[None, :] * counts[:, None]).ravel()
    device = weights.device
    bounds = np.flatnonzero(np.diff(activations, prepend=-1)).tolist() + [K]
    groups = [(int(activations[a]), start + a, start + b) for a, b in zip(bounds[:-1], bounds[1:])]
    return Level(
        start, stop,
        indices=torch.as_tensor(indices, device=device),
        offsets=torch.as_tensor(offsets, device=device),
        scales=weights[torch.as_tensor(scale_of_slot, device=device)],
        groups=groups,
    )


def plan_chunks(n_genomes: int, rows_per_genome: float, n_weights: int, min_samples: int, dtype_bytes: int,
                budget_bytes: int) -> list[range]:
    """Population ranges whose value buffer for `min_samples` samples fits in `budget_bytes`."""
    per_genome = max(rows_per_genome, 1.0) * n_weights * min_samples * dtype_bytes
    size = max(1, int(budget_bytes // per_genome))
    return [range(i, min(i + size, n_genomes)) for i in range(0, n_genomes, size)]
