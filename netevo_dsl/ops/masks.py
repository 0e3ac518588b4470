"""Mask kinds for `mask=`: random(density, seed), band(halfwidth), block(blocks), bits(rows).

A mask is a bool matrix over (out, in) connectivity of a weight-bearing op (for
convs: out channels x in channels per group; the kernel is broadcast). Density
means the fraction of connections kept. Generation imports numpy lazily; the random
choice is pure Python (`random_keep`), shared with the compiler's torch `make_mask`.
"""
from __future__ import annotations

import attrs

from .registry import ParamDef, REQUIRED


@attrs.frozen
class MaskKind:
    name: str
    params: tuple
    doc: str


MASK_KINDS = {
    k.name: k
    for k in (
        MaskKind("random", (ParamDef("density", "float"), ParamDef("seed", "int", 0)),
                 "each connection kept with exactly round(density * n) kept, chosen by seed"),
        MaskKind("band", (ParamDef("halfwidth", "int", minimum=0),),
                 "keep |i * in/out - j| <= halfwidth (a diagonal band, scaled for non-square)"),
        MaskKind("block", (ParamDef("blocks", "int", minimum=1),), "block-diagonal with `blocks` blocks"),
        MaskKind("bits", (ParamDef("rows", "strs"),), 'explicit rows of 0/1, e.g. rows=["101", "011"]'),
        MaskKind("dense", (), "all connections"),
    )
}


@attrs.frozen
class MaskSpec:
    """A resolved mask: its kind and params (name is the `mask` item, if any)."""

    kind: str
    params: tuple  # ((key, value), ...)
    name: str | None = attrs.field(default=None, eq=False)

    def get(self, key, default=None):
        return dict(self.params).get(key, default)


def check_mask(mask: MaskSpec, out: int, inp: int) -> str | None:
    """A problem with this mask for an (out, in) weight, or None."""
    if mask.kind == "random":
        d = mask.get("density")
        if not 0.0 < float(d) <= 1.0:
            return f"density must be in (0, 1], got {d}"
    if mask.kind == "block":
        b = mask.get("blocks")
        if out % b or inp % b:
            return f"{b} blocks do not divide the ({out}, {inp}) weight"
    if mask.kind == "bits":
        rows = mask.get("rows")
        if len(rows) != out or any(len(r) != inp for r in rows):
            return f"bit rows are {len(rows)} x {len(rows[0]) if rows else 0}, the weight is {out} x {inp}"
        if any(set(r) - {"0", "1"} for r in rows):
            return "bit rows may contain only 0 and 1"
    return None


def random_keep(n, keep, seed):
    """`keep` distinct indices of range(n), chosen by `seed`: a partial Fisher-Yates shuffle driven by
    splitmix64 (Steele et al. 2014). Pure Python, so compiled modules, emitted files (which copy this
    function) and the mutation engine draw the same bits on every platform and library version."""
    if keep > n - keep:  # cheaper to draw the connections that are left out
        drop = set(random_keep(n, n - keep, seed))
        return [i for i in range(n) if i not in drop]
    mask64 = (1 << 64) - 1
    state, moved, out = seed & mask64, {}, []
    for i in range(keep):
        state = (state + 0x9E3779B97F4A7C15) & mask64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
        z ^= z >> 31
        j = i + ((z * (n - i)) >> 64)  # uniform in [i, n) up to 2^-64
        out.append(moved.get(j, j))
        moved[j] = moved.get(i, i)
    return sorted(out)


def make_mask(mask: MaskSpec, out: int, inp: int):
    """The bool matrix as a numpy array; the same bits as compiler.modules.make_mask (the torch one)."""
    import numpy as np

    if mask.kind == "dense":
        return np.ones((out, inp), dtype=bool)
    if mask.kind == "random":
        n = out * inp
        flat = np.zeros(n, dtype=bool)
        flat[random_keep(n, int(round(float(mask.get("density")) * n)), int(mask.get("seed", 0)))] = True
        return flat.reshape(out, inp)
    if mask.kind == "band":
        i = np.arange(out)[:, None] * (inp / out)
        j = np.arange(inp)[None, :]
        return np.abs(i - j) <= int(mask.get("halfwidth"))
    if mask.kind == "block":
        b = int(mask.get("blocks"))
        ro, ri = np.arange(out) // (out // b), np.arange(inp) // (inp // b)
        return ro[:, None] == ri[None, :]
    if mask.kind == "bits":
        return np.array([[c == "1" for c in r] for r in mask.get("rows")], dtype=bool)
    raise ValueError(mask.kind)


del REQUIRED
