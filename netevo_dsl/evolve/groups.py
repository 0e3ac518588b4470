"""Dependency groups: the channel axes of a graph that must keep one size and one channel order.

Computed from the elaborated `Graph` and the registry alone: each op's `coupling`,
`neuron_axis` and `channels` metadata (`ops.registry.Channels`). No layer type is
named here.

Model. Every value's channel axis is a *layout*: segments laid end to end, each
segment a run of units, each unit `factor` consecutive positions (a flattened
conv channel spans H*W features). `produce` ops make a fresh segment; `tie`
(residual +, *) aligns layouts position by position, splitting segments where
their boundaries differ (a split tensor added to another), then unites them;
`concat` lays layouts end to end, `split` cuts them, flatten and reshape move
the axis and scale the factor. A group is a class of united segments: all are
unit-aligned, so one permutation or resize of the group applies to every site.

A group is *fixed* when it touches something outside the network (an input, an
output) or an axis that cannot be tracked (a reshape that mixes channels with
another axis). Its size cannot change without changing the function when an op
mixes its channels (layernorm, groupnorm, softmax) or an internal space is tied
to it (attention).
"""
from __future__ import annotations

import attrs

from ..ir.dims import Dim
from ..ir.graph import Graph
from ..ops.registry import get_op

ROLES = ("produce", "consume", "follow", "value")


@attrs.frozen
class Site:
    """Where a group's units sit on one axis: of a node's output value, or of one of its state-dict tensors.

    Unit u covers positions `c * len / copies + offset + u * factor + r` (r < factor) for each copy c.
    """

    node: str  # a graph node, or a network input for value sites
    role: str  # produce | consume | follow | value
    tensor: str | None  # state-dict key suffix ("weight"); None: the value itself (`ref`)
    axis: int
    offset: int
    factor: int = 1
    copies: int = 1
    grouped: int = 1  # conv groups: the axis holds in/groups channels per output partition
    ref: str | None = None  # value sites: the value ref ("node" or "node:i")

    @property
    def key(self) -> str | None:
        return None if self.tensor is None else f"{self.node}.{self.tensor}"


@attrs.frozen
class Blocks:
    """The units form `count` equal blocks: movable ones (heads) permute as wholes, fixed ones stay put."""

    count: int
    movable: bool
    node: str
    what: str  # "heads", "groups", ...


@attrs.frozen
class SizeParam:
    """A spec param that follows group sizes: value = sum(size(group) * multiplier for group, multiplier in terms)."""

    node: str
    param: str
    index: int | None  # the element of a list param (split sizes)
    terms: tuple  # ((group name, multiplier), ...)

    def value(self, sizes: dict) -> int:
        return sum(sizes[g] * m for g, m in self.terms)


@attrs.frozen
class DependencyGroup:
    name: str
    size: int  # units; -1 when symbolic (then the group is fixed)
    sites: tuple  # tuple[Site]
    blocks: tuple = ()  # tuple[Blocks]
    size_params: tuple = ()  # tuple[SizeParam]
    fixed: tuple = ()  # why it cannot be transformed at all
    no_resize: tuple = ()  # why its size cannot change without changing the function

    def _nodes(self, *roles) -> tuple:
        seen = {}
        for s in self.sites:
            if s.role in roles:
                seen.setdefault(s.node, None)
        return tuple(seen)

    @property
    def producers(self) -> tuple:
        """Nodes whose output neurons these are (their width param sets the size)."""
        return self._nodes("produce")

    @property
    def consumers(self) -> tuple:
        """Nodes that read the group through weights (the input axis of the next linear or conv)."""
        return self._nodes("consume")

    @property
    def followers(self) -> tuple:
        """Nodes that pass the group through channel by channel (norms, activations, pools)."""
        inner = set(self.producers) | set(self.consumers)
        return tuple(n for n in self._nodes("follow") if n not in inner)

    @property
    def axes(self) -> tuple:
        """(value ref, axis, offset, factor) of every value whose channel axis holds the group."""
        return tuple((s.ref, s.axis, s.offset, s.factor) for s in self.sites if s.role == "value")

    @property
    def divisors(self) -> frozenset:
        return frozenset(b.count for b in self.blocks)

    @property
    def frozen(self) -> bool:
        return bool(self.fixed)

    def describe(self) -> str:
        def names(nodes, role):
            out = []
            for n in nodes:
                factors = {s.factor for s in self.sites if s.node == n and s.role == role and s.factor > 1}
                out.append(n + "".join(f" (x{f})" for f in sorted(factors)))
            return ", ".join(out)

        parts = [f"{self.name}: {self.size if self.size >= 0 else '?'} units"]
        if self.producers:
            parts.append("produced by " + names(self.producers, "produce"))
        if self.consumers:
            parts.append("read by " + names(self.consumers, "consume"))
        if self.followers:
            parts.append("through " + ", ".join(self.followers))
        for b in self.blocks:
            parts.append(f"{b.count} {'movable' if b.movable else 'fixed'} {b.what} ({b.node})")
        if self.divisors:
            parts.append("size divisible by " + ", ".join(str(d) for d in sorted(self.divisors)))
        if self.fixed:
            parts.append("fixed: " + reasons(self.fixed))
        elif self.no_resize:
            parts.append("permute only: " + reasons(self.no_resize))
        return " | ".join(parts)


