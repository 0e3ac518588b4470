"""Text to spec IR: the Lark LALR parser plus a transformer into `ir.nodes`.

Parsing never evaluates anything from the spec. Syntax errors become
`SyntaxError_` with a span; the parser recovers at the next top-level item so
one run reports every syntax error in a file.
"""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import attrs
import lark
from lark import Transformer, v_args

from ..errors import GenomeError, NetevoError, Span, SyntaxError_, raise_all
from ..ir import nodes as ir
from ..limits import MAX_NESTING, MAX_SPEC_BYTES

GRAMMAR_PATH = Path(__file__).with_name("netevo.lark")
TOP_LEVEL_KEYWORDS = ("version", "import", "param", "block", "mask", "network", "genome", "mutate", "evolve")
_TOP_LEVEL_LINE = re.compile(r"^(?:///?[^\n]*\n)*(%s)\b" % "|".join(TOP_LEVEL_KEYWORDS), re.M)

# Human names for terminals in "expected ..." messages.
_TERMINAL_NAMES = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "$END": "end of file",
                   "EDGE_WEIGHT": "an edge weight `w=0.5`"}


@functools.cache
def lark_parser(strict: bool = False) -> lark.Lark:
    """The LALR parser. Tests build it with strict=True so any conflict fails CI.

    Building the tables takes about a second, so the non-strict parser is cached in the
    user's own cache folder (lark's cache, keyed by grammar and lark version); `netevo
    check` then starts in milliseconds. Without a writable folder it is built each time.
    """
    return lark.Lark(
        GRAMMAR_PATH.read_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        strict=strict,
        cache=False if strict else _cache_file(),
    )


def _cache_file() -> str | bool:
    """A per-user cache path (never a shared /tmp file: lark loads caches with pickle)."""
    import hashlib
    import os

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "netevo")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not os.access(folder, os.W_OK) or os.stat(folder).st_uid != os.getuid():
            return False
    except OSError:
        return False
    key = hashlib.sha256(GRAMMAR_PATH.read_bytes() + lark.__version__.encode()).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{key}.lark-cache")


def _span(meta, path) -> ir.Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(tok: lark.Token, path) -> Span:
    return Span(path, tok.line, tok.column, tok.end_line, tok.end_column)


