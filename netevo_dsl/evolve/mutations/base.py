"""Rules, contexts and the operator table shared by every mutation family.

A mutation operator is a generator: given a `Context` (the spec, the item being
mutated, one rule, a random source) it yields candidate `(new_spec,
description)` pairs in random order, most promising first. The engine keeps the
first candidate that passes `check`, so an operator may be optimistic about
constraints the checker enforces anyway. Operators never modify their input. An operator that yields nothing says why with `ctx.refuse`; when
no rule can change a spec, the E060 error lists each rule tried and those reasons.
"""
from __future__ import annotations

import random
from typing import Callable, Iterator

import attrs

from ...errors import RuleError
from ...ir import nodes as ir
from ...ops.rules import RULES

Candidate = tuple  # (ir.Spec, str)

OPERATORS: dict[tuple[str, str], Callable] = {}


def operator(kind: str, name: str):
    """Register `fn(ctx) -> Iterator[Candidate]` as rule `name` for items of `kind`."""
    if name not in RULES or kind not in RULES[name].applies_to:
        raise ValueError(f"rule {name} is not declared for {kind} in ops.rules")

    def register(fn):
        OPERATORS[(kind, name)] = fn
        return fn

    return register


def literal(e):
    """The Python value of a rule argument: numbers, names (as strings), strings, sets."""
    if isinstance(e, ir.Num):
        return e.value
    if isinstance(e, ir.Neg) and isinstance(e.operand, ir.Num):
        return -e.operand.value
    if isinstance(e, ir.Name):
        return e.id
    if isinstance(e, (ir.Str, ir.Bool)):
        return e.value
    if isinstance(e, (ir.SetExpr, ir.ListExpr)):
        return tuple(literal(i) for i in e.items)
    raise RuleError("rule arguments are numbers, names, strings or sets", getattr(e, "span", None))


@attrs.frozen
class Rule:
    """One rule of a `mutate` block, with its arguments as Python values."""

    name: str
    targets: tuple = ()  # names and globs
    p: float = 1.0
    choices: tuple | None = None
    options: tuple = ()  # ((key, value), ...): rate, score, op
    call: ir.Call | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_call(cls, call: ir.Call) -> "Rule":
        if call.func not in RULES:
            raise RuleError(f"unknown mutation operator `{call.func}`", call.span,
                            "operators: " + ", ".join(sorted(RULES)))
        rule = RULES[call.func]
        options = {p.name: p.default for p in rule.params}
        p, choices = 1.0, None
        for kw in call.kwargs:
            value = literal(kw.value)
            if kw.name == "p":
                p = float(value)
            elif kw.name == "choices":
                choices = tuple(value) if isinstance(value, tuple) else (value,)
            else:
                options[kw.name] = value
        targets = tuple(literal(a) for a in call.args)
        return cls(call.func, targets, p, choices, tuple(sorted(options.items())), call)

    def option(self, key, default=None):
        return dict(self.options).get(key, default)

    def describe(self) -> str:
        from ...ir.printer import expr

        return expr(self.call) if self.call is not None else self.name


@attrs.define
class Context:
    spec: ir.Spec
    item: object  # ir.Network | ir.WannGenome | ir.TransformerGenome
    rule: Rule
    rng: random.Random
    weights: dict | None = None  # node name -> weight array (for magnitude scores)
    grads: dict | None = None  # node name -> gradient array (for RigL-style growth)
    overrides: dict | None = None
    siblings: tuple = ()  # every rule of the mutate block (add_node reads change_activation's choices)
    _analysis: object = None
    refusals: list = attrs.Factory(list)  # (why, hint): why candidates could not be made, for E060

    def refuse(self, why: str, hint: str | None = None):
        """Record why this rule cannot change the spec here (the engine reports it if no rule can)."""
        if (why, hint) not in self.refusals:
            self.refusals.append((why, hint))

    @property
    def analysis(self):
        if self._analysis is None:
            from .analysis import NetworkAnalysis

            self._analysis = NetworkAnalysis(self.spec, self.item.name, self.overrides)
        return self._analysis

    def replace_item(self, new_item) -> ir.Spec:
        """The spec with this context's item replaced (genome mutations)."""
        items = tuple(new_item if i is self.item else i for i in self.spec.items)
        if not any(i is self.item for i in self.spec.items):
            raise RuleError(f"`{self.item.name}` is imported; mutate it in its own file")
        return attrs.evolve(self.spec, items=items)


def shuffled(rng: random.Random, items) -> list:
    items = list(items)
    rng.shuffle(items)
    return items


def kind_of(item) -> str:
    if isinstance(item, ir.WannGenome):
        return "wann"
    if isinstance(item, ir.TransformerGenome):
        return "transformer"
    return "network"


Operator = Callable[[Context], Iterator[Candidate]]

__all__ = ["OPERATORS", "operator", "Rule", "Context", "Candidate", "literal", "shuffled", "kind_of"]
