"""Weight surgery: apply unit maps of dependency groups to a state dict, and carry optimizer state.

A `UnitMap` says what happened to a group's units: new unit j comes from old
unit src[j]. Every site of the group follows it: produce rows and follow
entries (norm parameters, statistics) are gathered; consume columns are
gathered and scaled (Net2Wider splits a replicated unit's outgoing weights) and
may have other columns added (a merge). Tensors are processed one axis at a
time; an axis shared by several groups (a concat consumer) is rebuilt from all
of them, so offsets stay right when some change size.
"""
from __future__ import annotations

from collections import defaultdict

import attrs
import numpy as np

from ..errors import TransformError
from ..ir import nodes as ir


@attrs.frozen
class UnitMap:
    """New unit j comes from old unit src[j]; consumers read it scaled by scale[j], plus the old units in `adds`."""

    old_size: int
    src: tuple  # tuple[int]
    scale: tuple | None = None  # per new unit; None: all 1
    adds: tuple = ()  # ((new unit, old unit), ...): consumer columns added (merge)

    @property
    def new_size(self) -> int:
        return len(self.src)

    @staticmethod
    def identity(n: int) -> "UnitMap":
        return UnitMap(n, tuple(range(n)))

    @staticmethod
    def permutation(perm) -> "UnitMap":
        return UnitMap(len(perm), tuple(int(i) for i in perm))

    @staticmethod
    def replicate(old_size: int, src) -> "UnitMap":
        src = np.asarray(src, dtype=np.int64)
        counts = np.bincount(src, minlength=old_size)
        return UnitMap(old_size, tuple(int(i) for i in src), tuple(float(1.0 / counts[i]) for i in src))

    @staticmethod
    def select(old_size: int, keep) -> "UnitMap":
        return UnitMap(old_size, tuple(int(i) for i in keep))


def sites_by_key(groups) -> dict:
    """State-dict key -> [(site, group name)] for every tensor site of every group."""
    out = defaultdict(list)
    for g in groups:
        for s in g.sites:
            if s.tensor is not None:
                out[s.key].append((s, g.name))
    return out


def apply_unit_maps(weights: dict, groups, maps: dict, state: bool = False) -> dict:
    """A new state dict with every group in `maps` transformed (state=True: gather only, for optimizer moments)."""
    by_key = sites_by_key(groups)
    sizes = {g.name: g.size for g in groups}
    out = {}
    for key, tensor in weights.items():
        sites = by_key.get(key, ())
        if not any(name in maps for _, name in sites):
            out[key] = tensor
            continue
        mask = None if state or not key.endswith("weight") else weights.get(key[: -len("weight")] + "mask")
        out[key] = transform_tensor(key, tensor, sites, maps, sizes, state, mask)
    return out


def transform_tensor(key, tensor, sites, maps, sizes, state=False, mask=None):
    import torch

    t = tensor.detach().clone()
    axes = defaultdict(list)
    for s, name in sites:
        axes[s.axis].append((s, name))
    parts = max(s.grouped for s, _ in sites)
    merging = not state and any(maps.get(n) is not None and maps[n].adds for s, n in sites if s.role == "consume")
    if merging and mask is not None and t.dtype != torch.bool:
        t = t * mask.to(t.dtype).view(*mask.shape, *([1] * (t.dim() - mask.dim())))
    if parts > 1:
        t = _ungroup(t, parts)
    for axis, axis_sites in sorted(axes.items()):
        t = _apply_axis(key, t, axis, axis_sites, maps, sizes, state)
    if parts > 1:
        t = _regroup(key, t, parts)
    return t


def _apply_axis(key, t, axis, sites, maps, sizes, state):
    import torch

    copies = sites[0][0].copies
    length = t.shape[axis]
    clen = length // copies
    sites = sorted(sites, key=lambda sn: sn[0].offset)
    covered = sum(sizes[n] * s.factor for s, n in sites)
    if covered != clen or any(s.copies != copies for s, _ in sites):
        raise TransformError(f"internal: the groups on axis {axis} of `{key}` cover {covered} of {clen} positions")
    idx, scale, add_new, add_old = [], [], [], []
    for c in range(copies):
        for s, name in sites:
            m = maps.get(name) or UnitMap.identity(sizes[name])
            base, start, f = c * clen + s.offset, len(idx), s.factor
            consume = s.role == "consume" and not state
            for j, u in enumerate(m.src):
                w = m.scale[j] if consume and m.scale is not None else 1.0
                for r in range(f):
                    idx.append(base + u * f + r)
                    scale.append(w)
            if consume:
                for j, u in m.adds:
                    for r in range(f):
                        add_new.append(start + j * f + r)
                        add_old.append(base + u * f + r)
    index = torch.as_tensor(idx, dtype=torch.long)
    new = t.index_select(axis, index)
    if t.dtype == torch.bool:
        if add_new:
            extra = t.index_select(axis, torch.as_tensor(add_old, dtype=torch.long))
            new = new.to(torch.uint8).index_add_(axis, torch.as_tensor(add_new, dtype=torch.long),
                                                 extra.to(torch.uint8)) > 0
        return new
    if any(w != 1.0 for w in scale):
        shape = [1] * t.dim()
        shape[axis] = len(scale)
        new = new * torch.as_tensor(scale, dtype=t.dtype).view(shape)
    if add_new:
        extra = t.index_select(axis, torch.as_tensor(add_old, dtype=torch.long))
        new = new.index_add(axis, torch.as_tensor(add_new, dtype=torch.long), extra)
    return new