def reasons(items, n: int = 2) -> str:
    """The first n reasons, and how many more."""
    items = list(items)
    return "; ".join(items[:n]) + (f"; and {len(items) - n} more" if len(items) > n else "")


# --- segments and classes ---------------------------------------------------------------------


class _Class:
    """Segments united by ties: equal sizes, unit-aligned."""

    def __init__(self, seg):
        self.segs = [seg]
        self.fixed: list[str] = []
        self.no_resize: list[str] = []
        self.blocks: list[Blocks] = []


class _Seg:
    __slots__ = ("id", "size", "name", "children", "klass")

    def __init__(self, ident, size, name):
        self.id, self.size, self.name, self.children = ident, size, name, None
        self.klass = _Class(self)


@attrs.frozen
class _Layout:
    axis: int
    pieces: tuple  # ((seg, factor), ...)

    @property
    def extent(self) -> int:
        return sum(s.size * f for s, f in self.pieces)


def _expand(layout: _Layout) -> list:
    """The layout's pieces with split segments replaced by their current leaves."""
    out = []

    def walk(seg, factor):
        if seg.children is None:
            out.append((seg, factor))
        else:
            for c in seg.children:
                walk(c, factor)

    for seg, factor in layout.pieces:
        walk(seg, factor)
    return out


def _int(d):
    d = Dim.of(d)
    return int(d) if d.is_int() else None


def _prod(dims):
    out = Dim.of(1)
    for d in dims:
        out = out * Dim.of(d)
    return out


