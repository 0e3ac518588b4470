"""Is a mutant valid? `check` passes, it compiles, and its emitted source runs at the declared shapes.

`validate_ir`: `check`, then the compiled module is built on the meta device
(no memory, no initialisation).

`validate_source`: the emitted standalone source is exec'd, its model is
instantiated and run forward on a small concrete input, and every output must
have the declared shape. A network runs (in eval mode) at the smallest sizes
its symbolic shapes allow (`smallest_sizes`: each symbol the least power of
two up to its default at which every elaborated size is a whole number of at
least 1; resnet18: B=1, H=W=32, since its shapes hold H / 32); should the
forward fail there, it is run again at the defaults (B=2, H=W=32, T=8, others
8), so no mutant valid at the defaults is rejected. Genomes run at the
defaults. On `device="cpu"` (the default) the forward pass computes values
with zeroed, never initialised, weights; on `"meta"` it computes shapes only
(slower in practice: meta kernels of norms are Python).
"""
from __future__ import annotations

import contextlib
import functools

import attrs

from ...errors import CompileError, NetevoError
from ...ir import nodes as ir
from ...ir.dims import Dim

SMALL_SIZES = {"B": 2, "H": 32, "W": 32, "T": 8, "L": 32}
OTHER_SIZE = 8


class InvalidMutant(NetevoError):
    """A mutant that passed `check` but whose emitted source failed to run or gave other shapes."""

    code = "E091"


@attrs.frozen
class Validation:
    level: str  # "ir" or "source"
    graphs: dict  # network name -> Graph, from check


def _item(spec, name):
    items = spec.networks + spec.genomes
    if name is not None:
        return spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))
    return items[0] if len(items) == 1 else None


def validate_ir(spec: ir.Spec, name: str | None = None, overrides=None, check_result=None) -> Validation:
    """`check` plus a compiled module on the meta device. Raises NetevoError when invalid."""
    from ...passes.check import check

    result = check_result or check(spec, overrides)
    item = _item(spec, name)
    if isinstance(item, ir.Network):
        import torch

        from ...compiler.build import CompiledNetwork

        with torch.device("meta"):
            CompiledNetwork(result.graphs[item.name])
    else:
        from ...compiler import compile_module

        compile_module(spec, name=name, device="meta", overrides=overrides)
    return Validation("ir", result.graphs)


def concrete(shape, sizes: dict) -> tuple[int, ...]:
    out = []
    for d in shape:
        d = Dim.of(d)
        mapping = {s: Dim.of(sizes.get(s, OTHER_SIZE)) for s in d.symbols()}
        v = d.substitute(mapping) if mapping else d
        if not v.is_int():
            raise InvalidMutant(f"size {d} is not an integer at the test sizes {mapping}")
        out.append(int(v))
    return tuple(out)


_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def smallest_sizes(graph) -> dict:
    """Per symbol, the least power of two (up to its default size) at which every size in the graph is a
    whole number of at least 1, the other symbols held at their own; the defaults where none is smaller."""
    dims = set()
    for shape in [i.shape for i in graph.inputs] + [s for node in graph.nodes for s in _shapes(node)]:
        dims.update(d for d in map(Dim.of, shape) if not d.is_concrete)
    return dict(_smallest(frozenset(dims)))


def _shapes(node) -> tuple:
    return node.shape if node.shape and isinstance(node.shape[0], tuple) else (node.shape,)


@functools.lru_cache(maxsize=256)
def _smallest(dims: frozenset) -> tuple:
    symbols = sorted(set().union(*(d.symbols() for d in dims)))
    sizes = {s: SMALL_SIZES.get(s, OTHER_SIZE) for s in symbols}

    def fits(trial: dict) -> bool:
        mapping = {s: Dim.of(v) for s, v in trial.items()}
        for d in dims:
            v = d.substitute(mapping)
            if not v.is_int() or int(v) < 1:
                return False
        return True

    if fits(sizes):
        for s in symbols:
            sizes[s] = next((v for v in _LADDER if v < sizes[s] and fits({**sizes, s: v})), sizes[s])
    return tuple(sizes.items())


def _index_inputs(graph) -> set[str]:
    """Inputs that hold indices, not features: read by an op whose registry entry says so (an embedding)."""
    from ...ops.registry import get_op

    names = {i.name for i in graph.inputs}
    return {ref for node in graph.nodes if not get_op(node.op).channels.consumes_input
            for ref in node.inputs if ref in names}


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")


