"""Build a torch.nn.Module straight from an elaborated Graph.

Modules are installed at their graph names (`layer1.0.conv1`), so state-dict
keys equal the emitted source's and torchvision's where the spec follows it.
`forward` runs the nodes in order; inputs are checked against the spec's
declared (symbolic) shapes with errors that name the spec input.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from ..errors import RuntimeShapeError
from ..ir.dims import Dim, shape_str
from ..ir.graph import Graph
from ..ops.registry import get_op
from .modules import Scope, make_mask


def _concrete(shape, where: str):
    from ..errors import CompileError

    out = []
    for d in shape:
        d = Dim.of(d)
        if not d.is_int():
            raise CompileError(f"{where}: size `{d}` must be known to build the layer", None,
                               "give the input a concrete size, or bind the symbol with -D / a param")
        out.append(int(d))
    return tuple(out)


def mask_tensor(node, in_shape) -> torch.Tensor | None:
    p = node.param_dict
    if p.get("mask") is None:
        return None
    fan_in = Dim.of(in_shape[1]) / p.get("groups", 1) if node.op.startswith("conv") else Dim.of(in_shape[-1])
    # the function the emitted file copies, so both draw the same mask
    return make_mask(p["mask"].kind, int(p["out"]), int(fan_in), **dict(p["mask"].params))


def build_module(node, in_shapes):
    """The node's nn.Module with concrete sizes (params that are Dims become ints)."""
    op = get_op(node.op)
    params = {k: (int(v) if isinstance(v, Dim) and v.is_int() else v) for k, v in node.params}
    try:
        if op.weight_bearing and params.get("mask") is not None:
            params["mask"] = mask_tensor(node, in_shapes[0])
        return op.build([tuple(Dim.of(d) for d in s) for s in in_shapes], params)
    except ValueError as e:  # int() of a symbolic size the layer needs
        from ..errors import CompileError

        raise CompileError(f"`{node.name}` ({node.op}): {e}; the layer needs a concrete size", node.span,
                           "give the input a concrete size here, or bind the symbol with a param and -D") from None


