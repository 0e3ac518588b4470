"""Normalisation layers: batchnorm (1d/2d by rank), batchnorm1d, batchnorm2d, layernorm, groupnorm."""
from .registry import Channels, ChannelSite, OpDef, ParamDef, TorchImport, Unimportable, divisible, rank, register, src

def _channels_affine(axis):
    def n_params(shapes, p):
        return 2 * shapes[0][axis] if p["affine"] else 0

    return n_params


_AFFINE = (ChannelSite("weight", 0, "in", "follow"), ChannelSite("bias", 0, "in", "follow"))


def _bn_infer(ranks):
    def infer(shapes, p):
        (x,) = shapes
        rank(x, *ranks)
        return x

    return infer


def _bn_cls(shape):
    return "BatchNorm1d" if len(shape) in (2, 3) else "BatchNorm2d"


def _bn_build(shapes, p):
    import torch.nn as nn

    return getattr(nn, _bn_cls(shapes[0]))(int(shapes[0][1]), eps=p["eps"], momentum=p["momentum"], affine=p["affine"])


def _bn_emit(shapes, p, mask_expr=None):
    extra = "".join(
        f", {k}={src(p[k])}" for k, d in (("eps", 1e-5), ("momentum", 0.1), ("affine", True)) if p[k] != d
    )
    return f"nn.{_bn_cls(shapes[0])}({src(shapes[0][1])}{extra})"


def _bn_import(call):
    m = call.module
    if not m.track_running_stats or m.momentum is None:
        raise Unimportable("batch norm without running statistics or with a cumulative average (momentum=None)")
    return {"eps": float(m.eps), "momentum": float(m.momentum), "affine": m.affine}


_BN_TORCH = {"batchnorm1d": ("torch.nn.BatchNorm1d",), "batchnorm2d": ("torch.nn.BatchNorm2d",)}

_BN_PARAMS = (ParamDef("eps", "float", 1e-5), ParamDef("momentum", "float", 0.1), ParamDef("affine", "bool", True))

for _name, _ranks in (("batchnorm", (2, 3, 4)), ("batchnorm1d", (2, 3)), ("batchnorm2d", (4,))):
    register(OpDef(name=_name, params=_BN_PARAMS, infer=_bn_infer(_ranks), build=_bn_build, emit=_bn_emit,
                   coupling="elementwise", neuron_axis=1,
                   channels=Channels(sites=_AFFINE + (ChannelSite("running_mean", 0, "in", "follow"),
                                                      ChannelSite("running_var", 0, "in", "follow"))),
                   n_params=_channels_affine(0),
                   torch_import=(TorchImport(modules=_BN_TORCH[_name], params=_bn_import),)
                   if _name in _BN_TORCH else (),
                   doc="Batch normalisation over the channel axis (1)."))


def _ln_infer(shapes, p):
    return shapes[0]


def _ln_build(shapes, p):
    import torch.nn as nn

    return nn.LayerNorm(int(shapes[0][-1]), eps=p["eps"], elementwise_affine=p["affine"])


def _ln_emit(shapes, p, mask_expr=None):
    extra = (f", eps={src(p['eps'])}" if p["eps"] != 1e-5 else "") + (
        "" if p["affine"] else ", elementwise_affine=False")
    return f"nn.LayerNorm({src(shapes[0][-1])}{extra})"


def _ln_import(call):
    m = call.module
    if len(m.normalized_shape) != 1:
        raise Unimportable(f"normalized_shape={tuple(m.normalized_shape)}: layernorm normalises the last axis only")
    if m.elementwise_affine and m.bias is None:
        raise Unimportable("layer norm with a weight but no bias (bias=False)")
    return {"eps": float(m.eps), "affine": m.elementwise_affine}


register(OpDef(name="layernorm", params=(ParamDef("eps", "float", 1e-5), ParamDef("affine", "bool", True)),
               infer=_ln_infer, build=_ln_build, emit=_ln_emit, coupling="elementwise", neuron_axis=-1,
               channels=Channels(sites=_AFFINE, mixes_channels=True), n_params=_channels_affine(-1),
               torch_import=(TorchImport(modules=("torch.nn.LayerNorm",), params=_ln_import),),
               doc="Layer normalisation over the last axis."))


def _gn_infer(shapes, p):
    (x,) = shapes
    rank(x, 2, 3, 4)
    divisible("groupnorm channels vs groups", x[1], p["groups"], "`groups` must divide the channel count")
    return x


def _gn_build(shapes, p):
    import torch.nn as nn

    return nn.GroupNorm(int(p["groups"]), int(shapes[0][1]), eps=p["eps"], affine=p["affine"])


def _gn_emit(shapes, p, mask_expr=None):
    extra = (f", eps={src(p['eps'])}" if p["eps"] != 1e-5 else "") + ("" if p["affine"] else ", affine=False")
    return f"nn.GroupNorm({src(p['groups'])}, {src(shapes[0][1])}{extra})"


register(OpDef(name="groupnorm", params=(ParamDef("groups", "int", minimum=1), ParamDef("eps", "float", 1e-5),
                                         ParamDef("affine", "bool", True)),
               infer=_gn_infer, build=_gn_build, emit=_gn_emit, coupling="elementwise", neuron_axis=1,
               channels=Channels(sites=_AFFINE, blocks_param="groups", mixes_channels=True),
               n_params=_channels_affine(0),
               doc="Group normalisation over channel groups."))
