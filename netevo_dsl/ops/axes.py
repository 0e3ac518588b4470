"""Axis ops without modules: permute(dims) (any order of the axes) and narrow(dim, start, length) (one slice).

`x.chunk(n, dim)[i]` and `x.split(size, dim)[i]` import as `narrow` (importer/multi_output.py), so a
channel shuffle (view, transpose, view) and shufflenet's chunk-and-cat need no op of their own.
"""
from ..ir.dims import Dim
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, ival, register


def _axes(dims, n):
    out = []
    for d in dims:
        d = ival(d)
        j = d + n if d < 0 else d
        if not 0 <= j < n:
            raise ShapeFailure(f"axis {d} is out of range for rank {n}")
        out.append(j)
    if sorted(out) != list(range(n)):
        raise ShapeFailure(f"permute dims {list(dims)} are not an order of the {n} axes",
                           f"name each axis 0..{n - 1} once")
    return out


def _permute_infer(shapes, p):
    (x,) = shapes
    return tuple(x[d] for d in _axes(p["dims"], len(x)))


def _permute_import(call):
    if call.module is not None:  # torchvision.ops.misc.Permute
        dims = call.module.dims
    else:
        dims = call.arg(1, "dims", None)
        if not isinstance(dims, (list, tuple)):  # x.permute(0, 2, 3, 1)
            dims = call.args[1:]
    dims = [int(d) for d in dims]
    if dims[0] % len(dims) != 0:
        raise Unimportable(f"dims {dims} move the batch axis; the importer keeps it first")
    return {"dims": tuple(dims)}


register(OpDef(
    name="permute", params=(ParamDef("dims", "ints"),), infer=_permute_infer, module=False,
    functional=lambda t, p: t[0].permute(*[int(d) for d in p["dims"]]),
    emit_functional=lambda xs, p: f"{xs[0]}.permute({', '.join(str(int(d)) for d in p['dims'])})",
    # the channel axis moves whole: output axis i is input axis dims[i]
    coupling="reshape", channels=Channels(axis_map=lambda n, p: [int(d) % n for d in p["dims"]]),
    torch_import=(TorchImport(modules=("torchvision.ops.misc.Permute",), functions=("torch.permute",),
                              methods=("permute",), params=_permute_import),),
    doc="Reorder the axes: output axis i is input axis dims[i] (`[0, 2, 3, 1]`: channels last)."))


def _narrow_infer(shapes, p):
    (x,) = shapes
    n = len(x)
    d = ival(p["dim"])
    axis = d + n if d < 0 else d
    if not 0 <= axis < n:
        raise ShapeFailure(f"dim {d} is out of range for rank {n}")
    start, length = ival(p["start"]), ival(p["length"])
    size = Dim.of(x[axis])
    if size.is_concrete and start + length > size.value:
        raise ShapeFailure(f"narrow start {start} + length {length} runs past size {size} of dim {d}",
                           "the slice must lie inside the axis")
    out = list(x)
    out[axis] = Dim.of(length)
    return tuple(out)


def _narrow_import(call):
    dim, start, length = call.arg(1, "dim", None), call.arg(2, "start", None), call.arg(3, "length", None)
    if dim % len(call.in_shapes[0]) == 0:
        raise Unimportable("a slice of the batch axis; the importer keeps the whole batch")
    return {"dim": int(dim), "start": int(start), "length": int(length)}


register(OpDef(
    name="narrow",
    params=(ParamDef("dim", "int"), ParamDef("start", "int", minimum=0), ParamDef("length", "int", minimum=0)),
    infer=_narrow_infer, module=False,
    functional=lambda t, p: t[0].narrow(int(p["dim"]), int(p["start"]), int(p["length"])),
    emit_functional=lambda xs, p: f"{xs[0]}.narrow({int(p['dim'])}, {int(p['start'])}, {int(p['length'])})",
    # a slice of the channels keeps some of them: the group cannot be resized through it (yet)
    coupling="none",
    torch_import=(TorchImport(functions=("torch.narrow",), methods=("narrow",), params=_narrow_import),),
    doc="The slice start..start+length of axis `dim` (`x.chunk(2, dim=1)[0]` imports as one)."))
