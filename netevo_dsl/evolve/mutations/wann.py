"""Mutations of WANN genomes, as published (Gaier & Ha 2019, and the authors' code).

Each child gets exactly one of: add a node by splitting an enabled edge, add a
feed-forward edge, re-enable a disabled edge, change a hidden node's
activation; chosen by roulette (0.25, 0.20, 0.05, 0.50 by default, the `p` of
the spec's rules otherwise). The roulette itself lives in the engine.

Genomes stay acyclic over enabled *and* disabled edges (re-enabling must not
make a cycle), edges never enter an input or leave an output, and new node
names are fresh identifiers.

Each operator also makes its child's integer arrays from its parent's
(`runtime/wann_arrays.py`: split an edge, append one, enable one, change an
activation id) and carries them with the child, so the evaluator never reads a
child's IR back into arrays.
"""
from __future__ import annotations

import keyword
import operator as operator_module

import attrs
import numpy as np

from ...ir import nodes as ir
from ...ir.wann import output_names
from ...ops.activations import WANN_ACTIVATIONS
from ...runtime import wann_arrays as arrays
from .base import Context, operator, shuffled

PUBLISHED_ROULETTE = (("add_node", 0.25), ("add_edge", 0.20), ("enable_edge", 0.05), ("change_activation", 0.50))
# The default pool: the authors' activation ids 1-10 (linear ... cos, config.py's `h_act` for
# swing-up); `square` (their 11) is available but only drawn when a rule's choices name it.
ALL_ACTIVATIONS = tuple(a.name for a in WANN_ACTIVATIONS if a.name != "square")


def activation_pool(ctx: Context) -> tuple[str, ...]:
    """The activations new or changed nodes draw from: the `change_activation` choices if any."""
    rule = ctx.rule if ctx.rule.name == "change_activation" else next(
        (r for r in ctx.siblings if r.name == "change_activation"), None)
    if rule is not None and rule.choices:
        return tuple(str(c) for c in rule.choices)
    return ALL_ACTIVATIONS


def with_activation_pool(rules: tuple, pool: tuple[str, ...]) -> tuple:
    """`rules` with `pool` as the choices of a `change_activation` rule that names none
    (a run gives its task's pool this way: `ops.tasks.TaskSpec.activations`)."""
    return tuple(attrs.evolve(r, choices=tuple(pool)) if r.name == "change_activation" and not r.choices else r
                 for r in rules)


def fresh_name(genome: ir.WannGenome, stem: str = "h") -> str:
    """The first of h1, h2, ... not used by an input, node or output."""
    taken = set(genome.inputs) | {n.name for n in genome.nodes} | set(output_names(genome))
    k = 1
    while f"{stem}{k}" in taken or keyword.iskeyword(f"{stem}{k}"):
        k += 1
    return f"{stem}{k}"


def descendants(genome: ir.WannGenome) -> dict[str, set[str]]:
    """Every node reachable from each node over all edges, enabled or not (the genome is acyclic)."""
    names = list(genome.inputs) + [n.name for n in genome.nodes] + output_names(genome)
    succ: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for e in genome.edges:
        succ.setdefault(e.src, []).append(e.dst)
        indegree[e.dst] = indegree.get(e.dst, 0) + 1
        indegree.setdefault(e.src, 0)
    ready = [n for n, d in indegree.items() if d == 0]
    order = []
    while ready:  # Kahn's algorithm; iterative, so deep genomes do not hit the recursion limit
        n = ready.pop()
        order.append(n)
        for m in succ.get(n, ()):
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    below: dict[str, set[str]] = {}
    for n in reversed(order):
        out: set[str] = set()
        for m in succ.get(n, ()):
            out.add(m)
            out |= below[m]
        below[n] = out
    return below


_NAME = operator_module.attrgetter("name")
# from this many edges on, an operator finds its candidates in the parent's arrays (numpy); below, a
# Python pass over the IR is faster (XOR's genomes: numpy's per-call cost would dominate)
ARRAY_CANDIDATES = 64


def _large_parent(g: ir.WannGenome):
    """The genome's arrays when it is large enough for candidates from them to pay, else None."""
    return arrays.arrays_of(g) if len(g.edges) >= ARRAY_CANDIDATES else None


def _carry(parent: ir.WannGenome, child: ir.WannGenome, edit, where: int, activation: str) -> None:
    """Carry `edit(parent's arrays, where, activation id)` with `child`; an unknown activation makes
    a genome the evaluator rejects, as reading the child's IR would (no arrays)."""
    a = arrays.arrays_of(parent)
    if a is not None:
        act = arrays.ACTIVATION_IDS.get(activation)
        arrays.carry(child, None if act is None else edit(a, where, act))


@operator("wann", "add_node")
def add_node(ctx: Context):
    g = ctx.item
    parent = _large_parent(g)
    enabled = [i for i, e in enumerate(g.edges) if e.enabled] if parent is None else \
        np.flatnonzero(parent.enabled).tolist()
    if not enabled:
        return
    i = ctx.rng.choice(enabled)
    old = g.edges[i]
    name = fresh_name(g)
    activation = ctx.rng.choice(activation_pool(ctx))
    edges = list(g.edges)
    edges[i] = attrs.evolve(old, enabled=False)
    # the split edge's own weight (`w=`), if any, moves to the edge into the new node
    edges[i + 1:i + 1] = [ir.WannEdge(old.src, name, weight=getattr(old, "weight", None)), ir.WannEdge(name, old.dst)]
    new = attrs.evolve(g, nodes=tuple(g.nodes) + (ir.WannNode(name, activation),), edges=tuple(edges))
    _carry(g, new, arrays.split_edge, i, activation)
    yield ctx.replace_item(new), f"add_node {name}: {activation} splitting {old.src} -> {old.dst}"


