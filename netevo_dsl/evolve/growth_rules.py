"""The neuron tracker's advice as mutation rules: `prune_dead`, `merge_duplicates`, `widen_saturated`.

These rules read a trained network's activity, so the mutation engine cannot apply them to a bare spec
(its operators refuse, and say so); `netevo evolve` applies them to a trained candidate with
`apply_growth_rule`, which

1. runs the candidate (its weights, eval mode) over a seeded sample of the training split with a
   `NeuronTracker` attached (correlations only for `merge_duplicates`);
2. keeps the tracker's recommendations of the rule's kind, for the rule's target layers if it names any:
   dead units (firing rate <= `rate`, 0 by default: never active on the sample), identical pairs
   (|correlation| >= `threshold` with slope 1 and intercept 0 within `tolerance`), saturated layers
   (`fraction` of their units saturated on `saturation` of the samples, widened by `growth` of their width);
3. applies them with the function-preserving transforms (`evolve.apply.apply_recommendations`: prune,
   merge, Net2Wider), moving the optimizer state along the unit maps.

The result is `(child spec, Inherited)`, or None when the rule finds nothing to do. `exact` is confirmed
on the sample in float64: pruning a unit that was dead on the sample keeps the outputs on the sample.

Structure-Net-style sparse-to-dense growth uses the mask rules: `grow(mask, rate=..., score="gradient")`
through `apply_growth_rule` scores missing connections by the gradient of the loss on the sample with
respect to the effective (masked) weight, as RigL does, and enables the best ones at weight 0 (exact);
with `score="random"` (SET) the mutation engine can apply it without data, and `inherit` carries the
weights across.
"""
from __future__ import annotations

import fnmatch
import random

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import NetevoError
from ..ir import nodes as ir
from .inherit import Inherited, InheritError, _move_opt_state, same_function

GROWTH_RULES = ("prune_dead", "merge_duplicates", "widen_saturated")
DATA_RULES = GROWTH_RULES + ("grow",)  # rules apply_growth_rule applies
DEFAULT_SAMPLES = 512


def apply_growth_rule(rule_name: str, rule_args: dict, spec: ir.Spec, network: str, state: dict,
                      opt_state: dict | None, data, *, seed: int = 0) -> tuple[ir.Spec, Inherited] | None:
    """Apply one tracker-driven rule (or gradient mask growth) to a trained candidate; None: nothing to do.

    rule_args: the rule's keyword arguments as Python values, plus `targets` (a tuple of layer names or
    globs; empty: every layer); unknown names are an E134 error.
    """
    from ..ops.rules import RULES

    if rule_name not in DATA_RULES:
        raise InheritError(f"`{rule_name}` is not a growth rule", None, "growth rules: " + ", ".join(DATA_RULES))
    args = dict(rule_args or {})
    targets = tuple(args.pop("targets", ()) or ())
    args.pop("p", None)
    allowed = {p.name: p.default for p in RULES[rule_name].params}
    unknown = set(args) - set(allowed)
    if unknown:
        raise InheritError(f"`{rule_name}` has no argument `{sorted(unknown)[0]}`", None,
                           "arguments: " + ", ".join(sorted(allowed)))
    opts = {**allowed, **args}
    sample = _sample(data, int(opts.get("samples", DEFAULT_SAMPLES)), seed)
    if rule_name == "grow":
        return _grow_masks(spec, network, state, opt_state, data, sample, targets, opts, seed)
    model = _model(spec, network, state)
    recs = _recommendations(model, sample, rule_name, opts, targets)
    if not any(recs.values()):
        return None
    from .apply import apply_recommendations

    applied = apply_recommendations(spec, state, recs, network, merge_tolerance=float(opts.get("tolerance", 1e-6)),
                                    expand=True, rng=np.random.default_rng(seed))
    if not applied.actions:
        return None
    moved = _move_opt_state(opt_state, spec, applied.spec, network, applied.old_key, applied.move_state)
    exact = same_function(spec, state, applied.spec, applied.weights, network, inputs=[sample])
    return applied.spec, Inherited(dict(applied.weights), moved, exact, "; ".join(applied.actions))


