"""Mask mutations of networks: grow and prune connections, change density.

A mask lives in the spec, as a `mask NAME = kind(...)` item or an inline
`mask=kind(...)` argument. Its users are the layers that read it; their weight
shapes (out, fan-in per group) come from the graph.

Representation of a changed mask:

* when every user has one weight shape, the new mask is written out
  explicitly as `bits(rows=[...])`, so grown connections are added to the
  existing ones and pruned ones are removed from them, exactly (SET / RigL);
* when users differ in shape, no explicit matrix fits them all: the mask
  becomes `random(density=d +/- rate, seed=s)` with a fresh seed, and the
  description says it was re-drawn.

`rate` is a share of the mask's *live* connections, as SET (Mocanu et al. 2018, zeta) and RigL
(Evci et al. 2020, the drop fraction) define it: `prune(rate=0.05)` removes 5% of the connections
a mask has, `grow(rate=0.05)` adds as many as 5% of them (at least one either way), so the
density moves by the factor 1 -/+ rate. `density(choices=...)` sets the density itself; on an
explicit mask it grows or prunes to that density, and says so under its own name. Scores: `random` (SET),
`gradient` (RigL: largest |gradient| among absent connections, from `grads`),
`magnitude` (largest |weight| to grow among absent ones in a dense shadow,
smallest |weight| to prune, from `weights`). `weights` and `grads` map node
names (or state-dict keys, `fc.weight`) to arrays or tensors. Without the arrays a score needs,
the choice falls back to random and the description says so.
"""
from __future__ import annotations

import attrs
import numpy as np

from ...ir import nodes as ir
from ...ops.masks import make_mask
from ...ops.registry import get_op
from .analysis import Edits, Slot, node_matches
from .base import Context, operator, shuffled


@attrs.frozen(eq=False)
class MaskSite:
    """Where a mask is written, and the layers that read it."""

    label: str
    call: ir.Call  # the mask expression: kind(...)
    users: tuple  # graph node names
    item: ir.MaskDef | None = None  # a `mask` item ...
    slot: Slot | None = None  # ... or an inline `mask=` argument

    def replace(self, new_call: ir.Call) -> Edits:
        if self.item is not None:
            return Edits().add(self.item, lambda m: attrs.evolve(m, value=new_call))
        return Edits().set_slot(self.slot, new_call)


def mask_sites(ctx: Context) -> list[MaskSite]:
    a = ctx.analysis
    found: dict = {}  # key -> (site without users, [users])
    for name, node in a.nodes.items():
        mask = node.param_dict.get("mask")
        if mask is None:
            continue
        if mask.name is not None:
            item = next((m for m in ctx.spec.items if isinstance(m, ir.MaskDef) and m.name == mask.name), None)
            if item is None or not isinstance(item.value, ir.Call):
                continue  # imported, or not a call
            key, site = id(item), MaskSite(item.name, item.value, (), item=item)
        else:
            slot = Slot(a.provenance[name].op.call, ("kw", "mask"))
            if not isinstance(slot.expr(), ir.Call):
                continue
            key, site = slot.ident, MaskSite(f"mask of {name}", slot.expr(), (), slot=slot)
        found.setdefault(key, (site, []))[1].append(name)
    out = [attrs.evolve(site, users=tuple(users)) for site, users in found.values()]
    if ctx.rule.targets:
        out = [s for s in out if any(
            node_matches(s.label, p) or any(node_matches(u, p) for u in s.users) for p in ctx.rule.targets)]
    return out


def weight_shape(a, node: str) -> tuple[int, int]:
    """(out, fan-in per group) of a weight-bearing node, from the op's neuron axis."""
    n = a.nodes[node]
    op = get_op(n.op)
    in_shape = a.graph.shape_of(n.inputs[0])
    axis = op.neuron_axis
    groups = int(n.param_dict.get("groups", 1) or 1)
    return int(n.shape[axis]), int(in_shape[axis]) // groups


def _current(a, site: MaskSite):
    shapes = {weight_shape(a, u) for u in site.users}
    mask = a.nodes[site.users[0]].param_dict["mask"]
    if len(shapes) != 1:
        return None, shapes, mask
    out, fan_in = next(iter(shapes))
    return make_mask(mask, out, fan_in), shapes, mask


def _scores(ctx: Context, site: MaskSite, shape, source: str):
    """Per-position scores from `weights` or `grads` (summed over users); None if not given."""
    table = ctx.grads if source == "gradient" else ctx.weights
    if not table:
        return None
    total = np.zeros(shape)
    for u in site.users:
        value = table.get(u, table.get(f"{u}.weight"))  # node names, or a state dict's keys
        if value is None:
            return None
        arr = np.abs(np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float))
        if arr.ndim > 2:  # conv kernels: one score per (out, in) connection
            arr = arr.reshape(arr.shape[0], arr.shape[1], -1).sum(-1)
        if arr.shape != shape:
            return None
        total += arr
    return total


