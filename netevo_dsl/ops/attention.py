"""GPT-2 sublayers: attention(heads) (causal multi-head self-attention) and gpt2_mlp(hidden, activation); and the
two that `netevo import` maps transformers' GPT-2 onto: linear_t(out) (its Conv1D, weight stored (in, out)) and
sdpa(q, k, v, causal, scale) (scaled dot-product attention on per-head tensors)."""
import math

from ..ir.dims import Dim
from .registry import (Channels, ChannelSite, InternalSpace, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable,
                       divisible, positive, rank, register, src)


def _attn_infer(shapes, p):
    (x,) = shapes
    rank(x, 3)
    divisible("attention embedding vs heads", x[-1], p["heads"], "`heads` must divide the embedding size")
    return x


def _attn_build(shapes, p):
    from ..compiler.modules import CausalSelfAttention

    return CausalSelfAttention(int(shapes[0][-1]), int(p["heads"]), bias=p["bias"], dropout=float(p["dropout"]))


def _attn_emit(shapes, p, mask_expr=None):
    extra = ("" if p["bias"] else ", bias=False") + (f", dropout={src(p['dropout'])}" if p["dropout"] else "")
    return f"CausalSelfAttention({src(shapes[0][-1])}, {src(p['heads'])}{extra})"


def _attn_macs(shapes, out, p):
    t, e = shapes[0][-2], shapes[0][-1]
    return t * e * 3 * e + 2 * t * t * e + t * e * e  # qkv projection, q k^T, weights x v, output projection


def _attn_params(shapes, p):
    e = shapes[0][-1]
    return 4 * e * e + (4 * e if p["bias"] else 0)


register(OpDef(
    name="attention",
    params=(ParamDef("heads", "int", minimum=1), ParamDef("bias", "bool", True), ParamDef("dropout", "float", 0.0)),
    infer=_attn_infer, build=_attn_build, emit=_attn_emit, helper_classes=("CausalSelfAttention",),
    coupling="attention", neuron_axis=-1,
    channels=Channels(
        sites=(ChannelSite("c_attn.weight", 1, "in", "consume"), ChannelSite("c_proj.weight", 0, "out", "produce"),
               ChannelSite("c_proj.bias", 0, "out", "produce"),
               ChannelSite("c_attn.weight", 0, "heads", "produce", copies=3),
               ChannelSite("c_attn.bias", 0, "heads", "produce", copies=3),
               ChannelSite("c_proj.weight", 1, "heads", "consume")),
        internal=(InternalSpace("heads", lambda shapes, p: shapes[0][-1], blocks_param="heads",
                                no_resize="the head size enters attention's 1/sqrt(head_dim) scale"),)),
    macs=_attn_macs, n_params=_attn_params,
    doc="GPT-2 causal multi-head self-attention on [B, T, E]."))


def _mlp_infer(shapes, p):
    (x,) = shapes
    return x


def _hidden(shapes, p):
    return p["hidden"] if p["hidden"] is not None else 4 * shapes[0][-1]


def _mlp_build(shapes, p):
    from ..compiler.modules import GPT2MLP

    return GPT2MLP(int(shapes[0][-1]), int(_hidden(shapes, p)), activation=p["activation"], bias=p["bias"])


def _mlp_emit(shapes, p, mask_expr=None):
    extra = (f", activation={src(p['activation'])}" if p["activation"] != "gelu_tanh" else "") + (
        "" if p["bias"] else ", bias=False")
    return f"GPT2MLP({src(shapes[0][-1])}, {src(_hidden(shapes, p))}{extra})"


_MLP_ACTIVATIONS = ("gelu_tanh", "gelu", "relu", "silu", "tanh", "sigmoid", "identity", "step", "sin", "cos", "gauss",
                    "inverse", "abs", "square")

def _mlp_macs(shapes, out, p):
    t, e, h = shapes[0][-2] if len(shapes[0]) > 1 else 1, shapes[0][-1], int(_hidden(shapes, p))
    return 2 * t * e * h


def _mlp_params(shapes, p):
    e, h = shapes[0][-1], int(_hidden(shapes, p))
    return 2 * e * h + ((h + e) if p["bias"] else 0)


