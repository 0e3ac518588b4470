"""Ops joining or splitting tensors: add, mul (same shapes), concat(dim), split(sizes, dim). No modules."""
from ..ir.dims import Dim
from .registry import OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, register, src


def _tensors_only(call):
    if any(a is not None for a in call.args) or call.kwargs:
        raise Unimportable("an operand that is not a tensor of the network (a constant or a scalar)")
    if not all(call.batched):  # a parameter read in forward: `broadcast_add` / `broadcast_mul` (ops/parameter.py)
        raise Unimportable("an operand without the batch axis; equal shapes of the batch only")
    if any(tuple(s) != tuple(call.in_shapes[0]) for s in call.in_shapes):
        shapes = [list(s) for s in call.in_shapes]
        raise Unimportable(f"operands of shapes {shapes} broadcast; the op needs equal shapes")
    return {}


def _same_shape(shapes, p):
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != len(first) or any(Dim.of(a) != Dim.of(b) for a, b in zip(s, first)):
            raise ShapeFailure(f"operand {i} has shape {_fmt(s)} but operand 0 has shape {_fmt(first)}",
                               "both sides of + and * need the same shape", )
    return first


def _fmt(shape):
    return "[" + ", ".join(str(Dim.of(d)) for d in shape) + "]"


register(OpDef(name="add", params=(), infer=_same_shape, min_inputs=2, max_inputs=None, module=False,
               functional=lambda t, p: sum(t[1:], t[0]),
               emit_functional=lambda xs, p, s=src: " + ".join(xs),
               coupling="tie",
               torch_import=(TorchImport(functions=("_operator.add", "_operator.iadd", "torch.add",
                                                    "torch.ops.aten.add.Tensor"), methods=("add",),
                                         params=_tensors_only),),
               doc="Elementwise sum (the residual `+`): every operand shares one dependency group."))

register(OpDef(name="mul", params=(), infer=_same_shape, min_inputs=2, max_inputs=None, module=False,
               functional=lambda t, p: _prod(t),
               emit_functional=lambda xs, p, s=src: " * ".join(xs),
               coupling="tie",
               torch_import=(TorchImport(functions=("_operator.mul", "_operator.imul", "torch.mul"), methods=("mul",),
                                         params=_tensors_only),),
               doc="Elementwise product (`*` between tensors)."))


def _prod(ts):
    out = ts[0]
    for t in ts[1:]:
        out = out * t
    return out


def _axis(dim, n):
    d = int(dim)
    d = d + n if d < 0 else d
    if not 0 <= d < n:
        raise ShapeFailure(f"dim {dim} is out of range for rank {n}")
    return d


def _concat_infer(shapes, p):
    n = len(shapes[0])
    d = _axis(p["dim"], n)
    total = Dim.of(0)
    for i, s in enumerate(shapes):
        if len(s) != n or any(Dim.of(a) != Dim.of(b) for j, (a, b) in enumerate(zip(s, shapes[0])) if j != d):
            raise ShapeFailure(f"concat operand {i} has shape {_fmt(s)}, incompatible with {_fmt(shapes[0])} "
                               f"outside dim {p['dim']}")
        total = total + s[d]
    out = list(shapes[0])
    out[d] = total
    return tuple(out)


def _concat_import(call):
    if len(call.in_shapes) < 2:
        raise Unimportable("torch.cat of one tensor (an identity); concat joins two or more")
    return {"dim": call.arg(1, "dim", 0)}


register(OpDef(name="concat", params=(ParamDef("dim", "int", 1),), infer=_concat_infer, min_inputs=2,
               max_inputs=None, module=False,
               functional=lambda t, p: __import__("torch").cat(list(t), dim=p["dim"]),
               emit_functional=lambda xs, p, s=src: f"torch.cat([{', '.join(xs)}], dim={s(p['dim'])})",
               coupling="concat",
               torch_import=(TorchImport(functions=("torch.cat", "torch.concat"),
                                         params=_concat_import),),
               doc="Concatenate along `dim` (channels by default)."))


def _split_infer(shapes, p):
    (x,) = shapes
    d = _axis(p["dim"], len(x))
    sizes = [Dim.of(s) for s in p["sizes"]]
    for s in sizes:
        if s.is_concrete and s.value < 0:  # torch would only refuse it in forward
            raise ShapeFailure(f"split sizes are at least 0, got {s}")
    total = sum(sizes, Dim.of(0))
    if total != Dim.of(x[d]):
        raise ShapeFailure(f"split sizes add up to {total} but dim {p['dim']} has size {x[d]}",
                           "make the sizes sum to the axis size")
    outs = []
    for s in sizes:
        o = list(x)
        o[d] = s
        outs.append(tuple(o))
    return outs


register(OpDef(name="split", params=(ParamDef("sizes", "ints"), ParamDef("dim", "int", 1)), infer=_split_infer,
               module=False, n_outputs=lambda p: len(p["sizes"]),
               functional=lambda t, p: t[0].split([int(s) for s in p["sizes"]], dim=p["dim"]),
               emit_functional=lambda xs, p, s=src: f"{xs[0]}.split({s(list(p['sizes']))}, dim={s(p['dim'])})",
               coupling="split", doc="Split along `dim` into pieces of the given sizes: `a, b = split(x, sizes=[..])`."))