def _sample_index(data, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(int(seed)))[:n].sort().values


def _sample(data, n: int, seed: int) -> torch.Tensor:
    """n training samples drawn from the seed (all of them when there are fewer)."""
    return data.x_train if len(data.x_train) <= n else data.x_train[_sample_index(data, n, seed)]


def _model(spec, network, state):
    from ..compiler.build import CompiledNetwork
    from ..passes.elaborate import elaborate

    with torch.device("meta"):
        model = CompiledNetwork(elaborate(spec, network))
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    model = model.to_empty(device="cpu").to(dtype)
    model.load_state_dict(state)
    return model.eval()


def _selected(layer: str, targets) -> bool:
    if not targets:
        return True
    return any(fnmatch.fnmatchcase(layer, t) or layer == t or layer.startswith(t + ".") for t in targets)


@torch.no_grad()
def _recommendations(model, sample, rule_name, opts, targets) -> dict:
    from ..runtime.tracker import NeuronTracker

    tracker = NeuronTracker(model, correlation=rule_name == "merge_duplicates")
    with tracker:
        for chunk in sample.to(next(model.parameters()).dtype).split(1024):
            model(chunk)
    if rule_name == "prune_dead":
        recs = tracker.recommendations(dead_rate=float(opts["rate"]), low_activity_rate=float(opts["rate"]))
        return {"prune": [p for p in recs["prune"] if p["reason"] == "dead" and _selected(p["layer"], targets)]}
    if rule_name == "merge_duplicates":
        recs = tracker.recommendations(redundancy_threshold=float(opts["threshold"]))
        return {"merge": [m for m in recs["merge"] if _selected(m["layer"], targets)]}
    recs = tracker.recommendations(saturation_threshold=float(opts["saturation"]),
                                   saturated_layer_fraction=float(opts["fraction"]),
                                   growth_fraction=float(opts["growth"]))
    return {"expand": [e for e in recs["expand"] if _selected(e["layer"], targets)]}


def _grow_masks(spec, network, state, opt_state, data, sample, targets, opts, seed):
    """RigL-style growth: gradient scores of the effective weights on the sample, via the mutation engine."""
    from .inherit import inherit
    from .mutations.engine import mutate

    grads = _effective_weight_grads(spec, network, state, data, sample, seed)
    target_text = ", ".join(f'"{t}"' for t in targets)
    rule = f"grow({target_text + ', ' if target_text else ''}p=1.0, rate={float(opts['rate'])!r}, " \
           f"score=\"{opts['score']}\")"
    weights = {k: v for k, v in state.items() if k.endswith(".weight")}
    try:
        child, text = mutate(spec, random.Random(seed), network, rule, weights=weights, grads=grads)
    except NetevoError:
        return None
    inherited = inherit(spec, state, opt_state, child, network, seed=seed)
    return child, Inherited(inherited.state, inherited.opt_state, inherited.exact, f"{text} ({inherited.how})")


def _effective_weight_grads(spec, network, state, data, sample, seed) -> dict:
    """d loss / d (weight * mask) of every masked layer, dense, on the sample with its labels."""
    from torch.func import functional_call

    model = _model(spec, network, state)
    dtype = next(model.parameters()).dtype
    labels = data.y_train if len(sample) == len(data.x_train) else data.y_train[_sample_index(data, len(sample), seed)]
    masked = {name: m for name, m in model.named_modules() if getattr(m, "mask", None) is not None}
    effective = {f"{name}.weight": (m.weight.detach() * m.mask.view(*m.mask.shape, *([1] * (m.weight.dim() - 2))))
                 .requires_grad_(True) for name, m in masked.items()}
    open_masks = {f"{name}.mask": torch.ones_like(m.mask) for name, m in masked.items()}
    out = functional_call(model, {**dict(model.named_parameters()), **effective, **open_masks}, (sample.to(dtype),))
    grads = torch.autograd.grad(F.cross_entropy(out, labels), list(effective.values()))
    return dict(zip(effective, grads))


__all__ = ["apply_growth_rule", "GROWTH_RULES", "DATA_RULES"]