register(OpDef(
    name="gpt2_mlp",
    params=(ParamDef("hidden", "int", None, minimum=1, doc="hidden width; default 4 x embedding"),
            ParamDef("activation", "str", "gelu_tanh", choices=_MLP_ACTIVATIONS), ParamDef("bias", "bool", True)),
    infer=_mlp_infer, build=_mlp_build, emit=_mlp_emit, helper_classes=("GPT2MLP", "Activation"),
    coupling="elementwise", neuron_axis=-1,
    channels=Channels(
        sites=(ChannelSite("c_fc.weight", 1, "in", "consume"), ChannelSite("c_fc.weight", 0, "hidden", "produce"),
               ChannelSite("c_fc.bias", 0, "hidden", "produce"), ChannelSite("c_proj.weight", 1, "hidden", "consume"),
               ChannelSite("c_proj.weight", 0, "out", "produce"), ChannelSite("c_proj.bias", 0, "out", "produce")),
        internal=(InternalSpace("hidden", _hidden, width_param="hidden"),)),
    macs=_mlp_macs, n_params=_mlp_params,
    doc="GPT-2 feed-forward: c_fc, activation, c_proj."))


# --- linear_t: transformers' Conv1D (GPT-2's c_attn, c_proj, c_fc), y = x W + b with W stored (in, out) ---------


def _lt_infer(shapes, p):
    (x,) = shapes
    if len(x) < 1:
        raise ShapeFailure("linear_t needs an input with at least one axis")
    positive("out", p["out"])
    return (*x[:-1], p["out"])


def _lt_build(shapes, p):
    from ..compiler.modules import TransposedLinear

    return TransposedLinear(int(shapes[0][-1]), int(p["out"]), bias=p["bias"])


def _lt_emit(shapes, p, mask_expr=None):
    return f"TransposedLinear({src(shapes[0][-1])}, {src(p['out'])}" + ("" if p["bias"] else ", bias=False") + ")"


def _lt_import(call):
    m = call.module
    return {"out": int(m.weight.shape[1]), "bias": getattr(m, "bias", None) is not None}


register(OpDef(
    name="linear_t",
    params=(ParamDef("out", "int", minimum=1, doc="output features"), ParamDef("bias", "bool", True)),
    infer=_lt_infer, build=_lt_build, emit=_lt_emit, helper_classes=("TransposedLinear",),
    coupling="produce", neuron_axis=-1,
    channels=Channels(sites=(ChannelSite("weight", 1, "out", "produce"), ChannelSite("weight", 0, "in", "consume"),
                             ChannelSite("bias", 0, "out", "produce")), width_param="out"),
    macs=lambda shapes, out, p: math.prod(out) * shapes[0][-1],
    n_params=lambda shapes, p: shapes[0][-1] * p["out"] + (p["out"] if p["bias"] else 0),
    torch_import=(TorchImport(modules=("transformers.pytorch_utils.Conv1D",), params=_lt_import),),
    doc="Fully connected layer over the last axis with its weight stored (in, out), as GPT-2's Conv1D: y = x W + b."))


# --- sdpa: softmax(q k^T * scale [+ causal mask]) v, on per-head tensors or with `heads` on [B, T, E] ---------


def split_heads_attention(q, k, v, heads, is_causal=False, scale=None):
    """Attention of [B, T, E] query, key and value in `heads` heads: each tensor's last axis split into (heads, E /
    heads), F.scaled_dot_product_attention per head, the heads merged back: `sdpa(q, k, v, heads=...)`. The export
    importer writes this call for transformers' view -> transpose -> SDPA -> transpose -> reshape."""
    import torch.nn.functional as F

    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(-3, -2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale).transpose(-3, -2).flatten(-2)


