"""Reductions: mean(dims, keepdim=false), e.g. global average pooling written `x.mean([2, 3])`. No module."""
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, ival, register, src


def _axes(dims, n) -> list[int]:
    axes = []
    for d in dims:
        d = ival(d)
        a = d + n if d < 0 else d
        if not 0 <= a < n:
            raise ShapeFailure(f"dim {d} is out of range for rank {n}", f"dims are -{n}..{n - 1}")
        if a in axes:
            raise ShapeFailure(f"dim {d} is reduced twice", "name each axis once")
        axes.append(a)
    if not axes:
        raise ShapeFailure("mean needs at least one dim", "e.g. mean(x, dims=[2, 3])")
    return axes


def _infer(shapes, p):
    (x,) = shapes
    axes = _axes(p["dims"], len(x))
    if p["keepdim"]:
        return tuple(1 if i in axes else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in axes)


def _axis_map(n, p):
    """Output axis i is input axis map[i]; a reduced axis is no input axis (None), so channels reduced away
    leave no channel axis."""
    axes = _axes(p["dims"], n)
    if p["keepdim"]:
        return [None if i in axes else i for i in range(n)]
    return [i for i in range(n) if i not in axes]


def _import(call):
    dims = call.arg(1, "dim", None)
    if dims is None:
        raise Unimportable("a mean over every axis (a scalar); the op keeps the batch axis")
    if call.arg(3, "dtype", None) is not None:
        raise Unimportable("mean with a dtype")
    dims = [int(d) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    rank = len(call.in_shapes[0])
    if any(d % rank == 0 for d in dims):
        raise Unimportable("a mean over the batch axis")
    return {"dims": dims, "keepdim": bool(call.arg(2, "keepdim", False))}


def _src(xs, p, s=src):
    keep = ", keepdim=True" if p["keepdim"] else ""
    return f"{xs[0]}.mean({s(tuple(int(d) for d in p['dims']))}{keep})"


register(OpDef(
    name="mean", params=(ParamDef("dims", "ints"), ParamDef("keepdim", "bool", False)), infer=_infer, module=False,
    functional=lambda t, p: t[0].mean(tuple(int(d) for d in p["dims"]), keepdim=bool(p["keepdim"])),
    emit_functional=_src,
    coupling="reshape", channels=Channels(axis_map=_axis_map),
    torch_import=(TorchImport(functions=("torch.mean",), methods=("mean",), params=_import),),
    doc="Mean over the axes `dims`; `keepdim` keeps them as size 1."))
