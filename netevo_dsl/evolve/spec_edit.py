"""Edit the spec where a graph node was written: find its IR call from `Node.origin`, change arguments.

`Node.origin` holds one location per enclosing block instance plus one for the
op's own call: (item name, statement index path, call ordinal), the ordinal
counting calls of the statement in the Elaborator's evaluation order, which
`_calls` mirrors. Nothing is mutated: every edit rebuilds the path from the
item down to the call with `attrs.evolve`.

Resizing (`resize_spec`) changes the params that set group sizes where their
values come from:
- a call in the network body: the argument becomes a literal (a global `param`
  it referred to is left alone, so its other uses keep their value);
- a call in a block body whose argument is a block parameter: the argument at
  the instance's call site changes (recursively, out to the network);
- otherwise, or when that would resize other groups: the block gets a new int
  parameter defaulting to the old expression (other instances are unchanged)
  and the instance's call site passes the new value;
- as a last resort the literal is written into the block body (every instance
  changes; those groups are reported as resized too).
"""
from __future__ import annotations

import attrs

from ..errors import NetevoError, TransformError
from ..ir import nodes as ir
from ..ops.registry import get_op

# --- locating calls ----------------------------------------------------------------------


def _item(spec: ir.Spec, name: str):
    for kinds in ((ir.Network,), (ir.Block,)):
        item = spec.find(name, kinds)
        if item is not None:
            return item
    raise TransformError(f"the spec has no network or block `{name}` (origin of a graph node)")


def _statement(item, path):
    body = item.body
    for i in path[:-1]:
        body = body[i].body  # a repeat
    return body[path[-1]]


def _blocks(spec) -> set:
    return {b.name for b in spec.of_kind(ir.Block)}


def _rebuild(e, state: dict, fn, blocks: set):
    """Rebuild expression `e` with the call-like of ordinal state['target'] replaced by fn(it)."""
    if isinstance(e, ir.Pipe):
        mine = state["n"]
        state["n"] += 1
        value = _rebuild(e.value, state, fn, blocks)
        call = _rebuild_args(e.call, state, fn, blocks)
        new = e if value is e.value and call is e.call else attrs.evolve(e, value=value, call=call)
        return fn(new) if mine == state["target"] else new
    if isinstance(e, ir.Call):
        mine = state["n"]
        state["n"] += 1
        new = _rebuild_args(e, state, fn, blocks)
        return fn(new) if mine == state["target"] else new
    if isinstance(e, ir.BinOp):
        left, right = _rebuild(e.left, state, fn, blocks), _rebuild(e.right, state, fn, blocks)
        return e if left is e.left and right is e.right else attrs.evolve(e, left=left, right=right)
    if isinstance(e, ir.Neg):
        operand = _rebuild(e.operand, state, fn, blocks)
        return e if operand is e.operand else attrs.evolve(e, operand=operand)
    if isinstance(e, (ir.ListExpr, ir.SetExpr)):
        items = tuple(_rebuild(i, state, fn, blocks) for i in e.items)
        return e if all(a is b for a, b in zip(items, e.items)) else attrs.evolve(e, items=items)
    return e


def _rebuild_args(c: ir.Call, state, fn, blocks):
    """The arguments of a call, in the order the Elaborator evaluates them (mask kwargs of ops are not calls)."""
    args = tuple(_rebuild(a, state, fn, blocks) for a in c.args)
    kwargs = tuple(k if k.name == "mask" and c.func not in blocks else
                   _evolve_if(k, value=_rebuild(k.value, state, fn, blocks)) for k in c.kwargs)
    if all(a is b for a, b in zip(args, c.args)) and all(a is b for a, b in zip(kwargs, c.kwargs)):
        return c
    return attrs.evolve(c, args=args, kwargs=kwargs)


def _evolve_if(obj, **changes):
    return obj if all(getattr(obj, k) is v for k, v in changes.items()) else attrs.evolve(obj, **changes)


def get_call(spec: ir.Spec, loc: tuple):
    """The Call or Pipe written at a location of `Node.origin`."""
    found = []
    replace_call(spec, loc, lambda e: found.append(e) or e)
    return found[0]


def replace_call(spec: ir.Spec, loc: tuple, fn) -> ir.Spec:
    """A new spec with the call-like at `loc` replaced by fn(call-like)."""
    if loc is None:
        raise TransformError("this node was not written as a call (a tensor `+` or `*`)")
    item_name, path, ordinal = loc
    item = _item(spec, item_name)
    state = {"n": 0, "target": ordinal, "hit": False}

    def mark(e):
        state["hit"] = True
        return fn(e)

    def edit_body(body, path):
        i = path[0]
        s = body[i]
        if len(path) > 1:
            s = attrs.evolve(s, body=edit_body(s.body, path[1:]))
        else:
            s = attrs.evolve(s, value=_rebuild(s.value, state, mark, _blocks(spec)))
        return body[:i] + (s,) + body[i + 1:]

    new_item = attrs.evolve(item, body=edit_body(item.body, path))
    if not state["hit"]:
        raise TransformError(f"call {ordinal} of statement {path} in `{item_name}` not found (stale origin?)")
    return replace_item(spec, item, new_item)


