"""The compiler: IR to torch.nn.Modules (build.py) and to standalone Python source (emit.py).

Networks compile from their elaborated graph; WANN genomes through compiler.wann;
transformer genomes through compiler.transformer.
"""
from __future__ import annotations

from ..errors import CompileError
from ..ir import nodes as ir


def _pick(spec, name):
    items = spec.networks + spec.genomes
    if name is not None:
        item = spec.find(name, (ir.Network, ir.WannGenome, ir.TransformerGenome))
        if item is None:
            from ..errors import did_you_mean

            raise CompileError(f"no network or genome named `{name}`", None,
                               did_you_mean(name, [i.name for i in items]))
        return item
    if len(items) != 1:
        raise CompileError(f"the spec defines {len(items)} networks and genomes", None,
                           "pick one: " + ", ".join(i.name for i in items) if items else "declare a network")
    return items[0]


def compile_module(spec, name=None, device=None, dtype=None, overrides=None):
    from ..passes.check import check

    if isinstance(spec, (ir.WannGenome, ir.TransformerGenome)):
        spec = ir.Spec((spec,))
    check(spec, overrides)
    item = _pick(spec, name)
    if isinstance(item, ir.WannGenome):
        from .wann import compile_wann

        return compile_wann(item, device=device, dtype=dtype)
    if isinstance(item, ir.TransformerGenome):
        from .transformer import compile_transformer

        return compile_transformer(item, device=device, dtype=dtype)
    from ..passes.elaborate import elaborate
    from .build import CompiledNetwork

    graph = elaborate(spec, item.name, overrides)
    if device == "meta":
        import torch

        with torch.device("meta"):
            module = CompiledNetwork(graph)
    else:
        module = CompiledNetwork(graph)
    return module.to(device=device if device != "meta" else None, dtype=dtype) if (device or dtype) else module


def emit_source(spec, name=None, overrides=None) -> str:
    from ..passes.check import check

    if isinstance(spec, (ir.WannGenome, ir.TransformerGenome)):
        spec = ir.Spec((spec,))
    check(spec, overrides)
    item = _pick(spec, name)
    if isinstance(item, ir.WannGenome):
        from .wann import emit_wann_source

        return emit_wann_source(item)
    if isinstance(item, ir.TransformerGenome):
        from .transformer import emit_transformer_source

        return emit_transformer_source(item)
    from .emit import emit_network_source

    return emit_network_source(spec, item.name, overrides)
