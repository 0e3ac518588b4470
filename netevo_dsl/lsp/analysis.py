"""What an editor needs to know about one .net document, computed by the same engine as `netevo check`.

`analyze(text, path)` parses and checks the text and collects, in plain data:

* the diagnostics (every `NetevoError`, as `netevo check` reports them);
* the definitions (params, blocks and their parameters, masks, networks, genomes, inputs, values,
  outputs, repeats, imports) and every reference to them, each with the identifier's own span;
* the inferred shape of every statement's value (symbolic where the spec is symbolic), for inlay hints
  and hovers.

Pure Python: like `check`, it never imports torch. The language server (`lsp/server.py`) turns this into
protocol messages; the feature functions (`lsp/features.py`) answer queries from it.
"""
from __future__ import annotations

import re
from pathlib import Path

import attrs

from ..errors import NetevoError, Span, flatten
from ..ir import nodes as ir
from ..ir.dims import shape_str

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.define
class Definition:
    name: str
    kind: str  # param | block | block_param | mask | network | genome | input | value | output | repeat | import
    span: Span  # the identifier itself
    scope: str | None = None  # the network or block a local name belongs to; None at top level
    detail: str = ""  # one line for hovers and outlines
    doc: str = ""
    item_span: Span | None = None  # the whole statement or item


@attrs.define
class Reference:
    span: Span  # the identifier
    target: Definition | None = None  # None for op calls and registry names
    op: str | None = None  # the op name when the identifier calls a registry op


@attrs.define
class Analysis:
    path: str | None
    text: str
    spec: ir.Spec | None = None
    errors: list = attrs.Factory(list)  # NetevoError, flattened
    definitions: list = attrs.Factory(list)
    references: list = attrs.Factory(list)
    shapes: dict = attrs.Factory(dict)  # (scope, value name) -> shape text (several calls: " | "-joined)
    hints: list = attrs.Factory(list)  # (line, col, label): after each statement, 1-based
    overrides: dict = attrs.Factory(dict)

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def at(self, line: int, col: int):
        """The reference or definition whose identifier covers (line, col), 1-based; references win."""
        for r in self.references:
            if _covers(r.span, line, col):
                return r
        for d in self.definitions:
            if _covers(d.span, line, col):
                return d
        return None

    def references_to(self, d: Definition) -> list[Reference]:
        return [r for r in self.references if r.target is d]


def _covers(span: Span, line: int, col: int) -> bool:
    return span.line == line and span.col <= col <= span.end_col


def analyze(text: str, path: str | None = None, overrides: dict | None = None) -> Analysis:
    """Parse, resolve imports, check and index one document. Never raises a NetevoError."""
    from ..grammar.loader import resolve_imports
    from ..grammar.parser import parse
    from ..passes.check import check

    a = Analysis(path, text, overrides=dict(overrides or {}))
    try:
        spec = parse(text, path)
    except NetevoError as e:
        a.errors = flatten(e)
        return a
    try:
        spec = resolve_imports(spec) if path else spec
    except NetevoError as e:
        a.errors += flatten(e)
    a.spec = spec
    # editor-wide defines apply to the files that declare those params (`-D` for one file is an error elsewhere)
    a.overrides = {k: v for k, v in a.overrides.items() if spec.find(k, (ir.Param,)) is not None}
    _index(a, spec)
    try:
        result = check(spec, a.overrides)
        graphs = result.graphs
    except NetevoError as e:
        a.errors += flatten(e)
        graphs = None
    except RecursionError:  # a front-end limit not yet reported as an error: never crash the editor
        graphs = None
    _record_shapes(a, spec, graphs)
    return a


# --- definitions and references ------------------------------------------------------


def _name_span(a: Analysis, span: Span | None, name: str, after_col: int | None = None) -> Span | None:
    """The span of identifier `name` on the span's first line, searched from `after_col` (1-based)."""
    if span is None or span.file not in (None, a.path):
        return None
    lines = a.lines
    if not 1 <= span.line <= len(lines):
        return None
    line = lines[span.line - 1]
    start = (after_col or span.col) - 1
    for m in _IDENT.finditer(line, max(start, 0)):
        if m.group() == name:
            return Span(span.file, span.line, m.start() + 1, span.line, m.end() + 1)
    return None