def _below_masks(g: ir.WannGenome, names: list[str]) -> list[int] | None:
    """`descendants` as bit masks over `names` (bit i: names[i] is reachable): one integer OR per
    edge instead of a set union, which made `add_edge` the costliest mutation on wide genomes."""
    index = {n: i for i, n in enumerate(names)}
    if len(index) < len(names) or any(e.src not in index or e.dst not in index for e in g.edges):
        return None  # not a valid genome: `addable_edges` uses the set form, which tolerates it
    succ: list[list[int]] = [[] for _ in names]
    indegree = [0] * len(names)
    for e in g.edges:
        d = index[e.dst]
        succ[index[e.src]].append(d)
        indegree[d] += 1
    ready = [i for i, k in enumerate(indegree) if k == 0]
    order = []
    while ready:  # Kahn's algorithm, as in `descendants`
        n = ready.pop()
        order.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    below = [0] * len(names)
    for n in reversed(order):
        mask = 0
        for m in succ[n]:
            mask |= below[m] | (1 << m)
        below[n] = mask
    return below


def addable_edges(g: ir.WannGenome) -> list[tuple[str, str]]:
    """Feed-forward edges that can be added: none into inputs or out of outputs, no cycle, no duplicate."""
    outputs = output_names(g)
    hidden = [n.name for n in g.nodes]
    names = list(g.inputs) + hidden + outputs
    existing = {(e.src, e.dst) for e in g.edges}
    below = _below_masks(g, names)
    if below is None:
        sets = descendants(g)
        return [(s, d) for s in list(g.inputs) + hidden for d in hidden + outputs
                if s != d and (s, d) not in existing and s not in outputs and s not in sets[d]]
    n_in = len(g.inputs)
    sources = range(n_in + len(hidden))  # inputs and hidden nodes, as indices into `names`
    targets = range(n_in, len(names))  # hidden nodes and outputs
    return [(names[s], names[d]) for s in sources for d in targets
            if s != d and not (below[d] >> s) & 1 and (names[s], names[d]) not in existing]


@operator("wann", "add_edge")
def add_edge(ctx: Context):
    g = ctx.item
    parent = _large_parent(g)
    pairs = None if parent is None else arrays.addable(parent)  # the same candidates, from the arrays
    if pairs is None:
        candidates = addable_edges(g)
        if not candidates:
            return
        src, dst = ctx.rng.choice(candidates)
        new = attrs.evolve(g, edges=tuple(g.edges) + (ir.WannEdge(src, dst),))
        parent = arrays.arrays_of(g)
        if parent is not None:
            names = [*g.inputs, *map(_NAME, g.nodes), *map(_NAME, g.outputs)]  # the arrays' local ids
            arrays.carry(new, arrays.append_edge(parent, names.index(src), names.index(dst)))
    else:
        sources, targets = pairs
        if not len(sources):
            return
        k = ctx.rng.choice(range(len(sources)))  # the same draw as choosing from the candidate list
        s, d = int(sources[k]), int(targets[k])
        names = [*g.inputs, *map(_NAME, g.nodes), *map(_NAME, g.outputs)]  # the arrays' local ids
        src, dst = names[s], names[d]
        new = attrs.evolve(g, edges=tuple(g.edges) + (ir.WannEdge(src, dst),))
        arrays.carry(new, arrays.append_edge(parent, s, d))
    yield ctx.replace_item(new), f"add_edge {src} -> {dst}"


@operator("wann", "enable_edge")
def enable_edge(ctx: Context):
    g = ctx.item
    parent = _large_parent(g)
    disabled = [i for i, e in enumerate(g.edges) if not e.enabled] if parent is None else \
        np.flatnonzero(~parent.enabled).tolist()
    if not disabled:
        return
    i = ctx.rng.choice(disabled)
    edges = list(g.edges)
    edges[i] = attrs.evolve(edges[i], enabled=True)
    new = attrs.evolve(g, edges=tuple(edges))
    parent = arrays.arrays_of(g)
    if parent is not None:
        arrays.carry(new, arrays.enable_edge(parent, i))
    yield ctx.replace_item(new), f"enable_edge {edges[i].src} -> {edges[i].dst}"


@operator("wann", "change_activation")
def change_activation(ctx: Context):
    # As in the authors' code: hidden nodes only (outputs keep the task's activation), and a different one.
    g = ctx.item
    pool = activation_pool(ctx)
    for i in shuffled(ctx.rng, range(len(g.nodes))):
        node = g.nodes[i]
        options = [a for a in pool if a != node.activation]
        if not options:
            continue
        act = ctx.rng.choice(options)
        nodes = list(g.nodes)
        nodes[i] = attrs.evolve(node, activation=act)
        new = attrs.evolve(g, nodes=tuple(nodes))
        _carry(g, new, arrays.set_activation, i, act)
        yield ctx.replace_item(new), \
            f"change_activation {node.name}: {node.activation} -> {act}"
        return


__all__ = ["PUBLISHED_ROULETTE", "add_node", "add_edge", "enable_edge", "change_activation", "addable_edges",
           "fresh_name", "descendants"]
