"""Edit the spec where a graph node was written: find its IR call from `Node.origin`, change arguments.

`Node.origin` holds one location per enclosing block instance plus one for the
op's own call: (item name, statement index path, call ordinal), the ordinal
counting calls of the statement in the Elaborator's evaluation order, which
`_calls` mirrors. Nothing is mutated: every edit rebuilds the path from the
item down to the call with `attrs.evolve`.

Resizing a dependency group is not done here: `evolve.resize` plans it for the `width`
rule and the exact transforms alike, editing the spec through `mutations.analysis` traces.
"""
from __future__ import annotations

import attrs

from ..errors import TransformError
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


__all__ = ["get_call", "replace_call", "arg_expr", "set_arg", "replace_item"]
