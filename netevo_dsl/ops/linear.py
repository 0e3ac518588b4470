"""linear(out, bias=true, mask=none): y = x W^T + b over the last axis."""
import math

from .registry import (Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, TorchImport, mask_param, positive,
                       register, src)


def infer(shapes, p):
    (x,) = shapes
    if len(x) < 1:
        raise ShapeFailure("linear needs an input with at least one axis")
    positive("out", p["out"])
    return (*x[:-1], p["out"])


def build(shapes, p):
    import torch.nn as nn

    from ..compiler.modules import MaskedLinear

    in_f, out = int(shapes[0][-1]), int(p["out"])
    if p["mask"] is None:
        return nn.Linear(in_f, out, bias=p["bias"])
    return MaskedLinear(in_f, out, bias=p["bias"], mask=p["mask"])


def emit(shapes, p, mask_expr=None):
    args = f"{src(shapes[0][-1])}, {src(p['out'])}" + ("" if p["bias"] else ", bias=False")
    if p["mask"] is None:
        return f"nn.Linear({args})"
    return f"MaskedLinear({args}, mask={mask_expr})"


def macs(shapes, out, p):
    return math.prod(out) * shapes[0][-1]


def n_params(shapes, p):
    return shapes[0][-1] * p["out"] + (p["out"] if p["bias"] else 0)


LINEAR = register(
    OpDef(
        name="linear",
        params=(ParamDef("out", "int", minimum=1, doc="output features"), ParamDef("bias", "bool", True), mask_param()),
        infer=infer,
        build=build,
        emit=emit,
        coupling="produce",
        neuron_axis=-1,
        weight_bearing=True,
        channels=Channels(
            sites=(ChannelSite("weight", 0, "out", "produce"), ChannelSite("weight", 1, "in", "consume"),
                   ChannelSite("bias", 0, "out", "produce"), ChannelSite("mask", 0, "out", "produce"),
                   ChannelSite("mask", 1, "in", "consume")),
            width_param="out"),
        macs=macs,
        n_params=n_params,
        torch_import=(TorchImport(modules=("torch.nn.Linear",),
                                  params=lambda c: {"out": c.module.out_features, "bias": c.module.bias is not None}),),
        doc="Fully connected layer over the last axis.",
    )
)
