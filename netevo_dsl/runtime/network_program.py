"""The forward pass of one group of layered networks (`network_groups.GroupPlan`) in shared-weight mode.

`GroupProgram(plan, device, dtype)` builds the group's modules once, at the group's sizes, and
stacks every member's masks, embedded at the positions its layout gives, as the weights of its
linear and conv layers. `program.select(rows)` prepares a chunk of members (conv kernels are
expanded per chunk, so only a chunk's are held at once); calling the program on it runs the chunk
together, with one batched call per node: outputs [members, W, samples, outputs].

As in the compiled networks' shared-weight mode (`compiler.build.shared_weight_forward`), a
weight-bearing layer computes y = w * layer(x; mask) with no bias, for all W weights at once:

* a linear layer is one batched matmul against the stacked masks [members, out, in];
* a conv layer is one grouped convolution (members laid side by side along the channels);
* every other op runs once on the members, weights and samples folded into its batch axis.

Values are either *shared* ([samples, ...]: computed before the first weight-bearing layer from
classification features, which are the same for every member and weight, so computed once) or
*full* ([members, W * samples, ...]).

`torch.func.vmap` over the stacks computes the same, but its overhead per op and call dominates
control rollouts of small networks: a 5-node policy call took about 800 us with vmap and 260 us as
batched ops during development (1 thread, the machine of benchmarks/results_network_eval.md).
"""
from __future__ import annotations

import attrs
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..compiler.build import build_module, mask_tensor
from ..ops.registry import get_op
from .network_groups import GroupPlan, group_params, last_uses


@attrs.frozen
class _Step:
    name: str  # the value this step produces
    refs: tuple  # the values it reads
    module: nn.Module | None = None  # module ops; for conv layers, their hyper-parameters
    function: tuple | None = None  # module-less ops: (functional, params)
    weight: bool = False  # a linear or conv layer: takes the shared weight and each member's mask
    elementwise: bool = False  # an activation: runs on [members, W * samples, ...] as it is
    padded_axis: int | None = None  # weight steps: the input's padded axis, zeroed outside each member's units
    kernel: tuple = ()  # conv steps: the kernel size


