"""User-facing errors.

Every error a user can cause is a :class:`NetevoError` carrying an error code,
a short message, an optional source span and a hint. The CLI renders them as
``file:line:col: error[E###]: message`` with the source line and a caret.
"""
from __future__ import annotations

import difflib
import functools
import json
from typing import Iterable, Sequence

import attrs


@attrs.frozen
class Span:
    """A location in a spec file. Excluded from IR equality everywhere."""

    file: str | None
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file or '<string>'}:{self.line}:{self.col}"


def span_field():
    """An attrs field for a span: kept, but not part of equality or hashing."""
    return attrs.field(default=None, eq=False, hash=False, repr=False, kw_only=True)


class NetevoError(Exception):
    """Base class of every user-facing error."""

    code = "E000"

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        notes: Sequence[tuple[Span | None, str]] = (),
        code: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.notes = list(notes)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}error[{self.code}]: {self.message}"

    def render(self, sources: dict[str, str] | None = None) -> str:
        """Human-readable diagnostic with source excerpt, caret and help line."""
        lines = [str(self)]
        lines += _excerpt(self.span, sources)
        for span, note in self.notes:
            lines.append(f"note: {span}: {note}" if span else f"note: {note}")
            lines += _excerpt(span, sources)
        if self.hint:
            lines.append(f"help: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def span_dict(s: Span | None):
            return attrs.asdict(s) if s else None

        return {
            "code": self.code,
            "message": self.message,
            "span": span_dict(self.span),
            "hint": self.hint,
            "notes": [{"span": span_dict(s), "message": m} for s, m in self.notes],
        }


class ErrorGroup(NetevoError):
    """Several errors found in one run (the parser recovered, or the checker kept going)."""

    code = "E000"

    def __init__(self, errors: Iterable[NetevoError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            f"{len(self.errors)} errors; first: {first.message}", first.span, first.hint, code=first.code
        )

    def render(self, sources=None) -> str:
        return "\n\n".join(e.render(sources) for e in self.errors)

    def to_dict(self) -> dict:
        return {"errors": [e.to_dict() for e in self.errors]}


def flatten(error: NetevoError) -> list[NetevoError]:
    return list(error.errors) if isinstance(error, ErrorGroup) else [error]


def raise_all(errors: list[NetevoError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)


def errors_to_json(error: NetevoError) -> str:
    return json.dumps([e.to_dict() for e in flatten(error)], indent=2)


EXCERPT_WIDTH = 120  # characters of the offending line shown around the column


def _excerpt(span: Span | None, sources: dict[str, str] | None) -> list[str]:
    """The offending line (only that line, at most EXCERPT_WIDTH characters of it) and a caret."""
    if span is None or not sources or span.file not in sources:
        return []
    text_lines = _lines(sources[span.file])
    if not 1 <= span.line <= len(text_lines):
        return []
    src = text_lines[span.line - 1]
    width = max(1, (span.end_col - span.col) if span.end_line == span.line else len(src) - span.col + 1)
    start = max(0, min(span.col - 1 - EXCERPT_WIDTH // 4, len(src) - EXCERPT_WIDTH))
    shown = _printable(src[start : start + EXCERPT_WIDTH])
    col = span.col - start
    width = max(1, min(width, len(shown) - col + 1))
    gutter = f"{span.line:>4} | "
    return [gutter + ("..." if start else "") + shown + ("..." if start + EXCERPT_WIDTH < len(src) else ""),
            " " * (len(gutter) + col - 1 + (3 if start else 0)) + "^" * width]


@functools.lru_cache(maxsize=8)
def _lines(text: str) -> list[str]:
    # Split each source once, however many errors it has (a str caches its hash, so a hit costs O(1)).
    return text.splitlines()


def _printable(line: str) -> str:
    """Control characters (NUL, escape sequences) never reach the terminal; one character each keeps the caret."""
    return "".join(c if c.isprintable() else ("\N{REPLACEMENT CHARACTER}" if c != "\t" else " ") for c in line)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# --- error classes, one per family; codes are listed in docs/errors.md --------------


class SyntaxError_(NetevoError):
    code = "E001"


class ImportError_(NetevoError):
    code = "E010"


class NameError_(NetevoError):
    code = "E020"


class TypeError_(NetevoError):
    code = "E030"


class ShapeError(NetevoError):
    code = "E040"


class GenomeError(NetevoError):
    code = "E050"


class RuleError(NetevoError):
    code = "E060"


class EvolveError(NetevoError):
    code = "E070"


class CompileError(NetevoError):
    code = "E080"


class RuntimeShapeError(NetevoError):
    code = "E090"


class TransformError(NetevoError):
    code = "E100"


class UsageError(NetevoError):
    code = "E110"