def bits_call(matrix) -> ir.Call:
    rows = tuple(ir.Str("".join("1" if b else "0" for b in row)) for row in matrix)
    return ir.Call("bits", (), (ir.KwArg("rows", ir.ListExpr(rows)),))


def _pick(ctx, positions, k, scores, largest: bool):
    if scores is None:
        return ctx.rng.sample(list(positions), k)
    values = scores.reshape(-1)[positions]
    order = np.argsort(-values if largest else values, kind="stable")
    return [int(positions[i]) for i in order[:k]]


def _reseeded(ctx, mask, density) -> ir.Call:
    density = round(min(1.0, max(density, 1e-6)), 6)
    return ir.Call("random", (), (ir.KwArg("density", ir.Num(density)),
                                   ir.KwArg("seed", ir.Num(ctx.rng.randrange(2 ** 31)))))


def _mean_density(a, site) -> float:
    total = kept = 0
    for u in site.users:
        out, fan_in = weight_shape(a, u)
        m = make_mask(a.nodes[u].param_dict["mask"], out, fan_in)
        total, kept = total + m.size, kept + int(m.sum())
    return kept / total


def _change(ctx: Context, site: MaskSite, grow: bool, rate: float, score: str, target: float | None = None):
    """Grow or prune by `rate` x the live connections; with `target`, to that density (the density rule)."""
    a = ctx.analysis
    matrix, shapes, mask = _current(a, site)
    verb = "density" if target is not None else "grow" if grow else "prune"
    if matrix is None:
        old = _mean_density(a, site)
        new = target if target is not None else min(1.0, old * (1 + rate) if grow else old * (1 - rate))
        if not 0 < new <= 1 or (grow and old >= 1) or abs(new - old) < 1e-12:
            return None
        return site.replace(_reseeded(ctx, mask, new)), \
            f"{verb} {site.label}: density {old:.4f} -> {new:.4f} (re-drawn: its layers differ in shape)"
    flat = matrix.reshape(-1).copy()
    candidates = np.flatnonzero(~flat if grow else flat)
    live = int(flat.sum())
    k = int(round(abs(target * flat.size - live))) if target is not None else max(1, int(round(rate * live)))
    if not grow:
        k = min(k, len(candidates) - 1)  # keep at least one connection
    k = min(k, len(candidates))
    if k <= 0:
        return None
    note = ""
    scores = None
    if score in ("gradient", "magnitude"):
        scores = _scores(ctx, site, matrix.shape, score)
        if scores is None:
            note = f" ({score} scores need {'grads' if score == 'gradient' else 'weights'}; none given: random)"
    chosen = _pick(ctx, candidates, k, scores, largest=grow)
    flat[chosen] = grow
    how = score if scores is not None else "random"
    if target is not None:
        return site.replace(bits_call(flat.reshape(matrix.shape))), \
            f"density {site.label}: {matrix.mean():.4f} -> {flat.mean():.4f} ({'grew' if grow else 'pruned'} {k} " \
            f"connection(s) by {how}){note}"
    return site.replace(bits_call(flat.reshape(matrix.shape))), \
        f"{verb} {site.label}: {k} connection(s) by {how} ({rate:g} of {live} live), density " \
        f"{matrix.mean():.4f} -> {flat.mean():.4f}{note}"


def _mask_rule(grow: bool):
    def op(ctx: Context):
        rate = float(ctx.rule.option("rate", 0.01))
        score = str(ctx.rule.option("score", "random"))
        for site in shuffled(ctx.rng, mask_sites(ctx)):
            change = _change(ctx, site, grow, rate, score)
            if change is not None:
                edits, text = change
                try:
                    yield edits.apply(ctx.spec), text
                except LookupError:
                    continue

    return op


grow = operator("network", "grow")(_mask_rule(True))
prune = operator("network", "prune")(_mask_rule(False))


@operator("network", "density")
def density(ctx: Context):
    a = ctx.analysis
    for site in shuffled(ctx.rng, mask_sites(ctx)):
        old = _mean_density(a, site)
        choices = [float(c) for c in (ctx.rule.choices or ()) if 0 < float(c) <= 1 and abs(float(c) - old) > 1e-9]
        for d in shuffled(ctx.rng, choices):
            if site.call.func == "random":
                kwargs = tuple(k for k in site.call.kwargs if k.name != "density")
                new_call = attrs.evolve(site.call, kwargs=(ir.KwArg("density", ir.Num(d)),) + kwargs)
                edits, text = site.replace(new_call), f"density {site.label}: {old:.4f} -> {d}"
            elif site.call.func == "bits":
                # An explicit mask keeps its connections: grow or prune at random to the new density.
                change = _change(ctx, site, d > old, 0.0, "random", target=d)
                if change is None:
                    continue
                edits, text = change
            else:
                continue  # band and block masks have a structure, not a density
            try:
                yield edits.apply(ctx.spec), text
            except LookupError:
                continue


__all__ = ["MaskSite", "mask_sites", "weight_shape", "bits_call", "grow", "prune", "density"]
