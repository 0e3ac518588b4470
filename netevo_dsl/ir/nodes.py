"""The spec IR: plain, frozen, typed data.

This is the program as written (before `resolve` expands blocks and repeats).
Every class is a frozen, slotted attrs class; source spans and doc comments are
kept but excluded from equality, so two specs that differ only in layout or
comments compare equal. Passes never mutate IR: they build new IR with
``attrs.evolve``.
"""
from __future__ import annotations

from typing import Union

import attrs

from ..errors import Span, span_field

frozen = attrs.frozen


def _tuple(x) -> tuple:
    return tuple(x)


def tuple_field(**kw):
    return attrs.field(converter=_tuple, **kw)


def doc_field():
    return attrs.field(default="", eq=False, hash=False, repr=False, kw_only=True)


# --- expressions ---------------------------------------------------------------


@frozen
class Num:
    value: int | float
    span: Span | None = span_field()


@frozen
class Str:
    value: str
    span: Span | None = span_field()


@frozen
class Bool:
    value: bool
    span: Span | None = span_field()


@frozen
class Name:
    id: str
    span: Span | None = span_field()


@frozen
class Neg:
    operand: "Expr"
    span: Span | None = span_field()


@frozen
class BinOp:
    op: str  # one of + - * / % (the parser makes no `//`: it starts a comment)
    left: "Expr"
    right: "Expr"
    span: Span | None = span_field()


@frozen
class KwArg:
    name: str
    value: "Expr"
    span: Span | None = span_field()


@frozen
class Call:
    func: str
    args: tuple = tuple_field(default=())
    kwargs: tuple = tuple_field(default=())  # tuple[KwArg]
    span: Span | None = span_field()

    def kwarg(self, name: str, default=None):
        for kw in self.kwargs:
            if kw.name == name:
                return kw.value
        return default


@frozen
class Pipe:
    """``value |> call``: sugar for ``call`` with ``value`` as first argument."""

    value: "Expr"
    call: Call
    span: Span | None = span_field()


@frozen
class ListExpr:
    items: tuple = tuple_field(default=())
    span: Span | None = span_field()


@frozen
class SetExpr:
    items: tuple = tuple_field(default=())
    span: Span | None = span_field()


Expr = Union[Num, Str, Bool, Name, Neg, BinOp, Call, Pipe, ListExpr, SetExpr]

BINARY_PRECEDENCE = {"|>": 1, "+": 2, "-": 2, "*": 3, "/": 3, "//": 3, "%": 3}


# --- types ---------------------------------------------------------------------


@frozen
class TensorType:
    """``[B, 3, H, W]``: each dim is an expression over symbols and params."""

    dims: tuple = tuple_field()
    span: Span | None = span_field()


@frozen
class ScalarType:
    name: str  # int | float | bool
    span: Span | None = span_field()


Type = Union[TensorType, ScalarType]


# --- statements inside networks and blocks ------------------------------------


@frozen
class Input:
    name: str
    type: TensorType
    span: Span | None = span_field()


@frozen
class Assign:
    targets: tuple = tuple_field()  # tuple[str]; several for split
    value: Expr
    span: Span | None = span_field()


@frozen
class Output:
    name: str
    value: Expr
    span: Span | None = span_field()


@frozen
class Return:
    value: Expr
    span: Span | None = span_field()


@frozen
class Repeat:
    count: Expr
    name: str
    body: tuple = tuple_field()
    span: Span | None = span_field()


Statement = Union[Input, Assign, Output, Return, Repeat]


# --- top-level items -----------------------------------------------------------


@frozen
class Version:
    number: int
    span: Span | None = span_field()


@frozen
class Import:
    path: str
    span: Span | None = span_field()


@frozen
class Param:
    name: str
    type: ScalarType
    default: Expr | None = None
    span: Span | None = span_field()
    doc: str = doc_field()


@frozen
class BlockParam:
    name: str
    type: Type
    default: Expr | None = None
    span: Span | None = span_field()


@frozen
class Block:
    name: str
    params: tuple = tuple_field()  # tuple[BlockParam]
    returns: TensorType | None
    body: tuple = tuple_field()
    span: Span | None = span_field()
    doc: str = doc_field()


@frozen
class MaskDef:
    name: str
    value: Call
    span: Span | None = span_field()
    doc: str = doc_field()


