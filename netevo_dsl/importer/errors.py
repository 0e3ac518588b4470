"""Located import errors (the user's source line from the fx stack trace) and the name helpers they share."""
from __future__ import annotations

import keyword
import linecache
import os
import re

from ..errors import NetevoError, Span

_KEYWORDS = {"version", "import", "param", "block", "mask", "network", "genome", "mutate", "evolve", "input",
             "output", "repeat", "as", "return", "true", "false", "none"}


def import_error(code: str, message: str, node=None, hint: str | None = None) -> NetevoError:
    return NetevoError(message, span=user_span(node), hint=hint, code=code)


def user_span(node) -> Span | None:
    """The user's source line of an fx node: the innermost frame of its stack trace outside torch."""
    trace = getattr(node, "stack_trace", None) or ""
    import torch

    torch_dir = os.path.join(os.path.dirname(torch.__file__), "")  # with the separator: not torchvision's files
    frames = [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', trace)
              if not os.path.abspath(f).startswith(torch_dir)]
    if not frames:
        return None
    file, line = frames[-1]
    text = linecache.getline(file, line).rstrip()
    start = len(text) - len(text.lstrip()) + 1
    return Span(file, line, start, line, max(start, len(text) + 1))


def identifier(name: str) -> bool:
    return name.isidentifier() and name not in _KEYWORDS and not keyword.iskeyword(name)


def fresh(base: str, used: set) -> str:
    base = base if identifier(base) else f"{base}_"
    name, i = base, 0
    while name in used or not identifier(name):
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name