class GroupProgram:
    def __init__(self, plan: GroupPlan, device, dtype):
        graph = plan.graphs[0]
        self.input = graph.inputs[0].name
        self.output = graph.outputs[0][1]
        self.free = last_uses(graph)
        # per-member tensors, first axis = member: masks, valid positions, and the members themselves
        self.stacks = {"#members": torch.tensor(plan.members, device=device)}
        self.steps = []
        for position, node in enumerate(graph.nodes):
            op = get_op(node.op)
            params = group_params(op, [g.nodes[position] for g in plan.graphs])
            module = None
            if node.module:
                in_shapes = [plan.layouts[r].shape for r in node.inputs]
                module = build_module(attrs.evolve(node, params=tuple(params.items())), in_shapes)
                module = module.to(device, dtype).eval()
            if op.weight_bearing:
                x = plan.layouts[node.inputs[0]]
                masks = _member_masks(plan, position, module.weight.shape[:2], dtype)  # [members, out, in / groups]
                linear = isinstance(module, nn.Linear)
                # a linear layer's masks as the right operand of a matmul: [members, in, out]
                self.stacks[node.name] = (masks.transpose(1, 2) if linear else masks).contiguous().to(device)
                if x.axis is not None:
                    self.stacks[node.name + "#valid"] = x.valid().to(device)
                self.steps.append(_Step(node.name, node.inputs, None if linear else module, weight=True,
                                        padded_axis=x.axis, kernel=tuple(module.weight.shape[2:])))
            elif module is not None:
                self.steps.append(_Step(node.name, node.inputs, module, elementwise=bool(op.activation)
                                        and op.activation != "softmax"))
            else:
                self.steps.append(_Step(node.name, node.inputs, function=(op.functional, node.param_dict)))

    def select(self, rows: slice) -> dict:
        """The stacks of the members in `rows`, conv masks expanded to kernels [members, out, in / groups, *k]."""
        chunk = {k: v[rows] for k, v in self.stacks.items()}
        for step in self.steps:
            if step.weight and step.kernel:
                masks = chunk[step.name]
                chunk[step.name] = masks.view(*masks.shape, *([1] * len(step.kernel))).expand(
                    *masks.shape, *step.kernel).contiguous()
        return chunk

    def __call__(self, stacks: dict, x: torch.Tensor, w: torch.Tensor, samples: int, shared_input: bool):
        """Outputs [members, W, samples, outputs] for the members of `stacks` (from `select`).

        x: [samples, features], the same for every member and weight (`shared_input`), or
        [members, W, samples, features] (control observations).
        """
        members, n = len(stacks["#members"]), len(w)
        env = {self.input: x if shared_input else x.reshape(members, n * samples, *x.shape[3:])}
        full = set() if shared_input else {self.input}  # values laid out [members, W * samples, ...]
        for step, dead in zip(self.steps, self.free):
            args = [_get(env, r) for r in step.refs]
            bases = [r.partition(":")[0] for r in step.refs]
            if step.weight:
                y = self._layer(step, stacks, args[0], bases[0] in full)
                env[step.name] = _scaled(y, w, bases[0] in full)
                full.add(step.name)
            elif step.elementwise:
                env[step.name] = step.module(args[0])
                if bases[0] in full:
                    full.add(step.name)
            elif any(b in full for b in bases):
                args = [a if b in full else _spread(a, members, n) for a, b in zip(args, bases)]
                env[step.name] = _unfold(self._op(step, [a.flatten(0, 1) for a in args]), members)
                full.add(step.name)
            else:
                env[step.name] = self._op(step, args)
            for name in dead:
                del env[name]
        out = _get(env, self.output)
        if self.output.partition(":")[0] not in full:
            out = _spread(out, members, n)
        return out.reshape(members, n, samples, *out.shape[2:])

    @staticmethod
    def _op(step: _Step, args: list):
        return step.module(*args) if step.module is not None else step.function[0](args, step.function[1])

    @staticmethod
    def _layer(step: _Step, stacks: dict, x: torch.Tensor, full: bool) -> torch.Tensor:
        """Every member's layer with weights = its embedded mask, no bias: [members, samples', ...]."""
        kernel = stacks[step.name]  # linear: [members, in, out]; conv: [members, out, in / groups, *kernel]
        if step.padded_axis is not None:  # (padded inputs are always full) where, not a product: 0 x inf is NaN
            valid = stacks[step.name + "#valid"]
            shape = [len(valid)] + [1] * (x.dim() - 1)
            shape[step.padded_axis + 1] = valid.shape[1]
            x = torch.where(valid.view(shape), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if step.module is None:
            rank = x.dim() if not full else x.dim() - 1  # a sample's rank, batch axis included
            if rank > 2:
                kernel = kernel.view(kernel.shape[0], *([1] * (rank - 2)), *kernel.shape[1:])
            return torch.matmul(x, kernel)
        return _grouped_conv(step.module, x, kernel, full)


def _grouped_conv(conv: nn.Module, x: torch.Tensor, kernel: torch.Tensor, full: bool) -> torch.Tensor:
    """All members' convolutions as one: members side by side along the channels, one group each."""
    members, out_size = kernel.shape[:2]
    fn = F.conv1d if kernel.dim() == 4 else F.conv2d
    weight = kernel.reshape(members * out_size, *kernel.shape[2:])
    if full:  # [members, N, C, ...] -> [N, members * C, ...]
        x = x.movedim(0, 1).flatten(1, 2)
    elif conv.groups != 1:
        x = x.repeat(1, members, *([1] * (x.dim() - 2)))
    groups = conv.groups * members if (full or conv.groups != 1) else 1
    y = fn(x, weight, None, conv.stride, conv.padding, conv.dilation, groups)
    return y.view(y.shape[0], members, out_size, *y.shape[2:]).movedim(1, 0)


def _member_masks(plan: GroupPlan, position: int, size: tuple, dtype) -> torch.Tensor:
    """[members, out, in / groups]: each member's mask (1 where it has no mask) at its units' positions."""
    node = plan.graphs[0].nodes[position]
    x, y = plan.layouts[node.inputs[0]], plan.layouts[node.name]
    out_size, in_size = size
    stack = torch.zeros(len(plan.members), out_size, in_size, dtype=dtype)
    for m, graph in enumerate(plan.graphs):
        own = graph.nodes[position]
        mask = mask_tensor(own, graph.shape_of(own.inputs[0]))
        rows = y.index[m] if y.axis is not None else torch.arange(out_size)
        cols = x.index[m] if x.axis is not None else torch.arange(in_size)
        stack[m, rows[:, None], cols[None, :]] = 1.0 if mask is None else mask.to(dtype)
    return stack


def _scaled(y: torch.Tensor, w: torch.Tensor, full: bool) -> torch.Tensor:
    """w * y for every shared weight: [members, W * samples, ...]."""
    members, n = y.shape[0], len(w)
    if full:
        scale = w.view(1, n, *([1] * (y.dim() - 1)))
        return (y.reshape(members, n, -1, *y.shape[2:]) * scale).flatten(1, 2)
    scale = w.view(1, n, *([1] * (y.dim() - 1)))
    return (y.unsqueeze(1) * scale).flatten(1, 2)


def _spread(t: torch.Tensor, members: int, n: int) -> torch.Tensor:
    """A shared value [samples, ...] as a full one [members, W * samples, ...]."""
    return t.expand(members, n, *t.shape).flatten(1, 2)


def _unfold(value, members: int):
    """[members * W * samples, ...] back to [members, W * samples, ...] (each piece of a split)."""
    if isinstance(value, (tuple, list)):
        return tuple(v.unflatten(0, (members, -1)) for v in value)
    return value.unflatten(0, (members, -1))


def _get(env: dict, ref: str):
    base, _, index = ref.partition(":")
    value = env[base]
    return value[int(index)] if index else value
