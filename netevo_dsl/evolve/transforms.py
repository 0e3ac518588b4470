"""Function-preserving transforms on (spec, weights): permute, widen, deepen, prune_units, merge_units.

Each takes a spec and a state dict of `compile_module(spec)` and returns a
`TransformResult`: the new spec (new IR; the old one is untouched), the new
state dict, and the unit maps that move optimizer state (`apply_to_optimizer`).
Outputs are unchanged in eval mode; permutations and widening also keep
BatchNorm's train-mode outputs (per-channel batch statistics permute or
replicate with their channels).

Transforms act on whole dependency groups (`evolve.groups`), so residual
streams, attention heads and norms change jointly; a group named by a node is
the group of that node's output channels.
"""
from __future__ import annotations

import attrs
import numpy as np

from ..errors import NetevoError, TransformError
from ..ir import nodes as ir
from ..ops.activations import NETWORK_BY_NAME
from ..ops.registry import get_op
from .groups import DependencyGroup, find_group, reasons
from .resize import ResizeRefused, analysis_of, groups_of, plan_resize
from .spec_edit import arg_expr, replace_call
from .surgery import TransformResult, UnitMap, apply_unit_maps


def _network(spec: ir.Spec, network: str | None) -> str:
    if network is not None:
        return network
    nets = spec.networks
    if len(nets) != 1:
        raise TransformError(f"the spec has {len(nets)} networks", None, "pass network=NAME")
    return nets[0].name


def _analyse(spec, network):
    network = _network(spec, network)
    analysis = analysis_of(spec, network)
    return network, analysis, groups_of(analysis)


def _resizable_hint(groups) -> str:
    ok = [g.name for g in groups if not g.fixed and not g.no_resize and not g.blocks]
    return ("groups that can change size: " + ", ".join(ok[:6]) + (", ..." if len(ok) > 6 else "")) if ok else \
        "no group of this network can change size without changing its function"


def _check_resizable(g: DependencyGroup, groups, verb: str):
    if g.fixed:
        raise TransformError(f"cannot {verb} `{g.name}`: {reasons(g.fixed)}", None, _resizable_hint(groups))
    if g.no_resize:
        hint = "layernorm and groupnorm normalise over all channels of the group: a new or removed unit changes " \
               "their mean and variance, so the function cannot be kept. " if any("norm" in r for r in g.no_resize) \
            else ""
        raise TransformError(f"cannot {verb} `{g.name}` without changing the function: {reasons(g.no_resize)}",
                             None, hint + _resizable_hint(groups))
    for b in g.blocks:
        raise TransformError(f"cannot {verb} `{g.name}`: its units form {b.count} {b.what} of `{b.node}`, "
                             "which must stay equal", None, _resizable_hint(groups))


def _check_shapes(result_spec, network, weights):
    """The new weights must fit the module compiled from the new spec (shapes only, on the meta device)."""
    from .. import compile_module

    expected = compile_module(result_spec, network, device="meta").state_dict()
    if set(expected) != set(weights):
        missing, extra = set(expected) - set(weights), set(weights) - set(expected)
        raise TransformError(f"internal: state-dict keys differ (missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]})")
    for k, t in expected.items():
        if tuple(t.shape) != tuple(weights[k].shape):
            raise TransformError(f"internal: `{k}` has shape {tuple(weights[k].shape)}, the new spec builds "
                                 f"{tuple(t.shape)}")


# --- permute ----------------------------------------------------------------------------------------


