"""canonical_hash: a stable identity for IR, consistent with IR equality.

Two nodes that compare equal hash equal: only attrs fields that take part in
equality are serialised, so spans, doc comments, comments and file paths are
left out. Numbers are written by value (``2`` and ``2.0`` compare equal and
serialise alike); booleans are kept apart from numbers. The digest is sha256
over the serialisation, so it is the same in every process and on every
machine (unlike Python's salted ``hash``).
"""
from __future__ import annotations

import hashlib
import weakref
from fractions import Fraction

import attrs


def canonical_text(node) -> str:
    """The canonical serialisation that `canonical_hash` digests."""
    out: list[str] = []
    _write(node, out)
    return "".join(out)


# Mutants share most of their items and statements with their parent (IR is immutable), so the
# text of those is remembered per object: hashing a child re-serialises only what changed.
_MEMO: dict[int, tuple] = {}  # id(node) -> (weak reference to node, text)
_MEMO_KINDS = ("Block", "Network", "WannGenome", "TransformerGenome", "MutateBlock", "EvolveBlock", "MaskDef",
               "Param", "Assign", "Output", "Return", "Repeat", "Input", "TransformerLayer")


def _memo_text(node) -> str:
    entry = _MEMO.get(id(node))
    if entry is not None and entry[0]() is node:
        return entry[1]
    out: list[str] = []
    _write_fields(node, out)
    text = "".join(out)
    key = id(node)
    _MEMO[key] = (weakref.ref(node, lambda _, key=key: _MEMO.pop(key, None)), text)
    return text


def canonical_hash(node) -> str:
    """Hex sha256 of the canonical serialisation of an IR node (a Spec, an item, a Graph, ...)."""
    return hashlib.sha256(canonical_text(node).encode("utf-8")).hexdigest()


def _number(value) -> str:
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return str(value)


def _write(node, out: list[str]) -> None:
    kind = type(node)
    if kind is str:
        out.append(f"s{len(node)}:{node}")
    elif kind is tuple or kind is list:
        out.append("(")
        for item in node:
            _write(item, out)
        out.append(")")
    elif kind in _FIELDS or attrs.has(kind):
        if kind.__name__ in _MEMO_KINDS:
            out.append(_memo_text(node))
        else:
            _write_fields(node, out)
    elif node is None:
        out.append("N")
    elif kind is bool:
        out.append("T" if node else "F")
    elif isinstance(node, (int, float, Fraction)):
        out.append("n" + _number(node) + ";")
    elif isinstance(node, dict):
        out.append("{")
        for key in sorted(node, key=repr):
            _write(key, out)
            _write(node[key], out)
        out.append("}")
    elif kind.__name__ == "Dim":  # symbolic sizes in elaborated graphs; compared by their polynomial
        out.append("D" + str(node) + ";")
    else:
        raise TypeError(f"canonical_hash cannot serialise {kind.__name__}: {node!r}")


_FIELDS: dict[type, tuple] = {}  # attrs class -> (its name, the names of its equality fields)


def _write_fields(node, out: list[str]) -> None:
    kind = type(node)
    spec = _FIELDS.get(kind)
    if spec is None:
        # a field marked hash_omit_none (WannEdge.weight) is left out while None, so that adding it
        # kept every earlier genome's identity
        spec = _FIELDS[kind] = (kind.__name__ + "<", tuple((f.name, bool(f.metadata.get("hash_omit_none")))
                                                           for f in attrs.fields(kind) if f.eq))
    head, names = spec
    out.append(head)
    for name, omit_none in names:
        value = getattr(node, name)
        if omit_none and value is None:
            continue
        out.append(name + "=")
        _write(value, out)
    out.append(">")


__all__ = ["canonical_hash", "canonical_text"]
