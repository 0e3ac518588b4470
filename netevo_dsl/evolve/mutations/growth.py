"""The tracker-driven rules (`prune_dead`, `merge_duplicates`, `widen_saturated`) seen by the engine.

They need a trained candidate and data, which a bare spec does not have: here they make no child and
say why; `netevo evolve` applies them to trained candidates with `evolve.growth_rules.apply_growth_rule`.
"""
from __future__ import annotations

from .base import Context, operator


def _needs_training(name: str):
    def op(ctx: Context):
        ctx.refuse(f"`{name}` reads a trained network's neuron statistics",
                   "netevo evolve applies it to trained candidates (evolve.growth_rules.apply_growth_rule)")
        return []

    return op


for _name in ("prune_dead", "merge_duplicates", "widen_saturated"):
    operator("network", _name)(_needs_training(_name))