def replace_item(spec: ir.Spec, old, new) -> ir.Spec:
    if any(i is old for i in spec.items):
        return attrs.evolve(spec, items=tuple(new if i is old else i for i in spec.items))
    return attrs.evolve(spec, imported=tuple(new if i is old else i for i in spec.imported))


# --- arguments -------------------------------------------------------------------------------


def _arg_position(spec, call: ir.Call, name: str) -> int | None:
    block = spec.find(call.func, (ir.Block,))
    if block is not None:
        names = [p.name for p in block.params]
        return names.index(name) if name in names else None
    op = get_op(call.func)
    if op is None or name not in op.param_names:
        return None
    return op.min_inputs + op.param_names.index(name)


def _full_args(e):
    return ((e.value,) + e.call.args, e.call) if isinstance(e, ir.Pipe) else (e.args, e)


def arg_expr(spec: ir.Spec, loc: tuple, name: str):
    """The expression given for parameter `name` at the call at `loc`, or None when it is left to its default."""
    e = get_call(spec, loc)
    args, call = _full_args(e)
    if call.kwarg(name) is not None:
        return call.kwarg(name)
    pos = _arg_position(spec, call, name)
    return args[pos] if pos is not None and pos < len(args) else None


def set_arg(spec: ir.Spec, loc: tuple, name: str, value, index: int | None = None) -> ir.Spec:
    """Set parameter `name` (element `index` of a list) of the call at `loc` to expression `value`."""

    def put(old):
        if index is None:
            return value
        if not isinstance(old, ir.ListExpr):
            raise TransformError(f"`{name}` is not written as a list here")
        return attrs.evolve(old, items=old.items[:index] + (value,) + old.items[index + 1:])

    def edit(e):
        args, call = _full_args(e)
        offset = 1 if isinstance(e, ir.Pipe) else 0
        if call.kwarg(name) is not None:
            call = attrs.evolve(call, kwargs=tuple(attrs.evolve(k, value=put(k.value)) if k.name == name else k
                                                   for k in call.kwargs))
        else:
            pos = _arg_position(spec, call, name)
            if pos is not None and pos < len(args):
                if pos < offset:
                    raise TransformError(f"`{name}` is the piped value")
                i = pos - offset
                call = attrs.evolve(call, args=call.args[:i] + (put(call.args[i]),) + call.args[i + 1:])
            else:
                if index is not None:
                    raise TransformError(f"`{name}` is not given as a list at this call")
                call = attrs.evolve(call, kwargs=call.kwargs + (ir.KwArg(name, value),))
        return attrs.evolve(e, call=call) if isinstance(e, ir.Pipe) else call

    return replace_call(spec, loc, edit)


# --- setting a node's param at its origin ------------------------------------------------------


def _names(e) -> set:
    if isinstance(e, ir.Name):
        return {e.id}
    out = set()
    if attrs.has(type(e)):
        for f in attrs.fields(type(e)):
            v = getattr(e, f.name)
            for x in (v if isinstance(v, tuple) else (v,)):
                if attrs.has(type(x)):
                    out |= _names(x)
    return out


def _count_name(e, name: str) -> int:
    if isinstance(e, ir.Name):
        return int(e.id == name)
    n = 0
    if attrs.has(type(e)):
        for f in attrs.fields(type(e)):
            v = getattr(e, f.name)
            for x in (v if isinstance(v, tuple) else (v,)):
                if attrs.has(type(x)):
                    n += _count_name(x, name)
    return n


def _fresh_param(block: ir.Block, hint: str) -> str:
    taken = {p.name for p in block.params} | _names(block) | _assigned(block.body)
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in hint)
    base = base if base[:1].isalpha() else "p_" + base
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def _assigned(body) -> set:
    out = set()
    for s in body:
        if isinstance(s, ir.Assign):
            out |= set(s.targets)
        elif isinstance(s, ir.Repeat):
            out |= {s.name} | _assigned(s.body)
    return out


def set_node_param(spec: ir.Spec, node, param: str, index: int | None, value: int, mode: str) -> ir.Spec:
    """Make `param` of graph node `node` equal `value` (see the module doc for `mode`: callsite, expose, inplace)."""
    return _set(spec, node, len(node.origin) - 1, param, index, value, mode)


