"""Structural mutations of networks: width, kernel, activation, insert/remove a layer, repeat, skip, heads.

All of them edit the spec where the value is written: an op's argument, a
block's call-site argument (blocks are templates; their bodies are left alone
unless the value is written there, in which case every instance changes and
the description says so), a `repeat` count. Widths go through the resize planner
(`evolve.resize`), the one the exact transforms use. Which layers an edit touches comes
from `NetworkAnalysis` traces; what must change together comes from channel
groups; what an op accepts comes from its own shape rule in the registry. No
layer type is named here; params are read by their registry names.
"""
from __future__ import annotations

import attrs

from ...ir import nodes as ir
from ...ir.dims import Dim
from ...ops.registry import ShapeFailure, get_op, op_names
from .analysis import Edits, infer_ok, node_matches
from .base import Context, operator, shuffled


def _int(value) -> int | None:
    if isinstance(value, Dim):
        return int(value) if value.is_int() else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _label(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _shared_note(analysis, node: str) -> str:
    others = len(analysis.sharing(node)) - 1
    return f" (and {others} more made by the same spec line)" if others else ""


def _apply(ctx: Context, edits: Edits):
    try:
        return edits.apply(ctx.spec)
    except LookupError:
        return None


# --- width -------------------------------------------------------------------------------------


def _width_groups(ctx: Context, groups) -> list:
    """The dependency groups the rule's targets produce (a producer cut by a concat produces several),
    or name (`d/0`, a part of a split, as `netevo check --groups` lists it)."""
    nodes = set(ctx.analysis.match(ctx.rule.targets, ctx.rule.option("op")))
    named = {g.name for g in groups if any(node_matches(g.name, t) for t in ctx.rule.targets)}
    out = [g for g in groups if g.name in nodes | named or nodes & set(g.producers)]
    if not out:
        ctx.refuse("matches no node" if not nodes else "matches no node that produces channels (" +
                   _label(sorted(nodes)) + ")")
    return out


@operator("network", "width")
def width(ctx: Context):
    """Resize a dependency group with the resize planner (`evolve.resize`), the one `widen` uses."""
    from ..resize import ResizeRefused, groups_of, plan_resize

    a = ctx.analysis
    groups = groups_of(a)
    refused: dict = {}  # (why, hint) -> sizes it was refused for
    for g in shuffled(ctx.rng, _width_groups(ctx, groups)):
        if g.fixed:
            ctx.refuse(f"`{g.name}` cannot change size: " + "; ".join(g.fixed[:2]))
            continue
        choices = ctx.rule.choices or (max(1, g.size // 2), g.size * 2)
        options = [c for c in choices if _int(c) and c >= 1 and c != g.size]
        if not options:
            ctx.refuse(f"every choice equals the current width of `{g.name}` ({g.size})")
            continue
        for n in shuffled(ctx.rng, options):
            key = ("width", g.name, n)
            if key not in a.memo:
                try:
                    plan = plan_resize(a, g, n, groups)
                except ResizeRefused as e:
                    a.memo[key] = (None, e.message, e.hint)
                else:
                    also = len(plan.sizes) - 1
                    text = f"width {_label(list(g.producers))}: {g.size} -> {n}" + (
                        f"; {also} coupled group(s) follow" if also else "")
                    a.memo[key] = (plan.spec, text, None)
            spec, text, hint = a.memo[key]
            if spec is None:
                refused.setdefault((text, hint), []).append(n)
                continue
            yield spec, text
    for (why, hint), sizes in refused.items():
        ctx.refuse(f"{why} (for {', '.join(str(n) for n in sorted(sizes))})", hint)


# --- kernel ------------------------------------------------------------------------------------


@operator("network", "kernel")
def kernel(ctx: Context):
    a = ctx.analysis
    nodes = [n for n in a.match(ctx.rule.targets, ctx.rule.option("op"))
             if "k" in get_op(a.nodes[n].op).param_names and _int(a.nodes[n].param_dict.get("k"))
             and _kernel_selected(ctx, n)]
    for name in shuffled(ctx.rng, nodes):
        p = a.nodes[name].param_dict
        k_old = _int(p["k"])
        tr_k = a.trace(name, "k")
        if tr_k is None:
            continue
        default = [k for k in (k_old - 2, k_old + 2) if k >= 1]
        for k_new in shuffled(ctx.rng, [c for c in (ctx.rule.choices or default) if _int(c) and c != k_old]):
            key = ("kernel", name, k_new)
            if key not in a.memo:
                a.memo[key] = _kernel_child(ctx, name, tr_k, k_old, k_new)
            if a.memo[key] is not None:
                yield a.memo[key]


def _kernel_selected(ctx: Context, name: str) -> bool:
    """`kernel("c*")` means the convolutions' kernels: a `k` without weights (a pool's window, which also
    sets its stride) changes only when the rule names that op (`op=avgpool2d`) or that node exactly."""
    if get_op(ctx.analysis.nodes[name].op).weight_bearing or ctx.rule.option("op"):
        return True
    return any(p == name for p in ctx.rule.targets or ())


def _kernel_child(ctx: Context, name: str, tr_k, k_old: int, k_new: int):
    a = ctx.analysis
    p = a.nodes[name].param_dict
    leaf = tr_k.leaf_value(k_new)
    if leaf is None:
        return None
    edits, note = Edits().set_slot(tr_k.leaf, leaf), ""
    new_params = {"k": k_new}
    pad = p.get("pad")
    dilation = _int(p.get("dilation", 1)) or 1
    if isinstance(pad, int) and not isinstance(pad, bool) and 2 * pad == dilation * (k_old - 1):
        # "same"-style padding keeps the spatial shape: it follows the kernel.
        if (dilation * (k_new - 1)) % 2:
            return None
        new_pad = dilation * (k_new - 1) // 2
        tr_p = a.trace(name, "pad")
        leaf_p = tr_p.leaf_value(new_pad, minimum=0) if tr_p else None
        if leaf_p is None:
            return None
        edits.set_slot(tr_p.leaf, leaf_p)
        new_params["pad"] = new_pad
        note = f", pad {pad} -> {new_pad}"
    if not infer_ok(a, name, new_params):
        return None
    spec = _apply(ctx, edits)
    return None if spec is None else (spec, f"kernel {name}{_shared_note(a, name)}: {k_old} -> {k_new}{note}")


# --- activation ------------------------------------------------------------------------------


def _activation_ops() -> list[str]:
    return [n for n in op_names() if get_op(n).activation and not get_op(n).params]


@operator("network", "activation")
def activation(ctx: Context):
    a = ctx.analysis
    nodes = [n for n in a.match(ctx.rule.targets, ctx.rule.option("op")) if get_op(a.nodes[n].op).activation
             and isinstance(a.provenance[n].op.call, ir.Call)]
    pool = [str(c) for c in (ctx.rule.choices or ("relu", "gelu", "tanh", "sigmoid", "silu"))]
    seen = set()
    for name in shuffled(ctx.rng, nodes):
        call = a.provenance[name].op.call
        if id(call) in seen:
            continue
        seen.add(id(call))
        current = a.nodes[name].op
        for new in shuffled(ctx.rng, [x for x in pool if x != current and x in _activation_ops()]):
            spec = _apply(ctx, Edits().add(call, lambda c, new=new: attrs.evolve(c, func=new)))
            if spec is not None:
                yield spec, f"activation {name}{_shared_note(a, name)}: {current} -> {new}"


# --- insert and remove a layer -------------------------------------------------------------------


def _fill_params(op, in_shape, size_expr_for, rng):
    """Arguments that make `op` shape-preserving on `in_shape`, or None.

    Required int params are found by probing the op's shape rule: the one that
    moves the op's neuron axis is its width and gets the channel size; any other
    is a kernel-like size (1 or 3, with "same"-style padding when the op pads).
    """
    required = [p for p in op.params if p.required]
    if any(p.type not in ("int", "size") for p in required):
        return None
    base = {p.name: p.default for p in op.params if not p.required}
    probe = {**base, **{p.name: 1 for p in required}}
    try:
        out = op.infer([in_shape], probe)
    except (ShapeFailure, ArithmeticError, TypeError, ValueError):
        return None
    width = None
    if op.neuron_axis is not None and required:
        axis = op.neuron_axis % len(out)
        for p in required:
            try:
                bumped = op.infer([in_shape], {**probe, p.name: 2})
            except (ShapeFailure, ArithmeticError, TypeError, ValueError):
                continue
            if Dim.of(bumped[axis]) == Dim.of(out[axis]) + 1:
                width = p.name
                break
    kwargs, values = [], dict(base)
    for p in required:
        if p.name == width:
            axis = op.neuron_axis % len(in_shape)
            expr = size_expr_for(axis)
            if expr is None:
                return None
            kwargs.append(ir.KwArg(p.name, expr))
            values[p.name] = in_shape[axis]
        else:
            k = rng.choice((1, 3))
            kwargs.append(ir.KwArg(p.name, ir.Num(k)))
            values[p.name] = k
            pad = op.param("pad")
            if pad is not None and k > 1 and pad.name not in [kw.name for kw in kwargs]:
                kwargs.append(ir.KwArg("pad", ir.Num((k - 1) // 2)))
                values["pad"] = (k - 1) // 2
    try:
        out = op.infer([in_shape], values)
    except (ShapeFailure, ArithmeticError, TypeError, ValueError):
        return None
    if len(out) != len(in_shape) or any(Dim.of(x) != Dim.of(y) for x, y in zip(out, in_shape)):
        return None
    return tuple(kwargs)


def _size_expr(a, node: str, axis: int):
    """An expression for the node's output size on `axis`, valid where the node's call is written."""
    prov = a.provenance[node]
    size = a.nodes[node].shape[axis]
    if not prov.blocks:
        return ir.Num(int(size)) if _int(size) else None
    for key, value in prov.blocks[-1].env.items():
        if not isinstance(value, (int, Dim)) or isinstance(value, bool):
            continue
        if all(Dim.of(a.provenance[n].blocks[-1].env.get(key, -1)) == Dim.of(a.nodes[n].shape[axis])
               for n in a.sharing(node) if isinstance(a.provenance[n].blocks[-1].env.get(key), (int, Dim))):
            return ir.Name(key)
    return None


def _channel_axes(a, ref: str) -> set[int]:
    """Axes of a value whose group has producers: the axes a width-bearing insert may act on."""
    g = a.groups
    return {i for i, gid in enumerate(g.axes.get(ref, ())) if g.find(gid) in g.producers}


@operator("network", "insert_layer")
def insert_layer(ctx: Context):
    a = ctx.analysis
    pool = [str(c) for c in (ctx.rule.choices or ("relu", "tanh", "gelu", "linear", "conv2d"))]
    nodes = [n for n in a.match(ctx.rule.targets, ctx.rule.option("op"))
             if not isinstance(a.nodes[n].shape[0], tuple) if a.nodes[n].shape]
    for name in shuffled(ctx.rng, nodes):
        shape = a.nodes[name].shape
        for new in shuffled(ctx.rng, pool):
            op = get_op(new)
            if op is None:
                continue
            if op.neuron_axis is not None and op.coupling == "produce" \
                    and op.neuron_axis % len(shape) not in _channel_axes(a, name):
                continue
            kwargs = _fill_params(op, shape, lambda axis: _size_expr(a, name, axis), ctx.rng)
            if kwargs is None:
                continue
            call = ir.Call(new, (), kwargs)
            value = a.provenance[name].op.value
            spec = _apply(ctx, Edits().add(value, lambda v, call=call: ir.Pipe(v, call)))
            if spec is not None:
                from ...ir.printer import expr

                yield spec, f"insert_layer {expr(call)} after {name}{_shared_note(a, name)}"


@operator("network", "remove_layer")
def remove_layer(ctx: Context):
    a = ctx.analysis
    for name in shuffled(ctx.rng, a.match(ctx.rule.targets, ctx.rule.option("op"))):
        node, prov = a.nodes[name], a.provenance[name]
        if not isinstance(prov.op.call, ir.Call) or len(node.inputs) != 1 or not node.shape \
                or isinstance(node.shape[0], tuple):
            continue
        in_shape = a.graph.shape_of(node.inputs[0])
        if len(in_shape) != len(node.shape) or any(Dim.of(x) != Dim.of(y) for x, y in zip(in_shape, node.shape)):
            continue
        value = prov.op.value
        if isinstance(value, ir.Call) and not value.args:
            continue
        unwrap = (lambda v: v.value) if isinstance(value, ir.Pipe) else (lambda v: v.args[0])
        spec = _apply(ctx, Edits().add(value, unwrap))
        if spec is not None:
            yield spec, f"remove_layer {name} ({node.op}){_shared_note(a, name)}"


# --- repeat ------------------------------------------------------------------------------------


def _bodies(spec: ir.Spec, item):
    """(label prefix, body): the network's body and the bodies of the spec's own blocks."""
    yield "", item.body
    for b in spec.items:
        if isinstance(b, ir.Block):
            yield f"{b.name}.", b.body


def _statements(body):
    for s in body:
        yield s
        if isinstance(s, ir.Repeat):
            yield from _statements(s.body)


def _count(spec, e):
    if isinstance(e, ir.Num) and isinstance(e.value, int):
        return e.value
    if isinstance(e, ir.Name):
        p = spec.find(e.id, (ir.Param,))
        if p is not None and isinstance(p.default, ir.Num):
            return p.default.value
    return None


@operator("network", "repeat_count")
def repeat(ctx: Context):
    reps = [s for _, body in _bodies(ctx.spec, ctx.item) for s in _statements(body) if isinstance(s, ir.Repeat)]
    reps = [r for r in reps if not ctx.rule.targets or any(
        node_matches(r.name, p) or node_matches(f"{r.name}.0", p) for p in ctx.rule.targets)]
    for rep in shuffled(ctx.rng, reps):
        n = _count(ctx.spec, rep.count)
        if n is None:
            continue
        choices = ctx.rule.choices or (n - 1, n + 1)
        for m in shuffled(ctx.rng, [c for c in choices if _int(c) is not None and c >= 1 and c != n]):
            spec = _apply(ctx, Edits().add(rep, lambda r, m=m: attrs.evolve(r, count=ir.Num(m))))
            if spec is not None:
                yield spec, f"repeat {rep.name}: {n} -> {m}"


# --- skip connections ----------------------------------------------------------------------------


def _source_name(e):
    """The tensor a chain starts from: `x` in `x |> f() |> g()` or `g(f(x))`."""
    while True:
        if isinstance(e, ir.Name):
            return e.id
        if isinstance(e, ir.Pipe):
            e = e.value
        elif isinstance(e, ir.Call) and e.args:
            e = e.args[0]
        else:
            return None


def _walk(e):
    yield e
    if isinstance(e, ir.Pipe):
        yield from _walk(e.value)
        yield from _walk(e.call)
    elif isinstance(e, ir.Call):
        for x in e.args:
            yield from _walk(x)
        for k in e.kwargs:
            yield from _walk(k.value)
    elif isinstance(e, ir.BinOp):
        yield from _walk(e.left)
        yield from _walk(e.right)


def _defined_order(body) -> dict[str, int]:
    order = {}
    for i, s in enumerate(_statements(body)):
        for t in getattr(s, "targets", ()):
            order.setdefault(t, i)
        if isinstance(s, ir.Input):
            order.setdefault(s.name, -1)
    return order


@operator("network", "skip")
def skip(ctx: Context):
    """Add `x + f(x)` around a statement's chain, or drop the identity operand of a `+`.

    Targets name statements: `h` for `h = ...` in the network, `block.h` (or `block.return`) in a block.
    """
    options = []
    for prefix, body in _bodies(ctx.spec, ctx.item):
        order = _defined_order(body)
        for s in _statements(body):
            value = getattr(s, "value", None)
            if not isinstance(s, (ir.Assign, ir.Return, ir.Output)) or value is None:
                continue
            if isinstance(s, ir.Assign) and len(s.targets) != 1:
                continue
            label = prefix + (s.targets[0] if isinstance(s, ir.Assign) else getattr(s, "name", "return"))
            src = _source_name(value)
            if src is not None and not isinstance(value, ir.Name) and not (
                    isinstance(value, ir.BinOp) and value.op == "+"):
                options.append((label, "add", value, src))
            for e in _walk(value):
                if isinstance(e, ir.BinOp) and e.op == "+" and (isinstance(e.left, ir.Name)
                                                               or isinstance(e.right, ir.Name)):
                    left, right = e.left, e.right
                    if isinstance(left, ir.Name) and isinstance(right, ir.Name):
                        drop_left = order.get(left.id, -1) <= order.get(right.id, -1)
                    else:
                        drop_left = isinstance(left, ir.Name)
                    options.append((label, "remove", e, left.id if drop_left else right.id))
    if ctx.rule.targets:
        options = [o for o in options if any(node_matches(o[0], p) for p in ctx.rule.targets)]
    from ...ir.printer import expr

    for label, kind, e, name in shuffled(ctx.rng, options):
        if kind == "add":
            edits = Edits().add(e, lambda v, name=name: ir.BinOp("+", ir.Name(name), v))
            text = f"skip {label}: add {name} + ({expr(e)})"
        else:
            keep_left = not (isinstance(e.left, ir.Name) and e.left.id == name)
            edits = Edits().add(e, lambda v, keep_left=keep_left: v.left if keep_left else v.right)
            text = f"skip {label}: remove `{name}` from {expr(e)}"
        spec = _apply(ctx, edits)
        if spec is not None:
            yield spec, text


# --- attention heads ------------------------------------------------------------------------


@operator("network", "heads")
def heads(ctx: Context):
    a = ctx.analysis
    nodes = [n for n in a.match(ctx.rule.targets, ctx.rule.option("op"))
             if "heads" in get_op(a.nodes[n].op).param_names and _int(a.nodes[n].param_dict.get("heads"))]
    every = [n for n in a.nodes if "heads" in get_op(a.nodes[n].op).param_names]
    for name in shuffled(ctx.rng, nodes):
        tr = a.trace(name, "heads")
        if tr is None:
            continue
        current = _int(a.nodes[name].param_dict["heads"])
        default = (max(1, current // 2), current * 2)
        sharing = [(n, a.trace(n, "heads")) for n in every]
        sharing = [(n, t) for n, t in sharing if t is not None and t.leaf.ident == tr.leaf.ident]
        for h in shuffled(ctx.rng, [c for c in (ctx.rule.choices or default) if _int(c) and c != current]):
            leaf = tr.leaf_value(h)
            if leaf is None:
                continue
            # Divisibility is the op's own shape rule: every layer the edit reaches must accept it.
            new_values = {n: t.value_at(leaf) for n, t in sharing}
            if any(v.denominator != 1 or not infer_ok(a, n, {"heads": int(v)}) for n, v in new_values.items()):
                continue
            spec = _apply(ctx, Edits().set_slot(tr.leaf, leaf))
            if spec is not None:
                names = [n for n, _ in sharing]
                yield spec, f"heads {_label(names)}: {current} -> {h}"


__all__ = ["width", "kernel", "activation", "insert_layer", "remove_layer", "repeat", "skip", "heads"]
