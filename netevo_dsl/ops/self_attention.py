"""self_attention(heads): torch's nn.MultiheadAttention on one [B, T, E] tensor (query = key = value), no mask.

The module is an nn.MultiheadAttention (batch first), so its state-dict keys are torch's: `in_proj_weight`,
`in_proj_bias`, `out_proj.weight`, `out_proj.bias`; a model's `x, _ = self.attn(x, x, x)` imports as it.
"""
from .registry import Channels, ChannelSite, InternalSpace, OpDef, ParamDef, TorchImport, Unimportable, divisible, \
    rank, register, src


def _infer(shapes, p):
    (x,) = shapes
    rank(x, 3)
    divisible("self_attention embedding vs heads", x[-1], p["heads"], "`heads` must divide the embedding size")
    return x


def _build(shapes, p):
    from ..compiler.modules import SelfAttention

    return SelfAttention(int(shapes[0][-1]), int(p["heads"]), bias=p["bias"], dropout=float(p["dropout"]))


def _emit(shapes, p):
    extra = ("" if p["bias"] else ", bias=False") + (f", dropout={src(p['dropout'])}" if p["dropout"] else "")
    return f"SelfAttention({src(shapes[0][-1])}, {src(p['heads'])}{extra})"


def _import(call):
    m = call.module
    if not call.same_tensor:
        raise Unimportable("query, key and value are different tensors; only self-attention imports")
    if not m.batch_first:
        raise Unimportable("batch_first=False: the importer keeps the batch axis first")
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        raise Unimportable("kdim/vdim, add_bias_kv or add_zero_attn: the op projects q, k, v from one tensor")
    for name in ("key_padding_mask", "attn_mask"):
        if call.kwargs.get(name) is not None:
            raise Unimportable(f"`{name}`: the op attends to every position")
    if call.kwargs.get("is_causal"):
        raise Unimportable("is_causal=True: the op attends to every position (GPT-2's `attention` is causal)")
    if m.in_proj_bias is not None and m.out_proj.bias is None:
        raise Unimportable("biases on the input projection only")
    return {"heads": m.num_heads, "bias": m.in_proj_bias is not None, "dropout": float(m.dropout)}


def _macs(shapes, out, p):
    t, e = shapes[0][-2], shapes[0][-1]
    return t * e * 3 * e + 2 * t * t * e + t * e * e  # qkv projection, q k^T, weights x v, output projection


register(OpDef(
    name="self_attention",
    params=(ParamDef("heads", "int", minimum=1), ParamDef("bias", "bool", True), ParamDef("dropout", "float", 0.0)),
    infer=_infer, build=_build, emit=_emit, helper_classes=("SelfAttention",),
    coupling="attention", neuron_axis=-1,
    channels=Channels(
        sites=(ChannelSite("in_proj_weight", 1, "in", "consume"), ChannelSite("out_proj.weight", 0, "out", "produce"),
               ChannelSite("out_proj.bias", 0, "out", "produce"),
               ChannelSite("in_proj_weight", 0, "heads", "produce", copies=3),
               ChannelSite("in_proj_bias", 0, "heads", "produce", copies=3),
               ChannelSite("out_proj.weight", 1, "heads", "consume")),
        internal=(InternalSpace("heads", lambda shapes, p: shapes[0][-1], blocks_param="heads",
                                no_resize="the head size enters attention's 1/sqrt(head_dim) scale"),)),
    macs=_macs, n_params=lambda shapes, p: 4 * shapes[0][-1] * shapes[0][-1] + (4 * shapes[0][-1] if p["bias"] else 0),
    torch_import=(TorchImport(modules=("torch.nn.MultiheadAttention",), params=_import, tuple_first=True),),
    doc="Multi-head self-attention on [B, T, E] (torch's nn.MultiheadAttention, batch first, no mask)."))
