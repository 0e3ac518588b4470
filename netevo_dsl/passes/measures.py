"""Size and cost of an elaborated network, from its inferred shapes alone (pure Python, no torch, no tracing).

* `param_count(graph)`: trainable parameters, as `sum(p.numel() for p in module.parameters())` of the compiled
  module (a masked layer counts its whole weight; mask buffers and batchnorm statistics are not parameters).
* `flops(graph)`: floating-point operations per sample, counted as torch.utils.flop_counter does: 2 x the
  multiply-adds of matrix products and convolutions (linear, conv, attention's projections and its two
  batched products, GPT-2 MLPs), dense even where a mask zeroes weights (the compiled layer multiplies
  them), elementwise work (activations, norms, adds, pooling) not counted.
* `density(graph)`: the live share of the weights of masked layers (1.0 without masks).

Each op declares its rules in the op registry (`OpDef.macs`, `OpDef.n_params`).
"""
from __future__ import annotations

from ..errors import NetevoError
from ..ir.dims import Dim
from ..ir.graph import Graph
from ..ops.registry import get_op


class MeasureError(NetevoError):
    code = "E134"


def _concrete(graph: Graph, node, shape, batch: bool = True) -> tuple[int, ...]:
    dims = shape[1:] if batch else shape
    out = []
    for d in dims:
        d = Dim.of(d)
        if not d.is_int():
            raise MeasureError(f"`{node}` of network `{graph.name}` has the symbolic size `{d}`: its cost per "
                               "sample is not a number", None, "bind the symbol with a param or -D")
        out.append(int(d))
    return tuple(out)


def _params_of(node) -> dict:
    return {k: (int(v) if isinstance(v, Dim) and v.is_int() else v) for k, v in node.params}


def _shapes(graph: Graph, node):
    return [_concrete(graph, node.name, graph.shape_of(r)) for r in node.inputs]


def param_count(graph: Graph) -> int:
    """Parameters do not depend on the batch or on a symbolic sequence length: those sizes stay symbolic."""
    total = 0
    for node in graph.nodes:
        op = get_op(node.op)
        if op.n_params is None:
            continue
        shapes = [tuple(int(Dim.of(d)) if Dim.of(d).is_int() else Dim.of(d) for d in graph.shape_of(r)[1:])
                  for r in node.inputs]
        n = Dim.of(op.n_params(shapes, _params_of(node)))
        if not n.is_int():
            raise MeasureError(f"`{node.name}` of network `{graph.name}` has {n} parameters, a symbolic count", None,
                               "bind the symbol with a param or -D")
        total += int(n)
    return total


def flops(graph: Graph) -> int:
    """2 x multiply-adds per sample."""
    total = 0
    for node in graph.nodes:
        op = get_op(node.op)
        if op.macs is not None:
            total += 2 * int(op.macs(_shapes(graph, node), _concrete(graph, node.name, node.shape), _params_of(node)))
    return total


def density(graph: Graph) -> float:
    from ..ops.masks import make_mask

    live = total = 0
    for node in graph.nodes:
        p = _params_of(node)
        if not get_op(node.op).weight_bearing or p.get("mask") is None:
            continue
        (x,) = _shapes(graph, node)
        fan_in = x[0] // p.get("groups", 1) if node.op.startswith("conv") else x[-1]
        mask = make_mask(p["mask"], int(p["out"]), int(fan_in))
        live += int(mask.sum())
        total += mask.size
    return live / total if total else 1.0


__all__ = ["param_count", "flops", "density", "MeasureError"]
