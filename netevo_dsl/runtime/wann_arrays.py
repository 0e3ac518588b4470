"""A WANN genome as integer arrays, carried with the genome, and a population of them (numpy only).

`arrays_of(genome)` reads a genome's IR once into local ids (inputs, then hidden
nodes, then outputs) and keeps the result with the genome for as long as the
genome lives (a side cache keyed by identity, holding a weak reference: the IR
stays frozen plain data). A WANN mutation makes its child's arrays by editing
its parent's (`split_edge`, `append_edge`, `enable_edge`, `set_activation`,
called by `evolve/mutations/wann.py`), so a child's IR is never read back; arrays
are read-only and a child shares those its mutation does not change.

`_Population.build` concatenates a population's arrays under global ids;
`pack_population` (`runtime/wann_pack.py`) lays them out as tensors. Structural
checks (edge into an input, out of an output, duplicate edge, cycle) run
vectorised over the whole population; a genome that fails one is handed to
`validate_genome` for its messages.
"""
from __future__ import annotations

import keyword
import operator
import re
import weakref
from dataclasses import dataclass, replace

import numpy as np

from ..errors import GenomeError, NetevoError
from ..ir import nodes as ir
from ..ir.wann import BIAS, shared_weights, validate_genome
from ..ir.wann import connection_count as _ir_connection_count
from ..ir.wann import has_edge_weights as _ir_has_edge_weights
from ..ops.activations import WANN_ACTIVATIONS

ACTIVATION_IDS = {a.name: a.id for a in WANN_ACTIVATIONS}
_NAME_LIST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*\Z")
_KEYWORDS = frozenset(keyword.kwlist)
_NAME, _ACTIVATION = operator.attrgetter("name"), operator.attrgetter("activation")
_SRC, _DST, _ENABLED = operator.attrgetter("src"), operator.attrgetter("dst"), operator.attrgetter("enabled")
_WEIGHT = operator.attrgetter("weight")


class _Rejected(Exception):
    """A genome failed a fast check; `validate_genome` will explain why."""


@dataclass(frozen=True, eq=False)
class GenomeArrays:
    """One genome under local ids: inputs 0..n_inputs-1, then hidden nodes, then outputs (the IR's
    declaration order); edges in the IR's order. The arrays are read-only (children share them)."""

    n_inputs: int  # declared inputs, bias included
    bias: int  # position of the `bias` input among the inputs, -1 without one
    activations: np.ndarray  # int64 activation id per hidden node, then per output
    n_outputs: int
    src: np.ndarray  # int64, per edge
    dst: np.ndarray  # int64, per edge
    enabled: np.ndarray  # bool, per edge
    # passed the population-wide checks (no edge into an input or out of an output, no duplicate edge,
    # no cycle); a WANN mutation keeps this (tests/evolve/test_wann_mutations.py), so children skip them
    verified: bool = False
    weighted: bool = False  # some edge has a weight of its own (`w=`); no mutation changes this

    @property
    def n_nodes(self) -> int:
        return self.n_inputs + len(self.activations)

    @property
    def n_hidden(self) -> int:
        return len(self.activations) - self.n_outputs

    @property
    def n_observed(self) -> int:
        return self.n_inputs - (self.bias >= 0)

    def same_as(self, other: "GenomeArrays") -> bool:
        """Equal field by field (types and values), `verified` aside."""
        return (self.n_inputs, self.bias, self.n_outputs, self.weighted) == \
            (other.n_inputs, other.bias, other.n_outputs, other.weighted) and all(
            a.dtype == b.dtype and np.array_equal(a, b) for a, b in (
                (self.activations, other.activations), (self.src, other.src), (self.dst, other.dst),
                (self.enabled, other.enabled)))


def _arrays(n_inputs, bias, activations, n_outputs, src, dst, enabled, verified=False,
            weighted=False) -> GenomeArrays:
    """Arrays made here are frozen; those shared with the parent already are."""
    for array in (activations, src, dst, enabled):
        if array.flags.writeable:
            array.flags.writeable = False
    return GenomeArrays(n_inputs, bias, activations, n_outputs, src, dst, enabled, verified, weighted)


