"""A learnable tensor held by a block itself, and the ops that bring it to every sample of the batch.

`parameter(shape)` is a bare nn.Parameter at its statement's path: in block instance `features.1.0`,
`layer_scale = parameter(shape=[c, 1, 1])` has the state-dict key `features.1.0.layer_scale` (convnext's
layer scale, vit's class token and position embedding). Its shape has no batch axis. It meets the network's
tensors through `broadcast_mul` / `broadcast_add` (one operand broadcast to the other's shape, PyTorch's rules)
and `expand_batch` (a [1, ...] tensor repeated to another tensor's batch size).
"""
from functools import reduce

from ..ir.dims import Dim
from .registry import OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, rank, register, src

_INIT = ("zeros", "ones", "normal")
NORMAL_STD = 0.02  # `init="normal"`: vit's position embedding initialisation


def _fmt(shape):
    return "[" + ", ".join(str(Dim.of(d)) for d in shape) + "]"


def _param_infer(shapes, p):
    for d in p["shape"]:
        if Dim.of(d).is_concrete and Dim.of(d).value < 1:
            raise ShapeFailure(f"parameter sizes are at least 1, got {_fmt(p['shape'])}")
    return tuple(Dim.of(d) for d in p["shape"])


def _param_build(shapes, p):
    import torch
    import torch.nn as nn

    size = [int(d) for d in p["shape"]]
    data = {"zeros": torch.zeros, "ones": torch.ones}.get(p["init"])
    return nn.Parameter(data(size) if data else torch.randn(size) * NORMAL_STD)


def _param_emit(shapes, p):
    size = ", ".join(src(Dim.of(d)) for d in p["shape"])
    value = f"torch.{p['init']}({size})" if p["init"] != "normal" else f"torch.randn({size}) * {NORMAL_STD}"
    return f"nn.Parameter({value})"


def _param_import(call):
    import torch.nn as nn

    t = call.attribute
    if not isinstance(t, nn.Parameter):
        raise Unimportable("it is a buffer, not a parameter; only parameters read in forward are imported")
    if t.dim() == 0:
        raise Unimportable("a parameter without axes (a scalar); `parameter` takes a shape of one or more axes")
    init = "zeros" if not t.any() else "ones" if bool((t == 1).all()) else "normal"
    return {"shape": tuple(int(d) for d in t.shape), "init": init}


register(OpDef(
    name="parameter", params=(ParamDef("shape", "ints"), ParamDef("init", "str", "zeros", choices=_INIT)),
    infer=_param_infer, min_inputs=0, max_inputs=0, build=_param_build, emit=_param_emit, parameter=True,
    # a tensor of its own, without a batch axis: no neighbour's channels, no neurons
    coupling="none", neuron_axis=None,
    n_params=lambda shapes, p: reduce(lambda a, b: a * Dim.of(b), p["shape"], Dim.of(1)),
    torch_import=(TorchImport(attributes=True, params=_param_import),),
    doc="A learnable tensor of this shape (no batch axis), held at the statement's path; init zeros, ones, "
        "or normal (std 0.02)."))


def expand_batch(t, like):
    """`t` of shape [1, ...] repeated (as a view) to the batch size of `like`: [like.shape[0], ...].

    What `netevo import` rewrites `t.expand(x.shape[0], -1, ...)` into (importer/batch_size.py)."""
    return t.expand(like.shape[:1] + t.shape[1:])


def _expand_infer(shapes, p):
    t, like = shapes
    rank(t, *range(1, 9), what="the tensor to expand")
    if not like:
        raise ShapeFailure("expand_batch takes its batch size from a tensor with axes, got a scalar")
    if Dim.of(t[0]) != 1:
        raise ShapeFailure(f"expand_batch repeats a tensor of size 1 on axis 0, got {_fmt(t)}",
                           "the tensor to expand is [1, ...], like a parameter of shape [1, 1, E]")
    return (Dim.of(like[0]), *(Dim.of(d) for d in t[1:]))


def _expand_import(call):
    return {}


register(OpDef(
    name="expand_batch", params=(), infer=_expand_infer, min_inputs=2, max_inputs=2, module=False,
    functional=lambda t, p: expand_batch(t[0], t[1]),
    emit_functional=lambda xs, p: f"{xs[0]}.expand({xs[1]}.shape[:1] + {xs[0]}.shape[1:])",
    coupling="none",
    torch_import=(TorchImport(functions=("netevo_dsl.ops.parameter.expand_batch",), params=_expand_import),),
    doc="expand_batch(t, like): t [1, ...] repeated to like's batch size (vit's class token per sample)."))


def _broadcast(shapes):
    """PyTorch's broadcast of two shapes, which must equal one of them (the other operand is broadcast to it)."""
    a, b = (tuple(Dim.of(d) for d in s) for s in shapes)
    n = max(len(a), len(b))
    pa, pb = (Dim.of(1),) * (n - len(a)) + a, (Dim.of(1),) * (n - len(b)) + b
    out = []
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeFailure(f"shapes {_fmt(a)} and {_fmt(b)} do not broadcast (axis {i - n} is {x} and {y})",
                               "aligned at the last axis, each pair of sizes is equal or one of them is 1")
    out = tuple(out)
    if out != a and out != b:
        raise ShapeFailure(f"shapes {_fmt(a)} and {_fmt(b)} broadcast to {_fmt(out)}, the shape of neither",
                           "one operand has the result's shape; the other is broadcast to it")
    return out


def _broadcast_import(call):
    if len(call.in_shapes) != 2 or any(a is not None for a in call.args) or call.kwargs:
        raise Unimportable("an operand that is not a tensor (a constant or a scalar)")
    if sum(call.batched) != 1:
        raise Unimportable("a broadcast between two tensors of the batch; the ops take equal shapes, or "
                           "[B, C, ...] times one factor per sample and channel [B, C, 1, ...]")
    try:
        _broadcast(call.in_shapes)
    except ShapeFailure as e:
        raise Unimportable(e.message) from None
    return {}


for _name, _sign, _fn in (("broadcast_add", "+", "add"), ("broadcast_mul", "*", "mul")):
    register(OpDef(
        name=_name, params=(), infer=lambda shapes, p: _broadcast(shapes), min_inputs=2, max_inputs=2, module=False,
        functional=(lambda t, p: t[0] + t[1]) if _sign == "+" else (lambda t, p: t[0] * t[1]),
        emit_functional=lambda xs, p, sign=_sign: f"{xs[0]} {sign} {xs[1]}",
        # sizes of 1 repeat: the operands' axes do not line up position for position, so no channel group
        coupling="none",
        torch_import=(TorchImport(functions=(f"_operator.{_fn}", f"_operator.i{_fn}", f"torch.{_fn}"), methods=(_fn,),
                                  params=_broadcast_import),),
        doc=f"a {_sign} b with one operand broadcast to the other's shape (PyTorch's rules), such as a "
            "parameter without the batch axis."))
