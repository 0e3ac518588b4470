"""The resize planner: how a dependency group changes size, in the spec.

One planner serves the `width` mutation rule (no weights) and the exact transforms
`widen`, `prune_units` and `merge_units` (which then move the weights), so a width
change the transforms can make is also a mutation, and the two give the same spec.

A group's size is set by its `SizeParam`s (`evolve.groups`): a producer's width,
the sizes of a split, a depthwise conv's groups, each a sum over the groups it
spans (`x.out.0` writes a + b when its output is cut by a concat upstream of a
residual `+`). Each is traced back to the one place in the spec where its value
is written (`NetworkAnalysis.trace`: a literal, a call-site block argument, a
list element), as value = a * leaf + b. The plan gives every such leaf the value
the new sizes need; nothing else in the spec changes, and blocks are never
restructured.

A leaf may set several params: every instance of a block body, every copy of a
`repeat`, every conv of a block written with the same block parameter. Those
groups change with the target when they change *alike* (the same old and new
size, as the stage width `c` of a ResNet block sets both its convs). Otherwise the
plan is refused with the reason, e.g. "the block parameter `c` of `res` sizes both
`x.h.0` (group `x.h.0`, 24) and `x.out.0` (groups `a` and `b`); give `res` a
separate parameter for each". The planned spec is elaborated again and its groups
compared with the plan, so a plan never claims what the spec does not do.
"""
from __future__ import annotations

import attrs

from ..errors import NetevoError, TransformError
from ..ir import nodes as ir
from .groups import DependencyGroup, dependency_groups, find_group, reasons
from .mutations.analysis import Edits, NetworkAnalysis


class ResizeRefused(TransformError):
    """The spec cannot give the group that size; `message` says why (no rule or verb in it)."""


@attrs.frozen
class ResizePlan:
    spec: ir.Spec  # the edited spec (a new object; the old one is untouched)
    group: str  # the target group
    sizes: dict  # group name -> (old, new) for every group that changes, the target first
    changes: tuple  # ((where, old value, new value), ...): the spec places written
    derived: dict = {}  # groups no param sizes that change with them (attention head spaces): (old, new)


def analysis_of(spec: ir.Spec, network: str, overrides=None) -> NetworkAnalysis:
    return NetworkAnalysis(spec, network, overrides)


def groups_of(analysis: NetworkAnalysis) -> list[DependencyGroup]:
    """The dependency groups of the analysed graph (computed once per analysis)."""
    cached = getattr(analysis, "_dependency_groups", None)
    if cached is None:
        cached = analysis._dependency_groups = dependency_groups(analysis.graph)
    return cached


