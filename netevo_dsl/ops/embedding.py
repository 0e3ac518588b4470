"""embedding(vocab, dim) for integer tokens [B, T]; pos_embedding(context) adds learned positions."""
from .registry import Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, rank, register, src


def _emb_infer(shapes, p):
    (x,) = shapes
    return (*x, p["dim"])


def _emb_build(shapes, p):
    import torch.nn as nn

    return nn.Embedding(int(p["vocab"]), int(p["dim"]))


register(OpDef(name="embedding", params=(ParamDef("vocab", "int", minimum=1), ParamDef("dim", "int", minimum=1)),
               infer=_emb_infer, build=_emb_build,
               emit=lambda shapes, p, mask_expr=None: f"nn.Embedding({src(p['vocab'])}, {src(p['dim'])})",
               coupling="produce", neuron_axis=-1,
               channels=Channels(sites=(ChannelSite("weight", 1, "out", "produce"),), width_param="dim",
                                 consumes_input=False),
               n_params=lambda shapes, p: p["vocab"] * p["dim"],
               doc="Token embedding: integer ids [..] to vectors [.., dim]."))


def _pos_infer(shapes, p):
    (x,) = shapes
    rank(x, 3)
    from ..ir.dims import Dim

    t = Dim.of(x[1])
    if t.is_concrete and t.value > Dim.of(p["context"]).value:
        raise ShapeFailure(f"sequence length {t} exceeds the context {p['context']}")
    return x


def _pos_build(shapes, p):
    from ..compiler.modules import PositionalEmbedding

    return PositionalEmbedding(int(p["context"]), int(shapes[0][-1]))


register(OpDef(name="pos_embedding", params=(ParamDef("context", "int", minimum=1),), infer=_pos_infer,
               build=_pos_build,
               emit=lambda shapes, p, mask_expr=None: f"PositionalEmbedding({src(p['context'])}, {src(shapes[0][-1])})",
               helper_classes=("PositionalEmbedding",), n_params=lambda shapes, p: p["context"] * shapes[0][-1],
               coupling="elementwise", neuron_axis=-1,
               channels=Channels(sites=(ChannelSite("weight", 1, "in", "follow"),)),
               doc="x + learned position embedding (GPT-2's wpe), x: [B, T, E]."))
