"""What a network mutation needs to know: the elaborated graph, and where each node came from.

`NetworkAnalysis` elaborates a network once with a tracing elaborator that
records, for every graph node, its *provenance*: the spec `Call` (or tensor
`+`) that made it and the block instances it sits in. From that, `trace`
follows an integer parameter of a node back to the one place in the spec
where it can be changed (a literal, a call-site block argument, or a block
default, which becomes a call-site argument), as an affine map
``value = a * leaf + b``. Nodes that share a leaf (every instance of a block
body, every copy of a `repeat`) change together, which is exactly what editing
that spot does.

`rewrite` builds a new spec from an old one by transforming IR objects found by
identity; unchanged subtrees are shared, nothing is mutated.

Channel groups (sets of coupled channel axes) come from
`netevo_dsl.evolve.groups.dependency_groups` when that module is present and
from the small coupling walk in this file otherwise.
"""
from __future__ import annotations

import weakref
from fractions import Fraction
from typing import Callable

import attrs

from ...errors import NetevoError, flatten, raise_all
from ...ir import nodes as ir
from ...ir.dims import Dim
from ...ir.graph import Graph
from ...ops.registry import ShapeFailure, get_op
from ...passes.elaborate import Elaborator, GraphBuilder, check_identifier, elaborate
from ...passes.rule_targets import node_matches  # one matcher for `check` and the rules


# --- provenance ---------------------------------------------------------------------------


@attrs.define(eq=False)
class Frame:
    """One call being elaborated: `call` as written (a pipe's call without its piped value)."""

    call: object  # ir.Call, or ir.BinOp for a tensor `+` / `*`
    offset: int  # positional arguments a pipe puts in front (1 for `x |> f(...)`)
    value: object  # the expression whose value this call is: the Pipe, the Call or the BinOp
    block: ir.Block | None = None  # the block this call instantiates
    env: dict | None = None  # block frames: the bound block environment, once entered


@attrs.frozen(eq=False)
class Provenance:
    blocks: tuple  # enclosing block frames, outermost first
    op: Frame  # the frame of the node's own op call

    @property
    def container(self):
        return self.blocks[-1].block if self.blocks else None


class _TracingElaborator(Elaborator):
    def __init__(self, spec, overrides=None):
        self.stack: list[Frame] = []
        self.provenance: dict[str, Provenance] = {}
        super().__init__(spec, overrides)

    def eval(self, e, env, dims=False):
        if isinstance(e, ir.Pipe):
            c = e.call
            return self._call(ir.Call(c.func, (e.value,) + c.args, c.kwargs, span=c.span), env, Frame(c, 1, e))
        return super().eval(e, env, dims)

    def call(self, c, env):
        return self._call(c, env, Frame(c, 0, c))

    def _call(self, synthetic, env, frame):
        frame.block = self.blocks.get(frame.call.func)
        self.stack.append(frame)
        try:
            return super().call(synthetic, env)
        finally:
            self.stack.pop()

    def _tensor_binop(self, e, a, b):
        self.stack.append(Frame(e, 0, e))
        try:
            return super()._tensor_binop(e, a, b)
        finally:
            self.stack.pop()

    def bind_block(self, block, args, kwargs, span):
        env = super().bind_block(block, args, kwargs, span)
        self.stack[-1].env = env
        return env

    def apply_op(self, op, args, kwargs, span):
        result = super().apply_op(op, args, kwargs, span)
        node = self.sink.nodes[-1]
        blocks = tuple(f for f in self.stack if f.block is not None and f.env is not None)
        self.provenance[node.name] = Provenance(blocks, self.stack[-1])
        return result


