"""Graph view of a WANN genome: validation, evaluation order, shared weights.

Pure Python plus networkx (no torch), so `netevo check` can use it.

Semantics shared by every evaluator and the compiler:

* the input named ``bias`` is the constant 1.0; the other inputs take the task's
  observation features in declared order;
* a hidden or output node's value is ``activation(sum of w * source value)``
  over its *enabled* incoming edges, with ``w`` the one shared weight; inputs
  are not activated;
* an edge with its own weight (``edge a -> b w=0.3``) multiplies its source by
  that weight instead of w: ``activation(sum of w_e * source value)``, w_e the
  edge's weight or w. A genome without any edge weight is computed as
  ``activation(w * sum)``, bit for bit as before edge weights existed;
* outputs map to the task's action / logit vector in declared order.
"""
from __future__ import annotations

import keyword
import math
import re


from ..errors import GenomeError, did_you_mean, raise_all
from ..limits import MAX_EDGE_WEIGHT
from ..ops.activations import WANN_BY_NAME
from . import nodes as ir

BIAS = "bias"
DEFAULT_WEIGHTS: tuple[float, ...] = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def hidden_names(genome: ir.WannGenome) -> list[str]:
    return [n.name for n in genome.nodes]


def output_names(genome: ir.WannGenome) -> list[str]:
    return [o.name for o in genome.outputs]


def observation_inputs(genome: ir.WannGenome) -> list[str]:
    """Inputs fed from the task's observation, in declared order (`bias` excluded)."""
    return [name for name in genome.inputs if name != BIAS]


def activation_of(genome: ir.WannGenome) -> dict[str, str]:
    """Activation name of every hidden and output node."""
    return {n.name: n.activation for n in tuple(genome.nodes) + tuple(genome.outputs)}


def to_networkx(genome: ir.WannGenome, include_disabled: bool = False) -> "nx.DiGraph":
    """A DiGraph with node attribute `role` (input|bias|hidden|output) and `activation`.

    Edge attribute `enabled`; disabled edges are left out unless asked for.
    """
    import networkx as nx

    graph = nx.DiGraph(name=genome.name)
    for name in genome.inputs:
        graph.add_node(name, role="bias" if name == BIAS else "input", activation=None)
    for node in genome.nodes:
        graph.add_node(node.name, role="hidden", activation=node.activation)
    for out in genome.outputs:
        graph.add_node(out.name, role="output", activation=out.activation)
    for edge in genome.edges:
        if edge.enabled or include_disabled:
            graph.add_edge(edge.src, edge.dst, enabled=edge.enabled)
    return graph


def enabled_edges(genome: ir.WannGenome) -> list[ir.WannEdge]:
    return [e for e in genome.edges if e.enabled]


def has_edge_weights(genome: ir.WannGenome) -> bool:
    """Whether any edge (enabled or not) carries its own weight."""
    return any(e.weight is not None for e in genome.edges)


def connection_count(genome: ir.WannGenome) -> int:
    """Enabled connections: the WANN complexity objective."""
    return len(enabled_edges(genome))


def topological_levels(genome: ir.WannGenome) -> list[list[str]]:
    """Hidden and output nodes grouped by longest-path depth over enabled edges.

    Inputs have depth 0 and are not listed. A node's depth is one more than the
    deepest of its enabled sources (a node with none has depth 1), so every node
    in a level depends only on earlier levels and a level can be computed as one
    vectorised step. Within a level, nodes keep declaration order (hidden nodes,
    then outputs).
    """
    edges = [(e.src, e.dst) for e in enabled_edges(genome)]
    order = _topological_order(_all_names(genome, edges), edges)
    if order is None:
        import networkx as nx

        cycle = [src for src, _ in nx.find_cycle(to_networkx(genome))]
        cycle.append(cycle[0])
        raise GenomeError(
            f"genome `{genome.name}` has a cycle over enabled edges: {' -> '.join(cycle)}",
            genome.span,
            "WANN genomes are feed-forward; disable or remove one edge of the cycle",
        )
    sources: dict[str, list[str]] = {}
    for src, dst in edges:
        sources.setdefault(dst, []).append(src)
    inputs = set(genome.inputs)
    depth: dict[str, int] = {}
    for name in order:
        if name in inputs:
            depth[name] = 0
        else:
            depth[name] = 1 + max((depth[src] for src in sources.get(name, ())), default=0)
    levels: dict[int, list[str]] = {}
    for name in hidden_names(genome) + output_names(genome):
        levels.setdefault(depth[name], []).append(name)
    return [levels[d] for d in sorted(levels)]


def _all_names(genome: ir.WannGenome, edges) -> list[str]:
    names = dict.fromkeys(list(genome.inputs) + hidden_names(genome) + output_names(genome))
    for src, dst in edges:  # undeclared endpoints still get an order (validate reports them)
        names.setdefault(src)
        names.setdefault(dst)
    return list(names)


