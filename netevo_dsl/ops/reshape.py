"""Shape-only ops: flatten(start=1, end=-1), reshape(shape), transpose(dim0, dim1). No modules."""
from functools import reduce

from ..ir.dims import Dim
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, register, src


def _axis(i, n, what="axis"):
    i = int(i)
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise ShapeFailure(f"{what} {i} is out of range for rank {n}")
    return j


def _flatten_infer(shapes, p):
    (x,) = shapes
    a, b = _axis(p["start"], len(x), "start"), _axis(p["end"], len(x), "end")
    if a > b:
        raise ShapeFailure("flatten start comes after end")
    merged = reduce(lambda u, v: Dim.of(u) * v, x[a : b + 1], Dim.of(1))
    return (*x[:a], merged, *x[b + 1 :])


register(OpDef(
    name="flatten", params=(ParamDef("start", "int", 1), ParamDef("end", "int", -1)), infer=_flatten_infer,
    module=False,
    functional=lambda t, p: t[0].flatten(p["start"], p["end"]),
    emit_functional=lambda xs, p, s=src: f"{xs[0]}.flatten({s(p['start'])}, {s(p['end'])})",
    coupling="flatten",
    torch_import=(TorchImport(modules=("torch.nn.Flatten",), functions=("torch.flatten",), methods=("flatten",),
                              params=lambda c: {"start": c.module.start_dim, "end": c.module.end_dim} if c.module
                              else {"start": c.arg(1, "start_dim", 0), "end": c.arg(2, "end_dim", -1)}),),
    doc="Merge axes start..end into one."))


def _reshape_infer(shapes, p):
    (x,) = shapes
    target = list(p["shape"])
    for d in target:
        if Dim.of(d).is_concrete and Dim.of(d).value < -1:  # torch would only refuse it in forward
            raise ShapeFailure(f"reshape sizes are at least 0, or -1 for the one inferred, got {d}")
    total = reduce(lambda u, v: Dim.of(u) * v, x, Dim.of(1))
    free = [i for i, d in enumerate(target) if Dim.of(d) == -1 or not Dim.of(d).is_concrete]
    if len(free) > 1:
        raise ShapeFailure("reshape takes at most one -1 or symbolic size")
    known = reduce(lambda u, v: Dim.of(u) * v, [d for i, d in enumerate(target) if i not in free], Dim.of(1))
    if free:
        rest = total / known
        if rest.is_concrete and rest.value.denominator != 1:
            raise ShapeFailure(f"cannot reshape {len(x)}-D input of {total} elements into {target}")
        target[free[0]] = rest
    elif Dim.of(known) != total and Dim.of(known).is_concrete and total.is_concrete:
        raise ShapeFailure(f"cannot reshape {total} elements into {target} ({known} elements)")
    return tuple(Dim.of(d) for d in target)


def _runtime_sizes(target):
    """Symbolic dims (the batch, say) become -1: torch infers them from the tensor."""
    return [int(Dim.of(d)) if Dim.of(d).is_concrete else -1 for d in target]


def _tuple_src(sizes) -> str:
    sizes = [str(x) for x in sizes]
    return "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"


def _reshape_import(call):
    """The traced output shape, with the batch axis symbolic: `x.view(x.size(0), -1)` keeps any batch."""
    out, batch = call.out_shape, call.in_shapes[0][0]
    if not out or out[0] != batch:
        raise Unimportable(f"a reshape to {list(out)} does not keep the batch axis first")
    return {"shape": (Dim.sym("B"), *out[1:])}


register(OpDef(
    name="reshape", params=(ParamDef("shape", "ints"),), infer=_reshape_infer, module=False,
    # a tuple, not *sizes: reshape to [] (a 0-d tensor) is `reshape(())`, and `reshape()` is an error
    functional=lambda t, p: t[0].reshape(tuple(_runtime_sizes(p["shape"]))),
    emit_functional=lambda xs, p, s=src: f"{xs[0]}.reshape({_tuple_src(_runtime_sizes(p['shape']))})",
    coupling="reshape",
    torch_import=(TorchImport(functions=("torch.reshape", "torch.ops.aten.view.default",
                                         "torch.ops.aten.reshape.default", "torch.ops.aten._unsafe_view.default"),
                              methods=("view", "reshape"), params=_reshape_import),),
    doc="Reshape; one -1 is inferred. Symbolic dims may be named (e.g. [B, -1])."))


def _transpose_axes(n, p):
    order = list(range(n))
    a, b = _axis(p["dim0"], n), _axis(p["dim1"], n)
    order[a], order[b] = order[b], order[a]
    return order


def _transpose_infer(shapes, p):
    (x,) = shapes
    a, b = _axis(p["dim0"], len(x)), _axis(p["dim1"], len(x))
    out = list(x)
    out[a], out[b] = out[b], out[a]
    return tuple(out)


register(OpDef(
    name="transpose", params=(ParamDef("dim0", "int"), ParamDef("dim1", "int")), infer=_transpose_infer,
    module=False,
    functional=lambda t, p: t[0].transpose(p["dim0"], p["dim1"]),
    emit_functional=lambda xs, p, s=src: f"{xs[0]}.transpose({s(p['dim0'])}, {s(p['dim1'])})",
    coupling="reshape", channels=Channels(axis_map=_transpose_axes),
    torch_import=(TorchImport(functions=("torch.transpose", "torch.ops.aten.transpose.int"), methods=("transpose",),
                              params=lambda c: {"dim0": c.arg(1, "dim0", None), "dim1": c.arg(2, "dim1", None)}),
                  # torch.swapaxes / swapdims, and maxvit's SwapAxes layer (imported whole: no weights, no module)
                  TorchImport(functions=("torch.swapaxes", "torch.swapdims"), methods=("swapaxes", "swapdims"),
                              params=lambda c: {f"dim{i}": c.arg(i + 1, f"axis{i}" if f"axis{i}" in c.kwargs
                                                                 else f"dim{i}", None) for i in (0, 1)}),
                  TorchImport(modules=("torchvision.models.maxvit.SwapAxes",),
                              params=lambda c: {"dim0": int(c.module.a), "dim1": int(c.module.b)})),
    doc="Swap two axes."))