def read_arrays(genome) -> GenomeArrays | None:
    """A genome's arrays read from its IR, or None when it fails a fast structural check (names,
    activations, edge ends, weights setting; the population-wide checks come later). Not cached."""
    if not isinstance(genome, ir.WannGenome):
        return None
    # map/attrgetter rather than comprehensions: this ran for every genome of every generation
    inputs, nodes, outputs, edges = genome.inputs, genome.nodes, genome.outputs, genome.edges
    names = [*inputs, *map(_NAME, nodes), *map(_NAME, outputs)]
    index = dict(zip(names, range(len(names))))
    if len(index) != len(names) or not outputs or not _NAME_LIST.match(" ".join(names)) or \
            not _KEYWORDS.isdisjoint(names):
        return None
    n = len(edges)
    try:
        activations = np.fromiter(map(ACTIVATION_IDS.__getitem__, map(_ACTIVATION, (*nodes, *outputs))),
                                  dtype=np.int64, count=len(nodes) + len(outputs))
        src = np.fromiter(map(index.__getitem__, map(_SRC, edges)), dtype=np.int64, count=n)
        dst = np.fromiter(map(index.__getitem__, map(_DST, edges)), dtype=np.int64, count=n)
        shared_weights(genome)
    except (KeyError, GenomeError):
        return None
    bias = index[BIAS] if BIAS in index and index[BIAS] < len(inputs) else -1
    return _arrays(len(inputs), bias, activations, len(outputs), src, dst,
                   np.fromiter(map(_ENABLED, edges), dtype=bool, count=n),
                   weighted=[*map(_WEIGHT, edges)].count(None) != n)


# id(genome) -> (weak reference to the genome, its arrays or None); an entry leaves with its genome
_CARRIED: dict[int, tuple[weakref.ref, GenomeArrays | None]] = {}


def _forget(key: int):
    def drop(_ref):
        entry = _CARRIED.get(key)
        if entry is not None and entry[0] is _ref:
            del _CARRIED[key]
    return drop


def carried(genome) -> tuple[bool, GenomeArrays | None]:
    """(known, arrays): whether the genome's arrays are carried, and them (None: it failed a fast check)."""
    entry = _CARRIED.get(id(genome))
    if entry is not None and entry[0]() is genome:
        return True, entry[1]
    return False, None


def carry(genome, arrays: GenomeArrays | None) -> None:
    """Keep `arrays` with `genome` for as long as it lives."""
    key = id(genome)
    _CARRIED[key] = (weakref.ref(genome, _forget(key)), arrays)


def arrays_of(genome) -> GenomeArrays | None:
    """The genome's arrays, read from its IR on first use only; None when it fails a fast check."""
    known, arrays = carried(genome)
    if not known:
        arrays = read_arrays(genome)
        try:
            carry(genome, arrays)
        except TypeError:  # not weak-referenceable (not an IR genome): not kept
            pass
    return arrays


def has_edge_weights(genome) -> bool:
    """`ir.wann.has_edge_weights`, from the carried arrays where the genome has them."""
    arrays = arrays_of(genome)
    return _ir_has_edge_weights(genome) if arrays is None else arrays.weighted


def connection_count(genome) -> int:
    """`ir.wann.connection_count` (enabled edges), from the carried arrays where the genome has them."""
    arrays = arrays_of(genome)
    return _ir_connection_count(genome) if arrays is None else int(np.count_nonzero(arrays.enabled))


# --- edits: a mutated genome's arrays from its parent's ----------------------------------


def split_edge(a: GenomeArrays, i: int, activation: int) -> GenomeArrays:
    """`add_node`: edge i disabled, a new hidden node (after the others, before the outputs) and the
    edges src -> new, new -> dst inserted right after edge i."""
    new = a.n_inputs + a.n_hidden
    src, dst = a.src + (a.src >= new), a.dst + (a.dst >= new)  # the outputs move up one id
    enabled = a.enabled.copy()
    enabled[i] = False
    cut, h = i + 1, a.n_hidden
    return _arrays(
        a.n_inputs, a.bias, np.concatenate((a.activations[:h], (activation,), a.activations[h:])), a.n_outputs,
        np.concatenate((src[:cut], (src[i], new), src[cut:])), np.concatenate((dst[:cut], (new, dst[i]), dst[cut:])),
        np.concatenate((enabled[:cut], (True, True), enabled[cut:])), a.verified, a.weighted)


