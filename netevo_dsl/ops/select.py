"""select(dim, index): one position of an axis, the axis removed (`x[:, 0]`, vit's class token). No module."""
from ..ir.dims import Dim
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, ival, register


def _axis(dim, n):
    d = ival(dim)
    axis = d + n if d < 0 else d
    if not 0 <= axis < n:
        raise ShapeFailure(f"dim {d} is out of range for rank {n}")
    return axis


def _infer(shapes, p):
    (x,) = shapes
    if not x:
        raise ShapeFailure("select takes a tensor with axes, got a scalar")
    axis = _axis(p["dim"], len(x))
    index, size = ival(p["index"]), Dim.of(x[axis])
    if size.is_concrete and not -size.value <= index < size.value:
        raise ShapeFailure(f"index {index} is out of range for size {size} of dim {p['dim']}",
                           f"an index from {-size.value} to {size.value - 1}")
    return tuple(d for i, d in enumerate(x) if i != axis)


def _import(call):
    """`x[:, 0]` (operator.getitem: full slices, then one integer), `x.select(1, 0)`, `torch.select(x, 1, 0)`."""
    n = len(call.in_shapes[0])
    if call.module is None and call.kwargs == {} and len(call.args) == 2 and not isinstance(call.args[1], int) \
            and call.args[1] is not None:
        key = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
        full = slice(None, None, None)
        if not key or not isinstance(key[-1], int) or isinstance(key[-1], bool) or any(k != full for k in key[:-1]):
            raise Unimportable(f"the index {_show(key)}; only `x[:, ..., :, i]` (full slices, then one integer) "
                               "imports, as `select`")
        dim, index = len(key) - 1, key[-1]
    elif len(call.args) == 2 and isinstance(call.args[1], int):  # x[0]: the batch axis
        dim, index = 0, call.args[1]
    else:
        dim, index = call.arg(1, "dim", None), call.arg(2, "index", None)
    if not isinstance(dim, int) or not isinstance(index, int):
        raise Unimportable("the axis and index must be constants")
    if dim % n == 0:
        raise Unimportable("a position of the batch axis; the importer keeps the whole batch")
    return {"dim": dim, "index": index}


def _show(key) -> str:
    def one(k):
        if isinstance(k, slice):
            return ":".join("" if v is None else str(v) for v in (k.start, k.stop)) + (
                f":{k.step}" if k.step is not None else "")
        return "..." if k is Ellipsis else str(k)
    return "[" + ", ".join(one(k) for k in key) + "]"


register(OpDef(
    name="select", params=(ParamDef("dim", "int"), ParamDef("index", "int")), infer=_infer, module=False,
    functional=lambda t, p: t[0].select(int(p["dim"]), int(p["index"])),
    emit_functional=lambda xs, p: f"{xs[0]}.select({int(p['dim'])}, {int(p['index'])})",
    # the other axes keep their order; selecting on the channel axis itself leaves no channels
    coupling="reshape",
    channels=Channels(axis_map=lambda n, p: [i for i in range(n) if i != int(p["dim"]) % n]),
    torch_import=(TorchImport(functions=("_operator.getitem", "torch.select"), methods=("select",), params=_import),),
    doc="The position `index` of axis `dim`, that axis removed (`x[:, 0]`)."))
