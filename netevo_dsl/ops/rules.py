"""Mutation-rule operators usable in `mutate` blocks, with what they apply to and their arguments.

The mutation engine implements them; the checker validates rules against this table.
"""
from __future__ import annotations

import attrs

from .registry import ParamDef


@attrs.frozen
class RuleDef:
    name: str
    applies_to: tuple  # "network", "wann", "transformer"
    params: tuple  # ParamDefs besides p and choices
    takes_targets: bool
    takes_choices: bool = False
    doc: str = ""


_P = ParamDef("p", "float", 1.0, doc="probability that this rule fires for a child")
RULES = {
    r.name: r
    for r in (
        RuleDef("width", ("network",), (), True, True, "change a dependency group's width"),
        RuleDef("kernel", ("network",), (), True, True, "change kernel size; `same`-style padding follows"),
        RuleDef("activation", ("network",), (), True, True, "swap an activation op"),
        RuleDef("insert_layer", ("network",), (), True, True, "insert an op after a target"),
        RuleDef("remove_layer", ("network",), (), True, False, "remove a shape-preserving op"),
        RuleDef("repeat_count", ("network",), (), True, True, "change a repeat count (`repeat` is a keyword)"),
        RuleDef("skip", ("network",), (), True, False, "add or remove a residual connection"),
        RuleDef("heads", ("network", "transformer"), (), True, True, "change attention heads (divisibility kept)"),
        RuleDef("layers", ("transformer",), (), False, True, "add or remove transformer layers"),
        RuleDef("ffn", ("transformer",), (), False, True, "change a layer's FFN width"),
        RuleDef("sublayer", ("transformer",), (), False, False, "switch attention or FFN of a layer on/off"),
        RuleDef("grow", ("network", "transformer"), (ParamDef("rate", "float", 0.01),
                                                     ParamDef("score", "str", "random",
                                                              choices=("random", "gradient", "magnitude"))),
                True, False, "grow mask connections (SET: random; RigL: gradient)"),
        RuleDef("prune", ("network", "transformer"), (ParamDef("rate", "float", 0.01),
                                                      ParamDef("score", "str", "magnitude",
                                                               choices=("random", "magnitude"))),
                True, False, "prune mask connections"),
        RuleDef("density", ("network", "transformer"), (), True, True, "change a mask's density"),
        RuleDef("add_node", ("wann",), (), False, False, "split an enabled edge with a new node"),
        RuleDef("add_edge", ("wann",), (), False, False, "add a feed-forward edge"),
        RuleDef("enable_edge", ("wann",), (), False, False, "re-enable a disabled edge"),
        RuleDef("change_activation", ("wann", "transformer"), (), False, True, "change a node's activation"),
    )
}
PROBABILITY = _P
