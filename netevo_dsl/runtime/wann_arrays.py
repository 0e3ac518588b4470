"""One WANN genome as local integer arrays, and a population of them under global ids (numpy only).

`_genome_arrays` reads a genome's IR into local ids (inputs, hidden, outputs) and
`_Population.build` concatenates such arrays; `pack_population`
(`runtime/wann_pack.py`) lays the population out as tensors. Structural checks
(edge into an input, out of an output, duplicate edge, cycle) run vectorised over
the whole population; a genome that fails one is handed to `validate_genome` for
its messages.
"""
from __future__ import annotations

import itertools
import keyword
import operator
import re
from dataclasses import dataclass

import numpy as np

from ..errors import GenomeError, NetevoError
from ..ir import nodes as ir
from ..ir.wann import BIAS, shared_weights, validate_genome
from ..ops.activations import WANN_ACTIVATIONS

ACTIVATION_IDS = {a.name: a.id for a in WANN_ACTIVATIONS}
_NAME_LIST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*\Z")
_KEYWORDS = frozenset(keyword.kwlist)
_NAME, _ACTIVATION = operator.attrgetter("name"), operator.attrgetter("activation")
_SRC, _DST, _ENABLED = operator.attrgetter("src"), operator.attrgetter("dst"), operator.attrgetter("enabled")


# --- packing -------------------------------------------------------------------------


class _Rejected(Exception):
    """A genome failed a fast check; `validate_genome` will explain why."""


@dataclass
class _GenomeArrays:
    n_inputs: int  # declared inputs, bias included
    input_slots: list[int]  # per declared input: observation index, or n_obs for the bias
    activations: list[int]  # per hidden node, then per output
    n_outputs: int
    src: list[int]  # edges in local ids: inputs, hidden, outputs
    dst: list[int]
    enabled: list[bool]

    @property
    def n_nodes(self) -> int:
        return self.n_inputs + len(self.activations)


def _genome_arrays(genome, n_obs: int, n_outputs: int) -> _GenomeArrays:
    """Read one genome into local integer ids (the only per-genome Python work).

    Raises _Rejected for a structural problem (checked again, vectorised, later)
    and NetevoError when the genome does not fit the task.
    """
    if not isinstance(genome, ir.WannGenome):
        raise _Rejected
    # map/attrgetter rather than comprehensions: this loop runs for every genome of every generation
    inputs, nodes, outputs, edges = genome.inputs, genome.nodes, genome.outputs, genome.edges
    names = [*inputs, *map(_NAME, nodes), *map(_NAME, outputs)]
    index = dict(zip(names, range(len(names))))
    if len(index) != len(names) or not outputs or not _NAME_LIST.match(" ".join(names)) or \
            not _KEYWORDS.isdisjoint(names):
        raise _Rejected
    try:
        activations = [*map(ACTIVATION_IDS.__getitem__, map(_ACTIVATION, nodes)),
                       *map(ACTIVATION_IDS.__getitem__, map(_ACTIVATION, outputs))]
        src = [*map(index.__getitem__, map(_SRC, edges))]
        dst = [*map(index.__getitem__, map(_DST, edges))]
        shared_weights(genome)
    except (KeyError, GenomeError):
        raise _Rejected from None
    mismatch = io_mismatch(genome, n_obs, n_outputs)
    if mismatch is not None:
        raise mismatch
    slots = list(range(len(inputs)))  # observation k feeds the k-th non-bias input; names are unique
    if BIAS in index and index[BIAS] < len(inputs):
        b = index[BIAS]
        slots = [*range(b), n_obs, *range(b, len(inputs) - 1)]
    return _GenomeArrays(len(inputs), slots, activations, len(outputs), src, dst, [*map(_ENABLED, edges)])


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
    def build(cls, arrays: list[_GenomeArrays]) -> "_Population":
        sizes = np.array([a.n_nodes for a in arrays], dtype=np.int64)
        n_edges = np.array([len(a.src) for a in arrays], dtype=np.int64)
        base = np.cumsum(sizes) - sizes
        genome_of_node = np.repeat(np.arange(len(arrays)), sizes)
        local = np.arange(int(sizes.sum())) - base[genome_of_node]
        n_inputs = np.array([a.n_inputs for a in arrays], dtype=np.int64)
        n_outs = np.array([a.n_outputs for a in arrays], dtype=np.int64)
        is_input = local < n_inputs[genome_of_node]
        activation = np.full(len(local), -1, dtype=np.int64)
        activation[~is_input] = _flat(a.activations for a in arrays)
        input_slot = np.full(len(local), -1, dtype=np.int64)
        input_slot[is_input] = _flat(a.input_slots for a in arrays)
        genome_of_edge = np.repeat(np.arange(len(arrays)), n_edges)
        edge_base = base[genome_of_edge]
        return cls(
            genome_of_node, is_input, local >= (sizes - n_outs)[genome_of_node], activation, input_slot,
            _flat(a.src for a in arrays) + edge_base, _flat(a.dst for a in arrays) + edge_base,
            _flat(a.enabled for a in arrays).astype(bool), genome_of_edge, sizes[genome_of_node],
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


def _flat(lists) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64)


def _relax_longest_paths(depth: np.ndarray, src: np.ndarray, dst: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """depth[dst] >= depth[src] + 1 until stable; returns the nodes whose depth passed `limit`
    (their genome has a cycle: a DAG's longest path is shorter than its node count)."""
    exceeded = np.zeros(len(depth), dtype=bool)
    if len(src) == 0:
        return exceeded
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    targets, starts = np.unique(dst, return_index=True)
    for _ in range(int(limit.max(initial=0)) + 2):
        old = depth[targets]
        new = np.maximum(old, np.maximum.reduceat(depth[src] + 1, starts))
        changed = (new != old) & ~exceeded[targets]
        if not changed.any():
            break
        depth[targets] = new
        exceeded[targets] |= new >= limit[targets]
    return exceeded


def _live_nodes(is_output: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Outputs and every node with an enabled path to one."""
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
