"""layernorm2d(eps, affine): layer normalisation of [B, C, H, W] over the channels at each position.

torchvision's convnext normalises channels-first maps with its `LayerNorm2d` (an nn.LayerNorm that permutes to
channels-last, normalises the last axis and permutes back); the op is that layer, with its keys `weight`, `bias`.
"""
from .registry import Channels, ChannelSite, OpDef, ParamDef, TorchImport, Unimportable, rank, register, src


def _infer(shapes, p):
    (x,) = shapes
    rank(x, 4)
    return x


def _build(shapes, p):
    from ..compiler.modules import LayerNorm2d

    return LayerNorm2d(int(shapes[0][1]), eps=p["eps"], elementwise_affine=p["affine"])


def _emit(shapes, p):
    extra = (f", eps={src(p['eps'])}" if p["eps"] != 1e-5 else "") + (
        "" if p["affine"] else ", elementwise_affine=False")
    return f"LayerNorm2d({src(shapes[0][1])}{extra})"


def _import(call):
    m = call.module
    if len(m.normalized_shape) != 1:
        raise Unimportable(f"normalized_shape={tuple(m.normalized_shape)}: layernorm2d normalises the channels only")
    if m.elementwise_affine and m.bias is None:
        raise Unimportable("layer norm with a weight but no bias (bias=False)")
    return {"eps": float(m.eps), "affine": m.elementwise_affine}


register(OpDef(
    name="layernorm2d", params=(ParamDef("eps", "float", 1e-5), ParamDef("affine", "bool", True)),
    infer=_infer, build=_build, emit=_emit, helper_classes=("LayerNorm2d",),
    coupling="elementwise", neuron_axis=1,
    channels=Channels(sites=(ChannelSite("weight", 0, "in", "follow"), ChannelSite("bias", 0, "in", "follow")),
                      mixes_channels=True),
    n_params=lambda shapes, p: 2 * shapes[0][0] if p["affine"] else 0,  # per-sample shapes: [C, H, W]
    torch_import=(TorchImport(modules=("torchvision.models.convnext.LayerNorm2d",), params=_import),),
    doc="Layer normalisation of [B, C, H, W] over the channels at each position (convnext's LayerNorm2d)."))
