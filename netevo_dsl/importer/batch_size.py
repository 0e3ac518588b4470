"""`t.expand(x.shape[0], -1, ...)`: a tensor repeated to the batch size read from another tensor, rewritten
before matching as the op `expand_batch(t, x)` (ops/parameter.py), with the expand's shape and source line.

vit's class token is `self.class_token.expand(n, -1, -1)` with `n = x.shape[0]`: fx records the size as a
`getattr(x, "shape")` and a `getitem` (or `x.size(0)`), values the spec has no statement for. The batch size is
the only size computed in forward that the rewrite accepts; the other sizes must be -1 or the tensor's own.
"""
from __future__ import annotations

import builtins
import operator


def batch_of(node):
    """The tensor node whose batch size `node` is (`x.shape[0]`, `x.size(0)`, `x.size()[0]`), else None."""
    import torch.fx as fx

    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_method" and node.target == "size" and len(node.args) == 2 and node.args[1] == 0:
        return node.args[0]
    if node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0:
        whole = node.args[0]
        if isinstance(whole, fx.Node) and whole.op == "call_function" and whole.target is builtins.getattr \
                and whole.args[1] == "shape":
            return whole.args[0]
        if isinstance(whole, fx.Node) and whole.op == "call_method" and whole.target == "size" \
                and len(whole.args) == 1:
            return whole.args[0]
    return None


def expand_to_batch(gm, size_of) -> None:
    """Rewrite each `t.expand(batch of x, -1, ...)` of a tensor t with size 1 on axis 0 as expand_batch(t, x)."""
    from ..ops.parameter import expand_batch

    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_method" or node.target != "expand" or node.kwargs or len(node.args) < 2:
            continue
        t, sizes = node.args[0], list(node.args[1:])
        if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
            sizes = list(sizes[0])
        t_shape, like = size_of(t), batch_of(sizes[0])
        like_shape = size_of(like) if like is not None else None
        if t_shape is None or like_shape is None or len(sizes) != len(t_shape) or t_shape[0] != 1:
            continue
        if not all(isinstance(s, int) and s in (-1, d) for s, d in zip(sizes[1:], t_shape[1:])):
            continue
        with graph.inserting_before(node):
            rewritten = graph.call_function(expand_batch, (t, like))
        rewritten.meta = dict(node.meta)
        node.replace_all_uses_with(rewritten)
        graph.erase_node(node)
