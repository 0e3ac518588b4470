"""conv1d / conv2d(out, k, stride=1, pad=0|"same"|"valid", dilation=1, groups=1, bias=true, mask=none).

`k`, `stride`, `pad` and `dilation` are one integer for every spatial axis, or a list of one per axis
(`k=[1, 7], pad=[0, 3]`: inception's 1x7 convolution)."""
import math

from ..ir.dims import Dim
from .registry import (Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, divisible, ival,
                       mask_param, per_axis, positive, rank, register, sizes, src)

_SIZES = ("k", "stride", "pad", "dilation")


def _axes(p, spatial: int) -> list[tuple]:
    """(k, stride, pad, dilation) of each spatial axis, pad="same" / "valid" resolved to integers."""
    k, s, d = (per_axis(p[n], spatial, n) for n in ("k", "stride", "dilation"))
    pad = p["pad"]
    if pad == "valid":
        pad = (0,) * spatial
    elif pad == "same":
        if any(ival(v) != 1 for v in s):
            raise ShapeFailure('pad="same" needs stride 1', "use an explicit integer padding with strides")
        totals = [ival(di) * (ival(ki) - 1) for ki, di in zip(k, d)]
        if any(t % 2 for t in totals):
            raise ShapeFailure('pad="same" needs an odd effective kernel size', "use an odd k")
        pad = tuple(t // 2 for t in totals)
    else:
        pad = per_axis(pad, spatial, "pad")
    return list(zip(k, s, pad, d))


def _padding(p, spatial: int):
    """The padding as nn.ConvNd takes it: one integer when every axis agrees, else a tuple."""
    pads = tuple(a[2] for a in _axes(p, spatial))
    return pads[0] if len(set(pads)) == 1 else pads


def _torch_size(value):
    """A size param as nn.ConvNd takes it (concrete ints): 3, or (1, 7)."""
    return tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)


def make_infer(spatial: int):
    def infer(shapes, p):
        (x,) = shapes
        rank(x, spatial + 2)
        positive("out", p["out"])
        divisible("conv input channels vs groups", x[1], p["groups"], "groups must divide the input channels")
        divisible("conv output channels vs groups", p["out"], p["groups"], "groups must divide `out`")
        out_spatial = []
        for size, (k, s, pad, d) in zip(x[2:], _axes(p, spatial)):
            o = (Dim.of(size) + 2 * Dim.of(pad) - Dim.of(d) * (Dim.of(k) - 1) - 1) // Dim.of(s) + 1
            if o.is_concrete and o.value < 1:
                raise ShapeFailure(f"conv output size would be {o} for input size {size}", "use a smaller kernel or stride")
            out_spatial.append(o)
        return (x[0], p["out"], *out_spatial)

    return infer


def make_build(spatial: int):
    def build(shapes, p):
        import torch.nn as nn

        from ..compiler import modules

        args = (int(shapes[0][1]), int(p["out"]), _torch_size(p["k"]))
        pad = _padding(p, spatial)
        kw = dict(stride=_torch_size(p["stride"]), padding=_torch_size(pad), dilation=_torch_size(p["dilation"]),
                  groups=int(p["groups"]), bias=p["bias"])
        if p["mask"] is None:
            return (nn.Conv1d if spatial == 1 else nn.Conv2d)(*args, **kw)
        cls = modules.MaskedConv1d if spatial == 1 else modules.MaskedConv2d
        return cls(*args, mask=p["mask"], **kw)

    return build


def make_emit(spatial: int):
    def emit(shapes, p, mask_expr=None):
        cls = f"Conv{spatial}d" if p["mask"] is None else f"MaskedConv{spatial}d"
        parts = [src(shapes[0][1]), src(p["out"]), src(p["k"])]
        pad = _padding(p, spatial)
        for name, value, default in (("stride", p["stride"], 1), ("padding", pad, 0), ("dilation", p["dilation"], 1),
                                     ("groups", p["groups"], 1), ("bias", p["bias"], True)):
            if not (isinstance(value, (int, bool)) and value == default):
                parts.append(f"{name}={src(value)}")
        if p["mask"] is not None:
            parts.append(f"mask={mask_expr}")
        return ("nn." if p["mask"] is None else "") + f"{cls}({', '.join(parts)})"

    return emit


def _window(p, spatial: int) -> int:
    return math.prod(per_axis(p["k"], spatial, "k"))


def _macs(shapes, out, p):
    return math.prod(out) * (shapes[0][0] // p["groups"]) * _window(p, len(out) - 1)


def _n_params(shapes, p):
    return p["out"] * (shapes[0][0] // p["groups"]) * _window(p, len(shapes[0]) - 1) + (p["out"] if p["bias"] else 0)


def _import(call):
    m = call.module
    if m.padding_mode != "zeros":
        raise Unimportable(f"padding_mode={m.padding_mode!r}: the conv ops pad with zeros only")
    pad = m.padding if isinstance(m.padding, str) else sizes(m.padding, "padding")
    return {"out": m.out_channels, "k": sizes(m.kernel_size, "kernel_size"), "stride": sizes(m.stride, "stride"),
            "pad": pad, "dilation": sizes(m.dilation, "dilation"), "groups": m.groups, "bias": m.bias is not None}


def _params():
    per_axis_doc = ", or a list of one per spatial axis"
    return (
        ParamDef("out", "int", minimum=1, doc="output channels"),
        ParamDef("k", "size", minimum=1, doc="kernel size" + per_axis_doc),
        ParamDef("stride", "size", 1, minimum=1, doc="stride" + per_axis_doc),
        ParamDef("pad", "size", 0, choices=("same", "valid"), minimum=0,
                 doc='padding' + per_axis_doc + ', or "same" / "valid"'),
        ParamDef("dilation", "size", 1, minimum=1, doc="dilation" + per_axis_doc),
        ParamDef("groups", "int", 1, minimum=1),
        ParamDef("bias", "bool", True),
        mask_param(),
    )


for _spatial in (1, 2):
    register(
        OpDef(
            name=f"conv{_spatial}d",
            params=_params(),
            infer=make_infer(_spatial),
            build=make_build(_spatial),
            emit=make_emit(_spatial),
            coupling="produce",
            neuron_axis=1,
            weight_bearing=True,
            channels=Channels(
                sites=(ChannelSite("weight", 0, "out", "produce"), ChannelSite("weight", 1, "in", "consume", grouped=True),
                       ChannelSite("bias", 0, "out", "produce"), ChannelSite("mask", 0, "out", "produce"),
                       ChannelSite("mask", 1, "in", "consume", grouped=True)),
                width_param="out", partition_param="groups"),
            macs=_macs,
            n_params=_n_params,
            torch_import=(TorchImport(modules=(f"torch.nn.Conv{_spatial}d",), params=_import),),
            doc=f"{_spatial}-D convolution over [B, C, {'L' if _spatial == 1 else 'H, W'}].",
        )
    )