def traced_elaborate(spec: ir.Spec, network: str, overrides=None) -> tuple[Graph, dict]:
    """`elaborate`, plus the provenance of every node."""
    net = spec.find(network, (ir.Network,))
    if net is None:
        return elaborate(spec, network, overrides), {}  # raises the usual error
    el = _TracingElaborator(spec, overrides)
    el.sink = GraphBuilder()
    try:
        check_identifier(net.name, net.span, "network name")
        el.run_body(net.body, {}, "")
    except NetevoError as e:
        el.errors.extend(flatten(e))
    raise_all(el.errors)
    b = el.sink
    return Graph(net.name, tuple(b.inputs), tuple(b.nodes), tuple(b.outputs), span=net.span), el.provenance


# --- slots: the places in the spec where a value is written -------------------------------


@attrs.frozen(eq=False)
class Slot:
    """An argument of a call in the spec: ("kw", name), ("pos", index) or ("add", name) when absent.

    ("item", (key, i)): element i of the list written at argument `key` (split sizes).
    """

    call: ir.Call
    key: tuple

    @property
    def ident(self) -> tuple:
        return (id(self.call), self.key)

    def expr(self):
        kind, which = self.key
        if kind == "kw":
            return self.call.kwarg(which)
        if kind == "pos":
            return self.call.args[which]
        if kind == "item":
            outer = Slot(self.call, which[0]).expr()
            return outer.items[which[1]] if isinstance(outer, ir.ListExpr) and which[1] < len(outer.items) else None
        return None


def param_slot(frame: Frame, name: str, n_tensors: int = 0) -> Slot | None:
    """Where the call of `frame` gives parameter `name` (of its op or block)."""
    call = frame.call
    if not isinstance(call, ir.Call):
        return None
    if call.kwarg(name) is not None:
        return Slot(call, ("kw", name))
    if frame.block is not None:
        names = [p.name for p in frame.block.params]
        index = names.index(name) if name in names else None
    else:
        op = get_op(call.func)
        index = n_tensors + op.param_names.index(name) if op and name in op.param_names else None
    if index is None:
        return None
    position = index - frame.offset
    if 0 <= position < len(call.args):
        return Slot(call, ("pos", position))
    return Slot(call, ("add", name))


@attrs.frozen(eq=False)
class Trace:
    """`value = a * leaf + b`, where `leaf` is the slot that an edit rewrites with a literal."""

    leaf: Slot
    a: Fraction
    b: Fraction
    depth: int  # how many block frames out the leaf lies (0: the op call's own scope)

    def leaf_value(self, value, minimum: int = 1) -> int | None:
        """The leaf value that makes the traced value `value`; None if it is not an integer >= minimum."""
        v = (Fraction(value) - self.b) / self.a
        return int(v) if v.denominator == 1 and v >= minimum else None

    def value_at(self, leaf_value) -> Fraction:
        return self.a * leaf_value + self.b


_AFFINE = {"+", "-", "*", "/"}


def _peel(e):
    """e = ca * inner + cb with constant operands peeled off; returns (inner, ca, cb)."""
    ca, cb = Fraction(1), Fraction(0)
    while isinstance(e, ir.BinOp) and e.op in _AFFINE:
        left, right = e.left, e.right
        if _is_int_num(right):
            k, inner = Fraction(right.value), left
            if e.op == "+":
                cb += ca * k
            elif e.op == "-":
                cb -= ca * k
            elif e.op == "*":
                ca *= k
            else:
                ca /= k
        elif _is_int_num(left) and e.op != "/":
            k, inner = Fraction(left.value), right
            if e.op == "+":
                cb += ca * k
            elif e.op == "*":
                ca *= k
            else:  # k - inner
                cb += ca * k
                ca = -ca
        else:
            break
        e = inner
    return e, ca, cb


def _is_int_num(e) -> bool:
    return isinstance(e, ir.Num) and isinstance(e.value, int) and not isinstance(e.value, bool)


# --- the analysis -------------------------------------------------------------------------


