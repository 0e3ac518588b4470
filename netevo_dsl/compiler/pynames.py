"""The one sanitiser for identifiers in generated Python.

Spec names (values, blocks, block parameters) are valid identifiers once
`check_identifier` has passed them, but valid is not enough: in generated code
they share a namespace with Python's builtins, the modules the file imports,
the helper classes copied into it and the classes generated for blocks. A
block parameter called `range` would shadow the `range` that `__init__` calls;
two blocks `conv_1` and `conv1` would both become `class Conv1`. Every
identifier the emitter invents or takes from a spec goes through `Namespace`,
which hands out each name once and never one on the reserved list.

Module attribute names (`self.conv1`) are not sanitised: they are state-dict
keys and must stay what the spec wrote.
"""
from __future__ import annotations

import builtins
import keyword
import re

# Modules the emitted file imports, and what every method can see.
IMPORTED = frozenset({"math", "torch", "nn", "F", "self"})
# Classes and functions copied into emitted files from compiler/modules.py.
HELPERS = frozenset({"Activation", "MaskedLinear", "MaskedConv", "MaskedConv1d", "MaskedConv2d",
                     "PositionalEmbedding", "CausalSelfAttention", "GPT2MLP", "Scope", "make_mask",
                     "random_keep"})
# What a local variable may never be called: it would shadow something the generated code calls.
RESERVED_LOCALS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | IMPORTED


class Namespace:
    """Hands out identifiers, unique within the namespace and never reserved."""

    def __init__(self, reserved=RESERVED_LOCALS, taken=()):
        self.reserved = frozenset(reserved)
        self.taken: set[str] = set(taken)

    def fresh(self, base: str) -> str:
        """`base` itself when free, else `base_2`, `base_3`, ... (a quoted spec name `block1-0` as `block1_0`)."""
        base = identifier_of(base)
        name, k = base, 1
        while name in self.reserved or name in self.taken or name.startswith("__"):
            k += 1
            name = f"{base.lstrip('_') or 'v'}_{k}"
        self.taken.add(name)
        return name


def identifier_of(name: str) -> str:
    """The identifier spelling of a quoted spec name: `block1-0` -> `block1_0`, `0` -> `v0`."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII)
    return "v" + base if base[:1].isdigit() or not base else base


def module_key(name: str) -> str:
    """A module name as a Python string literal. Quoted spec names (`block1-0`) hold only letters, digits, `_`
    and `-` (passes/elaborate.QUOTED_NAME): anything else is refused, so nothing can leave the literal."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"not a module name: {name!r}")
    return f'"{name}"'


def attribute(parent: str, name: str) -> str:
    """`parent.name`, or `getattr(parent, "block1-0")` for a module name that is not an identifier."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{parent}.{name}"
    return f"getattr({parent}, {module_key(name)})"


def camel(name: str) -> str:
    """`basic_block` -> `BasicBlock`; the class-name spelling of a spec name (`_0` -> `N0`: a class name
    cannot start with a digit)."""
    base = "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) or "Net"
    return "N" + base if base[0].isdigit() else base


def class_name(network_name: str) -> str:
    """The class of a network in emitted source: its name in CamelCase, never a helper's or a builtin's."""
    base = camel(network_name)
    return base + "Net" if base in HELPERS or base in RESERVED_LOCALS else base


__all__ = ["Namespace", "attribute", "module_key", "identifier_of", "camel", "class_name", "HELPERS", "IMPORTED", "RESERVED_LOCALS"]
