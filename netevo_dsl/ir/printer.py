"""IR to canonical .net text (the formatter).

`format_spec(parse(text))` keeps every comment: each printed line remembers the
source line it came from, and comments are put back next to those lines.
"""
from __future__ import annotations

import re

from . import nodes as ir

INDENT = "  "
_PREC = {"|>": 1, "+": 2, "-": 2, "*": 3, "/": 3, "//": 3, "%": 3}
_UNARY_PREC = 4
_ATOM_PREC = 5


def _prec(e) -> int:
    if isinstance(e, ir.Pipe):
        return 1
    if isinstance(e, ir.BinOp):
        return _PREC[e.op]
    if isinstance(e, ir.Neg):
        return _UNARY_PREC
    return _ATOM_PREC


def _num(v) -> str:
    if isinstance(v, bool):
        raise ValueError("bool is not a number")
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    if text in ("inf", "nan", "-inf"):
        raise ValueError(f"{text} cannot be written in a spec")
    return text


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# words the grammar may read as a keyword where a statement or an expression starts
_GRAMMAR_WORDS = frozenset({"version", "import", "param", "block", "mask", "network", "genome", "mutate", "evolve",
                            "input", "output", "return", "repeat", "as", "true", "false"})


def value_name(name: str) -> str:
    """A value name as the grammar reads it back: `block1-0`, `0` and keywords in backticks."""
    return name if _PLAIN_NAME.fullmatch(name) and name not in _GRAMMAR_WORDS else f"`{name}`"


def expr(e) -> str:
    """Print an expression with the fewest parentheses that parse back to it."""
    if isinstance(e, ir.Num):
        return _num(e.value)
    if isinstance(e, ir.Str):
        return f'"{e.value}"'
    if isinstance(e, ir.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ir.Name):
        return value_name(e.id)
    if isinstance(e, ir.Neg):
        inner = expr(e.operand)
        return f"-{inner}" if _prec(e.operand) >= _UNARY_PREC else f"-({inner})"
    if isinstance(e, ir.BinOp):
        if e.op == "//":
            raise ValueError("`//` starts a comment in a spec; floor division cannot be written")
        p = _PREC[e.op]
        left = expr(e.left) if _prec(e.left) >= p else f"({expr(e.left)})"
        right = expr(e.right) if _prec(e.right) > p else f"({expr(e.right)})"
        return f"{left} {e.op} {right}"
    if isinstance(e, ir.Pipe):
        return f"{expr(e.value)} |> {expr(e.call)}"
    if isinstance(e, ir.Call):
        args = [expr(a) for a in e.args] + [f"{k.name}={expr(k.value)}" for k in e.kwargs]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ir.ListExpr):
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    if isinstance(e, ir.SetExpr):
        return "{" + ", ".join(expr(i) for i in e.items) + "}"
    raise TypeError(f"not an expression: {e!r}")


def type_(t) -> str:
    if isinstance(t, ir.TensorType):
        return "[" + ", ".join(expr(d) for d in t.dims) + "]"
    return t.name


def _line(span, attr="line"):
    return getattr(span, attr) if span is not None else None


class _Out:
    """Collects (indent, text, source line) triples."""

    def __init__(self):
        self.rows: list[tuple[int, str, int | None]] = []

    def add(self, depth: int, text: str, src_line: int | None):
        self.rows.append((depth, text, src_line))


def _doc(out: _Out, item, depth=0):
    if getattr(item, "doc", ""):
        for line in item.doc.split("\n"):
            out.add(depth, f"/// {line}".rstrip(), None)


def _statement(out: _Out, s, depth: int):
    line = _line(s.span)
    if isinstance(s, ir.Input):
        out.add(depth, f"input {s.name}: {type_(s.type)}", line)
    elif isinstance(s, ir.Assign):
        out.add(depth, f"{', '.join(value_name(t) for t in s.targets)} = {expr(s.value)}", line)
    elif isinstance(s, ir.Output):
        out.add(depth, f"output {s.name} = {expr(s.value)}", line)
    elif isinstance(s, ir.Return):
        out.add(depth, f"return {expr(s.value)}", line)
    elif isinstance(s, ir.Repeat):
        out.add(depth, f"repeat {expr(s.count)} as {s.name} {{", line)
        for b in s.body:
            _statement(out, b, depth + 1)
        out.add(depth, "}", _line(s.span, "end_line"))
    else:
        raise TypeError(f"not a statement: {s!r}")


def _unary(e) -> str:
    """Settings and objectives take a unary expression in the grammar: parenthesize anything looser."""
    return expr(e) if _prec(e) >= _UNARY_PREC else f"({expr(e)})"


def _setting(s) -> str:
    if isinstance(s, ir.Objective):
        return f"objective {s.direction} {_unary(s.metric)}"
    return f"{s.key} {_unary(s.value)}"