@v_args(meta=True, inline=True)
class _ToIR(Transformer):
    """Builds IR nodes; `self.path` goes into every span."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def sp(self, meta):
        return _span(meta, self.path)

    # expressions
    def number(self, meta, tok):
        return ir.Num(_number_value(tok, self.path), span=self.sp(meta))

    def string(self, meta, tok):
        return ir.Str(str(tok)[1:-1], span=self.sp(meta))

    def true(self, meta):
        return ir.Bool(True, span=self.sp(meta))

    def false(self, meta):
        return ir.Bool(False, span=self.sp(meta))

    def name(self, meta, tok):
        return ir.Name(_unquote(tok), span=self.sp(meta))

    def neg(self, meta, operand):
        return ir.Neg(operand, span=self.sp(meta))

    def add(self, meta, left, right):
        return ir.BinOp("+", left, right, span=self.sp(meta))

    def sub(self, meta, left, right):
        return ir.BinOp("-", left, right, span=self.sp(meta))

    def mul(self, meta, left, right):
        return ir.BinOp("*", left, right, span=self.sp(meta))

    def div(self, meta, left, right):
        return ir.BinOp("/", left, right, span=self.sp(meta))

    def mod(self, meta, left, right):
        return ir.BinOp("%", left, right, span=self.sp(meta))

    def kwarg(self, meta, key, value):
        return ir.KwArg(str(key), value, span=self.sp(meta))

    def call(self, meta, func, *args):
        args = [a for a in args if a is not None]
        positional = tuple(a for a in args if not isinstance(a, ir.KwArg))
        kwargs = tuple(a for a in args if isinstance(a, ir.KwArg))
        seen_kw = False
        for a in args:
            if isinstance(a, ir.KwArg):
                seen_kw = True
            elif seen_kw:
                raise SyntaxError_(
                    "positional argument after keyword argument", a.span, "put positional arguments first"
                )
        return ir.Call(str(func), positional, kwargs, span=self.sp(meta))

    def pipe(self, meta, value, call):
        return ir.Pipe(value, call, span=self.sp(meta))

    def list(self, meta, *items):
        return ir.ListExpr(tuple(i for i in items if i is not None), span=self.sp(meta))

    def set(self, meta, *items):
        return ir.SetExpr(tuple(i for i in items if i is not None), span=self.sp(meta))

    # types
    def tensor_type(self, meta, *dims):
        return ir.TensorType(tuple(d for d in dims if d is not None), span=self.sp(meta))

    def scalar_type(self, meta, tok):
        return ir.ScalarType(str(tok), span=self.sp(meta))

    # statements
    def input(self, meta, name, type_):
        return ir.Input(str(name), type_, span=self.sp(meta))

    def assign(self, meta, *parts):
        *targets, value = parts
        return ir.Assign(tuple(_unquote(t) for t in targets), value, span=self.sp(meta))

    def output(self, meta, name, value):
        return ir.Output(str(name), value, span=self.sp(meta))

    def return_(self, meta, value):
        return ir.Return(value, span=self.sp(meta))

    def repeat(self, meta, count, name, *body):
        return ir.Repeat(count, str(name), body, span=self.sp(meta))

    # items
    def version(self, meta, tok):
        value = _number_value(tok, self.path)
        if not isinstance(value, int):
            raise SyntaxError_(f"version is a whole number, not `{tok}`", _tok_span(tok, self.path),
                               "write e.g. `version 1`")
        return ir.Version(value, span=self.sp(meta))

    def import_(self, meta, tok):
        return ir.Import(str(tok)[1:-1], span=self.sp(meta))

    def param(self, meta, name, type_, default):
        return ir.Param(str(name), type_, default, span=self.sp(meta))

    def block_param(self, meta, name, type_, default):
        return ir.BlockParam(str(name), type_, default, span=self.sp(meta))

    def block(self, meta, name, *rest):
        params, body, returns = [], [], None
        for r in rest:
            if isinstance(r, ir.BlockParam):
                params.append(r)
            elif isinstance(r, ir.TensorType):
                returns = r
            elif r is not None:
                body.append(r)
        return ir.Block(str(name), tuple(params), returns, tuple(body), span=self.sp(meta))

    def mask(self, meta, name, call):
        return ir.MaskDef(str(name), call, span=self.sp(meta))

    def network(self, meta, name, *body):
        return ir.Network(str(name), body, span=self.sp(meta))

    def inputs(self, meta, *names):
        return ("inputs", tuple(str(n) for n in names))

    def outputs(self, meta, *outs):
        return ("outputs", outs)

    def wann_output(self, meta, name, act):
        return ir.WannOutput(str(name), str(act), span=self.sp(meta))

    def node(self, meta, name, act):
        return ir.WannNode(str(name), str(act), span=self.sp(meta))

    def edge(self, meta, src, dst, weight, flag):
        span = self.sp(meta)
        if flag is not None and str(flag) not in ("disabled", "enabled"):
            raise SyntaxError_(
                f"unknown edge flag `{flag}`", _tok_span(flag, self.path), "an edge flag is [disabled] or [enabled]"
            )
        # `w=-1.5`: a float always; validate_genome refuses too large values (E193), this the infinite ones
        value = None if weight is None else float(str(weight).split("=", 1)[1].replace(" ", "").replace("\t", ""))
        if value is not None and not math.isfinite(value):
            raise GenomeError(f"edge {src} -> {dst}: weight `{str(weight)[:24]}` is not finite",
                              _tok_span(weight, self.path), "write e.g. `w=0.3` or `w=-1.5`", code="E193")
        return ir.WannEdge(str(src), str(dst), flag is None or str(flag) == "enabled", value, span=span)

    def setting(self, meta, key, value):
        return ir.Setting(str(key), value, span=self.sp(meta))

    def objective(self, meta, direction, metric):
        return ir.Objective(str(direction), metric, span=self.sp(meta))

    def train(self, meta, *settings):
        return ir.TrainSettings(settings, span=self.sp(meta))

    def layer(self, meta, *settings):
        return ir.TransformerLayer(settings, span=self.sp(meta))

    def genome(self, meta, name, kind, *body):
        span = self.sp(meta)
        kind = str(kind)
        if kind == "wann":
            inputs, outputs, nodes_, edges, settings = (), (), [], [], []
            for b in body:
                if isinstance(b, tuple) and b[0] == "inputs":
                    inputs += b[1]
                elif isinstance(b, tuple) and b[0] == "outputs":
                    outputs += tuple(b[1])
                elif isinstance(b, ir.WannNode):
                    nodes_.append(b)
                elif isinstance(b, ir.WannEdge):
                    edges.append(b)
                elif isinstance(b, ir.Setting):
                    settings.append(b)
                else:
                    raise SyntaxError_("`layer` belongs in a transformer genome", b.span, "use `genome NAME: transformer`")
            return ir.WannGenome(str(name), inputs, outputs, nodes_, edges, settings, span=span)
        if kind == "transformer":
            layers, settings = [], []
            for b in body:
                if isinstance(b, ir.TransformerLayer):
                    layers.append(b)
                elif isinstance(b, ir.Setting):
                    settings.append(b)
                else:
                    where = b.span if hasattr(b, "span") else span
                    raise SyntaxError_("inputs, outputs, nodes and edges belong in a wann genome", where,
                                       "use `genome NAME: wann`")
            return ir.TransformerGenome(str(name), settings, layers, span=span)
        raise SyntaxError_(f"unknown genome kind `{kind}`", span, "a genome is `wann` or `transformer`")

    def mutate(self, meta, target, *rules):
        return ir.MutateBlock(str(target), rules, span=self.sp(meta))

    def evolve(self, meta, target, *settings):
        return ir.EvolveBlock(str(target), settings, span=self.sp(meta))


def _unquote(tok) -> str:
    """`block1-0` (a QNAME) -> block1-0; a NAME as it is."""
    text = str(tok)
    return text[1:-1] if text.startswith("`") else text


def _number_value(tok: lark.Token, path) -> int | float:
    """A NUMBER token's value; too long or infinite numbers are syntax errors, not crashes."""
    text = str(tok)
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:  # more digits than Python converts
        value = math.inf
    if not math.isfinite(value):
        raise SyntaxError_(f"number `{text[:20]}{'...' if len(text) > 20 else ''}` is too large",
                           _tok_span(tok, path), "numbers must be finite")
    return value