class NetworkAnalysis:
    """A network's graph, provenance, traces and channel groups; built once per parent spec."""

    def __init__(self, spec: ir.Spec, network: str, overrides=None):
        self.spec = spec
        self.network = network
        self.graph, self.provenance = traced_elaborate(spec, network, overrides)
        self.nodes = {n.name: n for n in self.graph.nodes}
        self.by_call: dict[int, list[str]] = {}  # id(op call) -> nodes it makes (every instance)
        for name, prov in self.provenance.items():
            self.by_call.setdefault(id(prov.op.call), []).append(name)
        self._traces: dict = {}
        self._groups = None
        self.memo: dict = {}  # operators remember candidates built from this parent: children repeat

    # -- targets --
    def match(self, patterns, op: str | None = None) -> list[str]:
        """Graph nodes matched by rule targets: exact names, module-path prefixes, or globs."""
        names = list(self.nodes)
        if not patterns:
            hits = names
        else:
            hits = [n for n in names if any(node_matches(n, p) for p in patterns)]
        return [n for n in hits if op is None or self.nodes[n].op == op]

    # -- traces --
    def trace(self, node: str, param: str, index: int | None = None) -> Trace | None:
        """Where `param` of `node` (element `index` of a list param) is written, as an affine map of it."""
        key = (node, param, index)
        if key not in self._traces:
            self._traces[key] = self._trace_param(node, param, index)
        return self._traces[key]

    def _trace_param(self, node: str, param: str, index: int | None = None) -> Trace | None:
        prov = self.provenance.get(node)
        if prov is None or not isinstance(prov.op.call, ir.Call):
            return None
        slot = param_slot(prov.op, param, len(self.nodes[node].inputs))
        if slot is None:
            return None
        if index is not None:
            written = slot.expr()
            if not isinstance(written, ir.ListExpr) or index >= len(written.items):
                return None
            slot = Slot(slot.call, ("item", (slot.key, index)))
        return _trace_slot(slot, prov.blocks, len(prov.blocks), Fraction(1), Fraction(0))

    def sharing(self, node: str) -> list[str]:
        """Every node made by the same spec call as `node` (all block instances and repeat copies)."""
        prov = self.provenance.get(node)
        return list(self.by_call.get(id(prov.op.call), [node])) if prov else [node]

    def in_shapes(self, node: str) -> list[tuple]:
        return [self.graph.shape_of(r) for r in self.nodes[node].inputs]

    # -- channel groups --
    @property
    def groups(self) -> "ChannelGroups":
        if self._groups is None:
            self._groups = ChannelGroups(self)
        return self._groups


def _trace_slot(slot: Slot, blocks: tuple, level: int, a: Fraction, b: Fraction) -> Trace:
    expr = slot.expr()
    if expr is None:
        return Trace(slot, a, b, len(blocks) - level)
    inner, ca, cb = _peel(expr)
    if isinstance(inner, ir.Name) and level > 0 and ca != 0:
        frame = blocks[level - 1]
        scalars = {p.name for p in frame.block.params if isinstance(p.type, ir.ScalarType)}
        if inner.id in scalars:
            caller = param_slot(frame, inner.id)
            if caller is not None:
                return _trace_slot(caller, blocks, level - 1, a * ca, a * cb + b)
    return Trace(slot, a, b, len(blocks) - level)


# --- channel groups -------------------------------------------------------------------------


