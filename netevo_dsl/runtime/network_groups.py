"""Groups of layered networks that run as one batched program in shared-weight mode.

Networks with one *skeleton* (the same nodes, ops, wiring and parameters, except the widths and
masks of weight-bearing layers) can share one program. In an exact group every member has the
same shapes. In a padded group widths differ: every tensor is laid out at the group's largest
sizes, and a `Layout` records where each member's units sit along the tensor's one padded axis.
Each weight-bearing layer embeds every member's mask at those positions, so padded units are
connected to nothing:

* a padded output unit has no incoming weight, and a layer's input is set to 0 at the padded
  positions before the product (`torch.where`, so that 0 x inf cannot turn into NaN): padded
  units add exactly 0 to every real unit, whatever values they carry;
* every other op must treat units independently: activations, dropout, batchnorm (networks are
  evaluated in eval mode, where it is a per-channel affine map), pooling over space, layernorm or
  softmax over an axis that is not padded, residual adds and products whose operands are padded
  alike, concat, flatten (its positions are mapped), transpose.

Everything else refuses padding (`PaddingRefused`): normalisation over the padded axis
(layernorm, groupnorm, softmax), grouped convolutions, reshape or split of a padded tensor, a
layer reading a tensor padded on another axis, and any op not listed here. A refused skeleton is
evaluated in exact groups instead (`network_groups`).
"""
from __future__ import annotations

import math
from collections import defaultdict

import attrs
import torch

from ..errors import UsageError
from ..ir.dims import Dim
from ..ir.graph import Graph
from ..ops.registry import ShapeFailure, get_op

WIDTH_MODES = ("auto", "group", "pad")


class PaddingRefused(Exception):
    """Padding these networks to one width would change what some of them compute."""


@attrs.frozen(eq=False)
class Layout:
    """Where each member's units of one tensor sit in the group's tensor."""

    shape: tuple  # the group's shape (Dims; axis 0 is the batch)
    axis: int | None = None  # the padded axis; None: every member has exactly `shape`
    index: tuple = ()  # per member, a LongTensor: the positions of its units along `axis`

    def size(self, member: int) -> int:
        """The member's own size along the padded axis."""
        return len(self.index[member])

    def same_as(self, other: "Layout") -> bool:
        return self.axis == other.axis and all(torch.equal(a, b) for a, b in zip(self.index, other.index))

    def valid(self) -> torch.Tensor:
        """[members, padded size] bool: True at the positions a member's units occupy."""
        out = torch.zeros(len(self.index), int(self.shape[self.axis]), dtype=torch.bool)
        for k, positions in enumerate(self.index):
            out[k, positions] = True
        return out

    def collapsed(self) -> "Layout":
        """The same layout with `axis=None` when no member is actually padded."""
        if self.axis is None:
            return self
        full = int(self.shape[self.axis])
        if all(len(i) == full and torch.equal(i, torch.arange(full)) for i in self.index):
            return Layout(self.shape)
        return self


@attrs.frozen(eq=False)
class GroupPlan:
    """Networks of one skeleton, with the layout of every tensor at the group's sizes."""

    members: tuple  # population indices
    graphs: tuple  # their elaborated graphs, in the same order
    layouts: dict  # value ref -> Layout
    padded: bool  # whether any tensor is padded
    cost: float  # FLOPs per sample and weight, summed over members, at the group's sizes (padding included)
    exact_cost: float  # the same at every member's own sizes
    peak: int  # elements alive at once per sample and weight, for one member at the group's sizes
    nodes: int  # ops per call
    refused: str | None = None  # why padding was refused, for exact groups split from a refused skeleton


def skeleton_key(graph: Graph) -> tuple:
    """Equal for networks that differ at most in the widths and masks of weight-bearing layers."""
    nodes = []
    for node in graph.nodes:
        op = get_op(node.op)
        ignored = {op.channels.width_param, "mask", "bias"} if op.weight_bearing else set()
        params = tuple((k, _hashable(v)) for k, v in node.params if k not in ignored)
        rank = tuple(len(s) for s in node.shape) if op.n_outputs else len(node.shape)
        nodes.append((node.name, node.op, node.inputs, params, rank))
    return tuple((i.name, i.shape) for i in graph.inputs), tuple(nodes), graph.outputs