def _own(a: Analysis, span: Span | None) -> bool:
    return span is not None and span.file == a.path


class _Indexer:
    def __init__(self, a: Analysis, spec: ir.Spec):
        self.a, self.spec = a, spec
        self.top: dict[str, Definition] = {}

    def define(self, name, kind, span, scope=None, detail="", doc="", item_span=None, after_col=None):
        s = _name_span(self.a, span, name, after_col)
        if s is None:
            return None
        d = Definition(name, kind, s, scope, detail, doc, item_span or span)
        self.a.definitions.append(d)
        return d

    def run(self):
        a, spec = self.a, self.spec
        for item in spec.items:
            if not _own(a, item.span):
                continue
            if isinstance(item, ir.Param):
                default = f" = {_expr_text(item.default)}" if item.default is not None else ""
                d = self.define(item.name, "param", item.span, detail=f"param {item.name}: {item.type.name}{default}",
                                doc=item.doc, after_col=item.span.col + len("param"))
            elif isinstance(item, ir.Block):
                params = ", ".join(f"{p.name}: {_type_text(p.type)}" for p in item.params)
                ret = f" -> {_type_text(item.returns)}" if item.returns else ""
                d = self.define(item.name, "block", item.span, detail=f"block {item.name}({params}){ret}",
                                doc=item.doc, after_col=item.span.col + len("block"))
            elif isinstance(item, ir.MaskDef):
                d = self.define(item.name, "mask", item.span, detail=f"mask {item.name} = {_expr_text(item.value)}",
                                doc=item.doc, after_col=item.span.col + len("mask"))
            elif isinstance(item, ir.Network):
                d = self.define(item.name, "network", item.span, detail=f"network {item.name}", doc=item.doc,
                                after_col=item.span.col + len("network"))
            elif isinstance(item, (ir.WannGenome, ir.TransformerGenome)):
                kind = "wann" if isinstance(item, ir.WannGenome) else "transformer"
                d = self.define(item.name, "genome", item.span, detail=f"genome {item.name}: {kind}", doc=item.doc,
                                after_col=item.span.col + len("genome"))
            elif isinstance(item, ir.Import):
                d = Definition(item.path, "import", item.span, detail=f'import "{item.path}"', item_span=item.span)
                a.definitions.append(d)
            else:
                continue
            if d is not None and d.kind != "import":
                self.top[item.name] = d
        for item in spec.imported:  # imported names are definitions in other files
            name = getattr(item, "name", None)
            if name and name not in self.top and item.span is not None:
                kind = {ir.Param: "param", ir.Block: "block", ir.MaskDef: "mask", ir.Network: "network"}.get(
                    type(item), "genome")
                span = Span(item.span.file, item.span.line, item.span.col, item.span.line, item.span.col)
                self.top[name] = Definition(name, kind, span, None, f"{kind} {name} (imported)",
                                            getattr(item, "doc", ""), item.span)
        for item in spec.items:
            if not _own(a, item.span):
                continue
            if isinstance(item, ir.Block):
                local = {}
                for p in item.params:
                    d = self.define(p.name, "block_param", p.span, item.name, f"{p.name}: {_type_text(p.type)}")
                    if d:
                        local[p.name] = d
                    self.expr_refs(p.type, local)
                    if p.default is not None:
                        self.expr_refs(p.default, local)
                if item.returns is not None:
                    self.expr_refs(item.returns, local)
                self.body(item.body, item.name, local)
            elif isinstance(item, ir.Network):
                self.body(item.body, item.name, {})
            elif isinstance(item, ir.Param) and item.default is not None:
                self.expr_refs(item.default, {})
            elif isinstance(item, ir.MaskDef):
                self.expr_refs(item.value, {})
            elif isinstance(item, (ir.MutateBlock, ir.EvolveBlock)):
                self.target_ref(item)
                if isinstance(item, ir.MutateBlock):
                    self.rule_refs(item)

    def body(self, body, scope: str, local: dict):
        for s in body:
            if isinstance(s, ir.Input):
                local[s.name] = self.define(s.name, "input", s.span, scope, f"input {s.name}: {_type_text(s.type)}",
                                            after_col=s.span.col + len("input")) or local.get(s.name)
                self.expr_refs(s.type, local)
            elif isinstance(s, ir.Assign):
                self.expr_refs(s.value, local)  # the value reads the names before the assignment rebinds them
                col = s.span.col
                for t in s.targets:
                    d = self.define(t, "value", s.span, scope, f"{t} = {_expr_text(s.value)}", after_col=col)
                    if d:
                        local[t] = d
                        col = d.span.end_col
            elif isinstance(s, ir.Output):
                self.expr_refs(s.value, local)
                d = self.define(s.name, "output", s.span, scope, f"output {s.name} = {_expr_text(s.value)}",
                                after_col=s.span.col + len("output"))
                if d:
                    local[s.name] = d
            elif isinstance(s, ir.Return):
                self.expr_refs(s.value, local)
            elif isinstance(s, ir.Repeat):
                self.expr_refs(s.count, local)
                kw = _name_span(self.a, s.span, "as")
                self.define(s.name, "repeat", s.span, scope, f"repeat {_expr_text(s.count)} as {s.name}",
                            after_col=kw.end_col if kw else None)
                self.body(s.body, scope, local)

    def resolve(self, name: str, local: dict):
        return local.get(name) or self.top.get(name)

    def expr_refs(self, e, local: dict):
        from ..ops.registry import get_op

        stack = [e]
        while stack:  # iterative: deep expressions must not exhaust Python's stack
            e = stack.pop()
            if isinstance(e, ir.Name):
                s = _name_span(self.a, e.span, e.id)
                if s is not None:
                    self.a.references.append(Reference(s, self.resolve(e.id, local)))
            elif isinstance(e, ir.Call):
                s = _name_span(self.a, e.span, e.func)
                if s is not None:
                    target = self.top.get(e.func) if e.func not in _ops_names() else None
                    op = e.func if target is None and get_op(e.func) is not None else None
                    self.a.references.append(Reference(s, target, op))
                stack += [k.value for k in e.kwargs] + list(e.args)
            elif isinstance(e, ir.Pipe):
                stack += [e.call, e.value]
            elif isinstance(e, ir.BinOp):
                stack += [e.right, e.left]
            elif isinstance(e, ir.Neg):
                stack.append(e.operand)
            elif isinstance(e, (ir.ListExpr, ir.SetExpr)):
                stack += list(e.items)
            elif isinstance(e, ir.TensorType):
                stack += list(e.dims)
            elif isinstance(e, ir.KwArg):
                stack.append(e.value)

    def target_ref(self, item):
        keyword = "mutate" if isinstance(item, ir.MutateBlock) else "evolve"
        s = _name_span(self.a, item.span, item.target, item.span.col + len(keyword))
        if s is not None:
            self.a.references.append(Reference(s, self.top.get(item.target)))

    def rule_refs(self, item: ir.MutateBlock):
        """Rule targets name values of the mutated network: `width(fc1, ...)`."""
        net = self.spec.find(item.target, (ir.Network,))
        values = {d.name: d for d in self.a.definitions if net is not None and d.scope == net.name}
        for rule in item.rules:
            for arg in rule.args:
                if isinstance(arg, ir.Name):
                    s = _name_span(self.a, arg.span, arg.id)
                    if s is not None:
                        self.a.references.append(Reference(s, values.get(arg.id)))