class CompiledNetwork(nn.Module):
    """A network compiled from a spec. `neuron_sites` tells the tracker each layer's neuron axis."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph_name = graph.name
        self._inputs = [(i.name, i.shape) for i in graph.inputs]
        self._outputs = [ref for _, ref in graph.outputs]
        self._output_names = [name for name, _ in graph.outputs]
        self._steps = []
        self.neuron_sites = {}
        for node in graph.nodes:
            op = get_op(node.op)
            in_shapes = [graph.shape_of(r) for r in node.inputs]
            if op.parameter:  # a bare nn.Parameter at its path, read (not called) in forward
                _install_parameter(self, node.name, build_module(node, in_shapes))
                self._steps.append((node.name, None, node.inputs, node.name))
            elif node.module:
                _install(self, node.name, build_module(node, in_shapes))
                if op.neuron_axis is not None or op.activation:
                    axis = op.neuron_axis if op.neuron_axis is not None else _inherited_axis(graph, node, self.neuron_sites)
                    self.neuron_sites[node.name] = {"axis": axis, "op": node.op, "activation": op.activation}
                self._steps.append((node.name, None, node.inputs, node.name))
            else:
                self._steps.append((None, (op.functional, node.param_dict), node.inputs, node.name))
        self._modules_by_name = None
        self._plan = None

    def _lookup(self):
        if self._modules_by_name is None:
            self._modules_by_name = dict(self.named_modules())
        return self._modules_by_name

    def _run_plan(self):
        """The steps with their modules resolved, refs split, and the values each step uses last."""
        if self._plan is None:
            modules = self._lookup()
            keep = {r.partition(":")[0] for r in self._outputs}
            last = {}
            for i, (_, _, refs, _) in enumerate(self._steps):
                for r in refs:
                    last[r.partition(":")[0]] = i
            plan = []
            for i, (module_name, functional, refs, out) in enumerate(self._steps):
                split = [(b, int(k) if k else None) for b, _, k in (r.partition(":") for r in refs)]
                free = tuple(sorted({b for b, _ in split if last[b] == i and b not in keep}))
                module = modules[module_name] if module_name in modules else _parameter_reader(self, module_name) \
                    if module_name is not None else None
                plan.append((module, functional, split, out, free))
            self._plan = plan
        return self._plan

    def check_inputs(self, tensors):
        bound: dict[str, int] = {}
        for (name, shape), t in zip(self._inputs, tensors):
            ok = t.dim() == len(shape)
            if ok:
                for d, actual in zip(shape, t.shape):
                    d = Dim.of(d)
                    if d.is_concrete:
                        ok = ok and int(d) == actual
                    elif len(d.terms) == 1 and next(iter(d.terms)) != () and len(next(iter(d.terms))) == 1 \
                            and isinstance(next(iter(d.terms))[0], str) and d.terms[next(iter(d.terms))] == 1:
                        sym = next(iter(d.terms))[0]
                        ok = ok and bound.setdefault(sym, actual) == actual
            if not ok:
                raise RuntimeShapeError(f"input `{name}` of network `{self.graph_name}` expects shape {shape_str(shape)}, "
                                        f"got {list(t.shape)}", None,
                                        "symbolic dims (B, H, ...) may take any size, but the same size everywhere")

    def forward(self, *inputs, w=None):
        """Run the network. With `w` (a 1-D tensor of shared weights), every weight-bearing layer
        uses w x mask (no bias) and the outputs get a leading weight dimension [W, ...]."""
        if len(inputs) != len(self._inputs):
            raise RuntimeShapeError(f"network `{self.graph_name}` takes {len(self._inputs)} input(s) "
                                    f"({', '.join(n for n, _ in self._inputs)}), got {len(inputs)}")
        self.check_inputs(inputs)
        if w is not None:
            w = torch.as_tensor(w).flatten()
            # The weight dim is folded into the batch: [W * B, ...]; only weight-bearing layers unfold it.
            inputs = tuple(t.unsqueeze(0).expand(len(w), *t.shape).reshape(-1, *t.shape[1:]) for t in inputs)
        env = {name: t for (name, _), t in zip(self._inputs, inputs)}
        del inputs  # in shared-weight mode the folded copies live in env only, and are freed there
        for module, functional, refs, out, free in self._run_plan():
            args = [env[b] if i is None else env[b][i] for b, i in refs]
            for name in free:  # the last use of a value: drop it so its memory is reused (as in plain Python)
                del env[name]
            if module is not None:
                if w is not None and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
                    env[out] = shared_weight_forward(module, args[0], w)
                else:
                    env[out] = module(*args)
            else:
                fn, params = functional
                env[out] = fn(args, params)
            del args
        outs = [_get(env, r) for r in self._outputs]
        if w is not None:
            outs = [o.reshape(len(w), -1, *o.shape[1:]) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def train(self, mode: bool = True):
        self._modules_by_name = self._plan = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._modules_by_name = self._plan = None  # .to() / .double() may replace modules' tensors, not modules
        return super()._apply(fn, *args, **kwargs)


def shared_weight_forward(module: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A linear or conv layer in WANN mode on x folded as [W * B, ...]: y_i = conv(x_i, w_i * mask).

    The layer is linear in its weight, so y_i = w_i * layer(x_i; mask) with no bias: one call for all w.
    """
    mask = getattr(module, "mask", None)
    if isinstance(module, nn.Linear):
        m = torch.ones_like(module.weight) if mask is None else mask.to(module.weight.dtype)
        y = torch.nn.functional.linear(x, m.to(x.dtype))
    else:
        kernel = torch.ones_like(module.weight, dtype=x.dtype)
        if mask is not None:
            kernel = kernel * mask.to(x.dtype).view(*mask.shape, *([1] * (kernel.dim() - 2)))
        y = module._conv_forward(x, kernel, None)
    scale = w.to(device=y.device, dtype=y.dtype).view(-1, *([1] * y.dim()))
    return (y.reshape(len(w), -1, *y.shape[1:]) * scale).reshape(y.shape)


def _get(env, ref):
    base, _, idx = ref.partition(":")
    v = env[base]
    return v[int(idx)] if idx else v


def _inherited_axis(graph: Graph, node, sites: dict) -> int:
    """An activation's neurons are its input's: the producer's axis (channels of a conv, features of a
    linear, the hidden units of a [B, T, H] tensor), found by walking back through elementwise ops."""
    ref = node.inputs[0].partition(":")[0] if node.inputs else None
    seen = 0
    while ref is not None and seen < len(graph.nodes):
        if ref in sites:
            return sites[ref]["axis"]
        producer = next((n for n in graph.nodes if n.name == ref), None)
        if producer is None or not producer.inputs or get_op(producer.op).coupling not in ("elementwise", "tie"):
            break
        ref = producer.inputs[0].partition(":")[0]
        seen += 1
    rank = len(node.shape)
    return 1 if rank >= 4 else -1  # [B, C, H, W] channels; [B, F] or [B, T, H] the last axis


def _install(root: nn.Module, path: str, module: nn.Module):
    parts = path.split(".")
    parent = root
    for part in parts[:-1]:
        child = parent._modules.get(part)
        if child is None:
            child = Scope()
            parent.add_module(part, child)
        parent = child
    parent.add_module(parts[-1], module)


def _install_parameter(root: nn.Module, path: str, parameter: nn.Parameter):
    *parents, name = path.split(".")
    holder = root
    for part in parents:
        if holder._modules.get(part) is None:
            holder.add_module(part, Scope())
        holder = holder._modules[part]
    holder.register_parameter(name, parameter)


def _find(root: nn.Module, path: str):
    module = root
    for part in path.split("."):
        module = module._modules.get(part)
        if module is None:
            return None
    return module


def _parameter_reader(root: nn.Module, path: str):
    """A step's callable giving the parameter at `path` (looked up per call: `.to()` may replace it)."""
    parent, _, name = path.rpartition(".")
    holder = _find(root, parent) if parent else root
    return functools.partial(getattr, holder, name)
