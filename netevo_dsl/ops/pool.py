"""Pooling: maxpool1d/2d, avgpool1d/2d (k, stride=k, pad=0), adaptive_avgpool(size) for 1-D or 2-D inputs."""
from ..ir.dims import Dim
from .registry import OpDef, ParamDef, ShapeFailure, TorchImport, Unimportable, ival, rank, register, single, src


def _pool_infer(spatial):
    def infer(shapes, p):
        (x,) = shapes
        rank(x, spatial + 2)
        k = ival(p["k"])
        s = ival(p["stride"]) if p["stride"] is not None else k
        pad = ival(p["pad"])
        if pad * 2 > k:
            raise ShapeFailure(f"pool padding {pad} is more than half the kernel {k}")
        out = [(Dim.of(size) + 2 * pad - k) // s + 1 for size in x[2:]]
        for size, o in zip(x[2:], out):
            if o.is_concrete and o.value < 1:
                raise ShapeFailure(f"pool output size would be {o} for input size {size}",
                                   "use a smaller kernel or stride, or pool an earlier, larger tensor")
        return (*x[:2], *out)

    return infer


def _pool_build(kind, spatial):
    def build(shapes, p):
        import torch.nn as nn

        cls = getattr(nn, f"{kind}Pool{spatial}d")
        return cls(int(p["k"]), stride=int(p["stride"] if p["stride"] is not None else p["k"]), padding=int(p["pad"]))

    return build


def _pool_emit(kind, spatial):
    def emit(shapes, p, mask_expr=None):
        args = [src(p["k"])]
        if p["stride"] is not None and p["stride"] != p["k"]:
            args.append(f"stride={src(p['stride'])}")
        if p["pad"] != 0:
            args.append(f"padding={src(p['pad'])}")
        return f"nn.{kind}Pool{spatial}d({', '.join(args)})"

    return emit


def _pool_import(call):
    m = call.module
    if m.ceil_mode:
        raise Unimportable("ceil_mode=True: the pooling ops round the output size down")
    if single(getattr(m, "dilation", 1), "dilation") != 1 or getattr(m, "return_indices", False):
        raise Unimportable("max pooling with dilation or return_indices")
    if not getattr(m, "count_include_pad", True) or getattr(m, "divisor_override", None) is not None:
        raise Unimportable("average pooling with count_include_pad=False or a divisor_override")
    k = single(m.kernel_size, "kernel_size")
    stride = single(m.stride if m.stride is not None else k, "stride")
    return {"k": k, "stride": None if stride == k else stride, "pad": single(m.padding, "padding")}


for _kind in ("Max", "Avg"):
    for _spatial in (1, 2):
        register(OpDef(
            name=f"{_kind.lower()}pool{_spatial}d",
            params=(ParamDef("k", "int", minimum=1), ParamDef("stride", "int", None, minimum=1),
                    ParamDef("pad", "int", 0, minimum=0)),
            infer=_pool_infer(_spatial), build=_pool_build(_kind, _spatial), emit=_pool_emit(_kind, _spatial),
            coupling="elementwise", neuron_axis=1,
            torch_import=(TorchImport(modules=(f"torch.nn.{_kind}Pool{_spatial}d",), params=_pool_import),),
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
