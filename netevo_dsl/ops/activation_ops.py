"""Activation ops (`relu()`, `gelu()`, ..., and the WANN set), one module each so hooks see their outputs."""
from .activations import NETWORK_ACTIVATIONS
from .registry import Channels, OpDef, ParamDef, ShapeFailure, register, src

# Activations with a torch.nn class of their own; the rest use compiler.modules.Activation.
_NN_CLASSES = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _build(name):
    def build(shapes, p):
        import torch.nn as nn

        from ..compiler.modules import Activation

        return getattr(nn, _NN_CLASSES[name])() if name in _NN_CLASSES else Activation(name)

    return build


def _emit(name):
    def emit(shapes, p, mask_expr=None):
        return f"nn.{_NN_CLASSES[name]}()" if name in _NN_CLASSES else f"Activation({name!r})"

    return emit


for _act in NETWORK_ACTIVATIONS:
    register(OpDef(
        name=_act.name, params=(), infer=lambda shapes, p: shapes[0], build=_build(_act.name), emit=_emit(_act.name),
        helper_classes=() if _act.name in _NN_CLASSES else ("Activation",), coupling="elementwise",
        activation=_act.name, doc=_act.doc or f"{_act.name} activation."))


def _softmax_infer(shapes, p):
    (x,) = shapes
    d = int(p["dim"])
    if not -len(x) <= d < len(x):  # torch would only refuse it in forward
        raise ShapeFailure(f"dim {d} is out of range for rank {len(x)}", f"dim is -{len(x)}..{len(x) - 1}")
    return x


def _softmax_build(shapes, p):
    import torch.nn as nn

    return nn.Softmax(dim=int(p["dim"]))


register(OpDef(name="softmax", params=(ParamDef("dim", "int", -1),), infer=_softmax_infer,
               build=_softmax_build, emit=lambda shapes, p, mask_expr=None: f"nn.Softmax(dim={src(p['dim'])})",
               coupling="elementwise", activation="softmax",
               channels=Channels(mixes_channels=True), doc="Softmax along `dim`."))
