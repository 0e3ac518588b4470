"""Registry entries written in the language's own syntax, for `netevo ops`, editor hovers and completion.

A default is printed as a spec would write it (`true`, `"gelu"`, `[1, 2]`), so a signature copied into a
spec parses; an optional parameter without a default value prints as `name=?` (leave it out, or give one).
"""
from __future__ import annotations


def net_literal(value) -> str:
    """A Python default as .net source: `true`, `"gelu"`, `[1, 2]`; `?` for no value."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(net_literal(v) for v in value) + "]"
    return repr(value)


def param_text(p) -> str:
    """One parameter of an op or rule: bare when required, else `name=default`."""
    return p.name if p.required else f"{p.name}={net_literal(p.default)}"


def op_signature(op) -> str:
    """`conv2d(out, k, stride=1, ..., bias=true, mask=?)`."""
    return f"{op.name}({', '.join(param_text(p) for p in op.params)})"


__all__ = ["net_literal", "param_text", "op_signature"]