def _topological_order(names: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    """Kahn's algorithm; None if the edges contain a cycle. Pure Python: networkx is
    too slow for the evaluators, which order thousands of genomes per generation."""
    indegree = dict.fromkeys(names, 0)
    successors: dict[str, list[str]] = {}
    for src, dst in edges:
        indegree[dst] += 1
        successors.setdefault(src, []).append(dst)
    ready = [name for name in names if indegree[name] == 0]
    order = []
    while ready:
        name = ready.pop()
        order.append(name)
        for nxt in successors.get(name, ()):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return order if len(order) == len(names) else None


def evaluation_order(genome: ir.WannGenome) -> list[str]:
    """Hidden and output nodes in an order where every source comes first."""
    return [name for level in topological_levels(genome) for name in level]


def incoming(genome: ir.WannGenome) -> dict[str, list[str]]:
    """Enabled sources of every hidden and output node."""
    sources: dict[str, list[str]] = {name: [] for name in hidden_names(genome) + output_names(genome)}
    for edge in enabled_edges(genome):
        sources[edge.dst].append(edge.src)
    return sources


def incoming_weights(genome: ir.WannGenome) -> dict[str, list[float | None]]:
    """The weight of each enabled incoming edge, parallel to `incoming`'s sources (None: the shared w)."""
    weights: dict[str, list] = {name: [] for name in hidden_names(genome) + output_names(genome)}
    for edge in enabled_edges(genome):
        weights[edge.dst].append(edge.weight)
    return weights


def shared_weights(genome: ir.WannGenome) -> tuple[float, ...]:
    """The genome's shared-weight values (the `weights` setting), or the WANN default."""
    value = ir.setting(genome.settings, "weights")
    if value is None:
        return DEFAULT_WEIGHTS
    if not isinstance(value, (ir.SetExpr, ir.ListExpr)):
        raise GenomeError(
            f"genome `{genome.name}`: `weights` must be a set of numbers",
            getattr(value, "span", None) or genome.span,
            "write e.g. `weights {-2, -1, -0.5, 0.5, 1, 2}`",
        )
    weights = tuple(_number(item, genome) for item in value.items)
    if not weights:
        raise GenomeError(
            f"genome `{genome.name}` has an empty `weights` set",
            value.span or genome.span,
            "give at least one shared weight, e.g. `weights {-2, -1, -0.5, 0.5, 1, 2}`",
        )
    return weights


def _number(expr, genome: ir.WannGenome) -> float:
    if isinstance(expr, ir.Num):
        number = float(expr.value)
    elif isinstance(expr, ir.Neg):
        number = -_number(expr.operand, genome)
    else:
        raise GenomeError(
            f"genome `{genome.name}`: a shared weight must be a number literal",
            getattr(expr, "span", None) or genome.span,
            "write numbers such as `-0.5` or `2`",
        )
    if not math.isfinite(number):
        raise GenomeError(f"genome `{genome.name}`: shared weight {number} is not finite", expr.span or genome.span)
    return number


def validate_genome(genome: ir.WannGenome) -> list[GenomeError]:
    """Every structural problem of the genome, each with the span of its culprit."""
    errors: list[GenomeError] = []
    errors += _check_names(genome)
    errors += _check_activations(genome)
    edge_errors = _check_edges(genome)
    errors += edge_errors
    errors += _check_cycles(genome, sound_ends=not edge_errors)
    errors += _check_edge_weights(genome)
    try:
        shared_weights(genome)
    except GenomeError as error:
        errors.append(error)
    return errors


def require_valid(genome: ir.WannGenome) -> None:
    """Raise the genome's errors (one, or an ErrorGroup); return quietly if valid."""
    raise_all(validate_genome(genome))


def _check_names(genome: ir.WannGenome) -> list[GenomeError]:
    errors = []
    declared: list[tuple[str, object]] = [(name, genome.span) for name in genome.inputs]
    declared += [(n.name, n.span or genome.span) for n in genome.nodes]
    declared += [(o.name, o.span or genome.span) for o in genome.outputs]
    seen: set[str] = set()
    for name, span in declared:
        if not IDENTIFIER.match(name) or keyword.iskeyword(name):
            errors.append(GenomeError(
                f"`{name}` cannot name a genome node",
                span,
                "node names are identifiers ([A-Za-z_][A-Za-z0-9_]*) and not Python keywords",
            ))
        if name in seen:
            errors.append(GenomeError(
                f"`{name}` is declared twice in genome `{genome.name}`", span,
                "inputs, hidden nodes and outputs share one namespace; rename one of them",
            ))
        seen.add(name)
    if not genome.outputs:
        errors.append(GenomeError(f"genome `{genome.name}` has no outputs", genome.span,
                                  "declare them with `outputs y: tanh`"))
    return errors


def _check_activations(genome: ir.WannGenome) -> list[GenomeError]:
    errors = []
    for node in tuple(genome.nodes) + tuple(genome.outputs):
        if node.activation not in WANN_BY_NAME:
            suggestion = did_you_mean(node.activation, WANN_BY_NAME)
            known = ", ".join(WANN_BY_NAME)
            errors.append(GenomeError(
                f"unknown activation `{node.activation}` for node `{node.name}`",
                node.span or genome.span,
                suggestion or f"WANN activations are: {known}",
            ))
    return errors


def _check_edges(genome: ir.WannGenome) -> list[GenomeError]:
    errors = []
    inputs = set(genome.inputs)
    outputs = set(output_names(genome))
    known = inputs | outputs | set(hidden_names(genome))
    sources, targets = [e.src for e in genome.edges], [e.dst for e in genome.edges]
    if known.issuperset(sources) and known.issuperset(targets) and inputs.isdisjoint(targets) and \
            outputs.isdisjoint(sources) and len(set(zip(sources, targets))) == len(sources):
        return errors  # the common case, decided with set operations; the loop below names each culprit
    seen: set[tuple[str, str]] = set()
    for edge in genome.edges:
        span = edge.span or genome.span
        for end in (edge.src, edge.dst):
            if end not in known:
                errors.append(GenomeError(
                    f"edge {edge.src} -> {edge.dst}: `{end}` is not declared", span,
                    did_you_mean(end, known) or "declare it with `node NAME: ACTIVATION` or in `inputs`",
                ))
        if edge.dst in inputs:
            errors.append(GenomeError(
                f"edge {edge.src} -> {edge.dst} points into input `{edge.dst}`", span,
                "inputs are only edge sources",
            ))
        if edge.src in outputs:
            errors.append(GenomeError(
                f"edge {edge.src} -> {edge.dst} leaves output `{edge.src}`", span,
                "outputs may only be edge targets; route through a hidden node instead",
            ))
        if (edge.src, edge.dst) in seen:
            errors.append(GenomeError(
                f"edge {edge.src} -> {edge.dst} is declared twice", span, "remove the duplicate edge",
            ))
        seen.add((edge.src, edge.dst))
    return errors


def _check_edge_weights(genome: ir.WannGenome) -> list[GenomeError]:
    errors = []
    for edge in genome.edges:
        w = edge.weight
        if w is None:
            continue
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or abs(w) > MAX_EDGE_WEIGHT:
            errors.append(GenomeError(
                f"edge {edge.src} -> {edge.dst}: weight {w!r} is not a finite number within +-{MAX_EDGE_WEIGHT:g}",
                edge.span or genome.span,
                "write e.g. `w=0.3` or `w=-1.5`; leave `w=` out to use the shared weight",
                code="E193",
            ))
    return errors


def _check_cycles(genome: ir.WannGenome, sound_ends: bool = False) -> list[GenomeError]:
    """One error per strongly connected knot, over enabled *and* disabled edges.

    Disabled edges count because re-enabling one is a legal mutation; a genome
    must stay acyclic under it. With `sound_ends` (every edge between declared nodes, none
    into an input or out of an output) only hidden nodes can lie on a cycle, so the common
    case looks at the edges between hidden nodes alone.
    """
    edges = [(e.src, e.dst) for e in genome.edges]
    if sound_ends:
        hidden = hidden_names(genome)
        inner = set(hidden)
        if _topological_order(hidden, [(a, b) for a, b in edges if a in inner and b in inner]) is not None:
            return []
    elif _topological_order(_all_names(genome, edges), edges) is not None:
        return []  # the common case, decided without networkx
    import networkx as nx

    graph = to_networkx(genome, include_disabled=True)
    spans = {(e.src, e.dst): e.span for e in genome.edges}
    order = {}
    for e in genome.edges:  # report each knot from its first declared edge: stable messages and spans
        order.setdefault(e.src, len(order))
    errors = []
    components = sorted(nx.strongly_connected_components(graph), key=lambda c: min(order.get(n, 1 << 30) for n in c))
    for component in components:
        node = min(component, key=lambda n: order.get(n, 1 << 30))
        if len(component) == 1 and not graph.has_edge(node, node):
            continue
        cycle = [src for src, _ in nx.find_cycle(graph.subgraph(component), source=node)]
        first_edge = (cycle[0], cycle[1] if len(cycle) > 1 else cycle[0])
        errors.append(GenomeError(
            f"genome `{genome.name}` has a cycle: {' -> '.join(cycle + [cycle[0]])}",
            spans.get(first_edge) or genome.span,
            "WANN genomes are feed-forward (disabled edges count too); remove one edge of the cycle",
        ))
    return errors


__all__ = [
    "BIAS", "DEFAULT_WEIGHTS", "activation_of", "connection_count", "enabled_edges",
    "evaluation_order", "has_edge_weights", "hidden_names", "incoming", "incoming_weights", "observation_inputs",
    "output_names", "require_valid", "shared_weights", "to_networkx", "topological_levels", "validate_genome",
]
