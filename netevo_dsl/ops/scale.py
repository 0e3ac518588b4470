"""scale(x, by): a tensor times a constant number (attention's `q * head_dim ** -0.5`, maxvit's and swin's).

No module and no weights: the number is part of the spec, written exactly (`by=0.17677669529663687`), and the
emitted source multiplies by the same Python float, so float64 results equal PyTorch's `x * by` bit for bit.
"""
import math

from .registry import OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, register, src


def _infer(shapes, p):
    if not math.isfinite(p["by"]):
        raise ShapeFailure(f"scale: `by` must be a finite number, got {p['by']}", "give a number like by=0.125")
    return shapes[0]


def _import(call):
    """`x * c`, `c * x`, `torch.mul(x, c)`, `x.mul(c)` with one tensor of the network and one number."""
    numbers = [a for a in list(call.args) + list(call.kwargs.values()) if a is not None]
    if len(call.in_shapes) != 1 or len(numbers) != 1:
        raise Unimportable("scale takes one tensor times one number")
    (by,) = numbers
    if isinstance(by, bool) or not isinstance(by, (int, float)) or not math.isfinite(by):
        raise Unimportable(f"the factor {by!r} is not a finite number known when tracing")
    return {"by": float(by)}


register(OpDef(
    name="scale", params=(ParamDef("by", "float", doc="the constant factor"),), infer=_infer, module=False,
    functional=lambda t, p: t[0] * p["by"],
    emit_functional=lambda xs, p, s=src: f"{xs[0]} * {s(float(p['by']))}",
    coupling="elementwise",
    torch_import=(TorchImport(functions=("_operator.mul", "_operator.imul", "torch.mul"), methods=("mul",),
                              params=_import),),
    doc="x * by, a constant number (attention's query scaling); no module."))
