"""Editor features answered from an `Analysis`: plain data in, plain data out (the server wraps it).

Positions here are 0-based lines and UTF-16 code units, as the Language Server Protocol counts them;
`Analysis` spans are 1-based lines and code points. Every list the editor is offered comes from a
registry: ops (`ops.registry`), mutation rules (`ops.rules`), tasks (`ops.tasks`), activations
(`ops.activations`), evolve settings (`passes.check`). Pure Python: no torch.
"""
from __future__ import annotations

import re

import attrs

from ..errors import NetevoError, Span
from ..ops.signature import net_literal as value_text
from ..ops.signature import op_signature
from .analysis import Analysis, Definition, Reference

KEYWORDS = ("version", "import", "param", "block", "mask", "network", "genome", "mutate", "evolve")
BODY_KEYWORDS = ("input", "output", "return", "repeat")


# --- positions ------------------------------------------------------------------------


def to_lsp(lines: list[str], line: int, col: int) -> tuple[int, int]:
    """1-based (line, code-point column) -> 0-based (line, UTF-16 offset)."""
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    prefix = text[: max(col - 1, 0)]
    return line - 1, len(prefix.encode("utf-16-le")) // 2


def from_lsp(lines: list[str], line: int, character: int) -> tuple[int, int]:
    """0-based (line, UTF-16 offset) -> 1-based (line, code-point column)."""
    text = lines[line] if 0 <= line < len(lines) else ""
    units = 0
    for i, ch in enumerate(text):
        if units >= character:
            return line + 1, i + 1
        units += 2 if ord(ch) > 0xFFFF else 1
    return line + 1, len(text) + 1


