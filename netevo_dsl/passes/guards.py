"""The Elaborator's guards: the limits of `netevo_dsl/limits.py` as errors with codes, spans and hints.

A spec is untrusted input. Values, sizes, block recursion and the size of the elaborated graph are
checked here while a network is elaborated, so `check` refuses what `compile_module` (or Python's
recursion limit, or the machine's memory) would otherwise fail on. Pure Python, no torch.
"""
from __future__ import annotations

import math

from ..errors import NameError_, NetevoError, ShapeError, Span
from ..ir.dims import Dim
from ..limits import (
    MAX_ELABORATED_OPS,
    MAX_ELABORATION_DEPTH,
    MAX_SIZE,
    NN_MODULE_ATTRIBUTES,
    LimitError,
    int_in_range,
)


def check_value(v, span: Span | None):
    """An int within int64, a finite float, a Dim whose coefficients are within int64 (E124)."""
    if type(v) is int:
        if not int_in_range(v):
            raise NetevoError(f"number {_digits(v)} is too large (the limit is 2^63 - 1)", span,
                              "sizes and integers must fit in 64 bits", code="E124")
    elif type(v) is float:
        if not math.isfinite(v):
            raise NetevoError("the value overflows to infinity", span, "keep numbers below about 1e308",
                              code="E124")
    elif isinstance(v, Dim):
        for c in v.terms.values():
            if not (int_in_range(c.numerator) and int_in_range(c.denominator)):
                raise NetevoError(f"the size `{_short(v)}` has a coefficient beyond 2^63 - 1", span,
                                  "sizes and integers must fit in 64 bits", code="E124")
    return v


def check_shape(shape, span: Span | None, what: str) -> None:
    """Concrete sizes are 0..MAX_SIZE: a negative one is a shape error (E040), a huge one E125."""
    for i, d in enumerate(shape):
        d = Dim.of(d)
        if not d.is_concrete:
            continue
        value = d.value
        if value < 0:
            raise ShapeError(f"{what}: size {i} is {_short(d)}, a negative size", span,
                             "sizes are whole numbers of at least 0")
        if value > MAX_SIZE:
            raise NetevoError(f"{what}: size {i} is {_short(d)}, above the limit of 2^31 - 1", span,
                              "no tensor dimension may exceed 2147483647", code="E125")


def check_module_name(name: str, span: Span | None, what: str) -> None:
    """Statement names become attributes of a torch nn.Module: those it already has are taken (E021)."""
    if name in NN_MODULE_ATTRIBUTES:
        raise NameError_(f"`{name}` cannot be used as a {what}: torch's nn.Module already has `{name}`", span,
                         f"rename it, e.g. `{name.strip('_')}_out`; names such as forward, training, eval, to, "
                         "parameters and state_dict belong to the compiled module", code="E021")


class Budget:
    """Counts what elaboration makes (E122) and the blocks being inlined (E120 recursion, E121 depth)."""

    def __init__(self):
        self.made = 0
        self.blocks: list[tuple[str, Span | None]] = []  # (block name, span of its call) being inlined

    def charge(self, span: Span | None) -> None:
        self.made += 1
        if self.made > MAX_ELABORATED_OPS:
            raise LimitError(f"the network elaborates to more than {MAX_ELABORATED_OPS} ops, block instances "
                             "and repeat copies", span,
                             "lower repeat counts or block fan-out (a block that calls the next one twice "
                             "doubles the graph at each level)", code="E122")

    def enter_block(self, name: str, span: Span | None) -> None:
        names = [n for n, _ in self.blocks]
        if name in names:
            chain = " -> ".join(names[names.index(name):] + [name])
            raise LimitError(f"block `{name}` calls itself: {chain}", span,
                             "a block cannot call itself, directly or through other blocks (nothing would "
                             "end the recursion); use `repeat` for a stack of copies", code="E120")
        self.charge(span)
        self.blocks.append((name, span))

    def exit_block(self) -> None:
        self.blocks.pop()


def too_deep(span: Span | None) -> LimitError:
    return LimitError(f"elaboration nests more than {MAX_ELABORATION_DEPTH} levels deep (blocks inside blocks, "
                      "each with nested expressions)", span,
                      "flatten the chain of blocks, or split long expressions into statements", code="E121")


def _short(v) -> str:
    text = str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _digits(v: int) -> str:
    n = len(str(abs(v))) if v.bit_length() < 10_000 else int(v.bit_length() * 0.30103)
    return f"with {n} digits" if n > 20 else str(v)


__all__ = ["Budget", "check_module_name", "check_shape", "check_value", "too_deep"]
