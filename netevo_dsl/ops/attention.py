"""GPT-2 sublayers: attention(heads) (causal multi-head self-attention) and gpt2_mlp(hidden, activation)."""
from .registry import Channels, ChannelSite, InternalSpace, OpDef, ParamDef, divisible, rank, register, src


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
