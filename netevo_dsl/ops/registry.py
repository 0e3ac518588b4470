"""The op registry: the one place an op is defined.

Each op module declares an `OpDef`: its parameters, its shape rule, how it is
built in PyTorch and emitted as source, how its channels couple to its
neighbours and which axis holds its neurons. The parser does not know ops; the
checker, compiler, mutator and tracker all read them from here.

Shape rules are pure Python over `Dim`s, so they run for concrete and symbolic
shapes alike. Torch is imported lazily, inside `build`, by the compiler only.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs

from ..ir.dims import Dim, to_source

REQUIRED = object()


class ShapeFailure(Exception):
    """Raised by a shape rule; the checker turns it into a ShapeError with spans."""

    def __init__(self, message: str, hint: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code  # a finer code than the shape family's E040 (E204: a per-axis size list's length)


@attrs.frozen
class ParamDef:
    name: str
    type: str  # int | float | bool | str | ints | mask | int_or_str | size (an int, or a list of one per spatial axis)
    default: Any = REQUIRED
    choices: tuple = ()  # allowed strings for str / int_or_str
    minimum: float | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# How an op's channels tie to its neighbours, read by dependency-group analysis:
#   produce     - output neuron axis is a fresh group (linear, conv, embedding); input axis is consumed
#   elementwise - output axis is the input axis, position for position (norms, activations, dropout, pools)
#   tie         - all inputs and the output share one group (add, mul)
#   concat      - output axis is the inputs' groups laid end to end
#   split       - each output is a slice of the input group
#   flatten     - output features are input channels times a spatial factor
#   reshape     - sizes regrouped; channels tied only when the neuron axis is untouched
#   attention   - output tied to input; heads partition the embedding in blocks
#   none        - no neuron axis
COUPLINGS = ("produce", "elementwise", "tie", "concat", "split", "flatten", "reshape", "attention", "none")


@attrs.frozen
class ChannelSite:
    """One axis of a module's state-dict tensor that is indexed by channels, for weight surgery.

    `space` is "in" (the input's channel axis), "out" (the output's) or the name of
    an internal space. `role` says what happens to the axis when units are
    replicated: produce rows are copied, consume columns are split, follow entries
    (norm parameters, statistics) are copied.
    """

    tensor: str  # state-dict key suffix: "weight", "c_attn.weight"
    axis: int
    space: str
    role: str  # produce | consume | follow
    copies: int = 1  # the axis holds this many copies of the space end to end (GPT-2's fused q, k, v)
    grouped: bool = False  # the axis holds in/groups channels per output partition (grouped conv)


@attrs.frozen
class InternalSpace:
    """Channels that live inside one module (GPT-2's attention heads, its MLP's hidden units)."""

    name: str
    size: Callable  # (in_shapes, params) -> Dim
    width_param: str | None = None  # the param that sets its size; None: tied to the input width
    blocks_param: str | None = None  # blocks that move as a whole (attention heads)
    no_resize: str = ""  # why its size cannot change without changing the function


@attrs.frozen
class Channels:
    """Channel metadata beyond `coupling`, read by evolve.groups and evolve.transforms."""

    sites: tuple = ()  # tuple[ChannelSite]
    width_param: str | None = None  # the param that sets the size of the "out" space (produce ops)
    consumes_input: bool = True  # False: the input holds indices, not channels (embedding)
    partition_param: str | None = None  # grouped ops: in and out channels split into this many partitions
    blocks_param: str | None = None  # the op normalises its channels in blocks of this count (groupnorm)
    mixes_channels: bool = False  # every output depends on all channels (layernorm): resizing changes it
    internal: tuple = ()  # tuple[InternalSpace]
    axis_map: Callable | None = None  # (rank, params) -> list: output axis i is input axis map[i] (transpose)


class Unimportable(Exception):
    """Raised by a `TorchImport.params` rule: the call matches the op but its arguments cannot be kept."""


@attrs.frozen
class TorchImport:
    """Which PyTorch calls import as this op (read by `netevo_dsl.importer`; no torch imported here).

    `modules` are dotted class names ("torch.nn.Conv2d"), `functions` dotted function names
    ("torch.nn.functional.relu", "_operator.add"), `methods` tensor method names ("relu").
    `params(call)` returns the op's params from an `importer.Call` (its `module`, constant `args`
    and `kwargs`, `in_shapes`, `out_shape`), or raises `Unimportable` saying what cannot be kept.
    `tuple_first`: the call gives a tuple and the op stands for its element 0 (`y, _ = self.attn(x, x, x)`).
    """

    modules: tuple = ()
    functions: tuple = ()
    methods: tuple = ()
    params: Callable = lambda call: {}
    tuple_first: bool = False
    attributes: bool = False  # fx `get_attr` nodes: a tensor the module holds, read in forward (`self.layer_scale`)


@attrs.frozen
class OpDef:
    name: str
    params: tuple  # tuple[ParamDef]
    infer: Callable  # (in_shapes: list[tuple[Dim]], params: dict) -> shape or list of shapes
    min_inputs: int = 1
    max_inputs: int | None = 1  # None: any number
    module: bool = True  # builds an nn.Module that appears in the state dict path
    build: Callable | None = None  # (in_shapes, params) -> nn.Module   (concrete ints)
    emit: Callable | None = None  # (in_shapes, params, src) -> constructor source
    functional: Callable | None = None  # non-module ops: (tensors, params) -> tensor(s)
    emit_functional: Callable | None = None  # (input_exprs, params, src) -> expression source
    coupling: str = "none"
    neuron_axis: int | None = None
    weight_bearing: bool = False  # accepts mask= and shared-weight (WANN) mode
    activation: str | None = None  # name in ops.activations when the op is an activation
    n_outputs: Callable | None = None  # (params) -> int for multi-output ops (split)
    helper_classes: tuple = ()  # compiler.modules classes whose source the emitter must include
    channels: Channels = Channels()  # weight-surgery metadata (evolve)
    doc: str = ""
    # Measures (passes.measures), over concrete per-sample shapes (the batch axis removed):
    # macs(in_shapes, out_shape, params) -> multiply-adds of matrix products and convolutions per sample
    # (elementwise work is not counted, as in torch.utils.flop_counter); None: 0.
    macs: Callable | None = None
    # n_params(in_shapes, params) -> trainable parameters (mask buffers and statistics excluded); None: 0.
    n_params: Callable | None = None
    torch_import: tuple = ()  # tuple[TorchImport]: the PyTorch calls `netevo import` maps onto this op
    # the op is a bare nn.Parameter installed at its path (state-dict key = the path), read in forward without a
    # call; `build` returns the nn.Parameter and `emit` its constructor (ops/parameter.py)
    parameter: bool = False

    def param(self, name: str) -> ParamDef | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name} registered twice")
    if op.coupling not in COUPLINGS:
        raise ValueError(f"op {op.name}: unknown coupling {op.coupling}")
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef | None:
    _load_all()
    return _REGISTRY.get(name)


def op_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def all_ops() -> list[OpDef]:
    _load_all()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


_LOADED = False


def _load_all():
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import (  # noqa: F401 - registration side effects
            activation_ops,
            attention,
            axes,
            broadcast,
            combine,
            conv,
            dropout,
            embedding,
            linear,
            layernorm2d,
            norm,
            parameter,
            pool,
            reduce,
            relative_attention,
            reshape,
            scale,
            select,
            self_attention,
            swin,
        )


# --- helpers shared by op definitions ------------------------------------------


def src(value) -> str:
    """Python source for a param or dim value (ints, floats, bools, Dims, tuples)."""
    if isinstance(value, Dim):
        return to_source(value, integer_division=True)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value)  # only registry-validated choices reach here
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(src(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if value is None:
        return "None"
    raise TypeError(f"cannot emit {value!r}")


def rank(shape, *ranks: int, what: str = "input"):
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeFailure(f"{what} has rank {len(shape)}, expected rank {want}", "check the op's input shape")


def ival(value) -> int:
    """A concrete integer param (kernel sizes, strides): symbolic values are not allowed here."""
    d = Dim.of(value)
    if not d.is_int():
        raise ShapeFailure(f"`{d}` must be a concrete integer here")
    return int(d)


def positive(name: str, value):
    d = Dim.of(value)
    if d.is_concrete and d.value <= 0:
        raise ShapeFailure(f"`{name}` must be positive, got {d}")


def divisible(what: str, total, by, hint: str | None = None):
    total, by = Dim.of(total), Dim.of(by)
    if total.is_concrete and by.is_concrete and (by.value == 0 or total.value % by.value != 0):
        raise ShapeFailure(f"{what}: {total} is not divisible by {by}", hint)


def single(value, what: str) -> int:
    """One int from a torch size argument: 3, or (3, 3); (3, 5) is refused (the ops take one size)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(set(values)) != 1:
        raise Unimportable(f"{what}={tuple(values)} differs between axes; the op takes one size for all axes")
    return int(values[0])


def per_axis(value, axes: int, name: str) -> tuple:
    """One value per spatial axis from a `size` param: `3` is (3,) * axes, `[1, 7]` is (1, 7) when axes is 2."""
    if not isinstance(value, (tuple, list)):
        return (value,) * axes
    if len(value) != axes:
        raise ShapeFailure(f"`{name}` gives {len(value)} size(s) for {axes} spatial axes",
                           f"give one integer for every axis, or a list of {axes}", code="E204")
    return tuple(value)


def sizes(value, what: str):
    """A torch size argument as a `size` param: 3 or (3, 3) -> 3; (1, 7) -> (1, 7) (one per spatial axis)."""
    values = tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),)
    return values[0] if len(set(values)) == 1 else values


def mask_param() -> ParamDef:
    return ParamDef("mask", "mask", None, doc="connectivity mask (name of a `mask` item, or a mask call)")