def exact_key(graph: Graph) -> tuple:
    """Equal for networks that differ at most in masks: one exact group."""
    return skeleton_key(graph), tuple(_hashable(n.shape) for n in graph.nodes)


def network_groups(graphs: dict, widths: str = "auto", prefer_padding=None) -> list[GroupPlan]:
    """Plan the groups for `graphs` ({population index: Graph}).

    widths: "group" puts networks of different shapes in separate groups; "pad" pads every
    skeleton to one group unless padding is refused; "auto" pads where `prefer_padding(padded,
    exact_groups)` says so (the evaluator's benchmark-derived rule).
    """
    if widths not in WIDTH_MODES:
        raise UsageError(f"unknown widths mode `{widths}`", hint="use widths=\"auto\", \"group\" or \"pad\"")
    by_skeleton: dict[tuple, list[int]] = defaultdict(list)
    for index, graph in graphs.items():
        by_skeleton[skeleton_key(graph)].append(index)
    groups = []
    for members in by_skeleton.values():
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for index in members:
            by_shape[exact_key(graphs[index])].append(index)
        if widths == "group" or len(by_shape) == 1:
            groups += [plan_group(m, [graphs[i] for i in m]) for m in by_shape.values()]
            continue
        try:
            padded = plan_group(members, [graphs[i] for i in members])
        except PaddingRefused as refusal:
            groups += [attrs.evolve(plan_group(m, [graphs[i] for i in m]), refused=str(refusal))
                       for m in by_shape.values()]
            continue
        exact = [plan_group(m, [graphs[i] for i in m]) for m in by_shape.values()]
        groups += [padded] if widths == "pad" or prefer_padding(padded, exact) else exact
    return groups


def plan_group(members, graphs) -> GroupPlan:
    """Lay out networks of one skeleton at their largest sizes; raises PaddingRefused."""
    first = graphs[0]
    member_shapes = [_shapes(g) for g in graphs]
    layouts = {i.name: Layout(i.shape) for i in first.inputs}
    cost = exact = 0.0
    for position, node in enumerate(first.nodes):
        op = get_op(node.op)
        nodes = [g.nodes[position] for g in graphs]
        ins = [layouts[r] for r in node.inputs]
        params = group_params(op, nodes)
        try:
            shapes = op.infer([l.shape for l in ins], params)
        except ShapeFailure as failure:
            raise PaddingRefused(f"`{node.name}` does not accept the padded sizes: {failure.message}") from None
        shapes = list(shapes) if op.n_outputs else [shapes]
        outs = _rule(op)(op, node, ins, [tuple(Dim.of(d) for d in s) for s in shapes], nodes)
        for i, layout in enumerate(outs):
            ref = f"{node.name}:{i}" if op.n_outputs else node.name
            layouts[ref] = layout.collapsed()
            for k, found in enumerate(member_shapes):
                _check_member_shape(node, layouts[ref], k, found[ref])
        cost += len(graphs) * _node_cost(op, node, [l.shape for l in ins], [l.shape for l in outs])
        if op.weight_bearing and ins[0].axis is not None:  # the padded input is zeroed first
            cost += len(graphs) * _per_sample(ins[0].shape)
        exact += sum(_node_cost(op, n, [s[r] for r in n.inputs], _outputs_of(op, n, s))
                     for n, s in zip(nodes, member_shapes))
    padded = any(l.axis is not None for l in layouts.values())
    return GroupPlan(tuple(members), tuple(graphs), layouts, padded, cost, exact, _peak(first, layouts),
                     len(first.nodes))


def group_params(op, nodes) -> dict:
    """The first member's params; a weight-bearing layer's width is the group's largest, without mask."""
    params = nodes[0].param_dict
    if op.weight_bearing:
        width = op.channels.width_param
        params[width] = max(int(Dim.of(n.param_dict[width])) for n in nodes)
        params["mask"] = None
    return params


# --- layout rules, one per kind of op --------------------------------------------------


def _rule(op):
    if op.weight_bearing:
        return _produce
    if op.activation and op.activation != "softmax":
        return _unitwise
    return _RULES.get(op.name, _unknown)


