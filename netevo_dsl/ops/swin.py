"""Swin transformer layers: shifted_window_attention(heads, window, shift, v2, ...) and patch_merging(eps, v2).

Both work on channels-last maps [B, H, W, C]. Their modules (compiler.modules.ShiftedWindowAttention,
PatchMerging) keep torchvision's keys, so torchvision's ShiftedWindowAttention(V2) and PatchMerging(V2) import
whole (their forwards call functions that torchvision marks as fx leaves).
"""
from ..ir.dims import Dim
from .registry import Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, divisible, \
    ival, rank, register, src

_SWIN = "torchvision.models.swin_transformer."


def _attention_infer(shapes, p):
    (x,) = shapes
    rank(x, 4)
    divisible("shifted_window_attention channels vs heads", x[-1], p["heads"], "`heads` must divide the channels")
    for name in ("window", "shift"):
        if len(p[name]) != 2 or any(ival(v) < (1 if name == "window" else 0) for v in p[name]):
            raise ShapeFailure(f"`{name}` is [height, width]: two integers, at least {1 if name == 'window' else 0}",
                               f"e.g. {name}=[7, 7]", code="E205")
        if p["v2"] and name == "window" and 1 in p[name]:
            raise ShapeFailure("v2 needs windows of at least 2 positions per axis", "its offsets are scaled by "
                               "window - 1", code="E205")
    return x


def _attention_build(shapes, p):
    from ..compiler.modules import ShiftedWindowAttention

    return ShiftedWindowAttention(int(shapes[0][-1]), [int(v) for v in p["window"]], [int(v) for v in p["shift"]],
                                  int(p["heads"]), p["qkv_bias"], p["proj_bias"], float(p["attention_dropout"]),
                                  float(p["dropout"]), p["v2"])


def _attention_emit(shapes, p):
    defaults = {"qkv_bias": True, "proj_bias": True, "attention_dropout": 0.0, "dropout": 0.0, "v2": False}
    extra = [f"{name}={src(p[name])}" for name, default in defaults.items() if p[name] != default]
    return (f"ShiftedWindowAttention({src(shapes[0][-1])}, {src(tuple(p['window']))}, {src(tuple(p['shift']))}, "
            f"{src(p['heads'])}" + "".join(", " + e for e in extra) + ")")


def _attention_import(v2):
    def params(call):
        m = call.module
        if len(m.window_size) != 2 or len(m.shift_size) != 2:
            raise Unimportable("window_size and shift_size are [height, width]")
        return {"heads": m.num_heads, "window": [int(v) for v in m.window_size],
                "shift": [int(v) for v in m.shift_size], "v2": v2, "qkv_bias": m.qkv.bias is not None,
                "proj_bias": m.proj.bias is not None, "attention_dropout": float(m.attention_dropout),
                "dropout": float(m.dropout)}

    return params


def _attention_params(shapes, p):
    c = shapes[0][-1]
    wh, ww = p["window"]
    table = (2 * 512 + 512 + 512 * p["heads"] + p["heads"]) if p["v2"] else (2 * wh - 1) * (2 * ww - 1) * p["heads"]
    return 4 * c * c + (3 * c if p["qkv_bias"] else 0) + (c if p["proj_bias"] else 0) + table


register(OpDef(
    name="shifted_window_attention",
    params=(ParamDef("heads", "int", minimum=1), ParamDef("window", "ints", doc="[height, width] of a window"),
            ParamDef("shift", "ints", doc="[height, width] of the cyclic shift (0: plain windows)"),
            ParamDef("v2", "bool", False, doc="Swin v2: cosine attention, logit scale, bias from an MLP"),
            ParamDef("qkv_bias", "bool", True), ParamDef("proj_bias", "bool", True),
            ParamDef("attention_dropout", "float", 0.0), ParamDef("dropout", "float", 0.0)),
    infer=_attention_infer, build=_attention_build, emit=_attention_emit, helper_classes=("ShiftedWindowAttention",),
    coupling="attention", neuron_axis=-1,
    # the channels move together in and out (qkv's columns, proj's rows); the heads' own channels are not declared
    channels=Channels(sites=(ChannelSite("qkv.weight", 1, "in", "consume"),
                             ChannelSite("proj.weight", 0, "out", "produce"),
                             ChannelSite("proj.bias", 0, "out", "produce")),
                      mixes_channels=True),  # C / heads sets the 1/sqrt(head size) scale
    n_params=_attention_params,
    torch_import=(TorchImport(modules=(_SWIN + "ShiftedWindowAttention",), params=_attention_import(False)),
                  TorchImport(modules=(_SWIN + "ShiftedWindowAttentionV2",), params=_attention_import(True))),
    doc="Swin's (shifted) window self-attention on [B, H, W, C], with relative position bias; v2 as Swin v2."))


def _merging_infer(shapes, p):
    (x,) = shapes
    rank(x, 4)
    half = [(Dim.of(s) + 1) // 2 for s in x[1:3]]  # odd sizes are padded with one row / column of zeros
    return (x[0], *half, Dim.of(x[3]) * 2)


def _merging_build(shapes, p):
    from ..compiler.modules import PatchMerging

    return PatchMerging(int(shapes[0][-1]), eps=float(p["eps"]), v2=p["v2"])


def _merging_emit(shapes, p):
    extra = ("" if p["eps"] == 1e-5 else f", eps={src(p['eps'])}") + (", v2=True" if p["v2"] else "")
    return f"PatchMerging({src(shapes[0][-1])}{extra})"


def _merging_import(v2):
    def params(call):
        import torch.nn as nn

        norm = call.module.norm
        if type(norm) is not nn.LayerNorm or not norm.elementwise_affine or norm.bias is None:
            raise Unimportable("a norm layer other than nn.LayerNorm with weight and bias")
        return {"eps": float(norm.eps), "v2": v2}

    return params


register(OpDef(
    name="patch_merging",
    params=(ParamDef("eps", "float", 1e-5, doc="the LayerNorm's eps"),
            ParamDef("v2", "bool", False, doc="Swin v2: the linear map before the norm")),
    infer=_merging_infer, build=_merging_build, emit=_merging_emit, helper_classes=("PatchMerging",),
    coupling="produce", neuron_axis=-1,
    channels=Channels(sites=(ChannelSite("reduction.weight", 1, "in", "consume", copies=4),
                             ChannelSite("reduction.weight", 0, "out", "produce")),
                      mixes_channels=True),  # the LayerNorm normalises over all channels
    n_params=lambda shapes, p: 8 * shapes[0][-1] ** 2 + 2 * (2 if p["v2"] else 4) * shapes[0][-1],
    torch_import=(TorchImport(modules=(_SWIN + "PatchMerging",), params=_merging_import(False)),
                  TorchImport(modules=(_SWIN + "PatchMergingV2",), params=_merging_import(True))),
    doc="Swin's patch merging on [B, H, W, C] to [B, H/2, W/2, 2C] (2x2 neighbours side by side, norm, linear)."))