def _sdpa_infer(shapes, p):
    q, k, v = shapes
    heads = p["heads"]
    for shape, what in ((q, "query"), (k, "key"), (v, "value")):
        rank(shape, *((3,) if heads is not None else (3, 4)), what=what)
    if not len(q) == len(k) == len(v):
        raise ShapeFailure(f"query, key and value have ranks {len(q)}, {len(k)}, {len(v)}", "give them one rank")
    for i in range(len(q) - 2):
        if Dim.of(q[i]) != Dim.of(k[i]) or Dim.of(q[i]) != Dim.of(v[i]):
            raise ShapeFailure(f"axis {i} differs between query, key and value ({q[i]}, {k[i]}, {v[i]})",
                               "the leading axes (batch, heads) must agree")
    if Dim.of(q[-1]) != Dim.of(k[-1]):
        raise ShapeFailure(f"query and key head sizes differ ({q[-1]} vs {k[-1]})", "q k^T needs one head size")
    if Dim.of(k[-2]) != Dim.of(v[-2]):
        raise ShapeFailure(f"key and value lengths differ ({k[-2]} vs {v[-2]})", "each key needs one value")
    if heads is not None:
        for shape, what in ((q, "query"), (v, "value")):
            divisible(f"sdpa {what} width vs heads", shape[-1], heads, "`heads` must divide the last axis")
    if p["scale"] is not None and not float(p["scale"]) > 0.0:
        raise ShapeFailure(f"`scale` must be positive, got {p['scale']}")
    return (*q[:-1], v[-1])


def _sdpa(tensors, p):
    import torch.nn.functional as F

    q, k, v = tensors
    if p["heads"] is not None:
        return split_heads_attention(q, k, v, int(p["heads"]), is_causal=bool(p["causal"]), scale=p["scale"])
    return F.scaled_dot_product_attention(q, k, v, is_causal=bool(p["causal"]), scale=p["scale"])


def _sdpa_emit(xs, p):
    extra = (", is_causal=True" if p["causal"] else "") + (f", scale={src(float(p['scale']))}"
                                                           if p["scale"] is not None else "")
    if p["heads"] is None:
        return f"F.scaled_dot_product_attention({xs[0]}, {xs[1]}, {xs[2]}{extra})"
    h = src(p["heads"])
    q, k, v = (f"{x}.unflatten(-1, ({h}, -1)).transpose(-3, -2)" for x in xs)
    return f"F.scaled_dot_product_attention({q}, {k}, {v}{extra}).transpose(-3, -2).flatten(-2)"


def _sdpa_import(call):
    if len(call.in_shapes) != 3:
        raise Unimportable("an attention mask that is not the causal one (the op keeps `causal=true` only)")
    if call.arg(4, "dropout_p", 0.0):
        raise Unimportable(f"dropout_p={call.arg(4, 'dropout_p', 0.0)}: the op has no attention dropout")
    if call.arg(7, "enable_gqa", False):
        raise Unimportable("enable_gqa=True: query, key and value need the same heads")
    heads = call.kwargs.get("heads")  # split_heads_attention's
    scale = call.arg(6, "scale", None) if heads is None else call.kwargs.get("scale")
    head_size = call.in_shapes[0][-1] // (heads or 1)
    if scale is not None and float(scale) == head_size ** -0.5:
        scale = None  # the default 1/sqrt(head size)
    causal = call.arg(5, "is_causal", False) if heads is None else call.kwargs.get("is_causal", False)
    return {"heads": heads, "causal": bool(causal), "scale": None if scale is None else float(scale)}


register(OpDef(
    name="sdpa",
    params=(ParamDef("heads", "int", None, minimum=1, doc="split [B, T, E] into heads and merge them back"),
            ParamDef("causal", "bool", False, doc="position i attends to positions <= i"),
            ParamDef("scale", "float", None, doc="default 1/sqrt(head size)")),
    infer=_sdpa_infer, min_inputs=3, max_inputs=3, module=False, functional=_sdpa, emit_functional=_sdpa_emit,
    coupling="none", neuron_axis=None,
    macs=lambda shapes, out, p: math.prod(shapes[0][:-2]) * shapes[0][-2] * shapes[1][-2] * (shapes[0][-1]
                                                                                          + shapes[2][-1]),
    torch_import=(TorchImport(functions=("torch.nn.functional.scaled_dot_product_attention",
                                         "torch.ops.aten.scaled_dot_product_attention.default",
                                         "netevo_dsl.ops.attention.split_heads_attention"),
                              params=_sdpa_import),),
    doc="Scaled dot-product attention softmax(q k^T * scale) v, as torch's F.scaled_dot_product_attention, on "
        "[B, heads, T, D] (or [B, T, D]) query, key and value; with `heads`, on [B, T, E] split into that many heads "
        "and merged back. `causal` masks the positions after each query."))