class _Analysis:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.segs: list[_Seg] = []
        self.layouts: dict[str, _Layout | None] = {}
        self.untracked: dict[str, str] = {}  # ref without layout -> why (for messages)
        self.records: list = []  # (node, role, tensor, axis, layout, copies, grouped, ref)
        self.size_records: list = []  # (node, param, index, ((layout, multiplier), ...))
        self.shapes = {i.name: i.shape for i in graph.inputs}
        for i in graph.inputs:
            self.layouts[i.name] = None
            self.untracked[i.name] = f"network input `{i.name}`"
        for node in graph.nodes:
            self.visit(node)
        for name, ref in graph.outputs:
            if self.layouts.get(ref) is not None:
                self.fix(self.layouts[ref], f"network output `{name}`")

    # --- segments ---
    def new_seg(self, size, name, fixed: str | None = None) -> _Seg:
        size = _int(size)
        seg = _Seg(len(self.segs), size if size is not None else -1, name)
        self.segs.append(seg)
        if size is None:
            seg.klass.fixed.append(f"size of `{name}` is symbolic")
        if fixed:
            seg.klass.fixed.append(fixed)
        return seg

    def union(self, a: _Seg, b: _Seg):
        ka, kb = a.klass, b.klass
        if ka is kb:
            return
        if len(ka.segs) < len(kb.segs):
            ka, kb = kb, ka
        for s in kb.segs:
            s.klass = ka
        ka.segs += kb.segs
        ka.fixed += [r for r in kb.fixed if r not in ka.fixed]
        ka.no_resize += [r for r in kb.no_resize if r not in ka.no_resize]
        ka.blocks += kb.blocks

    def split_class(self, klass: _Class, at: int):
        """Cut every segment of the class at unit `at`; the halves form two new classes."""
        left = right = None
        for seg in list(klass.segs):
            a = _Seg(len(self.segs), at, seg.name + "/0")
            b = _Seg(len(self.segs) + 1, seg.size - at, seg.name + "/1")
            self.segs += [a, b]
            seg.children = (a, b)
            for half in (a, b):
                half.klass.fixed += klass.fixed
                half.klass.no_resize += klass.no_resize
            if left is None:
                left, right = a, b
            else:
                self.union(left, a)
                self.union(right, b)
        if klass.blocks:
            for half in (left, right):
                half.klass.fixed.append(f"{klass.blocks[0].what} of `{klass.blocks[0].node}` are cut by a split")

    def fix(self, layout: _Layout | None, why: str):
        if layout is None:
            return
        for seg, _ in _expand(layout):
            if why not in seg.klass.fixed:
                seg.klass.fixed.append(why)

    def mark(self, layout: _Layout, attr: str, value):
        for seg, _ in _expand(layout):
            lst = getattr(seg.klass, attr)
            if value not in lst:
                lst.append(value)

    # --- layouts ---
    def need(self, ref: str, axis: int, by: str) -> _Layout:
        """The layout of `ref` on `axis`; an untracked value gets a fixed segment of its own."""
        layout = self.layouts.get(ref)
        if layout is not None and layout.axis == axis:
            return layout
        shape = self.graph.shape_of(ref)
        if layout is not None:
            self.fix(layout, f"`{by}` reads axis {axis} of `{ref}`, whose channels run along axis {layout.axis}")
            why = f"`{by}` reads an axis of `{ref}` that holds no channels"
        else:
            why = self.untracked.get(ref, f"channels of `{ref}` are not tracked")
        seg = self.new_seg(shape[axis], ref if layout is None else f"{by}:in", fixed=why)
        new = _Layout(axis, ((seg, 1),))
        if layout is None:
            self.layouts[ref] = new
            self.record(ref.partition(":")[0], "value", None, axis, new, ref=ref)
        return new

    def tie(self, x: _Layout, y: _Layout, where: str):
        """Unite two layouts position by position, splitting segments where boundaries differ."""
        while True:
            px, py = _expand(x), _expand(y)
            if any(s.size < 0 for s, _ in px + py) or x.extent != y.extent:
                self.fix(x, f"`{where}` ties axes that cannot be aligned")
                self.fix(y, f"`{where}` ties axes that cannot be aligned")
                return
            cuts = self._first_mismatch(px, py) or self._first_mismatch(py, px)
            if cuts is None:
                break
            seg, factor, pos = cuts
            if pos % factor:
                self.fix(x, f"`{where}` ties a flattened axis off channel boundaries")
                self.fix(y, f"`{where}` ties a flattened axis off channel boundaries")
                return
            self.split_class(seg.klass, pos // factor)
        for (a, fa), (b, fb) in zip(px, py):
            if fa != fb:
                self.fix(x, f"`{where}` ties axes with different flatten factors")
                self.fix(y, f"`{where}` ties axes with different flatten factors")
                return
        for (a, _), (b, _) in zip(px, py):
            self.union(a, b)

    @staticmethod
    def _first_mismatch(px, py):
        """A boundary of px inside a piece of py: (that piece's segment, factor, position within it)."""
        bounds, pos = set(), 0
        for s, f in px:
            pos += s.size * f
            bounds.add(pos)
        pos = 0
        for s, f in py:
            for b in sorted(bounds):
                if pos < b < pos + s.size * f:
                    return s, f, b - pos
            pos += s.size * f
        return None

    def cut(self, layout: _Layout, sizes: list, where: str):
        """Split a layout into consecutive parts of the given extents (splitting segments as needed)."""
        bounds, pos = [], 0
        for n in sizes[:-1]:
            pos += n
            bounds.append(pos)
        while True:
            pieces, pos, cut = _expand(layout), 0, None
            for s, f in pieces:
                for b in bounds:
                    if pos < b < pos + s.size * f:
                        cut = (s, f, b - pos)
                pos += s.size * f
            if cut is None:
                break
            s, f, at = cut
            if at % f:
                self.fix(layout, f"`{where}` cuts a flattened axis off channel boundaries")
                return None
            self.split_class(s.klass, at // f)
        out, current, pos, i = [], [], 0, 0
        for s, f in _expand(layout):
            current.append((s, f))
            pos += s.size * f
            if i < len(bounds) and pos == bounds[i]:
                out.append(current)
                current, i = [], i + 1
        out.append(current)
        return out

    # --- records ---
    def record(self, node, role, tensor, axis, layout, copies=1, grouped=1, ref=None):
        if layout is not None:
            self.records.append((node, role, tensor, axis, layout, copies, grouped, ref))

    def set_value(self, ref: str, layout: _Layout | None, why: str | None = None):
        self.layouts[ref] = layout
        if layout is None and why:
            self.untracked[ref] = why
        self.record(ref.partition(":")[0], "value", None, layout.axis if layout else 0, layout, ref=ref)

    # --- ops ---
    def visit(self, node):
        op = get_op(node.op)
        ch = op.channels
        p = node.param_dict
        in_shapes = [self.graph.shape_of(r) for r in node.inputs]
        ins = [self.layouts.get(r) for r in node.inputs]
        coupling = op.coupling
        name = node.name
        rank_out = len(node.shape) if op.n_outputs is None else None
        if coupling == "produce":
            self.produce(node, op, p, in_shapes)
        elif coupling in ("elementwise", "attention"):
            x = ins[0] if ins else None
            axis = op.neuron_axis % len(in_shapes[0]) if op.neuron_axis is not None and in_shapes else None
            own = bool(ch.sites or ch.internal or ch.mixes_channels or ch.blocks_param)
            if x is None and own and axis is not None:
                x = self.need(node.inputs[0], axis, name)
            if x is not None and (axis is None or axis == x.axis):
                self.attach(node, op, p, in_shapes, x, x)
            self.set_value(name, x, self.untracked.get(node.inputs[0]) if node.inputs else None)
        elif coupling == "tie":
            known = [layout for layout in ins if layout is not None]
            if not known:
                self.set_value(name, None, self.untracked.get(node.inputs[0]))
                return
            first = known[0]
            layouts = [self.need(r, first.axis, name) for r in node.inputs]
            for other in layouts[1:]:
                self.tie(layouts[0], other, name)
            self.set_value(name, layouts[0])
        elif coupling == "concat":
            d = int(p["dim"]) % rank_out
            known = [layout for layout in ins if layout is not None]
            if not known:
                self.set_value(name, None, self.untracked.get(node.inputs[0]))
                return
            axis = d if any(k.axis == d for k in known) else known[0].axis
            layouts = [self.need(r, axis, name) for r in node.inputs]
            if axis == d:
                self.set_value(name, _Layout(d, tuple(pc for layout in layouts for pc in layout.pieces)))
            else:
                for other in layouts[1:]:
                    self.tie(layouts[0], other, name)
                self.set_value(name, layouts[0])
        elif coupling == "split":
            x = ins[0]
            n = op.n_outputs(p)
            rank = len(in_shapes[0])
            d = int(p["dim"]) % rank
            if x is None:
                for i in range(n):
                    self.set_value(f"{name}:{i}", None, self.untracked.get(node.inputs[0]))
                return
            if x.axis != d:
                for i in range(n):
                    self.set_value(f"{name}:{i}", x)
                return
            sizes = [_int(s) for s in p["sizes"]]
            parts = self.cut(x, sizes, name) if None not in sizes else None
            if parts is None:
                self.fix(x, f"`{name}` splits the channels at symbolic or off-channel sizes")
                for i in range(n):
                    self.set_value(f"{name}:{i}", None, f"`{name}` splits channels untracked")
                return
            for i, part in enumerate(parts):
                self.set_value(f"{name}:{i}", _Layout(d, tuple(part)))
                self.size_records.append((name, "sizes", i, ((_Layout(d, tuple(part)), 1),)))
        elif coupling in ("flatten", "reshape"):
            x = ins[0]
            if x is None:
                self.set_value(name, None, self.untracked.get(node.inputs[0]))
                return
            moved = self.move_axis(x, in_shapes[0], node.shape, p, ch)
            if moved is None:
                why = f"`{name}` ({node.op}) mixes the channel axis with another axis"
                self.fix(x, why)
                self.set_value(name, None, why)
            else:
                self.set_value(name, moved)
        else:  # none: the op uses its inputs in ways the registry does not describe
            for r, layout in zip(node.inputs, ins):
                self.fix(layout, f"`{name}` ({node.op}) declares no channel coupling")
            if op.n_outputs is None:
                self.set_value(name, None, f"output of `{name}` ({node.op})")
            else:
                for i in range(op.n_outputs(p)):
                    self.set_value(f"{name}:{i}", None, f"output of `{name}` ({node.op})")

    def produce(self, node, op, p, in_shapes):
        ch, name = op.channels, node.name
        out_axis = op.neuron_axis % len(node.shape)
        x = None
        if ch.consumes_input and in_shapes:
            x = self.need(node.inputs[0], op.neuron_axis % len(in_shapes[0]), name)
        parts = int(p.get(ch.partition_param, 1)) if ch.partition_param else 1
        c_in = x.extent if x is not None else None
        out_size = _int(node.shape[out_axis])
        if parts > 1 and x is not None and parts == c_in and out_size is not None and out_size % c_in == 0:
            # depthwise: output channel c * m + j is computed from input channel c alone
            m = out_size // c_in
            out = _Layout(out_axis, tuple((s, f * m) for s, f in x.pieces))
            for site in ch.sites:
                if site.space == "out":
                    self.record(name, "follow", site.tensor, site.axis, out, site.copies)
            self.size_records.append((name, ch.width_param, None, ((x, m),)))
            self.size_records.append((name, ch.partition_param, None, ((x, 1),)))
            self.set_value(name, out)
            return
        seg = self.new_seg(node.shape[out_axis], name)
        out = _Layout(out_axis, ((seg, 1),))
        spaces = {"in": x, "out": out}
        if parts > 1:
            for layout in (x, out):
                if layout is not None and len(_expand(layout)) == 1:
                    self.mark(layout, "blocks", Blocks(parts, False, name, "conv groups"))
                else:
                    self.fix(layout, f"conv groups of `{name}` span several groups")
        self.internal(node, op, p, in_shapes, spaces)
        for site in ch.sites:
            layout = spaces.get(site.space)
            self.record(name, site.role, site.tensor, site.axis, layout, site.copies, parts if site.grouped else 1)
        if ch.width_param:
            self.size_records.append((name, ch.width_param, None, ((out, 1),)))
        self.set_value(name, out)

    def attach(self, node, op, p, in_shapes, x, out):
        """An elementwise or attention op on layout x: its sites, internal spaces and constraints."""
        ch, name = op.channels, node.name
        spaces = {"in": x, "out": out}
        self.internal(node, op, p, in_shapes, spaces)
        for site in ch.sites:
            self.record(name, site.role, site.tensor, site.axis, spaces.get(site.space), site.copies)
        if not ch.sites:
            self.record(name, "follow", None, x.axis, x)
        if ch.mixes_channels:
            self.mark(x, "no_resize", f"`{name}` ({node.op}) mixes the channels")
        if ch.blocks_param:
            count = int(p[ch.blocks_param])
            if len(_expand(x)) == 1:
                self.mark(x, "blocks", Blocks(count, True, name, ch.blocks_param))
            else:
                self.fix(x, f"{ch.blocks_param} of `{name}` span several groups")

    def internal(self, node, op, p, in_shapes, spaces):
        for space in op.channels.internal:
            seg = self.new_seg(space.size(in_shapes, p), f"{node.name}:{space.name}")
            layout = _Layout(0, ((seg, 1),))
            spaces[space.name] = layout
            if space.blocks_param:
                seg.klass.blocks.append(Blocks(int(p[space.blocks_param]), True, node.name, space.blocks_param))
            if space.no_resize:
                seg.klass.no_resize.append(f"`{node.name}`: {space.no_resize}")
            if space.width_param:
                self.size_records.append((node.name, space.width_param, None, ((layout, 1),)))
            if (not space.width_param or p.get(space.width_param) is None) and spaces.get("in") is not None:
                # its size follows the input width, so resizing the input would resize it too
                self.mark(spaces["in"], "no_resize", f"`{node.name}` sizes its {space.name} from this width"
                          + (f" ({space.no_resize})" if space.no_resize else ""))

    def move_axis(self, x: _Layout, shape_in, shape_out, p, ch) -> _Layout | None:
        """Where the channel axis lands after a flatten, reshape or transpose (None: it is mixed)."""
        if ch.axis_map is not None:
            order = ch.axis_map(len(shape_in), p)
            return _Layout(order.index(x.axis), x.pieces) if x.axis in order else None  # reduced away (mean)
        a = x.axis
        before = _prod(shape_in[:a])
        for b in range(len(shape_out) + 1):
            if _prod(shape_out[:b]) != before or b == len(shape_out):
                continue
            for k in range(a + 1, len(shape_in) + 1):
                if Dim.of(shape_out[b]) == _prod(shape_in[a:k]):
                    factor = _int(_prod(shape_in[a + 1:k]))
                    if factor is None:
                        return None
                    return _Layout(b, tuple((s, f * factor) for s, f in x.pieces))
        return None

    # --- results ---
    def groups(self) -> list[DependencyGroup]:
        classes: dict[int, _Class] = {}
        for seg in self.segs:
            if seg.children is None:
                classes.setdefault(id(seg.klass), seg.klass)
        names = {id(k): min(k.segs, key=lambda s: s.id).name for k in classes.values()}
        sites: dict[int, list] = {k: [] for k in classes}
        for node, role, tensor, axis, layout, copies, grouped, ref in self.records:
            pos = 0
            for seg, factor in _expand(layout):
                sites[id(seg.klass)].append(Site(node, role, tensor, axis, pos, factor, copies, grouped, ref))
                pos += seg.size * factor
        size_params: dict[int, list] = {k: [] for k in classes}
        for node, param, index, parts in self.size_records:
            terms: dict[str, int] = {}
            for layout, mult in parts:
                for seg, factor in _expand(layout):
                    g = names[id(seg.klass)]
                    terms[g] = terms.get(g, 0) + mult * factor
            sp = SizeParam(node, param, index, tuple(terms.items()))
            for seg, _ in (pc for layout, _ in parts for pc in _expand(layout)):
                if sp not in size_params[id(seg.klass)]:
                    size_params[id(seg.klass)].append(sp)
        out = []
        for key, k in sorted(classes.items(), key=lambda kv: min(s.id for s in kv[1].segs)):
            size = k.segs[0].size if all(s.children is None for s in k.segs) else -1
            out.append(DependencyGroup(names[key], size, tuple(sites[key]), tuple(dict.fromkeys(k.blocks)),
                                       tuple(size_params[key]), tuple(k.fixed), tuple(k.no_resize)))
        return out


def dependency_groups(graph: Graph) -> list[DependencyGroup]:
    """Every dependency group of an elaborated graph, in order of first appearance."""
    return _Analysis(graph).groups()


def find_group(groups, key) -> DependencyGroup:
    """A group by itself, its name, or a node whose output neurons it holds (a producer or follower)."""
    from ..errors import TransformError

    from ..errors import did_you_mean

    if isinstance(key, DependencyGroup):
        return key
    for test in (lambda g: g.name == key, lambda g: key in g.producers,
                 lambda g: any(s.role == "value" and s.ref == key for s in g.sites)):
        for g in groups:
            if test(g):
                return g
    names = [g.name for g in groups]
    raise TransformError(f"no dependency group named `{key}` or produced by a node of that name", None,
                         did_you_mean(str(key), names) or "list them with `netevo check --groups`")


__all__ = ["DependencyGroup", "Site", "Blocks", "SizeParam", "dependency_groups", "find_group"]