def _item(out: _Out, item):
    _doc(out, item)
    line, end = _line(item.span), _line(item.span, "end_line")
    if isinstance(item, ir.Version):
        out.add(0, f"version {item.number}", line)
    elif isinstance(item, ir.Import):
        out.add(0, f'import "{item.path}"', line)
    elif isinstance(item, ir.Param):
        default = f" = {expr(item.default)}" if item.default is not None else ""
        out.add(0, f"param {item.name}: {type_(item.type)}{default}", line)
    elif isinstance(item, ir.MaskDef):
        out.add(0, f"mask {item.name} = {expr(item.value)}", line)
    elif isinstance(item, ir.Block):
        params = ", ".join(
            f"{p.name}: {type_(p.type)}" + (f" = {expr(p.default)}" if p.default is not None else "")
            for p in item.params
        )
        ret = f" -> {type_(item.returns)}" if item.returns is not None else ""
        out.add(0, f"block {item.name}({params}){ret} {{", line)
        for s in item.body:
            _statement(out, s, 1)
        out.add(0, "}", end)
    elif isinstance(item, ir.Network):
        out.add(0, f"network {item.name} {{", line)
        for s in item.body:
            _statement(out, s, 1)
        out.add(0, "}", end)
    elif isinstance(item, ir.WannGenome):
        out.add(0, f"genome {item.name}: wann {{", line)
        out.add(1, "inputs " + ", ".join(item.inputs), None)
        out.add(1, "outputs " + ", ".join(f"{o.name}: {o.activation}" for o in item.outputs), None)
        for s in item.settings:
            out.add(1, _setting(s), _line(s.span))
        for n in item.nodes:
            out.add(1, f"node {n.name}: {n.activation}", _line(n.span))
        for e in item.edges:
            weight = "" if e.weight is None else f" w={_num(float(e.weight))}"
            out.add(1, f"edge {e.src} -> {e.dst}{weight}" + ("" if e.enabled else " [disabled]"), _line(e.span))
        out.add(0, "}", end)
    elif isinstance(item, ir.TransformerGenome):
        out.add(0, f"genome {item.name}: transformer {{", line)
        for s in item.settings:
            out.add(1, _setting(s), _line(s.span))
        for layer in item.layers:
            out.add(1, "layer { " + " ".join(_setting(s) for s in layer.settings) + " }", _line(layer.span))
        out.add(0, "}", end)
    elif isinstance(item, ir.MutateBlock):
        out.add(0, f"mutate {item.target} {{", line)
        for r in item.rules:
            out.add(1, expr(r), _line(r.span))
        out.add(0, "}", end)
    elif isinstance(item, ir.EvolveBlock):
        out.add(0, f"evolve {item.target} {{", line)
        for s in item.settings:
            if isinstance(s, ir.TrainSettings):
                out.add(1, "train {", _line(s.span))
                for t in s.settings:
                    out.add(2, _setting(t), _line(t.span))
                out.add(1, "}", _line(s.span, "end_line"))
                continue
            out.add(1, _setting(s), _line(s.span))
        out.add(0, "}", end)
    else:
        raise TypeError(f"not an item: {item!r}")


_ONE_LINERS = (ir.Version, ir.Import, ir.Param, ir.MaskDef)


def format_spec(spec: ir.Spec) -> str:
    """Canonical text of a spec. Idempotent; keeps comments of parsed specs."""
    out = _Out()
    prev = None
    for item in spec.items:
        if prev is not None and not (type(prev) is type(item) and isinstance(item, _ONE_LINERS)
                                     and not getattr(item, "doc", "")):
            out.add(0, "", None)
        _item(out, item)
        prev = item
    return _with_comments(out.rows, spec.comments)


def _with_comments(rows, comments) -> str:
    if not comments:  # specs built in code (every evolved genome): no placement to work out
        return "\n".join(INDENT * depth + text if text else "" for depth, text, _ in rows) + "\n"
    trailing: dict[int, list[str]] = {}
    before: dict[int, list[str]] = {}
    tail: list[str] = []
    tagged = [(i, r[2]) for i, r in enumerate(rows) if r[2] is not None]
    for c in comments:
        if not c.own_line:
            # After code: attach to the last printed line that started at or before it.
            idx = max((i for i, src in tagged if src <= c.line), default=None, key=lambda i: (rows[i][2], i))
            if idx is not None:
                trailing.setdefault(idx, []).append(c.text)
                continue
        idx = next((i for i, src in tagged if src >= c.line), None)
        if idx is None:
            tail.append(c.text)
        else:
            # A comment belongs above the first line after it, including that line's doc lines.
            while idx > 0 and rows[idx - 1][2] is None and rows[idx - 1][1].startswith("///"):
                idx -= 1
            before.setdefault(idx, []).append(c.text)
    lines: list[str] = []
    for i, (depth, text, _src) in enumerate(rows):
        for c in before.get(i, []):
            d = depth + 1 if text == "}" else depth
            lines.append(INDENT * d + c)
        line = INDENT * depth + text if text else ""
        if i in trailing:
            line += "  " + "  ".join(trailing[i])
        lines.append(line)
    if tail:
        if lines and lines[-1]:
            lines.append("")
        lines += tail
    return "\n".join(lines) + "\n"