def append_edge(a: GenomeArrays, src: int, dst: int) -> GenomeArrays:
    """`add_edge`: an enabled edge src -> dst (local ids) after the others."""
    return _arrays(a.n_inputs, a.bias, a.activations, a.n_outputs, np.append(a.src, src), np.append(a.dst, dst),
                   np.append(a.enabled, True), a.verified, a.weighted)


def enable_edge(a: GenomeArrays, i: int) -> GenomeArrays:
    enabled = a.enabled.copy()
    enabled[i] = True
    return _arrays(a.n_inputs, a.bias, a.activations, a.n_outputs, a.src, a.dst, enabled, a.verified, a.weighted)


def set_activation(a: GenomeArrays, k: int, activation: int) -> GenomeArrays:
    """Node k of activations (hidden nodes first, then outputs) gets `activation`."""
    activations = a.activations.copy()
    activations[k] = activation
    return _arrays(a.n_inputs, a.bias, activations, a.n_outputs, a.src, a.dst, a.enabled, a.verified, a.weighted)


def addable(a: GenomeArrays) -> tuple[np.ndarray, np.ndarray] | None:
    """The edges `add_edge` may add, as (sources, targets) in local ids, in the order of
    `evolve.mutations.wann.addable_edges` (every source: inputs, then hidden nodes; with every
    target: hidden nodes, then outputs; no cycle, no duplicate); None when the genome has a cycle
    (then only the IR's definition applies)."""
    n, n_in = a.n_nodes, a.n_inputs
    reaches = _reachable(n, a.src, a.dst)  # reaches[u, v]: a path leads from u to v
    if reaches is None:
        return None
    n_sources = n_in + a.n_hidden
    allowed = ~reaches[n_in:, :n_sources].T  # [source, target - n_in]: no edge that closes a cycle
    allowed[np.arange(n_in, n_sources), np.arange(n_sources - n_in)] = False  # no self-loop
    s, d = a.src, a.dst
    keep = (s < n_sources) & (d >= n_in)
    allowed[s[keep], d[keep] - n_in] = False  # no duplicate
    sources, targets = np.nonzero(allowed)  # row-major: sources outer, targets inner
    return sources, targets + n_in


_DENSE_REACH = 512  # up to this many nodes, reachability by boolean matrix products; beyond, bit masks


