"""A fast path for the one text form netevo writes most: a lone WANN genome as the printer prints it.

Checkpoints, champion files and report tools round-trip every genome through text, and the Lark
parser spends milliseconds on a genome of a few hundred edges (issue 18). `parse_generated_genome`
reads exactly the printer's layout (`ir/printer.py`: two-space indent, single spaces, one statement
per line, no comments, settings whose value is a number, a name, a boolean or a set/list of signed
numbers) line by line with regular expressions. It returns None for anything else, including
anything the full parser would reject, so the caller falls back to `parse`; when it returns a genome,
that genome equals the full parser's, spans included (tests/ir/test_fast_genome_parse.py).
"""
from __future__ import annotations

import functools
import math
import re

from ..errors import Span
from ..ir import nodes as ir
from ..limits import MAX_SPEC_BYTES
from .parser import GRAMMAR_PATH

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?"  # the grammar's NUMBER terminal
_HEADER = re.compile(rf"genome ({_NAME}): wann \{{")
_NAMES = re.compile(rf"{_NAME}(?:, {_NAME})*")
_OUTPUT = re.compile(rf"({_NAME}): ({_NAME})")
_OUTPUTS = re.compile(rf"{_OUTPUT.pattern}(?:, {_OUTPUT.pattern})*")
_NODE = re.compile(rf"  node ({_NAME}): ({_NAME})")
_EDGE = re.compile(rf"  edge ({_NAME}) -> ({_NAME})(?: w=(-?{_NUMBER}))?( \[disabled\])?")
_SETTING = re.compile(rf"  ({_NAME}) (.+)")
_SIGNED = re.compile(rf"(-?)({_NUMBER})")
_SIGNED_LIST = re.compile(rf"-?{_NUMBER}(?:, -?{_NUMBER})*")
_LONGEST_NUMBER = 40  # longer number texts fall back: the full parser decides whether they are too large


@functools.cache
def _keywords() -> frozenset[str]:
    """The grammar's word literals ("genome", "node", "true", ...): the lexer never reads them as a NAME."""
    return frozenset(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', GRAMMAR_PATH.read_text()))


def parse_generated_genome(text: str, path: str | None = None) -> ir.WannGenome | None:
    """The genome in `text` if it is in the printer's form, else None (use `parse`)."""
    if not isinstance(text, str) or len(text) > MAX_SPEC_BYTES or not text.endswith("\n}\n"):
        return None
    lines = text[:-1].split("\n")
    header = _HEADER.fullmatch(lines[0])
    keywords = _keywords()
    if header is None or header[1] in keywords:
        return None
    inputs: list[str] = []
    outputs: list[ir.WannOutput] = []
    nodes: list[ir.WannNode] = []
    edges: list[ir.WannEdge] = []
    settings: list[ir.Setting] = []
    for number, line in enumerate(lines[1:-1], start=2):
        end = len(line) + 1
        if line.startswith("  edge "):
            m = _EDGE.fullmatch(line)
            if m is None or m[1] in keywords or m[2] in keywords:
                return None
            weight = None if m[3] is None else float(m[3])
            if weight is not None and (len(m[3]) > _LONGEST_NUMBER or not math.isfinite(weight)):
                return None  # the full parser and validate_genome report it
            edges.append(ir.WannEdge(m[1], m[2], m[4] is None, weight, span=Span(path, number, 3, number, end)))
        elif line.startswith("  node "):
            m = _NODE.fullmatch(line)
            if m is None or m[1] in keywords or m[2] in keywords:
                return None
            nodes.append(ir.WannNode(m[1], m[2], span=Span(path, number, 3, number, end)))
        elif line.startswith("  inputs "):
            if not _NAMES.fullmatch(line, 9):
                return None
            names = line[9:].split(", ")
            if not keywords.isdisjoint(names):
                return None
            inputs += names
        elif line.startswith("  outputs "):
            if not _OUTPUTS.fullmatch(line, 10):
                return None
            for m in _OUTPUT.finditer(line, 10):
                if m[1] in keywords or m[2] in keywords:
                    return None
                outputs.append(ir.WannOutput(m[1], m[2], span=Span(path, number, m.start() + 1, number, m.end() + 1)))
        else:
            m = _SETTING.fullmatch(line)
            if m is None or m[1] in keywords:
                return None
            value = _value(m[2], path, number, m.start(2) + 1)
            if value is None:
                return None
            settings.append(ir.Setting(m[1], value, span=Span(path, number, 3, number, end)))
    last = len(lines)
    return ir.WannGenome(header[1], inputs, outputs, nodes, edges, settings, span=Span(path, 1, 1, last, 2))


def _value(text: str, path, line: int, col: int):
    """A setting's value in the printer's form, or None; `col` is where `text` starts on `line`."""
    if text[0] in "{[":
        closing = "}" if text[0] == "{" else "]"
        inner = text[1:-1]
        if text[-1] != closing or (inner and not _SIGNED_LIST.fullmatch(inner)):
            return None
        items, at = [], col + 1
        for item in inner.split(", ") if inner else ():
            value = _signed(item, path, line, at)
            if value is None:
                return None
            items.append(value)
            at += len(item) + 2
        kind = ir.SetExpr if closing == "}" else ir.ListExpr
        return kind(tuple(items), span=Span(path, line, col, line, col + len(text)))
    if text in ("true", "false"):
        return ir.Bool(text == "true", span=Span(path, line, col, line, col + len(text)))
    if re.fullmatch(_NAME, text):
        return None if text in _keywords() else ir.Name(text, span=Span(path, line, col, line, col + len(text)))
    return _signed(text, path, line, col) if _SIGNED.fullmatch(text) else None


def _signed(text: str, path, line: int, col: int):
    """`2`, `-0.5`, `1e-05`: a Num, or a Neg of one, as the parser builds them; None where it would not."""
    m = _SIGNED.fullmatch(text)
    digits = m[2]
    if len(digits) > _LONGEST_NUMBER:
        return None
    value = float(digits) if any(c in digits for c in ".eE") else int(digits)
    if not math.isfinite(value):
        return None
    end = col + len(text)
    if not m[1]:
        return ir.Num(value, span=Span(path, line, col, line, end))
    return ir.Neg(ir.Num(value, span=Span(path, line, col + 1, line, end)), span=Span(path, line, col, line, end))
