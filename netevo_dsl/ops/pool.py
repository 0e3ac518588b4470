"""Pooling: maxpool1d/2d, avgpool1d/2d (k, stride=k, pad=0, ceil_mode, count_include_pad), adaptive_avgpool(size).

`k`, `stride` and `pad` are one integer for every spatial axis, or a list of one per axis (`k=[3, 1]`)."""
from ..ir.dims import Dim
from .registry import (OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, ival, per_axis, rank, register, single,
                       sizes, src)


def pooled_size(size, k: int, s: int, pad: int, ceil_mode: bool):
    """PyTorch's pooling output size (aten pooling_output_shape): floor((size + 2 pad - k) / s) + 1, or with
    `ceil_mode` the ceiling, less one where the last window would start past the input and its left padding."""
    size = Dim.of(size)
    out = (size + 2 * pad - k + (s - 1 if ceil_mode else 0)) // s + 1
    if not ceil_mode:
        return out
    if out.is_concrete and size.is_concrete:
        return out - 1 if (out.value - 1) * s >= size.value + pad else out
    # (out - 1) s <= size + 2 pad - k + s - 1, so the last window starts inside when s <= k - pad
    if s > k - pad:
        raise ShapeFailure(f"ceil_mode with stride {s} above k - pad = {k - pad} needs a concrete size, got {size}",
                           "give the input a concrete size, or use stride <= k - pad")
    return out


def _pool_infer(spatial):
    def infer(shapes, p):
        (x,) = shapes
        rank(x, spatial + 2)
        out = []
        for size, (k, s, pad) in zip(x[2:], _axes(p, spatial)):
            if pad * 2 > k:
                raise ShapeFailure(f"pool padding {pad} is more than half the kernel {k}")
            out.append(pooled_size(size, k, s, pad, bool(p["ceil_mode"])))
        for size, o in zip(x[2:], out):
            if o.is_concrete and o.value < 1:
                raise ShapeFailure(f"pool output size would be {o} for input size {size}",
                                   "use a smaller kernel or stride, or pool an earlier, larger tensor")
        return (*x[:2], *out)

    return infer


def _axes(p, spatial: int):
    """(k, stride, pad) of each spatial axis, concrete; the stride defaults to the kernel."""
    k = [ival(v) for v in per_axis(p["k"], spatial, "k")]
    s = k if p["stride"] is None else [ival(v) for v in per_axis(p["stride"], spatial, "stride")]
    pad = [ival(v) for v in per_axis(p["pad"], spatial, "pad")]
    return list(zip(k, s, pad))


def _torch_size(value):
    return tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)


def _options(kind, p) -> dict:
    """Keyword arguments of nn.MaxPool / nn.AvgPool beyond the kernel size that differ from PyTorch's defaults."""
    options = {}
    if p["stride"] is not None and p["stride"] != p["k"]:
        options["stride"] = _torch_size(p["stride"])
    if p["pad"] != 0:
        options["padding"] = _torch_size(p["pad"])
    if p["ceil_mode"]:
        options["ceil_mode"] = True
    if kind == "Avg" and not p["count_include_pad"]:
        options["count_include_pad"] = False
    return options


def _pool_build(kind, spatial):
    def build(shapes, p):
        import torch.nn as nn

        return getattr(nn, f"{kind}Pool{spatial}d")(_torch_size(p["k"]), **_options(kind, p))

    return build


def _pool_emit(kind, spatial):
    def emit(shapes, p, mask_expr=None):
        args = [src(p["k"])] + [f"{name}={src(v)}" for name, v in _options(kind, p).items()]
        return f"nn.{kind}Pool{spatial}d({', '.join(args)})"

    return emit


# Positions of the functional arguments after the input: F.max_poolNd(input, kernel_size, stride, padding,
# dilation, ceil_mode, return_indices), F.avg_poolNd(input, kernel_size, stride, padding, ceil_mode,
# count_include_pad, divisor_override).
_MAX_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_ARGS = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False,
             "count_include_pad": True, "divisor_override": None}


def _pool_import(kind):
    def params(call):
        names = _MAX_ARGS if kind == "Max" else _AVG_ARGS
        if call.module is not None:
            a = {n: getattr(call.module, n, _DEFAULTS.get(n)) for n in names}
        else:
            a = {n: call.arg(i + 1, n, _DEFAULTS.get(n, None)) for i, n in enumerate(names)}
        if single(a.get("dilation", 1), "dilation") != 1 or a.get("return_indices"):
            raise Unimportable("max pooling with dilation or return_indices")
        if a.get("divisor_override") is not None:
            raise Unimportable("average pooling with a divisor_override")
        k = sizes(a["kernel_size"], "kernel_size")
        stride = sizes(a["stride"] if a["stride"] not in (None, [], ()) else k, "stride")
        out = {"k": k, "stride": None if stride == k else stride, "pad": sizes(a["padding"], "padding"),
               "ceil_mode": bool(a["ceil_mode"])}
        if kind == "Avg":
            out["count_include_pad"] = bool(a["count_include_pad"])
        return out

    return params


for _kind in ("Max", "Avg"):
    for _spatial in (1, 2):
        _fn = f"{_kind.lower()}_pool{_spatial}d"
        register(OpDef(
            name=f"{_kind.lower()}pool{_spatial}d",
            params=(ParamDef("k", "size", minimum=1, doc="window, or a list of one per spatial axis"),
                    ParamDef("stride", "size", None, minimum=1, doc="defaults to k"),
                    ParamDef("pad", "size", 0, minimum=0),
                    ParamDef("ceil_mode", "bool", False, doc="round the output size up, as PyTorch's ceil_mode"))
            + ((ParamDef("count_include_pad", "bool", True, doc="padding zeros count in the average"),)
               if _kind == "Avg" else ()),
            infer=_pool_infer(_spatial), build=_pool_build(_kind, _spatial), emit=_pool_emit(_kind, _spatial),
            coupling="elementwise", neuron_axis=1,
            torch_import=(TorchImport(modules=(f"torch.nn.{_kind}Pool{_spatial}d",),
                                      functions=(f"torch.nn.functional.{_fn}", f"torch.{_fn}"),
                                      params=_pool_import(_kind)),),
            doc=f"{_kind} pooling; stride defaults to k."))


def _adaptive_infer(shapes, p):
    (x,) = shapes
    rank(x, 3, 4)
    return (*x[:2], *([p["size"]] * (len(x) - 2)))


def _adaptive_build(shapes, p):
    import torch.nn as nn

    return (nn.AdaptiveAvgPool1d if len(shapes[0]) == 3 else nn.AdaptiveAvgPool2d)(int(p["size"]))


def _adaptive_emit(shapes, p, mask_expr=None):
    return f"nn.AdaptiveAvgPool{len(shapes[0]) - 2}d({src(p['size'])})"


register(OpDef(name="adaptive_avgpool", params=(ParamDef("size", "int", 1, minimum=1),), infer=_adaptive_infer,
               build=_adaptive_build, emit=_adaptive_emit, coupling="elementwise", neuron_axis=1,
               torch_import=(TorchImport(
                   modules=("torch.nn.AdaptiveAvgPool1d", "torch.nn.AdaptiveAvgPool2d"),
                   functions=("torch.nn.functional.adaptive_avg_pool1d", "torch.nn.functional.adaptive_avg_pool2d"),
                   params=lambda c: {"size": single(c.module.output_size if c.module is not None
                                                    else c.arg(1, "output_size", None), "output_size")}),),
               doc="Adaptive average pooling to `size` per spatial axis (1-D or 2-D by input rank)."))