def _set(spec, node, depth, param, index, value, mode):
    loc = node.origin[depth]
    current = arg_expr(spec, loc, param)
    if index is not None and current is not None:
        current = current.items[index] if isinstance(current, ir.ListExpr) else None
    if depth == 0 or mode == "inplace":
        return set_arg(spec, loc, param, ir.Num(value), index)
    block = _item(spec, node.block_path[depth - 1][1])
    scalars = {p.name for p in block.params if isinstance(p.type, ir.ScalarType)}
    if isinstance(current, ir.Name) and current.id in scalars and (
            mode == "callsite" or _count_name(block, current.id) == 1):
        return _set(spec, node, depth - 1, current.id, None, value, mode)
    # expose: a new int parameter of the block, defaulting to what the body says now
    if current is None:
        call = _full_args(get_call(spec, loc))[1]
        op = get_op(call.func)
        default = op.param(param).default if op is not None and op.param(param) is not None else None
        if not isinstance(default, int) or isinstance(default, bool):
            raise TransformError(f"`{param}` of `{node.name}` takes its default inside block `{block.name}`, "
                                 "which no expression can name", None,
                                 f"write {param}=... explicitly in block `{block.name}`")
        default = ir.Num(default)
    else:
        globals_ = {p.name for p in spec.of_kind(ir.Param)}
        if not _names(current) <= scalars | globals_:
            raise TransformError(f"`{param}` of `{node.name}` in block `{block.name}` depends on more than the "
                                 "block's scalar parameters", None, "set it from a block parameter")
        default = current
    instance = node.block_path[depth - 1][0]
    own = node.name[len(instance) + 1:] if node.name.startswith(instance + ".") else node.name
    new = _fresh_param(block, f"{own}_{param}" if index is None else f"{own}_{param}_{index}")
    spec = replace_item(spec, block, attrs.evolve(block, params=block.params + (
        ir.BlockParam(new, ir.ScalarType("int"), default),)))
    spec = set_arg(spec, loc, param, ir.Name(new), index)
    return _set(spec, node, depth - 1, new, None, value, "callsite")


# --- resizing groups ------------------------------------------------------------------------------


def resize_spec(spec: ir.Spec, network: str, graph, groups, new_sizes: dict):
    """Change the spec so the named groups get the new sizes; returns (spec, graph, groups, co_resized).

    co_resized maps other groups whose size had to change too (copies made by one spec
    call: block instances sharing a call site, `repeat` copies) to (old, new).
    """
    from ..passes.elaborate import elaborate
    from .groups import dependency_groups

    old = {g.name: g.size for g in groups}
    want = {**old, **new_sizes}
    by_name = {g.name: g for g in groups}
    params = {(sp.node, sp.param, sp.index): sp for n in new_sizes for sp in by_name[n].size_params}
    if not params:
        raise TransformError(f"no spec parameter sets the size of `{', '.join(new_sizes)}`")
    problems = []
    for mode in ("callsite", "expose", "inplace"):
        try:
            s = spec
            for sp in params.values():
                s = set_node_param(s, graph.node(sp.node), sp.param, sp.index, sp.value(want), mode)
            g2 = elaborate(s, network)
            groups2 = dependency_groups(g2)
        except NetevoError as e:
            problems.append(e.message)
            continue
        got = {g.name: g.size for g in groups2}
        if set(got) != set(old) or any(got[n] != want[n] for n in new_sizes):
            problems.append("the edited spec gives other groups")
            continue
        s, g2, groups2 = _pin(s, network, g2, groups2, want, new_sizes)
        got = {g.name: g.size for g in groups2}
        return s, g2, groups2, {n: (old[n], got[n]) for n in got if got[n] != want[n]}
    raise TransformError(f"cannot resize {', '.join(new_sizes)} in the spec: {'; '.join(dict.fromkeys(problems))}")


def _pin(spec, network, graph, groups, want, targets):
    """Keep groups that changed size by accident at their old size, by exposing block parameters."""
    from ..passes.elaborate import elaborate
    from .groups import dependency_groups

    for _ in range(8):
        wrong = [g for g in groups if g.size != want[g.name]]
        if not wrong:
            break
        progressed = False
        for g in wrong:
            try:
                s = spec
                for sp in g.size_params:
                    s = set_node_param(s, graph.node(sp.node), sp.param, sp.index, sp.value(want), "expose")
                g2 = elaborate(s, network)
                groups2 = dependency_groups(g2)
            except NetevoError:
                continue
            got = {h.name: h.size for h in groups2}
            if set(got) != set(want) or any(got[n] != want[n] for n in targets) or got[g.name] != want[g.name]:
                continue
            spec, graph, groups, progressed = s, g2, groups2, True
            break
        if not progressed:
            break
    return spec, graph, groups


__all__ = ["get_call", "replace_call", "arg_expr", "set_arg", "set_node_param", "resize_spec", "replace_item"]
