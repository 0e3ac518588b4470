"""Acting on tracker recommendations with the function-preserving transforms.

`apply_recommendations(spec, weights, recs)` prunes dead units (exact: they are
zero wherever they are read), merges identical units (exact: correlation 1,
slope 1, intercept 0), and widens saturated layers by Net2Wider (exact). Other
suggestions (low activity, merely correlated pairs) are reported as skipped
unless asked for, because acting on them changes the function.
"""
from __future__ import annotations

import attrs

from ..errors import TransformError
from ..passes.elaborate import elaborate
from .groups import dependency_groups, find_group
from .transforms import merge_units, prune_units, widen


@attrs.frozen
class Applied:
    spec: object
    weights: dict
    actions: tuple  # human-readable lines, in order
    skipped: tuple  # (suggestion, why)
    results: tuple = ()  # the TransformResults, in order
    old_spec: object = None
    network: str | None = None

    def old_key(self, new_key: str) -> str | None:
        for r in reversed(self.results):
            new_key = r.old_key(new_key)
            if new_key is None:
                return None
        return new_key

    def move_state(self, new_key: str, old_tensor):
        """Per-parameter optimizer state moved through every transform, in order."""
        keys = [new_key]
        for r in reversed(self.results[1:]):
            keys.append(r.old_key(keys[-1]))
        for r, key in zip(self.results, reversed(keys)):
            old_tensor = r.move_state(key, old_tensor)
        return old_tensor

    def apply_to_optimizer(self, opt, new_model, old_model=None):
        """Point `opt` at new_model's parameters with SGD momentum / Adam moments carried along."""
        from .surgery import TransformResult

        if not self.results:
            return opt
        return TransformResult.apply_to_optimizer(self, opt, new_model, old_model)


def apply_recommendations(spec, weights: dict, recs: dict, network: str | None = None, *,
                          prune_low_activity: bool = False, merge_tolerance: float = 1e-6,
                          expand: bool = True, rng=None) -> Applied:
    _require_spec(spec)
    graph = elaborate(spec, network)
    network = graph.name
    groups = dependency_groups(graph)
    plan: dict[str, dict] = {}
    skipped: list = []

    def todo_for(group, layer) -> dict:
        return plan.setdefault(group.name, {"prune": set(), "merge": [], "expand": 0, "layer": layer})

    def group_of(layer):
        site = recs.get("sites", {}).get(layer, {})
        if site and site.get("module") != layer:
            return None  # a function call, or one call of a reused module: no spec node of its own
        try:
            return find_group(groups, layer)
        except (KeyError, TransformError):
            return None

    for p in recs.get("prune", []):
        if p["reason"] != "dead" and not prune_low_activity:
            skipped.append((p, "low activity is not dead: pruning would change the function"))
            continue
        g = group_of(p["layer"])
        if g is None:
            skipped.append((p, f"`{p['layer']}` is not a unit of any dependency group"))
            continue
        todo_for(g, p["layer"])["prune"].add(p["index"])
    for m in recs.get("merge", []):
        identical = abs(m["slope"] - 1.0) <= merge_tolerance and abs(m["intercept"]) <= merge_tolerance
        if not identical:
            skipped.append((m, "correlated but not identical: merging would change the function"))
            continue
        g = group_of(m["layer"])
        if g is None:
            skipped.append((m, f"`{m['layer']}` is not a unit of any dependency group"))
            continue
        todo_for(g, m["layer"])["merge"].append((m["keep"], m["remove"]))
    if expand:
        for e in recs.get("expand", []):
            g = group_of(e["layer"])
            if g is None:
                skipped.append((e, f"`{e['layer']}` is not a unit of any dependency group"))
                continue
            todo_for(g, e["layer"])["expand"] = int(e["suggested_growth"])

    actions: list[str] = []
    results: list = []
    old_spec = spec
    for name, todo in plan.items():
        layer = todo["layer"]
        merges, dropped = [], set()
        for k, d in todo["merge"]:  # the same pair may be reported at several sites of the group
            if d in dropped or k in dropped or d in todo["prune"] or k in todo["prune"] or (k, d) in merges:
                continue
            if d in {kk for kk, _ in merges}:
                continue
            merges.append((k, d))
            dropped.add(d)
        kept = None
        if merges:
            keep, drop = zip(*merges)
            result = merge_units(spec, weights, layer, list(keep), list(drop), network=network)
            spec, weights = result.spec, result.weights
            results.append(result)
            kept = [i for i in range(find_group(groups, name).size) if i not in set(drop)]
            actions.append(f"merged {len(merges)} identical unit pair(s) of `{name}`")
        prune = sorted(todo["prune"])
        if prune:
            if kept is not None:
                prune = [kept.index(i) for i in prune]
            try:
                result = prune_units(spec, weights, layer, prune, network=network)
                spec, weights = result.spec, result.weights
                results.append(result)
                actions.append(f"pruned {len(prune)} dead unit(s) of `{name}`")
            except TransformError as e:
                skipped.append(({"layer": layer, "prune": prune}, e.message))
        if todo["expand"]:
            size = find_group(dependency_groups(elaborate(spec, network)), layer).size
            try:
                result = widen(spec, weights, layer, size + todo["expand"], rng=rng, network=network)
                spec, weights = result.spec, result.weights
                results.append(result)
                actions.append(f"widened `{name}` from {size} to {size + todo['expand']} (Net2Wider)")
            except TransformError as e:
                skipped.append(({"layer": layer, "expand": todo["expand"]}, e.message))
    return Applied(spec, weights, tuple(actions), tuple(skipped), tuple(results), old_spec, network)


def _require_spec(spec) -> None:
    """Transforms edit a spec and its weights; a torch module alone has no spec to edit."""
    import torch.nn as nn

    from ..errors import UsageError

    if isinstance(spec, nn.Module):
        compiled = hasattr(spec, "graph_name")
        raise UsageError(
            f"apply_recommendations edits a netevo spec and its weights; got the torch module {type(spec).__name__}",
            hint="pass the spec the model was compiled from, and model.state_dict()" if compiled else
            "describe the model in a .net spec (netevo_dsl.load) and compile it, or act on the recommendations' "
            "prune / merge lists yourself: they name each site and neuron index",
            code="E172",
        )
