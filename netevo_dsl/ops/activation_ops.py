"""Activation ops (`relu()`, `gelu()`, ..., and the WANN set), one module each so hooks see their outputs."""
from .activations import NETWORK_ACTIVATIONS
from .registry import Channels, OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, register, src

# Activations with a torch.nn class of their own; the rest use compiler.modules.Activation.
_NN_CLASSES = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "relu6": "ReLU6",
               "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid"}


# The PyTorch spellings `netevo import` maps onto each activation: modules, functions, tensor methods.
_F = "torch.nn.functional."
_TORCH = {
    "relu": (("torch.nn.ReLU",), ("torch.relu", _F + "relu"), ("relu",)),
    "tanh": (("torch.nn.Tanh",), ("torch.tanh", _F + "tanh"), ("tanh",)),
    "sigmoid": (("torch.nn.Sigmoid",), ("torch.sigmoid", _F + "sigmoid"), ("sigmoid",)),
    "silu": (("torch.nn.SiLU",), (_F + "silu",), ()),
    "gelu": (("torch.nn.GELU",), (_F + "gelu",), ()),
    "gelu_tanh": (("torch.nn.GELU",), (_F + "gelu",), ()),
    "relu6": (("torch.nn.ReLU6",), (_F + "relu6",), ()),
    "hardswish": (("torch.nn.Hardswish",), (_F + "hardswish",), ()),
    "hardsigmoid": (("torch.nn.Hardsigmoid",), (_F + "hardsigmoid",), ()),
}


def _one_tensor(call):
    if len(call.in_shapes) != 1:
        raise Unimportable(f"{len(call.in_shapes)} tensors")  # concat takes two or more
    return {}


# Calls that are the identity: nn.Identity, x.contiguous() (a copy in memory order), torch.cat of one tensor
# (densenet's first dense layer concatenates the list [x]).
_IDENTITY_IMPORTS = (TorchImport(modules=("torch.nn.Identity",), methods=("contiguous",)),
                     TorchImport(functions=("torch.cat", "torch.concat"), params=_one_tensor))


def _gelu_approximate(want):
    def params(call):
        got = call.module.approximate if call.module is not None else call.arg(1, "approximate", "none")
        if got != want:
            raise Unimportable(f"approximate={got!r}")  # the other gelu op takes it
        return {}

    return params


def _torch_import(name):
    if name == "identity":
        return _IDENTITY_IMPORTS
    if name not in _TORCH:
        return ()
    modules, functions, methods = _TORCH[name]
    rule = {"gelu": _gelu_approximate("none"), "gelu_tanh": _gelu_approximate("tanh")}.get(name, lambda call: {})
    extra = ((TorchImport(modules=("transformers.activations.NewGELUActivation",
                                   "transformers.activations.GELUTanh")),) if name == "gelu_tanh" else ())
    return (TorchImport(modules=modules, functions=functions, methods=methods, params=rule),) + extra


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


# --- bounded: hardtanh(min, max) (a module, as nn.Hardtanh), clamp(min, max) (a tensor method, no module) ---


def _bounds(name, allow_equal):
    def infer(shapes, p):
        low, high = p["min"], p["max"]
        if low is None and high is None:
            raise ShapeFailure(f"{name} needs `min`, `max` or both", f"e.g. {name}(x, min=0.0, max=6.0)")
        if low is not None and high is not None and (low > high or (low == high and not allow_equal)):
            raise ShapeFailure(f"{name}: min {low} is {'above' if low > high else 'equal to'} max {high}",
                               "give min below max")
        return shapes[0]

    return infer


def _hardtanh_import(call):
    if call.module is not None:
        return {"min": float(call.module.min_val), "max": float(call.module.max_val)}
    return {"min": float(call.arg(1, "min_val", -1.0)), "max": float(call.arg(2, "max_val", 1.0))}


def _hardtanh_build(shapes, p):
    import torch.nn as nn

    return nn.Hardtanh(float(p["min"]), float(p["max"]))


register(OpDef(
    name="hardtanh", params=(ParamDef("min", "float", -1.0), ParamDef("max", "float", 1.0)),
    infer=_bounds("hardtanh", allow_equal=False), build=_hardtanh_build,
    emit=lambda shapes, p, mask_expr=None: f"nn.Hardtanh({src(float(p['min']))}, {src(float(p['max']))})",
    coupling="elementwise",
    torch_import=(TorchImport(modules=("torch.nn.Hardtanh",), functions=(_F + "hardtanh",), params=_hardtanh_import),),
    doc="min(max(x, min), max) as nn.Hardtanh; min < max (relu6 is hardtanh(min=0.0, max=6.0))."))


def _clamp_import(call):
    if len(call.in_shapes) > 1:
        raise Unimportable("bounds that are tensors; clamp takes numbers")
    low, high = call.arg(1, "min", None), call.arg(2, "max", None)
    return {"min": None if low is None else float(low), "max": None if high is None else float(high)}


def _clamp_src(xs, p, s=src):
    bounds = [f"{k}={s(float(p[k]))}" for k in ("min", "max") if p[k] is not None]
    return f"{xs[0]}.clamp({', '.join(bounds)})"


register(OpDef(
    name="clamp", params=(ParamDef("min", "float", None), ParamDef("max", "float", None)),
    infer=_bounds("clamp", allow_equal=True), module=False,
    functional=lambda t, p: t[0].clamp(min=p["min"], max=p["max"]), emit_functional=_clamp_src,
    coupling="elementwise",
    torch_import=(TorchImport(functions=("torch.clamp", "torch.clip"), methods=("clamp", "clip"),
                              params=_clamp_import),),
    doc="x.clamp(min, max), either bound may be left out; no module."))