def _produce(op, node, ins, shapes, nodes):
    """Linear and conv: each member's output units first, the rest padding; input read by position."""
    (x,), (out,) = ins, shapes
    axis = op.neuron_axis % len(out)
    if x.axis is not None and x.axis != axis:
        raise PaddingRefused(f"`{node.name}` reads a tensor padded along axis {x.axis}, not the axis it consumes")
    sizes = [int(Dim.of(n.shape[axis])) for n in nodes]
    if int(Dim.of(node.param_dict.get("groups", 1))) != 1 and (x.axis is not None or len(set(sizes)) > 1):
        raise PaddingRefused(f"`{node.name}` is a grouped convolution: padding would move its channel groups")
    return [Layout(out, axis, tuple(torch.arange(s) for s in sizes))]


def _unitwise(op, node, ins, shapes, nodes):
    """Each output element depends on the same element of the input only."""
    return [attrs.evolve(ins[0], shape=shapes[0])]


def _spatial(op, node, ins, shapes, nodes):
    """Pooling: mixes positions along the spatial axes (2 and after), never across channels."""
    if ins[0].axis not in (None, 1):
        raise PaddingRefused(f"`{node.name}` ({node.op}) pools over the padded axis")
    return _unitwise(op, node, ins, shapes, nodes)


def _softmax(op, node, ins, shapes, nodes):
    if ins[0].axis is not None and ins[0].axis == int(node.param_dict["dim"]) % len(shapes[0]):
        raise PaddingRefused(f"`{node.name}` takes a softmax over padded units")
    return _unitwise(op, node, ins, shapes, nodes)


def _layernorm(op, node, ins, shapes, nodes):
    if ins[0].axis is not None and ins[0].axis == len(shapes[0]) - 1:
        raise PaddingRefused(f"`{node.name}` normalises over padded units")
    return _unitwise(op, node, ins, shapes, nodes)


def _same_layouts(op, node, ins, shapes, nodes):
    """add, mul: elementwise across operands, so their units must sit at the same positions."""
    if not all(l.same_as(ins[0]) for l in ins[1:]):
        raise PaddingRefused(f"the operands of `{node.name}` ({node.op}) are padded differently")
    return _unitwise(op, node, ins, shapes, nodes)


def _concat(op, node, ins, shapes, nodes):
    dim = int(node.param_dict["dim"]) % len(shapes[0])
    if all(l.axis is None for l in ins):
        return [Layout(shapes[0])]
    if any(l.axis not in (None, dim) for l in ins):
        return _same_layouts(op, node, ins, shapes, nodes)
    offsets = [0]
    for l in ins:
        offsets.append(offsets[-1] + int(l.shape[dim]))
    index = tuple(torch.cat([offsets[j] + _positions(l, k, dim) for j, l in enumerate(ins)])
                  for k in range(len(nodes)))
    return [Layout(shapes[0], dim, index)]


def _split(op, node, ins, shapes, nodes):
    dim = int(node.param_dict["dim"]) % len(ins[0].shape)
    if ins[0].axis == dim:
        raise PaddingRefused(f"`{node.name}` splits the padded axis")
    return [attrs.evolve(ins[0], shape=s) for s in shapes]


def _flatten(op, node, ins, shapes, nodes):
    (x,), rank = ins, len(ins[0].shape)
    start, end = int(node.param_dict["start"]) % rank, int(node.param_dict["end"]) % rank
    if x.axis is None:
        return [Layout(shapes[0])]
    if x.axis < start:
        return [attrs.evolve(x, shape=shapes[0])]
    if x.axis > end:
        return [attrs.evolve(x, shape=shapes[0], axis=x.axis - (end - start))]
    index = []
    for k in range(len(nodes)):
        flat = torch.zeros(1, dtype=torch.long)  # row-major position in the group's merged axis
        for axis in range(start, end + 1):
            own = x.index[k] if axis == x.axis else torch.arange(int(x.shape[axis]))
            flat = (flat[:, None] * int(x.shape[axis]) + own[None, :]).flatten()
        index.append(flat)
    return [Layout(shapes[0], start, tuple(index))]


def _transpose(op, node, ins, shapes, nodes):
    (x,), rank = ins, len(ins[0].shape)
    a, b = int(node.param_dict["dim0"]) % rank, int(node.param_dict["dim1"]) % rank
    axis = {a: b, b: a}.get(x.axis, x.axis)
    return [attrs.evolve(x, shape=shapes[0], axis=axis)]