def _attach_docs(items, comments):
    """`///` lines directly above an item become its doc string.

    Returns the items and the comments that were not consumed as docs.
    """
    by_line = {c.line: c for c in comments if c.text.startswith("///") and c.own_line}
    consumed: set[int] = set()
    out = []
    for item in items:
        if item.span is not None and hasattr(item, "doc"):
            lines, line = [], item.span.line - 1
            while line in by_line:
                lines.append(by_line[line].text[3:].strip())
                consumed.add(line)
                line -= 1
            if lines:
                item = attrs.evolve(item, doc="\n".join(reversed(lines)))
        out.append(item)
    return tuple(out), tuple(c for c in comments if c.line not in consumed or not c.own_line)


def _terminal_name(terminal: str) -> str:
    if terminal in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[terminal]
    try:
        pattern = lark_parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else terminal.lower()


def _syntax_error(exc: lark.exceptions.LarkError, path) -> SyntaxError_:
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        tok = exc.token
        expected = sorted({_terminal_name(t) for t in exc.accepts or exc.expected})
        found = "end of file" if tok.type == "$END" else f"`{_shown(str(tok))}`"
        hint = "expected " + ", ".join(expected[:8]) + (" ..." if len(expected) > 8 else "")
        line, col = (tok.line, tok.column) if tok.line is not None else (exc.line, exc.column)
        end = len(str(tok)) if tok.type != "$END" else 1
        return SyntaxError_(f"unexpected {found}", Span(path, line, col, line, col + end), hint)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        return SyntaxError_(
            f"unexpected character `{_shown(exc.char)}`",
            Span(path, exc.line, exc.column, exc.line, exc.column + 1),
            "names are letters, digits and `_`; strings use double quotes; comments start with //",
        )
    if isinstance(exc, lark.exceptions.VisitError) and isinstance(exc.orig_exc, NetevoError):
        return exc.orig_exc
    meta = getattr(getattr(exc, "obj", None), "meta", None)
    return SyntaxError_(str(exc), _span(meta, path) if meta is not None else None, None)


def _explain_comment_cut(err: NetevoError, lines: list[str], first: int = 1) -> None:
    """A syntax error after a line whose `//` cut an expression short (`out=7 // 2)`): name the cause.

    `//` always starts a comment in .net, so the rest of that line vanished and the parser complains
    about whatever comes next. The hint replaces the list of expected tokens, which would not help.
    `lines`: the file's lines, split once by the caller; lines before `first` were skipped by recovery."""
    if not isinstance(err, SyntaxError_) or err.span is None:
        return
    for n in range(min(err.span.line, len(lines)), max(first - 1, 0, err.span.line - 3), -1):
        line = lines[n - 1]
        cut = next((m for m in _string_or_comment().finditer(line) if m.group(1) is not None), None)
        if cut is None:
            continue
        code = line[: cut.start()]
        opened = code.count("(") + code.count("[") + code.count("{") - code.count(")") - code.count("]") - code.count("}")
        if re.search(r"[\w)\]]\s*$", code) and opened > 0 and re.match(r"//\s*[\w(\-.]", cut.group(1)):
            err.hint = (f"`//` starts a comment in .net, so line {n} ends at `{code.strip()}`; there is no floor "
                        "division: write the value itself, or `/` where it divides exactly (`8 / 2` is 4)")
            return


