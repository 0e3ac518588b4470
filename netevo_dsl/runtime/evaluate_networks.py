"""Shared-weight (WANN-style) evaluation of a population of layered networks.

Every linear and conv layer runs as w x mask with no bias (the compiled networks' shared-weight
mode), so nothing is trained: the score measures the architecture and its connectivity. Networks
are evaluated in eval mode; normalisation layers keep their initial parameters (scale 1, shift 0,
running statistics 0 and 1).

`evaluate_networks` plans groups of networks (`network_groups`): networks of one architecture,
and with padding also networks whose widths differ, run as one batched program over their stacked
masks for all their shared weights (`network_program`). Classification outputs stream through the
task's scorer in blocks of samples; control tasks run `task.rollout` with the group as the policy.
Groups are split into chunks of networks, and samples into blocks, so that one call's activations
stay under min(block_bytes, chunk_bytes).

`reference_evaluate_networks` is the oracle: one network and one weight at a time, with every
linear and conv weight set to w (times its mask) and every bias to 0, through the ordinary forward
pass of the compiled module. It shares only the task (data, physics, scorer) with the batched path.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import NetevoError, UsageError
from ..ir import nodes as ir
from ..ir.dims import Dim, shape_str
from ..ops.registry import get_op
from .evaluate import (BLOCK_BYTES, CHUNK_BYTES, Scores, ScoreTable, block_budget, finalize, resolve_device,
                       resolve_weights)
from .live_group import LiveGroupPolicy
from .network_groups import GroupPlan, network_groups
from .network_program import GroupProgram
from .tasks import make_task

# Ops with parameters of their own that start at fixed values (scale 1, shift 0, statistics 0 and 1),
# so an untrained network that holds them is well defined. Other parameterised ops (attention,
# embeddings) start at random values that shared-weight mode does not set.
FIXED_INIT_OPS = frozenset({"batchnorm", "batchnorm1d", "batchnorm2d", "layernorm", "groupnorm"})

# The `widths="auto"` rule's cost model, calibrated by benchmarks/bench_network_eval.py: evaluating a
# group costs its FLOPs (multiply-adds, one per element of other ops) plus, for every call (a chunk of
# networks on a block of samples, or one control step), NODE_FLOPS for each of its nodes and for
# CALL_NODES more (the scorer, or the simulator).
NODE_FLOPS = 4.0e5
CALL_NODES = 15


def evaluate_networks(population, task, weights=None, device="auto", *, dtype=torch.float32, widths: str = "auto",
                      block_bytes: int | None = None, chunk_bytes: int = CHUNK_BYTES) -> Scores:
    """Score every network at every shared weight on a classification or control task.

    population: a list of specs that each hold one network with one input [B, task inputs] and one
        output [B, task outputs].
    widths: "group" runs networks of different shapes in separate groups; "pad" runs networks that
        differ only in widths in one group, padded with zero-masked units, where that is exact;
        "auto" pads where the benchmark-derived cost model (`prefer_padding`) says it is faster.
    block_bytes, chunk_bytes: one call runs a chunk of a group's networks on a block of samples, with
        activations under min(block_bytes, chunk_bytes): block_bytes is the size that runs fastest
        (default `block_budget(device)`: calls much larger than it are slower on the CPU, while a GPU
        wants few, large calls), chunk_bytes a hard memory budget.
    """
    task = network_task(task)
    device = resolve_device(device)
    weights = resolve_weights([], weights, dtype, device)
    graphs, failures = network_graphs(population, task)
    budget = min(block_budget(device) if block_bytes is None else block_bytes, chunk_bytes)
    return finalize(evaluate_graphs(graphs, len(population), task, weights, widths=widths, budget=budget), failures)


def evaluate_graphs(graphs: dict, size: int, task, weights: torch.Tensor, *, widths: str = "auto",
                    budget: int = BLOCK_BYTES) -> ScoreTable:
    """Scores of the networks `graphs` ({population index: Graph} from `network_graphs`) in a table of
    `size` rows; `weights` on the device and in the dtype to evaluate in; `budget` bytes of activations
    per call."""
    result = ScoreTable.empty(size, weights, task.metric_dims, getattr(task, "repeats", 1))
    batch_mask = task.next_batch_mask() if task.kind == "classification" else None
    samples = task.n_samples if task.kind == "classification" else task.repeats
    sizes = (samples, len(weights), weights.element_size(), budget)
    with torch.no_grad():
        for plan in network_groups(graphs, widths, lambda padded, exact: prefer_padding(padded, exact, *sizes)):
            program = GroupProgram(plan, weights.device, weights.dtype)
            if task.kind == "classification":
                _classify_group(program, plan, task, weights, batch_mask, budget, result)
            else:
                _control_group(program, plan, task, weights, budget, result)
    return result


def prefer_padding(padded: GroupPlan, exact: list[GroupPlan], samples: int, n_weights: int, itemsize: int,
                   budget: int) -> bool:
    """Whether one padded group is estimated to run faster than the exact groups it replaces."""
    return estimated_cost([padded], samples, n_weights, itemsize, budget) <= \
        estimated_cost(exact, samples, n_weights, itemsize, budget)


def estimated_cost(plans: list[GroupPlan], samples: int, n_weights: int, itemsize: int, budget: int) -> float:
    """The cost model in FLOPs: the groups' FLOPs, plus (nodes + CALL_NODES) x NODE_FLOPS per call."""
    total = 0.0
    for plan in plans:
        members, block = chunk_sizes(len(plan.members), plan.peak, n_weights, samples, itemsize, budget)
        calls = -(-len(plan.members) // members) * -(-samples // block)
        total += plan.cost * n_weights * samples + calls * (plan.nodes + CALL_NODES) * NODE_FLOPS
    return total


# --- shared by the batched and the reference evaluator ----------------------------------


def network_task(task):
    task = make_task(task)
    if task.kind not in ("classification", "control"):
        raise UsageError(f"task `{task.name}` is a {task.kind} task; networks are scored on classification and "
                         "control tasks", hint="sequence tasks are for transformer genomes")
    return task


def network_graphs(population, task) -> tuple[dict, dict]:
    """({index: Graph} of the networks both evaluators can run, {index: reason} for the others)."""
    if isinstance(population, ir.Spec) or not isinstance(population, (list, tuple)):
        raise UsageError("evaluate_networks takes a list of specs", hint="wrap a single spec in a list")
    graphs, failures = {}, {}
    for index, item in enumerate(population):
        if not isinstance(item, ir.Spec):
            raise UsageError(f"cannot evaluate {type(item).__name__} as a network", hint="pass ir.Spec items")
        try:
            graph = _graph_of(item)
        except NetevoError as e:
            failures[index] = e.message
            continue
        problem = shared_weight_problem(graph, task)
        if problem is None:
            graphs[index] = graph
        else:
            failures[index] = problem
    return graphs, failures


def _graph_of(spec: ir.Spec):
    from ..passes.check import check

    found = spec.of_kind(ir.Network, ir.WannGenome, ir.TransformerGenome)
    if len(spec.networks) != 1 or len(found) != 1:
        raise UsageError(f"a spec must hold exactly one network to be evaluated, it holds {len(spec.networks)} "
                         f"network(s) and {len(found) - len(spec.networks)} genome(s)")
    return check(spec).graphs[spec.networks[0].name]


def shared_weight_problem(graph, task) -> str | None:
    """Why this network cannot be scored on `task` in shared-weight mode, or None."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return (f"network `{graph.name}` has {len(graph.inputs)} input(s) and {len(graph.outputs)} output(s); "
                f"a task feeds one input [B, {task.n_inputs}] and reads one output [B, {task.n_outputs}]")
    x = graph.inputs[0]
    batch = Dim.of(x.shape[0]) if x.shape else None
    if len(x.shape) != 2 or batch.is_concrete or Dim.of(x.shape[1]) != task.n_inputs:
        return (f"input `{x.name}` is {shape_str(x.shape)}; task `{task.name}` feeds [B, {task.n_inputs}] "
                f"(a batch axis, then {task.n_inputs} features)")
    name, ref = graph.outputs[0]
    out = graph.shape_of(ref)
    if len(out) != 2 or Dim.of(out[0]) != batch or Dim.of(out[1]) != task.n_outputs:
        return f"output `{name}` is {shape_str(out)}; task `{task.name}` reads [B, {task.n_outputs}]"
    for node in graph.nodes:
        problem = _node_problem(node, batch)
        if problem is not None:
            return problem
    return None


def _node_problem(node, batch: Dim) -> str | None:
    op = get_op(node.op)
    if node.module and not op.weight_bearing and op.channels.sites and node.op not in FIXED_INIT_OPS:
        return (f"`{node.name}` ({node.op}) has parameters of its own, which shared-weight evaluation does not "
                "set: only linear and conv layers take the shared weight")
    shapes = list(node.shape) if op.n_outputs else [node.shape]
    for shape in shapes:
        if not shape or Dim.of(shape[0]) != batch or not all(Dim.of(d).is_int() for d in shape[1:]):
            return (f"`{node.name}` ({node.op}) gives {shape_str(shape)}: every value must keep the batch "
                    "as its first axis and have known sizes elsewhere")
    rank = len(shapes[0])
    for key in ("dim", "dim0", "dim1", "start"):
        value = node.param_dict.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value % max(rank, 1) == 0:
            return f"`{node.name}` ({node.op}) works along the batch axis: samples must be treated independently"
    return None


# --- batched drivers --------------------------------------------------------------------


def chunk_sizes(n_members: int, peak: int, n_weights: int, n_samples: int, itemsize: int,
                budget: int) -> tuple[int, int]:
    """(networks per chunk, samples per block) whose activations fit `budget` bytes: every sample at
    once while one network's fit, then as many networks as fit; at least one of each."""
    per = max(peak, 1) * n_weights * itemsize  # bytes per network and sample
    members = max(1, min(n_members, budget // (per * n_samples)))
    samples = max(1, min(n_samples, budget // (per * members)))
    return members, samples


def _classify_group(program, plan, task, weights, batch_mask, budget, result) -> None:
    features = task.features.to(weights.device, weights.dtype)
    n, size = task.n_samples, len(plan.members)
    members, block = chunk_sizes(size, plan.peak, len(weights), n, weights.element_size(), budget)
    for first in range(0, size, members):
        rows = slice(first, min(first + members, size))
        stacks = program.select(rows)
        scorer = task.scorer(rows.stop - rows.start, weights, batch_mask)
        for start in range(0, n, block):
            stop = min(start + block, n)
            scorer.add(program(stacks, features[start:stop], weights, stop - start, shared_input=True),
                       slice(start, stop))
        reward, metrics = scorer.finish()
        result.write(list(plan.members[rows]), reward, metrics, scorer.nonfinite)


def _control_group(program, plan, task, weights, budget, result) -> None:
    size, repeats = len(plan.members), task.repeats
    members, _ = chunk_sizes(size, plan.peak, len(weights), repeats, weights.element_size(), budget)
    for first in range(0, size, members):
        rows = slice(first, min(first + members, size))
        policy = LiveGroupPolicy(program, rows, weights, repeats)
        outcome = task.rollout(policy, (rows.stop - rows.start, len(weights)), weights.dtype, weights.device)
        result.write(list(plan.members[rows]), outcome["reward"], task.metrics_of(outcome), outcome["nonfinite"])


# --- the reference ----------------------------------------------------------------------


def reference_evaluate_networks(population, task, weights=None, device="auto", *, dtype=torch.float32) -> Scores:
    """Same contract and result as `evaluate_networks`, one network and one weight at a time."""
    from .. import compile_module

    task = network_task(task)
    device = resolve_device(device)
    weights = resolve_weights([], weights, dtype, device)
    graphs, failures = network_graphs(population, task)
    result = ScoreTable.empty(len(population), weights, task.metric_dims, getattr(task, "repeats", 1))
    batch_mask = task.next_batch_mask() if task.kind == "classification" else None
    for index in graphs:
        spec = population[index]
        model = compile_module(spec, spec.networks[0].name).to(device, weights.dtype).eval()
        if task.kind == "classification":
            reward, metrics, bad = _classify_one(model, task, weights, batch_mask)
        else:
            reward, metrics, bad = _control_one(model, task, weights)
        result.write([index], reward, metrics, bad)
    return finalize(result, failures)


def set_shared_weight(model: nn.Module, w: float) -> None:
    """Every linear and conv weight := w (times its mask, broadcast over the kernel); biases := 0."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
                full = torch.full_like(module.weight, w)
                mask = getattr(module, "mask", None)
                if mask is not None:
                    full = full * mask.view(*mask.shape, *([1] * (full.dim() - 2))).to(full.dtype)
                module.weight.copy_(full)
                if module.bias is not None:
                    module.bias.zero_()


def _classify_one(model, task, weights, batch_mask):
    features = task.features.to(weights.device, weights.dtype)
    outputs = []
    for w in weights.tolist():
        set_shared_weight(model, w)
        with torch.no_grad():
            outputs.append(model(features))
    scorer = task.scorer(1, weights, batch_mask)  # the ensemble metrics need every weight's outputs together
    scorer.add(torch.stack(outputs)[None], slice(0, task.n_samples))
    reward, metrics = scorer.finish()
    return reward, metrics, scorer.nonfinite


def _control_one(model, task, weights):
    from .reference import stack_outcomes

    outcomes = []
    for w in weights.tolist():
        set_shared_weight(model, w)
        with torch.no_grad():
            outcomes.append(task.rollout(lambda obs: model(obs[0, 0])[None, None], (1, 1), weights.dtype,
                                         weights.device))
    return stack_outcomes(task, outcomes)


__all__ = ["evaluate_networks", "evaluate_graphs", "reference_evaluate_networks", "network_graphs", "network_task",
           "prefer_padding", "estimated_cost", "chunk_sizes"]