class ChannelGroups:
    """Coupled channel axes of a graph: each group's producers, size and whether it may change.

    A group is frozen when changing it would change a network input or output, or
    when an op fixes its size (split sizes, reshape targets). Groups derived from
    others (flatten, concat) follow their sources; a frozen derived group freezes them.
    """

    def __init__(self, analysis: NetworkAnalysis):
        self.analysis = analysis
        graph = analysis.graph
        self._parent: dict[int, int] = {}
        self._count = 0
        self.axes: dict[str, tuple] = {}  # value ref -> group per axis
        self._producer_of: dict[str, int] = {}  # producer node -> its fresh group
        frozen: set[int] = set()
        derived: list[tuple[int, tuple]] = []
        for i in graph.inputs:
            self.axes[i.name] = tuple(self._fresh() for _ in i.shape)
            frozen.update(self.axes[i.name])
        for node in graph.nodes:
            self._visit(node, frozen, derived)
        for _, ref in graph.outputs:
            frozen.update(self.axes.get(ref, ()))
        self.frozen = {self.find(g) for g in frozen}
        changed = True
        while changed:  # a frozen derived group freezes what it is derived from
            changed = False
            for out, sources in derived:
                if self.find(out) in self.frozen:
                    for s in sources:
                        if self.find(s) not in self.frozen:
                            self.frozen.add(self.find(s))
                            changed = True
        self.producers: dict[int, list[str]] = {}
        for node, g in self._producer_of.items():
            self.producers.setdefault(self.find(g), []).append(node)
        external = _external_groups(analysis)
        if external is not None:
            self._merge_external(external)

    # union-find
    def _fresh(self) -> int:
        self._count += 1
        self._parent[self._count] = self._count
        return self._count

    def find(self, g: int) -> int:
        while self._parent[g] != g:
            self._parent[g] = self._parent[self._parent[g]]
            g = self._parent[g]
        return g

    def _union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[rb] = ra
        return ra

    def _visit(self, node, frozen, derived):
        op = get_op(node.op)
        ins = [self.axes.get(r, ()) for r in node.inputs]
        in_shapes = self.analysis.in_shapes(node.name)
        multi = op.n_outputs is not None
        out_shapes = node.shape if multi else (node.shape,)
        p = node.param_dict
        first, first_shape = (ins[0], in_shapes[0]) if ins else ((), ())

        def carry(shape, skip=()):
            """Axes of the first input where the size is unchanged; fresh groups elsewhere."""
            out = []
            for i, d in enumerate(shape):
                same = len(first) == len(shape) and i not in skip and Dim.of(first_shape[i]) == Dim.of(d)
                out.append(first[i] if same else self._fresh())
            return tuple(out)

        coupling = op.coupling
        if coupling == "produce" and op.neuron_axis is not None:
            shape = node.shape
            axis = op.neuron_axis % len(shape)
            axes = list(carry(shape, skip=(axis,)))
            self._producer_of[node.name] = axes[axis]
            result = [tuple(axes)]
        elif coupling in ("elementwise", "attention"):
            result = [carry(node.shape)]
        elif coupling == "tie":
            axes = list(first)
            for other in ins[1:]:
                for i, g in enumerate(other[: len(axes)]):
                    axes[i] = self._union(axes[i], g)
            result = [tuple(axes)]
        elif coupling == "concat":
            d = int(p.get("dim", 1)) % len(node.shape)
            axes = list(first)
            for i in range(len(axes)):
                if i != d:
                    for other in ins[1:]:
                        axes[i] = self._union(axes[i], other[i])
            axes[d] = self._fresh()
            derived.append((axes[d], tuple(o[d] for o in ins)))
            result = [tuple(axes)]
        elif coupling == "flatten":
            start, end = int(p.get("start", 1)), int(p.get("end", -1))
            a, b = start % len(first_shape), end % len(first_shape)
            merged = self._fresh()
            derived.append((merged, tuple(first[a: b + 1])))
            result = [tuple(first[:a]) + (merged,) + tuple(first[b + 1:])]
        else:  # split, reshape, none: sizes fixed by the op's params
            frozen.update(g for axes in ins for g in axes)
            result = [tuple(self._fresh() for _ in s) for s in out_shapes]
            frozen.update(g for axes in result for g in axes)
        if multi:
            for i, axes in enumerate(result):
                self.axes[f"{node.name}:{i}"] = axes
        else:
            self.axes[node.name] = result[0]

    def _merge_external(self, groups):
        """Producers that `dependency_groups` couples are coupled here too; its fixed groups are frozen."""
        for producers, fixed in groups:
            known = [n for n in producers if n in self._producer_of]
            for a, b in zip(known, known[1:]):
                ra, rb = self.find(self._producer_of[a]), self.find(self._producer_of[b])
                if ra != rb:
                    merged = self._union(ra, rb)
                    if ra in self.frozen or rb in self.frozen:
                        self.frozen.add(merged)
            if fixed and known:
                self.frozen.add(self.find(self._producer_of[known[0]]))
        self.producers = {}
        for node, g in self._producer_of.items():
            self.producers.setdefault(self.find(g), []).append(node)
        self.frozen = {self.find(g) for g in self.frozen}

    # queries
    def group_of(self, producer: str) -> int | None:
        g = self._producer_of.get(producer)
        return None if g is None else self.find(g)

    def size(self, group: int):
        node = self.analysis.nodes[self.producers[group][0]]
        op = get_op(node.op)
        return node.shape[op.neuron_axis % len(node.shape)]

    def members(self, group: int) -> list[tuple[str, int]]:
        """(node, input index) pairs that read the group on some axis."""
        out = []
        for node in self.analysis.graph.nodes:
            for i, ref in enumerate(node.inputs):
                if any(self.find(g) == group for g in self.axes.get(ref, ())):
                    out.append((node.name, i))
        return out


