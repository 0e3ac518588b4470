"""Calls that give several tensors, rewritten in the traced graph before matching.

`a, b = x.chunk(2, dim=1)` (and `torch.chunk`, `x.split(s, dim)`, `torch.split`) is one fx node giving a tuple
and one `getitem` node per piece used. Each piece is a slice of `x`, so each `getitem` becomes one
`torch.narrow(x, dim, start, length)` node (the op `narrow`), keeping the getitem's shape, module stack and
source line; the tuple node goes. Sizes computed in forward, or a tuple used whole (`torch.cat(x.chunk(2))`),
leave the graph as it is, and the matching refuses the call with its line.
"""
from __future__ import annotations

import math
import operator


def _slices(node, size_of):
    """(x, dim, [(start, length), ...]) for a chunk/split node with constant arguments, else None."""
    import torch
    import torch.fx as fx

    if node.op == "call_method" and node.target in ("chunk", "split"):
        kind = node.target
    elif node.op == "call_function" and node.target in (torch.chunk, torch.split):
        kind = "chunk" if node.target is torch.chunk else "split"
    else:
        return None
    x = node.args[0] if node.args else None
    shape = size_of(x) if isinstance(x, fx.Node) else None
    if shape is None:
        return None
    names = ("chunks",) if kind == "chunk" else ("split_size_or_sections", "split_size")
    how = node.args[1] if len(node.args) > 1 else next((node.kwargs[k] for k in names if k in node.kwargs), None)
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    if not isinstance(dim, int) or not (isinstance(how, int) or (isinstance(how, (list, tuple))
                                                                 and all(isinstance(s, int) for s in how))):
        return None
    size = shape[dim]
    if kind == "chunk":
        how = math.ceil(size / how) if how > 0 else None
        if how is None:
            return None
    lengths = list(how) if isinstance(how, (list, tuple)) else [min(how, size - s) for s in range(0, size, how)]
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return x, dim, list(zip(starts, lengths))


def narrow_pieces(gm, size_of) -> None:
    """Rewrite every `getitem` of a constant chunk/split as `torch.narrow` (in place)."""
    import torch

    graph = gm.graph
    for node in list(graph.nodes):
        found = _slices(node, size_of)
        if found is None:
            continue
        x, dim, pieces = found
        users = list(node.users)
        if not users or not all(u.op == "call_function" and u.target is operator.getitem
                                and isinstance(u.args[1], int) and -len(pieces) <= u.args[1] < len(pieces)
                                for u in users):
            continue
        for user in users:
            start, length = pieces[user.args[1]]
            with graph.inserting_before(user):
                piece = graph.call_function(torch.narrow, (x, dim, start, length))
            piece.meta = dict(user.meta)
            user.replace_all_uses_with(piece)
            graph.erase_node(user)
        graph.erase_node(node)


def first_of_tuple(gm, size_of) -> None:
    """`y, _ = self.attn(x, x, x)`: a call giving a tuple of which forward uses element 0 alone stands for that
    element (marked, so that only an op declaring `TorchImport.tuple_first` imports it)."""
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op not in ("call_module", "call_function", "call_method") or size_of(node) is not None:
            continue
        users = list(node.users)
        if not users or not all(u.op == "call_function" and u.target is operator.getitem
                                and isinstance(u.args[1], int) for u in users):
            continue
        used = [u for u in users if u.users]
        if len(used) != 1 or used[0].args[1] != 0 or size_of(used[0]) is None:
            continue
        first = used[0]
        for user in users:
            if user is not first:
                graph.erase_node(user)
        first.replace_all_uses_with(node)
        node.meta["tensor_meta"] = first.meta["tensor_meta"]
        node.meta["netevo_tuple_first"] = True
        graph.erase_node(first)