@contextlib.contextmanager
def _skipped_init():
    """Layers are allocated but not initialised: a shape check needs no random weights, and
    initialising them costs more than the forward pass (ResNet-18: ~0.2 s). Weights are zeroed
    afterwards, so the forward pass sees no uninitialised memory. `torch.nn.init` is patched
    while the model is built: do not build other models in other threads meanwhile."""
    import torch.nn.init as init

    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
    try:
        for name in saved:
            setattr(init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def _instantiate(factory, device: str):
    import torch

    if device == "meta":
        with torch.device("meta"):
            return factory().to("meta")
    with _skipped_init():
        model = factory()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model.to(device)


def validate_source(spec: ir.Spec, name: str | None = None, overrides=None, device: str = "cpu",
                    sizes: dict | None = None, check_result=None) -> Validation:
    """`check`, then emit the source, exec it, run it forward and compare output shapes."""
    import torch

    from ...passes.check import check

    result = check_result or check(spec, overrides)
    item = _item(spec, name)
    if isinstance(item, ir.Network):
        from ...compiler.emit import class_name, emit_network_source

        graph = result.graphs[item.name]
        source = emit_network_source(spec, item.name, overrides)
        namespace: dict = {}
        exec(compile(source, f"<mutant {item.name}>", "exec"), namespace)
        model = _instantiate(namespace[class_name(item.name)], device).eval()
        if sizes is None:
            try:
                _run_network(model, graph, {**SMALL_SIZES, **smallest_sizes(graph)}, device, item.name)
                return Validation("source", result.graphs)
            except Exception:  # noqa: BLE001 - judged again at the default sizes, as before
                pass
        _run_network(model, graph, {**SMALL_SIZES, **(sizes or {})}, device, item.name)
        return Validation("source", result.graphs)
    sizes = {**SMALL_SIZES, **(sizes or {})}
    if isinstance(item, ir.TransformerGenome):
        from ...compiler.transformer import config_of, emit_transformer_source

        cfg = config_of(item)
        source = emit_transformer_source(item)
        namespace = {}
        exec(compile(source, f"<mutant {item.name}>", "exec"), namespace)
        model = _instantiate(namespace["build"], device)
        t = min(sizes["T"], cfg.context)
        inputs = [torch.zeros((sizes["B"], t), dtype=torch.long, device=device)]
        expected = [(sizes["B"], t, cfg.vocab)]
    elif isinstance(item, ir.WannGenome):
        return _validate_wann(spec, item, result, sizes)
    else:
        raise CompileError(f"nothing to validate: no network or genome named `{name}`")
    with torch.no_grad():
        out = model(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    got = [tuple(o.shape) for o in outs]
    if got != expected:
        raise InvalidMutant(f"`{item.name}`: emitted source gives output shapes {got}, declared {expected}")
    return Validation("source", result.graphs)


def _run_network(model, graph, sizes: dict, device: str, name: str) -> None:
    """Run `model` forward on zeros at `sizes`; every output must have the declared shape."""
    import torch

    index = _index_inputs(graph)
    inputs = [torch.zeros(concrete(i.shape, sizes), dtype=torch.long if i.name in index else torch.float32,
                          device=device) for i in graph.inputs]
    expected = [concrete(graph.shape_of(ref), sizes) for _, ref in graph.outputs]
    with torch.no_grad():
        out = model(*inputs)
    got = [tuple(o.shape) for o in (out if isinstance(out, tuple) else (out,))]
    if got != expected:
        raise InvalidMutant(f"`{name}`: emitted source gives output shapes {got}, declared {expected}")


def _validate_wann(spec, genome, result, sizes) -> Validation:
    """WANN genomes: the emitted module maps x [B, inputs] to [weights, B, outputs]."""
    import torch

    from ...compiler.emit import class_name
    from ...compiler.wann import emit_wann_source
    from ...ir.wann import observation_inputs, output_names, shared_weights

    source = emit_wann_source(genome)
    namespace: dict = {}
    exec(compile(source, f"<mutant {genome.name}>", "exec"), namespace)
    model = namespace[class_name(genome.name)]()
    with torch.no_grad():
        y = model(torch.zeros((sizes["B"], len(observation_inputs(genome)))))
    expected = (len(shared_weights(genome)), sizes["B"], len(output_names(genome)))
    if tuple(y.shape) != expected:
        raise InvalidMutant(f"`{genome.name}`: emitted source gives {tuple(y.shape)}, expected {expected}")
    return Validation("source", result.graphs)


__all__ = ["validate_ir", "validate_source", "Validation", "InvalidMutant", "concrete", "smallest_sizes", "SMALL_SIZES"]