def _reachable(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """[n, n] bool: whether a path of one or more edges leads from u to v; None if there is a cycle."""
    if n > _DENSE_REACH:
        below = reach_masks(n, src.tolist(), dst.tolist())
        return None if below is None else _mask_matrix(below, n)
    step = np.zeros((n, n), dtype=np.float32)
    step[src, dst] = 1.0
    reach = step > 0
    while True:  # paths of up to 2k edges from those of up to k (a product entry counts at most n nodes: exact)
        grown = reach | (reach.astype(np.float32) @ reach.astype(np.float32) > 0)
        if np.array_equal(grown, reach):
            break
        reach = grown
    return None if reach.diagonal().any() else reach


def _mask_matrix(masks: list[int], n: int) -> np.ndarray:
    """[len(masks), n] bool: bit v of masks[u]."""
    width = (n + 7) // 8
    packed = np.frombuffer(b"".join(m.to_bytes(width, "little") for m in masks), dtype=np.uint8)
    return np.unpackbits(packed.reshape(len(masks), width), axis=1, count=n, bitorder="little").astype(bool)


def reach_masks(n: int, src: list[int], dst: list[int]) -> list[int] | None:
    """Per node, the nodes reachable from it over the edges, as bit masks; None if there is a cycle."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for s, d in zip(src, dst):
        succ[s].append(d)
        indegree[d] += 1
    ready = [i for i, k in enumerate(indegree) if k == 0]
    order = []
    while ready:  # Kahn's algorithm
        node = ready.pop()
        order.append(node)
        for m in succ[node]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    if len(order) < n:
        return None
    below = [0] * n
    for node in reversed(order):
        mask = 0
        for m in succ[node]:
            mask |= below[m] | (1 << m)
        below[node] = mask
    return below


# --- packing -------------------------------------------------------------------------


def _genome_arrays(genome, n_obs: int, n_outputs: int) -> GenomeArrays:
    """The genome's carried arrays, checked against the task.

    Raises _Rejected for a structural problem (checked again, vectorised, later)
    and NetevoError when the genome does not fit the task.
    """
    arrays = arrays_of(genome)
    if arrays is None:
        raise _Rejected
    if arrays.n_observed != n_obs or arrays.n_outputs != n_outputs:
        raise io_mismatch(genome, n_obs, n_outputs)
    return arrays


def io_mismatch(genome: ir.WannGenome, n_obs: int, n_outputs: int) -> NetevoError | None:
    """The error for a genome whose inputs or outputs do not fit the task, else None."""
    observed = len(genome.inputs) - list(genome.inputs).count(BIAS)
    if observed == n_obs and len(genome.outputs) == n_outputs:
        return None
    return NetevoError(
        f"genome `{genome.name}` has {observed} observation inputs and {len(genome.outputs)} outputs; "
        f"the task gives {n_obs} and expects {n_outputs}",
        genome.span,
        "the `bias` input is extra; inputs and outputs map to the task's features and actions in order",
    )


def rejection_reason(genome) -> str:
    """The message a structurally invalid genome is reported with (same as the reference's)."""
    if not isinstance(genome, ir.WannGenome):
        return f"not a WANN genome: {type(genome).__name__}"
    errors = validate_genome(genome)
    if errors:
        return "; ".join(e.message for e in errors)
    return "genome failed the evaluator's structural checks"


@dataclass
class _Population:
    """All packed genomes' nodes and edges under global ids (numpy)."""

    genome_of_node: np.ndarray
    is_input: np.ndarray
    is_output: np.ndarray
    activation: np.ndarray  # -1 for inputs
    input_slot: np.ndarray  # -1 for non-inputs
    src: np.ndarray
    dst: np.ndarray
    enabled: np.ndarray
    genome_of_edge: np.ndarray
    size_of_node: np.ndarray  # node count of the node's genome

    @classmethod
    def build(cls, arrays: list[GenomeArrays], n_obs: int) -> "_Population":
        """The genomes' carried arrays concatenated, their local ids offset to global ones."""
        P = len(arrays)
        sizes = np.fromiter((a.n_nodes for a in arrays), dtype=np.int64, count=P)
        n_edges = np.fromiter((len(a.src) for a in arrays), dtype=np.int64, count=P)
        n_inputs = np.fromiter((a.n_inputs for a in arrays), dtype=np.int64, count=P)
        n_outs = np.fromiter((a.n_outputs for a in arrays), dtype=np.int64, count=P)
        bias = np.fromiter((a.bias for a in arrays), dtype=np.int64, count=P)
        base = np.cumsum(sizes) - sizes
        genome_of_node = np.repeat(np.arange(P), sizes)
        local = np.arange(int(sizes.sum())) - base[genome_of_node]
        is_input = local < n_inputs[genome_of_node]
        activation = np.full(len(local), -1, dtype=np.int64)
        activation[~is_input] = np.concatenate([a.activations for a in arrays])
        # observation k feeds the k-th non-bias input; the bias reads slot n_obs (the constant 1)
        b = bias[genome_of_node]
        slot = np.where(local == b, n_obs, local - ((b >= 0) & (local > b)))
        input_slot = np.where(is_input, slot, -1)
        genome_of_edge = np.repeat(np.arange(P), n_edges)
        edge_base = base[genome_of_edge]
        return cls(
            genome_of_node, is_input, local >= (sizes - n_outs)[genome_of_node], activation, input_slot,
            np.concatenate([a.src for a in arrays]) + edge_base, np.concatenate([a.dst for a in arrays]) + edge_base,
            np.concatenate([a.enabled for a in arrays]), genome_of_edge, sizes[genome_of_node],
        )

    def invalid_genomes(self) -> set[int]:
        """Genomes with an edge into an input, out of an output, a duplicate edge, or a cycle."""
        bad = self.is_input[self.dst] | self.is_output[self.src]
        key = self.src * len(self.genome_of_node) + self.dst
        unique_keys, first = np.unique(key, return_index=True)
        duplicate = np.ones(len(key), dtype=bool)
        duplicate[first] = False
        invalid = set(self.genome_of_edge[bad | duplicate].tolist())
        depth = np.zeros(len(self.genome_of_node), dtype=np.int64)
        exceeded = _relax_longest_paths(depth, self.src, self.dst, self.size_of_node)  # disabled edges count
        return invalid | set(self.genome_of_node[exceeded].tolist())


def _relax_longest_paths(depth: np.ndarray, src: np.ndarray, dst: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """depth[dst] = max(depth[dst], depth[src] + 1) over every edge, in topological order (Kahn's
    algorithm, one frontier at a time: each edge is visited once, where relaxation swept all edges once
    per level). Returns the nodes left without an order, those on or behind a cycle, and those whose
    depth reached `limit` (a DAG's longest path is shorter than its node count, so in a genome without
    a cycle none does)."""
    n = len(depth)
    if len(src) == 0:
        return np.zeros(n, dtype=bool)
    indegree = np.bincount(dst, minlength=n)
    out_count = np.bincount(src, minlength=n)
    out_start = np.cumsum(out_count) - out_count
    targets_by_src = dst[np.argsort(src)]
    frontier = np.flatnonzero(indegree == 0)
    while len(frontier):
        frontier, edges = _out_edges(frontier, out_start, out_count)
        if not len(frontier):
            break
        counts = out_count[frontier]
        targets = targets_by_src[edges]
        np.maximum.at(depth, targets, np.repeat(depth[frontier] + 1, counts))
        reached, hits = np.unique(targets, return_counts=True)
        indegree[reached] -= hits
        frontier = reached[indegree[reached] == 0]
    return (indegree > 0) | (depth >= limit)


def _out_edges(nodes: np.ndarray, start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nodes with at least one edge, and the positions of all their edges (edges grouped by node:
    node k's are start[k]:start[k] + count[k]), node by node."""
    nodes = nodes[count[nodes] > 0]
    counts = count[nodes]
    first = np.cumsum(counts) - counts
    return nodes, np.repeat(start[nodes] - first, counts) + np.arange(int(counts.sum()))


def _live_nodes(is_output: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Outputs and every node with an enabled path to one: backwards from the outputs, one frontier
    at a time (each step masks all edges: measured faster than a walk over edges sorted by
    destination for a population's few dozen steps at most)."""
    live = is_output.copy()
    frontier = live
    while True:
        reached = np.zeros(len(live), dtype=bool)
        reached[src[frontier[dst]]] = True
        reached &= ~live
        if not reached.any():
            return live
        live |= reached
        frontier = reached


def population_of(genomes: list, n_obs: int, n_outputs: int, indices: list[int]):
    """The packable genomes of `genomes` (population positions `indices`) as
    ([(position, genome, arrays)], _Population or None, {position: reason it cannot be packed})."""
    failures: dict[int, str] = {}
    packed: list[tuple[int, object, GenomeArrays]] = []
    for position, genome in zip(indices, genomes):
        try:
            packed.append((position, genome, _genome_arrays(genome, n_obs, n_outputs)))
        except _Rejected:
            failures[position] = rejection_reason(genome)
        except NetevoError as error:
            failures[position] = error.message
    # the population-wide checks, for the genomes not known to pass them (those read from IR)
    unverified = [k for k, (_, _, a) in enumerate(packed) if not a.verified]
    population = _Population.build([a for _, _, a in packed], n_obs) if packed else None
    checked = population if len(unverified) == len(packed) else \
        _Population.build([packed[k][2] for k in unverified], n_obs) if unverified else None
    invalid = {unverified[j] for j in checked.invalid_genomes()} if checked is not None else set()
    for k in unverified:
        if k not in invalid:
            position, genome, a = packed[k]
            packed[k] = (position, genome, replace(a, verified=True))
            if carried(genome)[1] is a:
                carry(genome, packed[k][2])
    for k in sorted(invalid, reverse=True):
        position, genome, _ = packed.pop(k)
        failures[position] = rejection_reason(genome)
    if invalid and packed:
        population = _Population.build([a for _, _, a in packed], n_obs)
    return packed, population, failures
