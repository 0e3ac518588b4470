"""Reading spec files and following `import "other.net"` (relative to the importing file)."""
from __future__ import annotations

from pathlib import Path

import attrs

from ..errors import ImportError_, NetevoError
from ..ir import nodes as ir
from .parser import parse


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImportError_(f"no such file: {p}", None, "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ImportError_(f"cannot read {p}: {e}", None) from None


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
        if not target.exists():
            raise ImportError_(f"cannot import `{imp.path}`: no such file {target}", imp.span,
                               "imports are relative to the importing file", code="E010")
        try:
            sub = parse(read_text(target), str(target))
        except NetevoError:
            raise
        done[target] = True
        out += _imports(sub, target, stack + (target,), done)
        out += [i for i in sub.items if not isinstance(i, (ir.Import, ir.Version))]
    return out