def _unpadded_only(op, node, ins, shapes, nodes):
    if any(l.axis is not None for l in ins):
        raise PaddingRefused(f"`{node.name}` ({node.op}) mixes padded units")
    return [Layout(s) for s in shapes]


_unknown = _unpadded_only  # an op without a rule here is never given a padded input

_RULES = {
    "dropout": _unitwise,
    "batchnorm": _unitwise,
    "batchnorm1d": _unitwise,
    "batchnorm2d": _unitwise,
    "maxpool1d": _spatial,
    "maxpool2d": _spatial,
    "avgpool1d": _spatial,
    "avgpool2d": _spatial,
    "adaptive_avgpool": _spatial,
    "softmax": _softmax,
    "layernorm": _layernorm,
    "groupnorm": _unpadded_only,
    "add": _same_layouts,
    "mul": _same_layouts,
    "concat": _concat,
    "split": _split,
    "flatten": _flatten,
    "transpose": _transpose,
    "reshape": _unpadded_only,
}


# --- helpers ---------------------------------------------------------------------------


def _positions(layout: Layout, member: int, axis: int) -> torch.Tensor:
    return layout.index[member] if layout.axis is not None else torch.arange(int(layout.shape[axis]))


def _check_member_shape(node, layout: Layout, member: int, shape) -> None:
    """The member's own shape must be the group's, except its own size along the padded axis."""
    expected = list(layout.shape)
    if layout.axis is not None:
        expected[layout.axis] = Dim.of(layout.size(member))
    if len(shape) != len(expected) or any(Dim.of(a) != Dim.of(b) for a, b in zip(shape, expected)):
        raise PaddingRefused(f"`{node.name}` has shapes that differ in more than one padded axis")


def _shapes(graph: Graph) -> dict:
    """Value ref -> shape for the graph's inputs and every node output."""
    out = {i.name: i.shape for i in graph.inputs}
    for node in graph.nodes:
        if get_op(node.op).n_outputs:
            out.update({f"{node.name}:{i}": s for i, s in enumerate(node.shape)})
        else:
            out[node.name] = node.shape
    return out


def _outputs_of(op, node, shapes: dict) -> list:
    return [shapes[f"{node.name}:{i}"] for i in range(len(node.shape))] if op.n_outputs else [shapes[node.name]]


def _per_sample(shape) -> int:
    return math.prod(int(Dim.of(d)) for d in shape[1:])


def _node_cost(op, node, in_shapes, out_shapes) -> float:
    """Multiply-adds of a weight-bearing layer at these shapes, else one operation per output element."""
    produced = sum(_per_sample(s) for s in out_shapes)
    if not op.weight_bearing:
        return float(produced)
    x = in_shapes[0]
    fan_in = int(Dim.of(x[op.neuron_axis % len(x)])) // int(Dim.of(node.param_dict.get("groups", 1)))
    k = node.param_dict.get("k", 1)  # one size for every spatial axis, or one per axis (`k=[1, 7]`)
    kernel = math.prod(int(Dim.of(v)) for v in (k if isinstance(k, tuple) else (k,) * (len(x) - 2)))
    return float(produced * fan_in * kernel)


def _peak(graph: Graph, layouts: dict) -> int:
    """Elements per sample and weight alive at once when values are freed after their last use."""
    last = last_uses(graph)
    live = {i.name: _per_sample(layouts[i.name].shape) for i in graph.inputs}
    peak = sum(live.values())
    for step, node in enumerate(graph.nodes):
        refs = [r for r in layouts if r == node.name or r.startswith(node.name + ":")]
        live[node.name] = sum(_per_sample(layouts[r].shape) for r in refs)
        peak = max(peak, sum(live.values()))
        for name in last[step]:
            live.pop(name, None)
    return peak


def last_uses(graph: Graph) -> list[list[str]]:
    """For each node, the values (base names) no later node or output reads."""
    final = {}
    for step, node in enumerate(graph.nodes):
        for ref in node.inputs:
            final[ref.partition(":")[0]] = step
    kept = {ref.partition(":")[0] for _, ref in graph.outputs}
    out = [[] for _ in graph.nodes]
    for name, step in final.items():
        if name not in kept:
            out[step].append(name)
    return out


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value