def _external_groups(analysis: NetworkAnalysis):
    """(producers, fixed) of every group from `evolve.groups.dependency_groups`, if that module exists."""
    try:
        from ..groups import dependency_groups  # written alongside; optional here
    except ImportError:
        return None
    try:
        groups = getattr(analysis, "_dependency_groups", None) or dependency_groups(analysis.graph)
    except NetevoError:
        return None
    analysis._dependency_groups = groups  # shared with the resize planner (`evolve.resize.groups_of`)
    return [(tuple(g.producers), bool(g.fixed)) for g in groups]


# --- probing the registry -------------------------------------------------------------------

_WIDTH_PARAM: dict[str, str | None] = {}


def width_param(analysis: NetworkAnalysis, node_name: str) -> str | None:
    """The int parameter that sets a producer's output width, found by probing its shape rule."""
    node = analysis.nodes[node_name]
    if node.op in _WIDTH_PARAM:
        return _WIDTH_PARAM[node.op]
    op = get_op(node.op)
    found = None
    if op.coupling == "produce" and op.neuron_axis is not None:
        params = node.param_dict
        in_shapes = analysis.in_shapes(node_name)
        axis = op.neuron_axis % len(node.shape)
        for pd in op.params:
            value = params.get(pd.name)
            if pd.type != "int" or not isinstance(value, int) or isinstance(value, bool):
                continue
            try:
                probed = op.infer(in_shapes, {**params, pd.name: value + 1})
            except (ShapeFailure, ArithmeticError, TypeError, ValueError):
                continue
            if len(probed) == len(node.shape) and Dim.of(probed[axis]) == Dim.of(node.shape[axis]) + 1:
                found = pd.name
                break
    _WIDTH_PARAM[node.op] = found
    return found


def infer_ok(analysis: NetworkAnalysis, node_name: str, params: dict | None = None, in_shapes=None) -> bool:
    """Does the node's own shape rule accept these params and input shapes?"""
    node = analysis.nodes[node_name]
    op = get_op(node.op)
    try:
        op.infer(in_shapes or analysis.in_shapes(node_name), {**node.param_dict, **(params or {})})
    except (ShapeFailure, ArithmeticError, TypeError, ValueError):
        return False
    return True


# --- rewriting the spec -----------------------------------------------------------------------