def _shown(text: str, limit: int = 40) -> str:
    """A piece of the user's text for a message: short, and without control characters."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _parse_chunk(text: str, path, errors: list):
    """Parse once; on a syntax error returns (None, comments, exc) so the caller can resume.

    Items nested more than MAX_NESTING levels deep are reported into `errors` and dropped: every
    later pass walks expressions recursively, and the limit keeps them far from Python's own.
    """
    comments: list[ir.Comment] = []
    parser = lark_parser()
    try:
        tree = _parse_with_comments(parser, text, comments)
        items = []
        for child in tree.children:
            too_deep = _too_deep(child)
            if too_deep is not None:
                errors.append(SyntaxError_(f"nested more than {MAX_NESTING} levels deep", _span(too_deep.meta, path),
                                           "split the expression into several statements (`a = ...`), or "
                                           "nest fewer calls and repeats", code="E003"))
                continue
            items.append(_ToIR(path).transform(child))
        return items, comments, None
    except (lark.exceptions.UnexpectedInput, lark.exceptions.VisitError) as exc:
        return None, comments, exc


def _too_deep(item: lark.Tree) -> lark.Tree | None:
    """The first subtree more than MAX_NESTING levels below the item, found without recursion."""
    stack = [(item, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))
    return None


@functools.cache
def _string_or_comment() -> re.Pattern:
    """The grammar's STRING and COMMENT terminals: outside strings, `//` always starts a comment."""
    terminal = lark_parser().get_terminal
    return re.compile(f"(?:{terminal('STRING').pattern.to_regexp()})|({terminal('COMMENT').pattern.to_regexp()})")


def _parse_with_comments(parser, text, comments):
    tree = parser.parse(text)
    # Scanning for comments is exact once the text has parsed, and far cheaper than
    # `parser.lex(dont_ignore=True)`, which builds a new lexer on every call.
    line, line_start, pos = 1, 0, 0
    for m in _string_or_comment().finditer(text):
        if m.group(1) is None:
            continue
        line += text.count("\n", pos, m.start())
        line_start = text.rfind("\n", 0, m.start()) + 1
        pos = m.start()
        own_line = not text[line_start : m.start()].strip()
        comments.append(ir.Comment(line, m.start() - line_start + 1, m.group(1).rstrip(), own_line))
    return tree


def parse(text: str, path: str | None = None) -> ir.Spec:
    """Parse .net text into a Spec (imports are not followed; see `load`).

    Raises a `NetevoError` (an `ErrorGroup` when there are several) on bad input.
    """
    if not isinstance(text, str):
        raise SyntaxError_("spec text must be a string", None, "read the file first, or use netevo_dsl.load(path)")
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark is not part of the spec
    if len(text) > MAX_SPEC_BYTES:
        raise SyntaxError_(f"spec text is longer than {MAX_SPEC_BYTES // 2**20} MiB", Span(path, 1, 1, 1, 2),
                           "a spec file is at most 4 MiB; split it with `import`", code="E013")
    errors: list[NetevoError] = []
    items: list = []
    comments: list[ir.Comment] = []
    remaining = text
    resume = -1
    lines: list[str] | None = None  # split once, however many errors there are
    while True:
        got, chunk_comments, exc = _parse_chunk(remaining, path, errors)
        if exc is None:
            items += got
            comments += chunk_comments
            break
        err = _syntax_error(exc, path)
        if lines is None:
            lines = text.splitlines(keepends=True)
            starts = [0]
            for line in lines:
                starts.append(starts[-1] + len(line))
        _explain_comment_cut(err, lines, resume + 1)
        errors.append(err)
        # Recover: skip to the next top-level keyword at the start of a line after the error.
        # Always move forward, even when an error has no span.
        bad_line = max(err.span.line if err.span else 1, resume + 1)
        resume = None
        for i in range(bad_line, len(lines)):
            if re.match(r"(%s)\b" % "|".join(TOP_LEVEL_KEYWORDS), lines[i]):
                resume = i
                break
        if resume is None:
            break
        # Blank out everything before `resume` so line numbers stay true.
        remaining = "\n" * resume + text[starts[resume]:]
    if errors:
        raise_all(errors)
    comments.sort(key=lambda c: (c.line, c.col))
    items, comments = _attach_docs(items, comments)
    return ir.Spec(items, path=path, comments=comments)
