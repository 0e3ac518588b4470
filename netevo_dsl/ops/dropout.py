"""dropout(p=0.5): identity in eval mode."""
from .registry import OpDef, ParamDef, ShapeFailure, TorchImport, register, src


def infer(shapes, p):
    if not 0.0 <= float(p["p"]) < 1.0:
        raise ShapeFailure(f"dropout probability must be in [0, 1), got {p['p']}")
    return shapes[0]


def build(shapes, p):
    import torch.nn as nn

    return nn.Dropout(float(p["p"]))


def _import(call):
    return {"p": float(call.module.p if call.module is not None else call.arg(1, "p", 0.5))}


register(OpDef(name="dropout", params=(ParamDef("p", "float", 0.5),), infer=infer, build=build,
               emit=lambda shapes, p, mask_expr=None: f"nn.Dropout({src(float(p['p']))})",
               coupling="elementwise", neuron_axis=None,
               torch_import=(TorchImport(modules=("torch.nn.Dropout",),
                                         functions=("torch.nn.functional.dropout", "torch.ops.aten.dropout.default"),
                                         params=_import),),
               doc="Dropout; identity in eval mode."))


def _depth_infer(shapes, p):
    if not 0.0 <= float(p["p"]) <= 1.0:
        raise ShapeFailure(f"stochastic depth drops with a probability in [0, 1], got {p['p']}")
    if not shapes[0]:
        raise ShapeFailure("stochastic depth needs a batch axis; got a scalar")
    return shapes[0]


def _depth_build(shapes, p):
    from ..compiler.modules import StochasticDepth

    return StochasticDepth(float(p["p"]), p["mode"])


def _depth_import(call):
    if call.module is not None:
        return {"p": float(call.module.p), "mode": call.module.mode}
    # the function's `training` argument is the caller's self.training, constant in the trace: the op takes
    # its mode from the compiled network's train() / eval() instead
    return {"p": float(call.arg(1, "p", None)), "mode": call.arg(2, "mode", None)}


register(OpDef(name="stochastic_depth", params=(ParamDef("p", "float"), ParamDef("mode", "str", "row",
                                                                                 choices=("row", "batch"))),
               infer=_depth_infer, build=_depth_build,
               emit=lambda shapes, p, mask_expr=None: f"StochasticDepth({src(float(p['p']))}, {src(p['mode'])})",
               helper_classes=("StochasticDepth",), coupling="elementwise", neuron_axis=None,
               torch_import=(TorchImport(modules=("torchvision.ops.StochasticDepth",),
                                         functions=("torchvision.ops.stochastic_depth",), params=_depth_import),),
               doc="Stochastic depth (torchvision's): identity in eval; in training drops whole samples "
                   "(`row`) or the batch (`batch`) with probability p, scaling the rest by 1 / (1 - p)."))


# Channel dropout (Tompson et al. 2015, "spatial dropout"): nn.Dropout1d / 2d / 3d by the input's rank, [B, C, ...].
_CHANNEL_DROPOUT = {3: "Dropout1d", 4: "Dropout2d", 5: "Dropout3d"}


def _channel_infer(shapes, p):
    infer(shapes, p)
    if len(shapes[0]) not in _CHANNEL_DROPOUT:
        raise ShapeFailure(f"channel dropout takes [B, C, L], [B, C, H, W] or [B, C, D, H, W], got rank "
                           f"{len(shapes[0])}", "use dropout() for other shapes")
    return shapes[0]


def _channel_build(shapes, p):
    import torch.nn as nn

    return getattr(nn, _CHANNEL_DROPOUT[len(shapes[0])])(float(p["p"]))


def _channel_import(call):
    rank = len(call.in_shapes[0])
    name = type(call.module).__name__ if call.module is not None else f"dropout{rank - 2}d"
    if _CHANNEL_DROPOUT.get(rank, "").lower() != name.lower():
        raise Unimportable(f"{name} on a rank-{rank} input; the op takes Dropout1d on [B, C, L], Dropout2d on "
                           "[B, C, H, W], Dropout3d on [B, C, D, H, W]")
    return _import(call)


register(OpDef(name="channel_dropout", params=(ParamDef("p", "float", 0.5),), infer=_channel_infer,
               build=_channel_build,
               emit=lambda shapes, p, mask_expr=None: f"nn.{_CHANNEL_DROPOUT[len(shapes[0])]}({src(float(p['p']))})",
               coupling="elementwise", neuron_axis=None,
               torch_import=(TorchImport(modules=("torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d"),
                                         functions=("torch.nn.functional.dropout1d", "torch.nn.functional.dropout2d",
                                                    "torch.nn.functional.dropout3d"),
                                         params=_channel_import),),
               doc="Channel dropout: in training zeroes whole channels of [B, C, ...] with probability p and scales "
                   "the rest by 1 / (1 - p) (nn.Dropout1d/2d/3d by rank); identity in eval mode."))
