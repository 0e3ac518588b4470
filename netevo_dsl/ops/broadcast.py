"""channel_scale(a, b): a tensor times one factor per sample and channel (squeeze-excitation's `scale * x`).

The one broadcast the ops allow: one operand is [B, C, ...], the other [B, C, 1, ..., 1]. Either may come
first, so an import keeps the user's operand order (efficientnet writes `scale * input`).
"""
from ..ir.dims import Dim
from .registry import OpDef, ShapeFailure, TorchImport, Unimportable, register


def _fmt(shape):
    return "[" + ", ".join(str(Dim.of(d)) for d in shape) + "]"


def _is_scale(shape) -> bool:
    return all(Dim.of(d) == 1 for d in shape[2:])


def _infer(shapes, p):
    a, b = shapes
    if len(a) != len(b) or len(a) < 3:
        raise ShapeFailure(f"channel_scale takes [B, C, ...] and [B, C, 1, ...] of one rank (3 or more), "
                           f"got {_fmt(a)} and {_fmt(b)}", "for equal shapes of any rank write `a * b`")
    for axis in (0, 1):
        if Dim.of(a[axis]) != Dim.of(b[axis]):
            raise ShapeFailure(f"channel_scale operands differ on axis {axis}: {_fmt(a)} and {_fmt(b)}",
                               "the factor has the batch and channel sizes of the tensor it scales")
    if _is_scale(b):
        return tuple(a)
    if _is_scale(a):
        return tuple(b)
    raise ShapeFailure(f"channel_scale needs one operand of shape [B, C, 1, ...], got {_fmt(a)} and {_fmt(b)}",
                       "the factor has size 1 on every axis after the channels")


def _import(call):
    if len(call.in_shapes) != 2 or any(a is not None for a in call.args) or call.kwargs:
        raise Unimportable("an operand that is not a tensor of the network (a constant or a scalar)")
    if not all(call.batched):  # a parameter read in forward: `broadcast_mul` (ops/parameter.py)
        raise Unimportable("an operand without the batch axis; one factor per sample and channel only")
    a, b = (tuple(s) for s in call.in_shapes)
    if a == b:
        raise Unimportable("equal shapes are the op `mul`")
    ok = len(a) == len(b) >= 3 and a[:2] == b[:2] and (_is_scale(a) or _is_scale(b))
    if not ok:
        raise Unimportable(f"operands of shapes {[list(a), list(b)]} broadcast; the ops take equal shapes, or "
                           "[B, C, ...] times one factor per sample and channel [B, C, 1, ...]")
    return {}


register(OpDef(
    name="channel_scale", params=(), infer=_infer, min_inputs=2, max_inputs=2, module=False,
    functional=lambda t, p: t[0] * t[1],
    emit_functional=lambda xs, p: f"{xs[0]} * {xs[1]}",
    # both operands carry the same channels, position for position (squeeze-excitation's gate)
    coupling="tie",
    torch_import=(TorchImport(functions=("_operator.mul", "_operator.imul", "torch.mul"), methods=("mul",),
                              params=_import),),
    doc="[B, C, ...] times [B, C, 1, ...] (either order): one factor per sample and channel, as in "
        "squeeze-excitation."))
