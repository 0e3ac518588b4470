"""Layers that only training-mode forward calls (googlenet's and inception_v3's auxiliary classifiers).

In eval mode torchvision's googlenet never calls `aux1` / `aux2`, yet they hold weights, so an eval-mode trace
cannot load the state dict with strict=True. When an eval-mode trace leaves weights unreached, the model is
traced once more in training mode. If that graph holds every call of the eval-mode graph, in the same order
and on the same arguments, its extra calls are kept as branches whose values the output does not use: the
spec declares the auxiliary layers (keys `aux1.conv.conv.weight`, ...), and its output is the eval-mode
output. What training mode returns (googlenet's named tuple of three logits) is not kept: the spec computes
the branches in both modes and returns the main output (docs/import.md).
"""
from __future__ import annotations


def unreached_layers(module, gm) -> bool:
    """Whether some weight of `module` belongs to no layer the graph calls (nor a child of one) and is not read."""
    called = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}  # a parameter read in forward
    for key in module.state_dict():
        parts = key.rpartition(".")[0].split(".")
        if key not in read and not any(".".join(parts[:i]) in called for i in range(1, len(parts) + 1)):
            return True
    return False


def with_training_branches(module, gm, trace):
    """`gm` (the eval-mode graph), or the training-mode graph `trace()` gives with its output set to the eval-mode
    output, when that graph has every eval-mode call and reaches weights the eval-mode graph does not."""
    if not module.training and unreached_layers(module, gm):
        modes = [(m, m.training) for m in module.modules()]
        module.train()
        try:
            trained = trace()
        except Exception:  # the E163 of a training-mode trace: keep the eval-mode graph and its E164
            return gm
        finally:
            for m, training in modes:
                m.training = training
        rewritten = _eval_output_on(gm, trained, module)
        if rewritten is not None and not unreached_layers(module, rewritten):
            return rewritten
    return gm


def _eval_output_on(gm, trained, module):
    """`trained` with its output the eval-mode output, if the eval-mode calls are a subsequence of its calls."""
    import torch.fx as fx

    eval_nodes = [n for n in gm.graph.nodes if n.op != "output"]
    seen = {}  # eval-mode node -> training-mode node
    position = 0
    output = None
    for node in trained.graph.nodes:
        if node.op == "output":
            output = node
            break
        if position < len(eval_nodes) and _same_call(eval_nodes[position], node, seen):
            seen[eval_nodes[position]] = node
            position += 1
    if position != len(eval_nodes) or output is None:
        return None
    eval_output = next(n for n in gm.graph.nodes if n.op == "output")
    old = output.args[0]
    output.args = fx.node.map_arg(eval_output.args, lambda n: seen[n])
    if isinstance(old, fx.Node) and not old.users and old.op == "call_function":
        trained.graph.erase_node(old)  # googlenet's named tuple of the three logits
    try:
        _in_registration_order(trained, set(seen.values()), module)
        trained.graph.lint()
    except Exception:  # a branch the reordering cannot move: keep the eval-mode graph and its E164
        return None
    trained.recompile()
    return trained


def _same_call(eval_node, node, seen) -> bool:
    """The same call on the same (already matched) arguments; placeholders by name."""
    import torch.fx as fx

    if eval_node.op != node.op or eval_node.target != node.target:
        return False

    def mapped(value):
        return fx.node.map_arg(value, lambda n: seen.get(n, ("unmatched", n.name)))

    return mapped(eval_node.args) == node.args and mapped(eval_node.kwargs) == node.kwargs


def _top_child(node) -> str | None:
    if node.op in ("call_module", "get_attr"):
        return str(node.target).split(".")[0]
    stack = list(node.meta.get("nn_module_stack") or {})
    return stack[0].split(".")[0] if stack else None


def _in_registration_order(trained, main: set, module):
    """Move each branch's calls later, to just before the first call of a child module registered after its own,
    so that the spec's statements, and the compiled network's keys, come in the original's order (googlenet
    registers `aux1` after `inception5b`). Nothing reads a branch's values, so moving them later is safe."""
    order = {name: i for i, (name, _) in enumerate(module.named_children())}  # the GraphModule's: call order
    nodes = list(trained.graph.nodes)
    branch = [n for n in nodes if n not in main and n.op not in ("placeholder", "output")]
    for child in dict.fromkeys(_top_child(n) for n in branch):
        if child not in order:
            continue
        members = {n for n in branch if _top_child(n) == child}
        first = min(map(nodes.index, members))
        for n in nodes[first:]:  # `self.aux(x).flatten(1)`: what reads the branch moves with it
            if n in branch and set(n.all_input_nodes) & members:
                members.add(n)
        group = sorted(members, key=nodes.index)
        after = nodes.index(group[-1])
        target = next((n for n in nodes[after + 1:] if n in main and order.get(_top_child(n), -1) > order[child]),
                      None)
        if target is not None:
            for n in group:
                target.prepend(n)
        nodes = list(trained.graph.nodes)