def _ops_names() -> set:
    from ..ops.registry import all_ops

    return {op.name for op in all_ops()}


def _index(a: Analysis, spec: ir.Spec):
    _Indexer(a, spec).run()


# --- shapes --------------------------------------------------------------------------


def _record_shapes(a: Analysis, spec: ir.Spec, graphs: dict | None):
    """Record the shape of every statement's value: networks with their concrete sizes, blocks
    symbolically, in the names of their own parameters (as the emitter writes a block class once)."""
    scopes = _statement_scopes(spec)
    for net in spec.networks:
        if _own(a, net.span) and (graphs is None or net.name in graphs):
            _run_scope(a, spec, scopes, net.name, net.body, {}, is_block=False)
            for s in net.body:
                if isinstance(s, ir.Input) and _own(a, s.span):
                    a.shapes.setdefault((net.name, s.name), _type_text(s.type))
    for block in spec.of_kind(ir.Block):
        if _own(a, block.span):
            _run_block(a, spec, scopes, block)
    a.hints.sort()


def _run_block(a, spec, scopes, block: ir.Block):
    from ..ir.dims import Dim
    from ..passes.elaborate import Elaborator, TensorVal

    el, env = Elaborator(spec, a.overrides), {}
    for p in block.params:
        if isinstance(p.type, ir.ScalarType):
            if p.type.name == "int":
                env[p.name] = Dim.sym(p.name)
            elif p.default is not None:
                env[p.name] = el.eval(p.default, {})
            else:
                return  # a float or bool parameter without a default: no symbolic reading of the body
    try:
        for p in block.params:
            if isinstance(p.type, ir.TensorType):
                shape = tuple(Dim.of(el.eval(d, env, dims=True)) for d in p.type.dims)
                env[p.name] = TensorVal(p.name, shape, p.name, p.span)
                a.shapes.setdefault((block.name, p.name), shape_str(shape))
    except (NetevoError, TypeError, ValueError):
        return
    _run_scope(a, spec, scopes, block.name, block.body, env, is_block=True)


