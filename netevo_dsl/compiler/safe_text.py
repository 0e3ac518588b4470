"""User text (file names, doc comments) on its way into generated Python source.

A spec is data: nothing in it may become code. Identifiers are validated by
`passes.elaborate.check_identifier`; free text goes through the two functions
here, the only way it reaches emitted source:

* `docstring_body` escapes text for the inside of a triple-quoted docstring;
* `comment_text` escapes text for a `#` comment that must stay on one line.

Both escape every backslash, every non-printable character (NUL, line and
paragraph separators, control codes) as a Python escape, and every double quote,
so the text can neither end its literal, nor its line, nor hold a null byte.
"""
from __future__ import annotations


def _escape(ch: str) -> str:
    return repr(ch)[1:-1] if not ch.isprintable() else ch


def docstring_body(text: str, keep_newlines: bool = True) -> str:
    """Text that sits safely between `\"\"\"` and `\"\"\"`; newlines stay line breaks if `keep_newlines`."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" and keep_newlines:
            out.append("\n")
        else:
            out.append(_escape(ch))
    return "".join(out)


def comment_text(text: str) -> str:
    """Text that stays inside one `#` comment line: no character of it can start a new line."""
    return "".join("\\\\" if ch == "\\" else _escape(ch) for ch in text)


__all__ = ["docstring_body", "comment_text"]