def _and(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class _Planner:
    def __init__(self, analysis: NetworkAnalysis, groups):
        self.a = analysis
        self.groups = groups
        self.by_name = {g.name: g for g in groups}
        self.old = {g.name: g.size for g in groups}
        self.params = {}  # (node, param, index) -> SizeParam
        for g in groups:
            for sp in g.size_params:
                self.params.setdefault((sp.node, sp.param, sp.index), sp)
        self.traces = {k: analysis.trace(*k) for k in self.params}
        self.users: dict = {}  # leaf ident -> [param keys written there]
        for k, tr in self.traces.items():
            if tr is not None:
                self.users.setdefault(tr.leaf.ident, []).append(k)
        self._cause: dict = {}  # co-resized group -> the leaf that resized it

    # --- words -----------------------------------------------------------------------------
    def _param(self, k) -> str:
        node, param, index = k
        return f"`{param}`" + (f"[{index}]" if index is not None else "") + f" of `{node}`"

    def _node_text(self, k) -> str:
        sp = self.params[k]
        names = [g for g, _ in sp.terms]
        if len(names) == 1:
            return f"`{sp.node}` (group `{names[0]}`, {self.old[names[0]]})"
        return f"`{sp.node}` (groups {_and([f'`{n}`' for n in names])})"

    def _leaf_owner(self, slot):
        """(block name, parameter name) when the leaf is an argument of a block call, else None."""
        block = self.a.spec.find(slot.call.func, (ir.Block,))
        if block is None:
            return None
        kind, which = slot.key
        if kind in ("kw", "add"):
            return block.name, which
        if kind == "pos":
            for prov in self.a.provenance.values():
                for frame in prov.blocks:
                    if frame.call is slot.call and which + frame.offset < len(block.params):
                        return block.name, block.params[which + frame.offset].name
        return block.name, None

    def _shared(self, ident, other: str, target, want: dict) -> tuple:
        """(message, hint) for a leaf that would change `other` unlike the target (a group name, or the
        param key whose value the target needs)."""
        keys = self.users[ident]
        theirs = [k for k in keys if any(g == other for g, _ in self.params[k].terms)]
        mine = [target] if isinstance(target, tuple) else \
            [k for k in keys if k not in theirs and any(g in want for g, _ in self.params[k].terms)] or \
            [k for k in keys if k not in theirs]
        a = _and([self._node_text(k) for k in theirs])
        b = _and([self._node_text(k) for k in mine])
        slot = self.traces[keys[0]].leaf
        owner = self._leaf_owner(slot)
        if owner is not None:
            block, param = owner
            what = f"the block parameter `{param}` of `{block}`" if param else f"an argument of `{block}`"
            return (f"{what} sizes both {a} and {b}; give `{block}` a separate parameter for each", None)
        return (f"{self._param(keys[0])} is written once for {a} and {b} (one spec call makes them), so "
                f"`{other}` would change {self.old[other]} -> {want[other]} while `{target}` changes "
                f"{self.old[target]} -> {want[target]}", "write their widths separately")

    # --- the plan ----------------------------------------------------------------------------
    def plan(self, g: DependencyGroup, new_size: int) -> ResizePlan:
        old = self.old
        if g.fixed:
            raise ResizeRefused(f"`{g.name}` cannot change size: {reasons(g.fixed)}")
        if new_size < 1:
            raise ResizeRefused(f"`{g.name}` needs at least one unit, not {new_size}")
        if new_size == g.size:
            raise ResizeRefused(f"`{g.name}` is already {new_size} wide")
        if not g.size_params:
            raise ResizeRefused(f"no spec parameter sets the size of `{g.name}`")
        want = {g.name: new_size}
        leaves: dict = {}  # ident -> (slot, value, key)
        queue = [g.name]
        while queue:
            h = queue.pop(0)
            if self.by_name[h].fixed:
                raise ResizeRefused(f"resizing `{g.name}` would resize `{h}` too, which cannot change: "
                                    f"{reasons(self.by_name[h].fixed)}")
            for sp in self.by_name[h].size_params:
                self._settle((sp.node, sp.param, sp.index), want, leaves, queue)
        for k, sp in self.params.items():  # every param agrees with the leaves as set
            tr = self.traces[k]
            expected = sp.value({**old, **want})
            actual = tr.value_at(leaves[tr.leaf.ident][1]) if tr is not None and tr.leaf.ident in leaves \
                else sp.value(old)
            if expected != actual:
                raise ResizeRefused(f"{self._param(k)} would have to be both {expected} and {actual}")
        for other, size in want.items():
            if other != g.name and (old[other], size) != (g.size, new_size):
                ident = self._cause[other]
                message, hint = self._shared(ident, other, g.name, want)
                raise ResizeRefused(message, None, hint)
        edits, changes = Edits(), []
        for slot, value, k in leaves.values():
            tr = self.traces[k]
            before = (self.params[k].value(old) - tr.b) / tr.a
            if before != value:
                edits.set_slot(slot, value)
                changes.append((self._param(k), int(before) if before.denominator == 1 else before, value))
        try:
            spec = edits.apply(self.a.spec)
        except LookupError:
            raise ResizeRefused(f"the width of `{g.name}` is written in an imported file") from None
        derived = self._verify(spec, {**old, **want}, g.name, set(want))
        sizes = {g.name: (g.size, new_size)}
        sizes.update({n: (old[n], s) for n, s in want.items() if n != g.name})
        return ResizePlan(spec, g.name, sizes, tuple(changes), derived)

    def _settle(self, key, want, leaves, queue):
        sp, tr = self.params[key], self.traces[key]
        value = sp.value({**self.old, **want})
        if tr is None:
            if value == sp.value(self.old):
                return
            raise ResizeRefused(f"{self._param(key)} is not written where it can be changed", None,
                                "write it as a number or a block parameter")
        leaf = tr.leaf_value(value)
        if leaf is None:
            raise ResizeRefused(f"{self._param(key)} would have to be {value}, which its expression cannot give")
        ident = tr.leaf.ident
        if ident in leaves:
            if leaves[ident][1] != leaf:
                raise ResizeRefused(f"{self._param(key)} would need two values ({leaves[ident][1]} and {leaf})")
            return
        leaves[ident] = (tr.leaf, leaf, key)
        for k2 in self.users[ident]:
            if k2 == key:
                continue
            sp2 = self.params[k2]
            v2 = self.traces[k2].value_at(leaf)
            if v2.denominator != 1 or v2 < 1:
                raise ResizeRefused(f"{self._param(k2)}, written at the same place, would be {v2}")
            known = sum(m * want[n] for n, m in sp2.terms if n in want)
            free = [(n, m) for n, m in sp2.terms if n not in want]
            if not free or known + sum(m * self.old[n] for n, m in free) == v2:
                continue  # unchanged, or checked with every param below
            if len(free) > 1:
                if self._leaf_owner(tr.leaf) is not None:  # a block parameter written for both
                    raise ResizeRefused(*self._shared(ident, free[0][0], key, want))
                raise ResizeRefused(f"{self._param(k2)} sizes {_and([f'`{n}`' for n, _ in free])} together; "
                                    "a new value cannot say which of them changes")
            n2, m2 = free[0]
            size2 = (v2 - known) / m2
            if size2.denominator != 1 or size2 < 1:
                raise ResizeRefused(f"{self._param(k2)} would make `{n2}` {size2} wide")
            want[n2] = int(size2)
            self._cause[n2] = ident
            queue.append(n2)

    def _unwritten(self, key) -> bool:
        tr = self.traces[key]
        return tr is None or tr.leaf.expr() is None and self.a.spec.find(tr.leaf.call.func, (ir.Block,)) is None

    def _verify(self, spec, sizes: dict, target: str, planned):
        from ..passes.elaborate import elaborate

        try:
            new_groups = dependency_groups(elaborate(spec, self.a.network))
        except NetevoError as e:
            raise ResizeRefused(f"`{target}` at that size makes the spec invalid: {e.message}", None,
                                e.hint) from None
        got = {h.name: h.size for h in new_groups}
        # groups whose size no spec argument writes (attention's head space, an FFN width left to its
        # default) follow the groups they are computed from
        derived = {n for n in got if n in self.by_name and n not in planned and all(
            self._unwritten((sp.node, sp.param, sp.index)) for sp in self.by_name[n].size_params)}
        wrong = sorted(n for n in set(got) | set(sizes) if got.get(n) != sizes.get(n) and n not in derived)
        if wrong:
            raise ResizeRefused(f"the edited spec does not give the planned sizes (groups {', '.join(wrong[:3])})")
        return {n: (sizes[n], got[n]) for n in derived if got[n] != sizes[n]}


def plan_resize(analysis: NetworkAnalysis, group, new_size: int, groups=None) -> ResizePlan:
    """The spec in which `group` (a DependencyGroup, its name or a producer) is `new_size` units wide.

    Raises ResizeRefused (a TransformError) with the reason when the spec cannot express it.
    """
    groups = groups if groups is not None else groups_of(analysis)
    return _Planner(analysis, groups).plan(find_group(groups, group), int(new_size))


__all__ = ["plan_resize", "ResizePlan", "ResizeRefused", "analysis_of", "groups_of"]
