"""relative_attention(head_dim): self-attention within windows with a learned relative position bias per head.

On [B, G, P, D]: G windows of P = size * size positions each (maxvit's window and grid attention). The module is
compiler.modules.RelativePositionAttention, whose keys are torchvision's RelativePositionalMultiHeadAttention's
(`to_qkv`, `merge`, `relative_position_bias_table`, `relative_position_index`), so that layer imports whole.
"""
import math

from .registry import Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, TorchImport, \
    Unimportable, divisible, ival, rank, register, src


def _infer(shapes, p):
    (x,) = shapes
    rank(x, 4)
    divisible("relative_attention features vs head_dim", x[-1], p["head_dim"], "`head_dim` must divide the features")
    positions = ival(x[2])
    if math.isqrt(positions) ** 2 != positions:
        raise ShapeFailure(f"relative_attention needs a square window: {positions} positions is not size * size",
                           "axis 2 holds the size * size positions of each window")
    return x


def _build(shapes, p):
    from ..compiler.modules import RelativePositionAttention

    return RelativePositionAttention(int(shapes[0][-1]), int(p["head_dim"]), int(shapes[0][2]))


def _emit(shapes, p):
    return f"RelativePositionAttention({src(shapes[0][-1])}, {src(p['head_dim'])}, {src(shapes[0][2])})"


def _import(call):
    m = call.module
    x = call.in_shapes[0]
    if len(x) != 4 or m.n_heads * m.head_dim != x[-1] or m.max_seq_len != x[2] or m.size ** 2 != m.max_seq_len:
        raise Unimportable("the layer's sizes do not match its input [B, G, P, D] (P = size * size, D = heads * "
                           "head_dim)")
    return {"head_dim": m.head_dim}


def _macs(shapes, out, p):
    g, t, e = shapes[0][-3], shapes[0][-2], shapes[0][-1]
    return g * (t * e * 3 * e + 2 * t * t * e + t * e * e)  # qkv projection, q k^T, weights x v, merge


register(OpDef(
    name="relative_attention",
    params=(ParamDef("head_dim", "int", minimum=1, doc="features per head; heads = D / head_dim"),),
    infer=_infer, build=_build, emit=_emit, helper_classes=("RelativePositionAttention",),
    coupling="attention", neuron_axis=-1,
    # the features D move together in and out (to_qkv's columns, merge's rows); the heads' own channels are not
    # declared, so no transform moves them (each head's channels belong to its column of the bias table)
    channels=Channels(
        sites=(ChannelSite("to_qkv.weight", 1, "in", "consume"), ChannelSite("merge.weight", 0, "out", "produce"),
               ChannelSite("merge.bias", 0, "out", "produce")),
        mixes_channels=True),  # D enters the D ** -0.5 scale of the keys: resizing it changes the function
    macs=_macs,
    n_params=lambda shapes, p: (4 * shapes[0][-1] * shapes[0][-1] + 4 * shapes[0][-1]
                                + (2 * math.isqrt(shapes[0][-2]) - 1) ** 2 * (shapes[0][-1] // p["head_dim"])),
    torch_import=(TorchImport(modules=("torchvision.models.maxvit.RelativePositionalMultiHeadAttention",),
                              params=_import),),
    doc="Self-attention in windows [B, G, P, D] with a learned bias per head and relative offset (maxvit)."))
