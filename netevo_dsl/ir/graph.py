"""The elaborated graph: one network with blocks and repeats expanded.

Produced by `passes.elaborate`; read by the compiler, the mutation engine and
the tracker. Node names are the module paths of the compiled network
(`layer1.0.conv1`), so they match `named_modules()` and state-dict keys.
"""
from __future__ import annotations

import attrs

from ..errors import Span, span_field
from .dims import shape_str


@attrs.frozen
class GraphInput:
    name: str
    shape: tuple
    span: Span | None = span_field()


@attrs.frozen
class Node:
    name: str  # unique; the module path for module ops
    op: str
    inputs: tuple  # value refs: an input name, a node name, or "node:i" for the i-th output of a split
    params: tuple  # ((key, value), ...) resolved against the registry
    shape: tuple  # output shape; for multi-output ops a tuple of shapes
    module: bool = False
    block_path: tuple = ()  # ((instance module path, block name), ...) from outermost in
    span: Span | None = span_field()
    # Where the spec wrote it: one (item name, statement index path, call ordinal) per block_path entry
    # (the instance's call) and a last one for the op's own call (None for a tensor `+` / `*`). The
    # ordinal counts calls of the statement in evaluation order; evolve.spec_edit finds the IR call.
    origin: tuple = attrs.field(default=(), eq=False, hash=False, repr=False, kw_only=True)

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    def describe(self) -> str:
        shape = " ".join(shape_str(s) for s in self.shape) if self.shape and isinstance(self.shape[0], tuple) \
            else shape_str(self.shape)
        return f"{self.name} = {self.op}({', '.join(self.inputs)}) -> {shape}"


@attrs.frozen
class Graph:
    name: str
    inputs: tuple  # tuple[GraphInput]
    nodes: tuple  # tuple[Node], in execution order
    outputs: tuple  # ((name, ref), ...)
    span: Span | None = span_field()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def shape_of(self, ref: str):
        base, _, idx = ref.partition(":")
        for i in self.inputs:
            if i.name == ref:
                return i.shape
        node = self.node(base)
        return node.shape[int(idx)] if idx else node.shape

    def to_networkx(self):
        """A networkx DiGraph of values: nodes are inputs and op nodes, edges carry shapes."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for i in self.inputs:
            g.add_node(i.name, op="input", shape=i.shape)
        for n in self.nodes:
            g.add_node(n.name, op=n.op, shape=n.shape, params=n.param_dict)
            for ref in n.inputs:
                g.add_edge(ref.partition(":")[0], n.name, ref=ref)
        for name, ref in self.outputs:
            g.nodes[ref.partition(":")[0]]["output"] = name
        return g
