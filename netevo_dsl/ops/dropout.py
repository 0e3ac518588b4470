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
               torch_import=(TorchImport(modules=("torch.nn.Dropout",), functions=("torch.nn.functional.dropout",),
                                         params=_import),),
               doc="Dropout; identity in eval mode."))