def _ungroup(t, parts):
    """[out, in/g, ...] -> the block-diagonal [out, in, ...] of a grouped conv weight (or mask)."""
    out_c, per = t.shape[0], t.shape[1]
    opg = out_c // parts
    full = t.new_zeros((out_c, per * parts, *t.shape[2:]))
    for p in range(parts):
        full[p * opg:(p + 1) * opg, p * per:(p + 1) * per] = t[p * opg:(p + 1) * opg]
    return full


def _regroup(key, full, parts):
    out_c, in_c = full.shape[0], full.shape[1]
    opg, per = out_c // parts, in_c // parts
    t = full.new_zeros((out_c, per, *full.shape[2:]))
    rest = full.clone()
    for p in range(parts):
        t[p * opg:(p + 1) * opg] = full[p * opg:(p + 1) * opg, p * per:(p + 1) * per]
        rest[p * opg:(p + 1) * opg, p * per:(p + 1) * per] = 0
    if rest.any():
        raise TransformError(f"`{key}`: the transform moves channels across conv groups")
    return t


# --- results and optimizer state ---------------------------------------------------------------


@attrs.frozen(eq=False)
class TransformResult:
    """A transformed (spec, weights) and how to move per-parameter state along with it.

    `maps`: group name -> UnitMap (index maps for optimizer state and for the tracker);
    `renames`: new state-dict key -> old key where a node changed name; `fresh`: keys
    with no old counterpart (inserted layers); `resized`: group -> (old size, new size).
    """

    spec: ir.Spec
    weights: dict
    maps: dict
    old_spec: ir.Spec
    network: str
    groups: tuple  # the old graph's groups: their sites say where each map applies
    renames: dict = attrs.Factory(dict)
    fresh: tuple = ()
    resized: dict = attrs.Factory(dict)

    def old_key(self, new_key: str) -> str | None:
        if new_key in self.fresh:
            return None
        return self.renames.get(new_key, new_key)

    def move_state(self, new_key: str, old_tensor):
        """Per-parameter state (momentum, Adam moments) of the old tensor, moved to the new one's units."""
        old_key = self.old_key(new_key)
        by_key = sites_by_key(self.groups)
        sites = by_key.get(old_key, ())
        if not any(name in self.maps for _, name in sites):
            return old_tensor.clone()
        sizes = {g.name: g.size for g in self.groups}
        return transform_tensor(old_key, old_tensor, sites, self.maps, sizes, state=True)

    def apply_to_optimizer(self, opt, new_model, old_model=None):
        """Point `opt` at new_model's parameters, moving each parameter's state along the unit maps.

        Replicated units copy the state of their source, pruned ones drop theirs, inserted
        layers start without state. Without `old_model`, the optimizer's parameters are
        taken to be the old network's `named_parameters()` in order.
        """
        import torch

        from .. import compile_module

        if old_model is not None:
            names = {id(p): n for n, p in old_model.named_parameters()}
        else:
            order = [n for n, _ in compile_module(self.old_spec, self.network, device="meta").named_parameters()]
            flat = [p for group in opt.param_groups for p in group["params"]]
            if len(flat) != len(order):
                raise TransformError(f"the optimizer holds {len(flat)} parameters, the old network {len(order)}",
                                     None, "pass old_model=... to match them by name")
            names = {id(p): n for p, n in zip(flat, order)}
        new_params = dict(new_model.named_parameters())
        new_of_old = {self.old_key(k): k for k in new_params if self.old_key(k) is not None}
        state, placed = {}, set()
        for group in opt.param_groups:
            kept = []
            for p in group["params"]:
                new_name = new_of_old.get(names.get(id(p)))
                if new_name is None:
                    continue
                q = new_params[new_name]
                old_state = opt.state.get(p, {})
                if old_state:
                    state[q] = {k: (self.move_state(new_name, v).to(q.dtype) if torch.is_tensor(v)
                                    and v.shape == p.shape and v.dim() > 0 else v) for k, v in old_state.items()}
                kept.append(q)
                placed.add(id(q))
            group["params"] = kept
        opt.param_groups[0]["params"] += [q for q in new_params.values() if id(q) not in placed]
        opt.state = defaultdict(dict, state)
        return opt


__all__ = ["UnitMap", "TransformResult", "apply_unit_maps", "sites_by_key", "transform_tensor"]