def lsp_range(lines: list[str], span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
    start = to_lsp(lines, span.line, span.col)
    end = to_lsp(lines, span.end_line, span.end_col)
    if end <= start:  # a point span: cover the rest of the identifier or one character
        end = (start[0], start[1] + 1)
    return start, end


# --- diagnostics ------------------------------------------------------------------------


@attrs.frozen
class Diagnostic:
    range: tuple
    code: str
    message: str
    related: tuple = ()  # ((path, range), message)


def diagnostics(a: Analysis) -> list[Diagnostic]:
    """Every error `netevo check` reports for this file, with its hint; errors without a place go on line 1."""
    lines, out = a.lines, []
    for e in a.errors:
        span = e.span if e.span is not None and e.span.file in (None, a.path) else None
        rng = lsp_range(lines, span) if span is not None else ((0, 0), (0, len(lines[0]) if lines else 0))
        message = e.message
        if e.span is not None and span is None:
            message += f" (in {e.span})"
        if e.hint:
            message += f"\nhelp: {e.hint}"
        related = tuple(((n_span.file, lsp_range(lines, n_span) if n_span.file == a.path else
                          ((n_span.line - 1, n_span.col - 1), (n_span.line - 1, n_span.col))), note)
                        for n_span, note in e.notes if n_span is not None and n_span.file)
        out.append(Diagnostic(rng, e.code, message, related))
    return out


# --- inlay hints ------------------------------------------------------------------------


def inlay_hints(a: Analysis, first_line: int = 0, last_line: int | None = None) -> list[tuple[int, int, str]]:
    """(line, character, label) after each statement in the 0-based line range: its inferred shape."""
    lines, out = a.lines, []
    for line, col, label in a.hints:
        pos = to_lsp(lines, line, col)
        if pos[0] >= first_line and (last_line is None or pos[0] <= last_line):
            out.append((pos[0], pos[1], f"  ⟶ {label}"))
    return out


# --- hover --------------------------------------------------------------------------------


def hover(a: Analysis, line: int, character: int) -> str | None:
    """Markdown for the identifier under the cursor: an op's signature and doc, a value's shape, ..."""
    ln, col = from_lsp(a.lines, line, character)
    hit = a.at(ln, col)
    if hit is None:
        word = _word_at(a.lines, ln, col)
        return _registry_hover(word) if word else None
    if isinstance(hit, Reference):
        if hit.op is not None:
            return op_hover(hit.op)
        if hit.target is None:
            return _registry_hover(_word_at(a.lines, ln, col) or "")
        hit = hit.target
    return _definition_hover(a, hit)


def _definition_hover(a: Analysis, d: Definition) -> str:
    parts = [f"```net\n{d.detail}\n```"]
    shape = a.shapes.get((d.scope, d.name)) if d.kind in ("input", "value", "output", "block_param") else None
    if shape:
        parts.append(f"shape `{shape}`")
    if d.kind == "param":
        parts.append(_param_value(a, d.name))
    if d.kind == "mask":
        parts.append(_mask_density(a, d.name))
    if d.doc:
        parts.append(d.doc)
    return "\n\n".join(p for p in parts if p)


def _param_value(a: Analysis, name: str) -> str:
    if name in a.overrides:
        return f"value `{a.overrides[name]}` (from `-D {name}={a.overrides[name]}` in the editor's settings)"
    if a.spec is None:
        return ""
    from ..passes.elaborate import Elaborator

    try:
        value = Elaborator(a.spec, a.overrides).globals.get(name)
    except (NetevoError, AttributeError):
        return ""
    return f"value `{value}` (its default)" if value is not None else ""


def _mask_density(a: Analysis, name: str) -> str:
    from ..ir import nodes as ir

    mask = a.spec.find(name, (ir.MaskDef,)) if a.spec else None
    if mask is None:
        return ""
    for k in mask.value.kwargs:
        if k.name == "density" and isinstance(k.value, ir.Num):
            return f"density {k.value.value:g} (share of connections kept)"
    return "density 1 (dense)" if mask.value.func == "dense" else f"pattern `{mask.value.func}`"


def op_hover(name: str) -> str | None:
    from ..ops.registry import get_op

    op = get_op(name)
    if op is None:
        return None
    lines = [f"```net\n{op_signature(op)}\n```", op.doc or ""]
    for p in op.params:
        if p.doc:
            lines.append(f"- `{p.name}`: {p.doc}")
    return "\n\n".join(x for x in lines[:2] if x) + ("\n\n" + "\n".join(lines[2:]) if lines[2:] else "")


def _registry_hover(word: str) -> str | None:
    from ..ops.activations import NETWORK_BY_NAME, WANN_BY_NAME
    from ..ops.rules import RULES
    from ..ops.tasks import get_task_spec, task_names

    if word in RULES:
        r = RULES[word]
        return f"```net\n{_rule_signature(r)}\n```\n\nmutation rule for {', '.join(r.applies_to)}: {r.doc}"
    if word in task_names():
        t = get_task_spec(word)
        params = ", ".join(f"{k}={value_text(v)}" if not _required(v) else k for k, v in t.params.items())
        return f"```net\ntask {t.name}({params})\n```\n\n{t.kind} task. {t.doc}\n\nmetrics: {', '.join(t.metrics)}"
    act = WANN_BY_NAME.get(word) or NETWORK_BY_NAME.get(word)
    if act is not None:
        return f"activation `{act.name}`: {act.doc or act.torch_expr}"
    return op_hover(word)


def _required(v) -> bool:
    from ..ops.tasks import REQUIRED

    return v is REQUIRED


def _rule_signature(r) -> str:
    args = (["TARGET, ..."] if r.takes_targets else []) + ["p=1.0"] + \
        (["choices={...}"] if r.takes_choices else []) + [f"{p.name}={value_text(p.default)}" for p in r.params]
    return f"{r.name}({', '.join(args)})"


def _word_at(lines: list[str], line: int, col: int) -> str | None:
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", text):
        if m.start() + 1 <= col <= m.end() + 1:
            return m.group()
    return None


# --- definition and references -----------------------------------------------------------


def definition(a: Analysis, line: int, character: int) -> tuple[str, Span] | None:
    """Where the name under the cursor is defined (an import jumps to the imported file)."""
    ln, col = from_lsp(a.lines, line, character)
    for d in a.definitions:
        if d.kind == "import" and d.span.line == ln:
            from pathlib import Path

            if a.path:
                target = (Path(a.path).parent / d.name).resolve()
                return str(target), Span(str(target), 1, 1, 1, 1)
    hit = a.at(ln, col)
    if isinstance(hit, Reference):
        hit = hit.target
    if hit is None:
        return None
    return (hit.span.file or a.path or ""), hit.span


def references(a: Analysis, line: int, character: int, include_declaration: bool = True) -> list[Span]:
    ln, col = from_lsp(a.lines, line, character)
    hit = a.at(ln, col)
    if isinstance(hit, Reference):
        hit = hit.target
    if hit is None:
        return []
    spans = [r.span for r in a.references_to(hit)]
    return ([hit.span] if include_declaration and hit.span.file == a.path else []) + spans


# --- completion ----------------------------------------------------------------------------


@attrs.frozen
class Completion:
    label: str
    kind: str  # keyword | op | block | value | param | rule | task | activation | setting | argument
    detail: str = ""
    insert: str | None = None


def completions(a: Analysis | None, text: str, line: int, character: int) -> list[Completion]:
    """What may be typed at the cursor, from the registries and the document's own names."""
    lines = text.split("\n")
    ln, col = from_lsp(lines, line, character)
    before = "\n".join(lines[: ln - 1] + [lines[ln - 1][: col - 1] if ln - 1 < len(lines) else ""])
    item_kind, item_name, item_target = _enclosing_item(before)
    current = before.rsplit("\n", 1)[-1]
    call = _open_call(current)
    if item_kind is None:
        return [Completion(k, "keyword") for k in KEYWORDS]
    if item_kind in ("network", "block"):
        if call is not None and _at_argument_start(current):
            return _call_arguments(call, a)
        return _body_completions(a, item_name)
    if item_kind == "mutate":
        if call is not None:
            if "choices" in current[current.rfind(call):] and current.rstrip().endswith(("{", ",")):
                return _activation_completions(None) if call in ("activation", "change_activation") else []
            if _at_argument_start(current):
                return _rule_arguments(call) + _target_values(a, item_target)
        return _rule_completions(a, item_target)
    if item_kind == "evolve":
        if re.search(r"\btask\s+\w*$", current):
            return _task_completions()
        if re.search(r"\bobjective\s+\w*$", current):
            return [Completion("maximize", "keyword"), Completion("minimize", "keyword")]
        if re.search(r"\bselection\s+\w*$", current):
            return [Completion(s, "setting") for s in ("wann", "nsga2", "aging", "random")]
        return _evolve_settings()
    if item_kind == "genome":
        if re.search(r":\s*\w*$", current):
            return _activation_completions("wann")
        return [Completion(k, "keyword") for k in ("inputs", "outputs", "node", "edge", "layer", "weights")]
    return [Completion(k, "keyword") for k in KEYWORDS]


def _enclosing_item(before: str) -> tuple[str | None, str | None, str | None]:
    """The top-level item whose `{` is open at the end of `before`: (keyword, name, target)."""
    depth, header, item = 0, [], (None, None, None)
    clean = re.sub(r"//[^\n]*", "", before)
    clean = re.sub(r'"[^"\n]*"', '""', clean)
    for tok in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*|[{}]", clean):
        t = tok.group()
        if t == "{":
            if depth == 0 and header:
                item = (header[0], header[1] if len(header) > 1 else None, header[1] if len(header) > 1 else None)
            depth += 1
        elif t == "}":
            depth = max(depth - 1, 0)
            if depth == 0:
                item, header = (None, None, None), []
        elif depth == 0:
            header = [t] if t in KEYWORDS else header + [t]
    return item if depth > 0 else (None, None, None)


def _open_call(current: str) -> str | None:
    """The name of the innermost call whose parenthesis is open at the end of the line."""
    depth, stack = 0, []
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(|\)", current):
        if m.group() == ")":
            if stack:
                stack.pop()
        else:
            stack.append(m.group(1))
    del depth
    return stack[-1] if stack else None


def _at_argument_start(current: str) -> bool:
    return re.search(r"[(,]\s*[A-Za-z_]*$", current) is not None


def _call_arguments(call: str, a: Analysis | None) -> list[Completion]:
    from ..ops.registry import get_op

    op = get_op(call)
    if op is not None:
        return [Completion(f"{p.name}=", "argument", p.doc or p.type, f"{p.name}=") for p in op.params]
    if a is not None and a.spec is not None:
        from ..ir import nodes as ir

        block = a.spec.find(call, (ir.Block,))
        if block is not None:
            return [Completion(f"{p.name}=", "argument", "", f"{p.name}=") for p in block.params[1:]]
    return []


def _body_completions(a: Analysis | None, scope: str | None) -> list[Completion]:
    from ..ops.registry import all_ops

    out = [Completion(op.name, "op", op_signature(op)) for op in all_ops()]
    out += [Completion(k, "keyword") for k in BODY_KEYWORDS]
    if a is not None:
        for d in a.definitions:
            if d.kind == "block":
                out.append(Completion(d.name, "block", d.detail))
            elif d.kind in ("param", "mask"):
                out.append(Completion(d.name, d.kind, d.detail))
            elif d.scope == scope and d.kind in ("input", "value", "output", "block_param"):
                out.append(Completion(d.name, "value", a.shapes.get((scope, d.name), d.detail)))
    return out


def _target_kind(a: Analysis | None, target: str | None) -> str:
    from ..ir import nodes as ir

    item = a.spec.find(target) if a is not None and a.spec is not None and target else None
    if isinstance(item, ir.WannGenome):
        return "wann"
    if isinstance(item, ir.TransformerGenome):
        return "transformer"
    return "network"


def _rule_completions(a: Analysis | None, target: str | None) -> list[Completion]:
    from ..ops.rules import RULES

    kind = _target_kind(a, target)
    return [Completion(r.name, "rule", _rule_signature(r), None) for r in RULES.values() if kind in r.applies_to]


def _rule_arguments(rule: str) -> list[Completion]:
    from ..ops.rules import RULES

    r = RULES.get(rule)
    if r is None:
        return []
    out = [Completion("p=", "argument", "probability that this rule fires for a child", "p=")]
    if r.takes_choices:
        out.append(Completion("choices=", "argument", "the values to choose from", "choices={"))
    out += [Completion(f"{p.name}=", "argument", p.doc or p.type, f"{p.name}=") for p in r.params]
    return out


def _target_values(a: Analysis | None, target: str | None) -> list[Completion]:
    if a is None:
        return []
    return [Completion(d.name, "value", a.shapes.get((target, d.name), d.detail))
            for d in a.definitions if d.scope == target and d.kind in ("value", "output")]


def _task_completions() -> list[Completion]:
    from ..ops.tasks import get_task_spec, task_names

    return [Completion(n, "task", f"{get_task_spec(n).kind}: {get_task_spec(n).doc}") for n in task_names()]


def _activation_completions(kind: str | None) -> list[Completion]:
    from ..ops.activations import NETWORK_ACTIVATIONS, WANN_ACTIVATIONS

    acts = WANN_ACTIVATIONS if kind == "wann" else WANN_ACTIVATIONS + tuple(
        x for x in NETWORK_ACTIVATIONS if x.name not in {w.name for w in WANN_ACTIVATIONS})
    return [Completion(x.name, "activation", x.doc or x.torch_expr) for x in acts]


def _evolve_settings() -> list[Completion]:
    from ..passes.check import EVOLVE_KEYS

    return [Completion(k, "setting") for k in sorted(EVOLVE_KEYS)] + [Completion("objective", "keyword")]


# --- outline ---------------------------------------------------------------------------------


@attrs.frozen
class Symbol:
    name: str
    kind: str
    detail: str
    span: Span  # the whole item
    selection: Span  # its name
    children: tuple = ()


def document_symbols(a: Analysis) -> list[Symbol]:
    """Networks, blocks, genomes, params, masks, mutate and evolve blocks, with their values inside."""
    if a.spec is None:
        return []
    from ..ir import nodes as ir

    top = {(d.name, d.kind): d for d in a.definitions if d.scope is None}
    out = []
    for item in a.spec.items:
        if item.span is None or item.span.file != a.path:
            continue
        end = _item_end(a, item)
        whole = Span(a.path, item.span.line, item.span.col, end[0], end[1])
        if isinstance(item, (ir.MutateBlock, ir.EvolveBlock)):
            kw = "mutate" if isinstance(item, ir.MutateBlock) else "evolve"
            out.append(Symbol(f"{kw} {item.target}", kw, "", whole, item.span, _block_children(a, item)))
            continue
        name = getattr(item, "name", None)
        d = next((d for (n, _), d in top.items() if n == name and d.item_span is item.span), None)
        if d is None:
            continue
        children = tuple(Symbol(c.name, c.kind, a.shapes.get((name, c.name), ""), c.item_span or c.span, c.span)
                         for c in a.definitions if c.scope == name and c.kind != "repeat")
        out.append(Symbol(name, d.kind, d.detail, whole, d.span, children))
    return out


def _block_children(a: Analysis, item) -> tuple:
    """A mutate block's rules (`width(fc1)`), an evolve block's settings and objectives, as outline entries."""
    from ..ir import nodes as ir
    from ..ir.printer import expr

    out = []
    entries = item.rules if isinstance(item, ir.MutateBlock) else item.settings
    for e in entries:
        if e.span is None or e.span.file != a.path:
            continue
        if isinstance(e, ir.Call):
            targets = ", ".join(expr(x) for x in e.args)
            name, kind = f"{e.func}({targets})", "rule"
        elif isinstance(e, ir.Objective):
            name, kind = f"objective {e.direction} {expr(e.metric)}", "setting"
        elif isinstance(e, ir.Setting):
            name, kind = f"{e.key} {expr(e.value)}", "setting"
        else:
            name, kind = "train", "setting"
        line = e.span.line
        end = Span(a.path, line, e.span.col, line, len(a.lines[line - 1]) + 1 if line <= len(a.lines) else e.span.col)
        out.append(Symbol(name, kind, "", end, e.span))
    return tuple(out)


def _item_end(a: Analysis, item) -> tuple[int, int]:
    """The line and column just after an item's closing brace (or its own line for one-line items)."""
    lines, line = a.lines, item.span.line
    text = "\n".join(lines[line - 1:])
    depth, i, seen_brace = 0, 0, False
    for i, ch in enumerate(text):
        if ch == "{":
            depth, seen_brace = depth + 1, True
        elif ch == "}":
            depth -= 1
            if depth == 0 and seen_brace:
                break
        elif ch == "\n" and not seen_brace:
            break
    consumed = text[: i + 1]
    end_line = line + consumed.count("\n")
    end_col = len(consumed.rsplit("\n", 1)[-1]) + 1
    return end_line, end_col


# --- formatting --------------------------------------------------------------------------------


def format_text(text: str, path: str | None = None) -> str:
    """`netevo fmt` on a buffer: the canonical text, or a NetevoError when formatting would change meaning."""
    from ..passes.fmt import format_checked

    return format_checked(text, path)


__all__ = ["diagnostics", "inlay_hints", "hover", "definition", "references", "completions", "document_symbols",
           "format_text", "to_lsp", "from_lsp", "lsp_range", "value_text", "op_signature"]
