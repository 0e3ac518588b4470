"""`netevo fmt`'s one rule, shared by the CLI and the language server: format, and refuse a change of meaning."""
from __future__ import annotations

from ..errors import NetevoError


def format_checked(text: str, path: str | None = None) -> str:
    """The canonical text of a spec; raises NetevoError (E002) when re-parsing it would give another spec."""
    from ..grammar.parser import parse
    from ..ir.printer import format_spec

    spec = parse(text, path)
    out = format_spec(spec)
    if parse(out, path) != spec:
        raise NetevoError(f"{path or 'the document'}: formatting would change the meaning; text left untouched",
                          None, "please report this as a bug", code="E002")
    return out


__all__ = ["format_checked"]