def permute(spec: ir.Spec, weights: dict, group, perm, network: str | None = None) -> TransformResult:
    """Reorder a group's units: new unit j is old unit perm[j]. The spec does not change.

    Blocks are respected: attention heads move as wholes (and may be reordered
    inside), conv-group partitions keep their channels.
    """
    network, analysis, groups = _analyse(spec, network)
    g = find_group(groups, group)
    if g.fixed:
        raise TransformError(f"cannot permute `{g.name}`: {reasons(g.fixed)}", None,
                             "inputs and outputs of the network keep their order")
    perm = [int(i) for i in perm]
    if sorted(perm) != list(range(g.size)):
        raise TransformError(f"`{g.name}` has {g.size} units; a permutation lists each of 0..{g.size - 1} once")
    for b in g.blocks:
        n = g.size // b.count
        for k in range(b.count):
            targets = {perm[k * n + i] // n for i in range(n)}
            if len(targets) != 1 or (not b.movable and targets != {k}):
                how = "move as whole blocks" if b.movable else "stay in their block"
                raise TransformError(f"the permutation breaks the {b.count} {b.what} of `{b.node}`", None,
                                     f"units of one of the {b.what} ({n} each) must {how}")
    maps = {g.name: UnitMap.permutation(perm)}
    return TransformResult(spec, apply_unit_maps(weights, groups, maps), maps, spec, network, tuple(groups))


# --- resizing: widen, prune, merge ------------------------------------------------------------------


def _resize(spec, weights, network, analysis, groups, g, new_size, make_map, verb):
    """Resize through the planner the `width` rule uses (`evolve.resize`), then move the weights."""
    try:
        plan = plan_resize(analysis, g, new_size, groups)
    except ResizeRefused as e:
        raise TransformError(f"cannot {verb} `{g.name}` to {new_size}: {e.message}", None, e.hint) from None
    maps = {g.name: make_map(g)}
    by_name = {h.name: h for h in groups}
    for name in list(plan.sizes)[1:] + list(plan.derived):
        _check_resizable(by_name[name], groups, f"{verb} `{g.name}`, which also resizes")
        maps[name] = maps[g.name]  # the planner resizes other groups only alike: copies of one spec place
    new_weights = apply_unit_maps(weights, groups, maps)
    _check_shapes(plan.spec, network, new_weights)
    return TransformResult(plan.spec, new_weights, maps, spec, network, tuple(groups), resized=dict(plan.sizes))


def widen(spec: ir.Spec, weights: dict, group, new_size: int, rng=None, network: str | None = None) -> TransformResult:
    """Net2WiderNet: grow a group to new_size by replicating random units and splitting their outgoing weights.

    The spec changes where the width is written, as the `width` mutation rule
    would change it (one planner, `evolve.resize`); groups that must grow with it
    (copies made by one block call or repeat, convs sized by the same block
    parameter) are widened alike and listed in `result.resized`. Refused before
    layernorm, groupnorm, softmax and attention, whose outputs a replicated unit
    would change.
    """
    network, analysis, groups = _analyse(spec, network)
    g = find_group(groups, group)
    _check_resizable(g, groups, "widen")
    if new_size <= g.size:
        raise TransformError(f"`{g.name}` has {g.size} units; widen to more", None, "prune_units removes units")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def make_map(h, size=None):
        size = new_size if size is None else size
        extra = rng.integers(0, h.size, size - h.size)
        return UnitMap.replicate(h.size, np.concatenate([np.arange(h.size), extra]))

    return _resize(spec, weights, network, analysis, groups, g, new_size, make_map, "widen")


def prune_units(spec: ir.Spec, weights: dict, group, indices, network: str | None = None) -> TransformResult:
    """Remove units with their rows, columns, biases, norm statistics and mask entries.

    Exact when the removed units are dead: their value is 0 wherever it is read, in every group of
    `result.resized` (groups resized alike lose the same units).
    """
    network, analysis, groups = _analyse(spec, network)
    g = find_group(groups, group)
    _check_resizable(g, groups, "prune")
    drop = sorted({int(i) for i in np.atleast_1d(indices)})
    if not drop or drop[0] < 0 or drop[-1] >= g.size or len(drop) >= g.size:
        raise TransformError(f"prune indices must be distinct units of `{g.name}` (0..{g.size - 1}), keeping one")
    keep = [i for i in range(g.size) if i not in set(drop)]
    return _resize(spec, weights, network, analysis, groups, g, len(keep),
                   lambda h, size=None: UnitMap.select(h.size, keep), "prune")


def merge_units(spec: ir.Spec, weights: dict, group, keep, drop, network: str | None = None) -> TransformResult:
    """Remove units `drop`, adding their outgoing weights to units `keep` (pairwise).

    Exact when each dropped unit equals its kept partner wherever it is read.
    """
    network, analysis, groups = _analyse(spec, network)
    g = find_group(groups, group)
    _check_resizable(g, groups, "merge")
    keep, drop = [int(i) for i in np.atleast_1d(keep)], [int(i) for i in np.atleast_1d(drop)]
    if len(keep) != len(drop) or len(set(drop)) != len(drop) or set(keep) & set(drop) or \
            not all(0 <= i < g.size for i in keep + drop):
        raise TransformError(f"merge takes equally many `keep` and distinct `drop` units of `{g.name}` "
                             f"(0..{g.size - 1}), none in both")
    kept = [i for i in range(g.size) if i not in set(drop)]
    position = {u: j for j, u in enumerate(kept)}
    unit_map = UnitMap(g.size, tuple(kept), None, tuple((position[k], d) for k, d in zip(keep, drop)))
    return _resize(spec, weights, network, analysis, groups, g, len(kept),
                   lambda h, size=None: unit_map, "merge")


# --- deepen -------------------------------------------------------------------------------------------


def deepen(spec: ir.Spec, weights: dict, after_node: str, network: str | None = None) -> TransformResult:
    """Net2DeeperNet: after an idempotent activation a = f(x), insert an identity layer and f again.

    f(I a) = f(f(x)) = f(x), so the function is kept. The layer is a linear map
    when the channels are the last axis and a 1x1 convolution when they are
    axis 1. Inside a block every instance gets the layer (blocks are templates).
    """
    from ..passes.elaborate import elaborate

    network, analysis, groups = _analyse(spec, network)
    graph = elaborate(spec, network)  # with `Node.origin` (the traced graph's copy has no item names)
    try:
        node = graph.node(after_node)
    except KeyError:
        from ..errors import did_you_mean

        raise TransformError(f"no node `{after_node}`", None,
                             did_you_mean(after_node, [n.name for n in graph.nodes])) from None
    op = get_op(node.op)
    act = NETWORK_BY_NAME.get(op.activation) if op.activation else None
    idempotent = sorted(a.name for a in NETWORK_BY_NAME.values() if a.idempotent)
    if act is None or not act.idempotent:
        what = f"a `{node.op}` activation, which is not idempotent" if op.activation else f"a `{node.op}`, not an activation"
        raise TransformError(f"cannot deepen after `{after_node}`: it is {what}", None,
                             "Net2Deeper inserts an identity layer and the activation again, which keeps the "
                             "function only when f(f(x)) = f(x): deepen after " + ", ".join(idempotent))
    axis = next((s.axis for g in groups for s in g.sites if s.role == "value" and s.ref == after_node), None)
    rank = len(node.shape)
    if axis == rank - 1:
        layer, extra = "linear", ()
    elif axis == 1 and rank in (3, 4):
        layer, extra = f"conv{rank - 2}d", (ir.KwArg("k", ir.Num(1)),)
    else:
        raise TransformError(f"cannot deepen after `{after_node}`: its channels are on axis {axis} of rank {rank}",
                             None, "deepen after activations whose channels are the last axis or axis 1")
    same_call = [n for n in graph.nodes if n.origin and n.origin[-1] == node.origin[-1]]
    widths = {int(n.shape[axis]) for n in same_call}
    candidates = [ir.Num(widths.pop())] if len(widths) == 1 else []
    for g in groups:  # inside a block: name the width as its producer in that block does
        if any(s.role == "value" and s.ref == after_node for s in g.sites):
            for p in g.producers:
                pn = graph.node(p)
                wp = get_op(pn.op).channels.width_param
                if wp and pn.origin[:-1] == node.origin[:-1] and pn.origin[-1][0] == node.origin[-1][0]:
                    e = arg_expr(spec, pn.origin[-1], wp)
                    if e is not None:
                        candidates.append(e)
    problems = []
    for width in candidates:
        try:
            new_spec = replace_call(spec, node.origin[-1], lambda e: ir.Pipe(
                ir.Pipe(e, ir.Call(layer, (), (ir.KwArg("out", width),) + extra)), ir.Call(node.op)))
            return _deepened(spec, new_spec, network, graph, groups, weights, same_call, axis)
        except NetevoError as e:
            problems.append(e.message)
    raise TransformError(f"cannot deepen after `{after_node}`: no width expression fits every copy of it", None,
                         "; ".join(problems) or "its copies have different widths")


def _deepened(spec, new_spec, network, graph, groups, weights, inserted_after, axis):
    import torch

    from .. import compile_module
    from ..passes.elaborate import elaborate

    new_graph = elaborate(new_spec, network)
    after = {n.name for n in inserted_after}
    new_nodes = list(new_graph.nodes)
    renames, fresh_nodes, i = {}, [], 0
    for n in graph.nodes:
        m = new_nodes[i]
        if m.op != n.op:
            raise TransformError(f"internal: node `{n.name}` does not line up after deepening")
        renames[n.name], i = m.name, i + 1
        if n.name in after:
            fresh_nodes += [new_nodes[i], new_nodes[i + 1]]
            i += 2
    reference = compile_module(new_spec, network, device="meta").state_dict()
    dtype = next((t.dtype for t in weights.values() if t.is_floating_point()), torch.float32)
    inverse = {}
    for old, new in renames.items():
        for key in weights:
            if key.startswith(old + "."):
                inverse[new + key[len(old):]] = key
    new_weights, fresh = {}, []
    for key, t in reference.items():
        if key in inverse:
            new_weights[key] = weights[inverse[key]]
        else:
            new_weights[key] = _identity_init(key, tuple(t.shape), t.dtype if not t.is_floating_point() else dtype)
            fresh.append(key)
    if set(inverse.values()) != set(weights):
        raise TransformError("internal: some old weights found no place after deepening")
    renames_keys = {k: v for k, v in inverse.items() if k != v}
    return TransformResult(new_spec, new_weights, {}, spec, network, tuple(groups), renames=renames_keys,
                           fresh=tuple(fresh))


def _identity_init(key, shape, dtype):
    import torch

    t = torch.zeros(shape, dtype=dtype)
    if key.endswith(".weight") and len(shape) >= 2:
        idx = torch.arange(min(shape[0], shape[1]))
        t[(idx, idx) + tuple(torch.zeros_like(idx) for _ in shape[2:])] = 1
    return t


__all__ = ["permute", "widen", "deepen", "prune_units", "merge_units", "TransformResult", "UnitMap"]
