"""Blocks with parameters: instances of one module class whose bodies differ only in numbers share one block.

`SpecWriter` (naming.py) records each block instance as text with a hole per nested block call. `resolve`
fills the holes innermost first, groups the instances of one class whose texts agree except for numbers, and
writes one block per group: a number that is the same in every instance stays a literal, one that follows an
input's size is that size's name (`out=c`), any other becomes a block parameter named after its keyword
(`out`, `stride`), whose default is its most common value. Each call passes the values that differ from
the defaults: `bottleneck(x, out=256, stride=2)`.

Inside blocks every keyword argument that has a default is written between marks with its default, so
instances with and without `stride=2` agree token for token; it is dropped where it ends up at its default.
"""
from __future__ import annotations

import re

import attrs

from ..ops.registry import op_names
from .errors import fresh

HOLE = "\x01"  # \x01<id>\x01: the call of a nested block instance
MARK = "\x00"  # \x00name=value\x02default\x00: a keyword argument that has a default
DEFAULT = "\x02"
_TOKEN = re.compile(r"`[^`]*`|[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?"
                    r"|\x01\d+\x01|\s+|.", re.S)
_NUMBER = re.compile(r"\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?")
_DIM_NAMES = {1: ["f"], 2: ["c", "L"], 3: ["c", "H", "W"], 4: ["c", "D", "H", "W"]}


@attrs.define
class Instance:
    """One call of a child module written as a block: its body with holes, its inputs' sizes, its call's args."""

    id: int
    cls: str  # the block name it asks for (the module's class, lowercased)
    inputs: list  # [(name, dim names, concrete sizes after B)]
    lines: list  # body lines, holes for nested block calls
    ret: str
    args: list  # the call's positional arguments (none for a pipeline stage)
    children: set = attrs.Factory(set)


def input_dims(rank: int, used: set) -> list[str]:
    """Names for the sizes after B of a block input of this rank (`c`, `H`, `W`), fresh in the block."""
    return [fresh(name, used) for name in _DIM_NAMES.get(rank, [f"d{i}" for i in range(1, rank + 1)])]


def hole(instance_id: int) -> str:
    return f"{HOLE}{instance_id}{HOLE}"


def _fill(text: str, calls: dict) -> str:
    return re.sub(r"\x01(\d+)\x01", lambda m: calls[int(m.group(1))], text)


def _number(token: str):
    return int(token) if token.isdigit() else float(token)


def resolve(instances: dict, top_lines: list[str]):
    """(block texts in definition order, block names, top lines with every call filled in)."""
    calls: dict[int, str] = {}
    by_text: dict[str, str] = {}
    texts: list[str] = []
    pending = dict(instances)
    while pending:
        ready = [i for i in pending.values() if i.children <= calls.keys()]
        groups: dict = {}
        for inst in ready:
            header = ", ".join(f"{name}: [B{''.join(', ' + d for d in dims)}]" for name, dims, _ in inst.inputs)
            body = f"({header}) {{\n" + "\n".join(inst.lines) + f"\n  return {inst.ret}\n}}\n"
            tokens = _TOKEN.findall(_fill(body, calls))
            key = (inst.cls, tuple("#" if _NUMBER.fullmatch(t) else t for t in tokens))
            groups.setdefault(key, []).append((inst, tokens))
        for (cls, _), members in groups.items():
            text, kwargs = _unify(members)
            if text not in by_text:
                by_text[text] = fresh(cls, set(by_text.values()) | set(op_names()))  # a block would hide an op
                texts.append(f"block {by_text[text]}{text}")
            for (inst, _), kw in zip(members, kwargs):  # marked: a caller's text keeps every argument
                calls[inst.id] = f"{by_text[text]}({', '.join(inst.args + kw)})"
                del pending[inst.id]
    names = set(by_text.values())
    top = [_unmark(_fill(line, calls)) for line in top_lines]
    return [_repeats(t, names) for t in texts], names, _repeats("\n".join(top), names).split("\n")


def _unify(members):
    """One block text for instances whose tokens agree except for numbers; the keyword arguments of each call."""
    first, tokens = members[0]
    dim_of = {}  # the sizes of an input dim across the instances -> its name
    for i, (_, dims, _) in enumerate(first.inputs):
        for j, name in enumerate(dims):
            dim_of.setdefault(tuple(inst.inputs[i][2][j] for inst, _ in members), name)
    taken = set(re.findall(r"^\s*`?([\w-]+)`? = ", "".join(tokens), re.M)) | set(dim_of.values()) \
        | {name for name, _, _ in first.inputs}
    params: dict = {}  # values across the instances -> (name, type)
    out = []
    for p, token in enumerate(tokens):
        if not _NUMBER.fullmatch(token):
            out.append(token)
            continue
        values = tuple(_number(t[p]) for _, t in members)
        if len(set(values)) == 1:
            out.append(token)
        elif values in dim_of:
            out.append(dim_of[values])
        else:
            if values not in params:
                before = [t for t in tokens[:p] if not t.isspace()]
                base = before[-2] if len(before) >= 2 and before[-1] == "=" else "n"
                kind = "int" if all(isinstance(v, int) for v in values) else "float"
                params[values] = (fresh(base, taken), kind)
            out.append(params[values][0])
    text = "".join(out)
    text = _unmark(text)
    # the most common value of a parameter is its default, which a call leaves out
    defaults = {values: max(values, key=values.count) for values in params}
    if params:
        head, _, rest = text.partition(")")
        text = head + "".join(f", {name}: {kind} = {_source(defaults[values])}"
                              for values, (name, kind) in params.items()) + ")" + rest
    kwargs = [[f"{MARK}{name}={_source(values[k])}{DEFAULT}{_source(defaults[values])}{MARK}"
               for values, (name, _) in params.items()] for k in range(len(members))]
    return text, kwargs


_PIPELINE = re.compile(r"^(  )([A-Za-z_]\w*) = (`?[\w-]+`?) \|> (.+)$", re.M)


def _repeats(text: str, blocks: set) -> str:
    """`layer1 = x |> basic() |> basic()` (every stage the same block call) as a `repeat`: same module paths,
    `layer1.0`, `layer1.1` (docs/language.md, rule 7)."""
    def rewrite(m):
        indent, name, source, rest = m.groups()
        stages = rest.split(" |> ")
        block, _, args = stages[0].partition("(")
        if len(stages) < 2 or len(set(stages)) != 1 or block not in blocks:
            return m.group(0)
        inner = name + (", " + args if args != ")" else ")")
        return (f"{indent}{name} = {source}\n{indent}repeat {len(stages)} as {name} {{\n"
                f"{indent}  {name} = {block}({inner}\n{indent}}}")
    return _PIPELINE.sub(rewrite, text)


def _unmark(text: str) -> str:
    return re.sub(r"(, )?\x00([^\x00]*)\x00", _keep_unless_default, text).replace("(, ", "(")


def _keep_unless_default(m) -> str:
    written, _, default = m.group(2).partition(DEFAULT)
    return "" if written.partition("=")[2] == default else (m.group(1) or "") + written


def _source(v) -> str:
    return repr(v)