class Edits:
    """Transformations of IR objects, keyed by identity, applied bottom-up by `apply`."""

    def __init__(self):
        self._fns: dict[int, list[Callable]] = {}
        self._keep: list = []  # keep the keyed objects alive so their ids stay unique

    def add(self, obj, fn: Callable) -> "Edits":
        self._fns.setdefault(id(obj), []).append(fn)
        self._keep.append(obj)
        return self

    def set_slot(self, slot: Slot, value) -> "Edits":
        kind, which = slot.key
        expr = value if not isinstance(value, (int, float)) else ir.Num(value)
        if kind == "item":
            (outer_kind, outer), index = which

            def put(e):
                return attrs.evolve(e, items=e.items[:index] + (expr,) + e.items[index + 1:])

            if outer_kind == "kw":
                return self.add(slot.call, lambda c: attrs.evolve(c, kwargs=tuple(
                    attrs.evolve(k, value=put(k.value)) if k.name == outer else k for k in c.kwargs)))
            return self.add(slot.call, lambda c: attrs.evolve(c, args=tuple(
                put(a) if i == outer else a for i, a in enumerate(c.args))))
        if kind == "kw":
            return self.add(slot.call, lambda c: attrs.evolve(c, kwargs=tuple(
                attrs.evolve(k, value=expr) if k.name == which else k for k in c.kwargs)))
        if kind == "pos":
            return self.add(slot.call, lambda c: attrs.evolve(c, args=tuple(
                expr if i == which else a for i, a in enumerate(c.args))))
        return self.add(slot.call, lambda c: attrs.evolve(c, kwargs=tuple(c.kwargs) + (ir.KwArg(which, expr),))
                        if c.kwarg(which) is None else attrs.evolve(c, kwargs=tuple(
                            attrs.evolve(k, value=expr) if k.name == which else k for k in c.kwargs)))

    def __bool__(self):
        return bool(self._fns)

    def apply(self, spec: ir.Spec) -> ir.Spec:
        """A new spec with every edit made; raises LookupError if an edited object is not in its own items."""
        done: set[int] = set()
        keys = set(self._fns)
        items = tuple(_rewrite(item, self._fns, done) if keys & _ids_under(item) else item for item in spec.items)
        if done != set(self._fns):
            raise LookupError("an edit targets IR outside this spec's own items (an imported file?)")
        return attrs.evolve(spec, items=items)


_IDS: dict[int, tuple] = {}  # id(item) -> (weak reference, ids of every IR object under it)


def _ids_under(item) -> frozenset:
    """Ids of the IR objects inside a top-level item (remembered: parent and children share items)."""
    entry = _IDS.get(id(item))
    if entry is not None and entry[0]() is item:
        return entry[1]
    ids: set[int] = set()
    stack = [item]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            stack.extend(node)
        elif attrs.has(type(node)):
            ids.add(id(node))
            stack.extend(getattr(node, f.name) for f in attrs.fields(type(node)) if f.eq)
    key = id(item)
    _IDS[key] = (weakref.ref(item, lambda _, key=key: _IDS.pop(key, None)), frozenset(ids))
    return _IDS[key][1]


def _rewrite(node, fns, done):
    if isinstance(node, tuple):
        new = tuple(_rewrite(x, fns, done) for x in node)
        return node if all(a is b for a, b in zip(new, node)) else new
    if not attrs.has(type(node)) or isinstance(node, (ir.Num, ir.Str, ir.Bool, ir.Name)) and id(node) not in fns:
        return node
    result = node
    changes = {}
    for f in attrs.fields(type(node)):
        if not f.eq:
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple) or attrs.has(type(value)):
            new = _rewrite(value, fns, done)
            if new is not value:
                changes[f.name.lstrip("_")] = new
    if changes:
        result = attrs.evolve(node, **changes)
    for fn in fns.get(id(node), ()):
        result = fn(result)
        done.add(id(node))
    return result


__all__ = ["NetworkAnalysis", "ChannelGroups", "Edits", "Slot", "Trace", "node_matches", "width_param",
           "infer_ok", "traced_elaborate"]
