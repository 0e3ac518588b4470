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
from fractions import Fraction

import attrs


def canonical_text(node) -> str:
    """The canonical serialisation that `canonical_hash` digests."""
    out: list[str] = []
    _write(node, out)
    return "".join(out)


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
    if node is None:
        out.append("N")
    elif isinstance(node, bool):
        out.append("T" if node else "F")
    elif isinstance(node, (int, float, Fraction)):
        out.append("n" + _number(node) + ";")
    elif isinstance(node, str):
        out.append(f"s{len(node)}:{node}")
    elif isinstance(node, (tuple, list)):
        out.append("(")
        for item in node:
            _write(item, out)
        out.append(")")
    elif isinstance(node, dict):
        out.append("{")
        for key in sorted(node, key=repr):
            _write(key, out)
            _write(node[key], out)
        out.append("}")
    elif attrs.has(type(node)):
        out.append(type(node).__name__ + "<")
        for field in attrs.fields(type(node)):
            if field.eq:
                out.append(field.name + "=")
                _write(getattr(node, field.name), out)
        out.append(">")
    elif type(node).__name__ == "Dim":  # symbolic sizes in elaborated graphs; compared by their polynomial
        out.append("D" + str(node) + ";")
    else:
        raise TypeError(f"canonical_hash cannot serialise {type(node).__name__}: {node!r}")


__all__ = ["canonical_hash", "canonical_text"]
