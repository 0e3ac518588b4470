"""Reading spec files and following `import "other.net"` (relative to the importing file)."""
from __future__ import annotations

from pathlib import Path

import attrs

from ..errors import ImportError_, NetevoError, Span
from ..ir import nodes as ir
from ..limits import MAX_SPEC_BYTES
from .parser import parse


def read_text(path: str | Path) -> str:
    """A spec file's text: a regular file of at most MAX_SPEC_BYTES, UTF-8 (a leading BOM is dropped)."""
    p = Path(path)
    try:
        if not p.is_file():  # a FIFO would block, /dev/zero would never end
            if not p.exists():
                raise ImportError_(f"no such file: {p}", None, "check the path")
            raise ImportError_(f"{p} is not a regular file", None, "a spec is a .net text file", code="E013")
        with p.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)  # /proc files report size 0: read with a bound, not by stat
    except OSError as e:
        raise ImportError_(f"cannot read {p}: {e.strerror or e}", None) from None
    if len(data) > MAX_SPEC_BYTES:
        raise ImportError_(f"{p} is larger than {MAX_SPEC_BYTES // 2**20} MiB", None,
                           "a spec file is at most 4 MiB; split it with `import`", code="E013")
    return decode(data, str(p))


def decode(data: bytes, path: str | None = None) -> str:
    """UTF-8 text; an undecodable byte is an E010 error at its line and column (the column counts bytes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        offset = e.start
        line = data.count(b"\n", 0, offset) + 1
        col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        raise ImportError_(f"{path or '<bytes>'} is not UTF-8: byte 0x{data[offset]:02x} at line {line}, "
                           f"column {col}", Span(path, line, col, line, col + 1),
                           "save the file as UTF-8") from None


def load(path: str | Path) -> ir.Spec:
    """Parse a file and the files it imports; imported items land in `spec.imported`."""
    path = Path(path)
    spec = parse(read_text(path), str(path))
    imported = _imports(spec, path.resolve(), (path.resolve(),), {})
    return attrs.evolve(spec, imported=tuple(imported))


def resolve_imports(spec: ir.Spec) -> ir.Spec:
    """Follow the imports of an already parsed spec (its path gives the base folder)."""
    if not spec.of_kind(ir.Import):
        return spec
    base = Path(spec.path).resolve() if spec.path else Path.cwd() / "<string>"
    return attrs.evolve(spec, imported=tuple(_imports(spec, base, (base,), {})))


def _imports(spec: ir.Spec, path: Path, stack: tuple, done: dict) -> list:
    out: list = []
    for imp in (i for i in spec.items if isinstance(i, ir.Import)):
        target = (path.parent / imp.path).resolve()
        if target in stack:
            chain = " -> ".join(p.name for p in stack + (target,))
            raise ImportError_(f"import cycle: {chain}", imp.span, "remove one of the imports", code="E011")
        if target in done:
            continue
        if target.suffix != ".net":  # never read /proc/self/environ or /dev/zero into an error excerpt
            raise ImportError_(f"cannot import `{imp.path}`: {target} is not a .net file", imp.span,
                               "import spec files, e.g. import \"blocks.net\"", code="E012")
        if not target.exists():
            raise ImportError_(f"cannot import `{imp.path}`: no such file {target}", imp.span,
                               "imports are relative to the importing file", code="E010")
        try:
            text = read_text(target)
        except NetevoError as e:  # report it at the import, the place the user can change
            raise ImportError_(f"cannot import `{imp.path}`: {e.message}", imp.span, e.hint, code=e.code,
                               notes=[(e.span, "here")] if e.span else ()) from None
        sub = parse(text, str(target))
        done[target] = True
        out += _imports(sub, target, stack + (target,), done)
        out += [i for i in sub.items if not isinstance(i, (ir.Import, ir.Version))]
    return out