@frozen
class Network:
    name: str
    body: tuple = tuple_field()
    span: Span | None = span_field()
    doc: str = doc_field()


@frozen
class WannOutput:
    name: str
    activation: str
    span: Span | None = span_field()


@frozen
class WannNode:
    name: str
    activation: str
    span: Span | None = span_field()


@frozen
class WannEdge:
    src: str
    dst: str
    enabled: bool = True
    # `edge a -> b w=0.3`: this edge's own weight; None (the default) multiplies by the shared weight w
    weight: float | None = attrs.field(default=None, metadata={"hash_omit_none": True})
    span: Span | None = span_field()


@frozen
class Setting:
    """``key value``: a generic setting inside genomes, layers and evolve blocks."""

    key: str
    value: Expr
    span: Span | None = span_field()


@frozen
class Objective:
    direction: str  # maximize | minimize
    metric: Expr  # e.g. mean(reward), connections
    span: Span | None = span_field()


@frozen
class TrainSettings:
    """``train { task digits  epochs 2  optimizer Adam(lr=0.001) }`` inside a network's evolve block."""

    settings: tuple = tuple_field(default=())  # tuple[Setting]
    span: Span | None = span_field()


@frozen
class WannGenome:
    """A weight-agnostic network: nodes, edges, activations, one shared weight."""

    name: str
    inputs: tuple = tuple_field()  # tuple[str]; an input named `bias` is the constant 1
    outputs: tuple = tuple_field()  # tuple[WannOutput]
    nodes: tuple = tuple_field(default=())  # tuple[WannNode]
    edges: tuple = tuple_field(default=())  # tuple[WannEdge]
    settings: tuple = tuple_field(default=())  # tuple[Setting]: weights, ...
    span: Span | None = span_field()
    doc: str = doc_field()

    kind = "wann"


@frozen
class TransformerLayer:
    settings: tuple = tuple_field(default=())  # tuple[Setting]: heads, ffn, activation, attention, mlp
    span: Span | None = span_field()


@frozen
class TransformerGenome:
    """A WANN-GPT genome: GPT-2 layers whose linear maps are w x mask."""

    name: str
    settings: tuple = tuple_field(default=())  # vocab, context, embed, weights, masks
    layers: tuple = tuple_field(default=())  # tuple[TransformerLayer]
    span: Span | None = span_field()
    doc: str = doc_field()

    kind = "transformer"


@frozen
class MutateBlock:
    """Mutation rules for one network or genome; each rule is a generic call."""

    target: str
    rules: tuple = tuple_field(default=())  # tuple[Call]
    span: Span | None = span_field()
    doc: str = doc_field()


@frozen
class EvolveBlock:
    target: str
    settings: tuple = tuple_field(default=())  # tuple[Setting | Objective | TrainSettings]
    span: Span | None = span_field()
    doc: str = doc_field()


Item = Union[Version, Import, Param, Block, MaskDef, Network, WannGenome, TransformerGenome, MutateBlock, EvolveBlock]


@frozen
class Comment:
    line: int
    col: int
    text: str  # including the leading // or ///
    own_line: bool = True  # False for a comment after code on the same line


@frozen
class Spec:
    """A whole .net file. `imported` holds the items of imported files, resolved."""

    items: tuple = tuple_field(default=())
    path: str | None = attrs.field(default=None, eq=False, hash=False)
    comments: tuple = attrs.field(default=(), converter=_tuple, eq=False, hash=False, repr=False)
    imported: tuple = attrs.field(default=(), converter=_tuple, eq=False, hash=False, repr=False)

    def all_items(self):
        """Items of imported files first, then this file's own."""
        return self.imported + self.items

    def find(self, name: str, kinds: tuple = ()):
        for item in self.all_items():
            if getattr(item, "name", None) == name and (not kinds or isinstance(item, kinds)):
                return item
        return None

    def of_kind(self, *kinds):
        return [i for i in self.all_items() if isinstance(i, kinds)]

    @property
    def networks(self):
        return self.of_kind(Network)

    @property
    def genomes(self):
        return self.of_kind(WannGenome, TransformerGenome)


def setting(settings, key: str, default=None):
    for s in settings:
        if isinstance(s, Setting) and s.key == key:
            return s.value
    return default
