"""embedding(vocab, dim) for integer tokens [B, T]; pos_embedding(context) adds learned positions."""
from .registry import Channels, ChannelSite, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, rank, register, src


def _keeps_forward(m):
    if m.max_norm is not None:
        raise Unimportable(f"max_norm={m.max_norm}: nn.Embedding renormalises its weights in forward")
    if m.scale_grad_by_freq or m.sparse:
        raise Unimportable("scale_grad_by_freq / sparse gradients: the op keeps the dense default")


def _emb_import(call):
    """nn.Embedding looking up token ids [.., T] -> [.., T, dim]."""
    m = call.module
    _keeps_forward(m)
    if tuple(call.out_shape) != (*call.in_shapes[0], m.embedding_dim):
        raise Unimportable("not a lookup of token ids")
    return {"vocab": m.num_embeddings, "dim": m.embedding_dim}


def _pos_import(call):
    """nn.Embedding of the positions 0..T-1 added to x [B, T, E] (GPT-2's `x + wpe(arange(T))`): the export importer
    gives such a call x as its input (importer/export_import.py)."""
    m = call.module
    _keeps_forward(m)
    x = tuple(call.in_shapes[0])
    if len(x) != 3 or tuple(call.out_shape) != x or x[-1] != m.embedding_dim:
        raise Unimportable("token ids are looked up by the `embedding` op")
    return {"context": m.num_embeddings}


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
               torch_import=(TorchImport(modules=("torch.nn.Embedding",), params=_emb_import),),
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
               torch_import=(TorchImport(modules=("torch.nn.Embedding",), params=_pos_import),),
               doc="x + learned position embedding (GPT-2's wpe), x: [B, T, E]."))
