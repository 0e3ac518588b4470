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
    # Needs a trained candidate and data (the neuron tracker's statistics): `netevo evolve` applies it with
    # evolve.growth_rules.apply_growth_rule; the mutation engine alone cannot.
    needs_training: bool = False


_P = ParamDef("p", "float", 1.0, doc="probability that this rule fires for a child")
_SAMPLES = ParamDef("samples", "int", 512, minimum=1, doc="training samples the tracker sees")
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
        RuleDef("prune_dead", ("network",), (ParamDef("rate", "float", 0.0, minimum=0.0,
                                                      doc="firing rate at or below which a unit is dead"), _SAMPLES),
                True, False, "prune units that never fire on a training sample (exact on it)", needs_training=True),
        RuleDef("merge_duplicates", ("network",), (ParamDef("threshold", "float", 0.999, minimum=0.0,
                                                            doc="|correlation| of a pair"),
                                                   ParamDef("tolerance", "float", 1e-6, minimum=0.0,
                                                            doc="slope 1 and intercept 0 within this"), _SAMPLES),
                True, False, "merge identical unit pairs (exact)", needs_training=True),
        RuleDef("widen_saturated", ("network",), (ParamDef("saturation", "float", 0.9, minimum=0.0,
                                                           doc="share of samples a unit is saturated on"),
                                                  ParamDef("fraction", "float", 0.25, minimum=0.0,
                                                           doc="share of a layer's units that are saturated"),
                                                  ParamDef("growth", "float", 0.25, minimum=0.0,
                                                           doc="new units, as a share of the width"), _SAMPLES),
                True, False, "widen layers of bounded activations that saturate, by Net2Wider (exact)",
                needs_training=True),
        RuleDef("add_node", ("wann",), (), False, False, "split an enabled edge with a new node"),
        RuleDef("add_edge", ("wann",), (), False, False, "add a feed-forward edge"),
        RuleDef("enable_edge", ("wann",), (), False, False, "re-enable a disabled edge"),
        RuleDef("change_activation", ("wann", "transformer"), (), False, True, "change a node's activation"),
    )
}
PROBABILITY = _P
