"""Activation ops (`relu()`, `gelu()`, ..., and the WANN set), one module each so hooks see their outputs."""
from .activations import NETWORK_ACTIVATIONS
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, register, src

# Activations with a torch.nn class of their own; the rest use compiler.modules.Activation.
_NN_CLASSES = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


# The PyTorch spellings `netevo import` maps onto each activation: modules, functions, tensor methods.
_F = "torch.nn.functional."
_TORCH = {
    "relu": (("torch.nn.ReLU",), ("torch.relu", _F + "relu"), ("relu",)),
    "tanh": (("torch.nn.Tanh",), ("torch.tanh", _F + "tanh"), ("tanh",)),
    "sigmoid": (("torch.nn.Sigmoid",), ("torch.sigmoid", _F + "sigmoid"), ("sigmoid",)),
    "silu": (("torch.nn.SiLU",), (_F + "silu",), ()),
    "gelu": (("torch.nn.GELU",), (_F + "gelu",), ()),
    "gelu_tanh": (("torch.nn.GELU",), (_F + "gelu",), ()),
}


def _gelu_approximate(want):
    def params(call):
        got = call.module.approximate if call.module is not None else call.arg(1, "approximate", "none")
        if got != want:
            raise Unimportable(f"approximate={got!r}")  # the other gelu op takes it
        return {}

    return params


def _torch_import(name):
    if name not in _TORCH:
        return ()
    modules, functions, methods = _TORCH[name]
    rule = {"gelu": _gelu_approximate("none"), "gelu_tanh": _gelu_approximate("tanh")}.get(name, lambda call: {})
    return (TorchImport(modules=modules, functions=functions, methods=methods, params=rule),)


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
        activation=_act.name, torch_import=_torch_import(_act.name), doc=_act.doc or f"{_act.name} activation."))


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
               channels=Channels(mixes_channels=True),
               torch_import=(TorchImport(modules=("torch.nn.Softmax",), functions=("torch.softmax", _F + "softmax"),
                                         methods=("softmax",), params=lambda c: {"dim": _softmax_dim(c)}),),
               doc="Softmax along `dim`."))


def _softmax_dim(call):
    dim = call.module.dim if call.module is not None else call.arg(1, "dim", None)
    if dim is None:
        raise Unimportable("softmax without an explicit dim")
    return int(dim)