def _run_scope(a, spec, scopes, scope: str, body, env: dict, is_block: bool):
    """Elaborate one body, recording each of its own statements' values (not those of blocks it calls)."""
    from ..passes.elaborate import Elaborator, GraphBuilder, TensorVal

    seen: dict = {}
    el = Elaborator(spec, a.overrides)
    el.sink = GraphBuilder()
    inner = el.statement_value

    def statement_value(e, env_, prefix, target, span):
        value = inner(e, env_, prefix, target, span)
        if span is not None and span.file == a.path and scopes.get(_key(span)) == scope:
            vals = value if isinstance(value, tuple) else (value,)
            text = ", ".join(shape_str(v.shape) for v in vals if isinstance(v, TensorVal))
            if text:
                texts = seen.setdefault(_key(span), (span, target, []))[2]
                if text not in texts:
                    texts.append(text)
        return value

    el.statement_value = statement_value
    try:
        el.run_body(body, env, "", is_block=is_block, where=(scope, ()))
    except (NetevoError, RecursionError):
        pass
    for span, name, texts in seen.values():
        label = texts[0] if len(texts) == 1 else " | ".join(texts[:3]) + (" | …" if len(texts) > 3 else "")
        a.hints.append((span.end_line, span.end_col, label))
        a.shapes.setdefault((scope, name), label)


def _key(span):
    return (span.line, span.col, span.end_line, span.end_col) if span is not None else None


def _statement_scopes(spec: ir.Spec) -> dict:
    """Statement span -> the network or block whose body holds it."""
    out = {}

    def walk(body, scope):
        for s in body:
            out[_key(s.span)] = scope
            if isinstance(s, ir.Repeat):
                walk(s.body, scope)

    for item in spec.all_items():
        if isinstance(item, (ir.Network, ir.Block)):
            walk(item.body, item.name)
    return out


# --- text of IR pieces ------------------------------------------------------------------


def _type_text(t) -> str:
    """The canonical text of a type (the formatter's)."""
    from ..ir.printer import type_

    return type_(t) if t is not None else ""


def _expr_text(e) -> str:
    """The canonical text of an expression (the formatter's)."""
    from ..ir.printer import expr

    return expr(e)


def file_path(uri: str) -> str | None:
    """A file:// URI as a local path; None for other schemes (unsaved buffers)."""
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    return str(Path(unquote(urlparse(uri).path)))


__all__ = ["Analysis", "Definition", "Reference", "analyze", "file_path"]
