"""`netevo mutate SPEC`: write n valid, unique mutants of a spec as formatted .net files.

Each mutant is checked, compiled to source, run forward at a small input and
compared with its declared output shapes before it is written. One line per
mutant is printed: the file, the first 12 hex digits of its canonical hash,
and what changed.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import RuleError, UsageError


def add_parser(subparsers):
    p = subparsers.add_parser("mutate", help="write n valid, unique mutants of a spec as .net files")
    p.add_argument("spec", help="the .net file to mutate (its `mutate` block gives the rules)")
    p.add_argument("--target", help="the network or genome to mutate (when the spec has several)")
    p.add_argument("-n", type=int, default=10, help="how many mutants (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--outdir", help="where to write them (default: SPEC_mutants/ next to the spec)")
    p.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="override a param")
    p.add_argument("--validate", choices=("source", "ir", "check"), default="source",
                   help="source: check + emitted source runs at the declared shapes (default); "
                        "ir: check + compiled module on the meta device; check: the checker only")
    p.set_defaults(func=cmd_mutate)
    return p


def cmd_mutate(args) -> int:
    import sys

    import attrs

    from .. import format as format_spec
    from .. import load
    from ..ir import nodes as ir
    from ..passes.elaborate import parse_override
    from .mutations import mutants

    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    overrides = dict(parse_override(d) for d in args.define or [])
    spec = load(args.spec)
    source = Path(args.spec)
    outdir = Path(args.outdir) if args.outdir else source.with_name(f"{source.stem}_mutants")
    stats: dict = {}
    found = mutants(spec, args.n, args.seed, target=args.target, overrides=overrides or None,
                    validate=args.validate, stats=stats, strict=False)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {outdir}: {e.strerror}") from None
    for i, m in enumerate(found):
        path = outdir / f"{source.stem}_{i:03d}.net"
        header = ir.Comment(0, 1, f"// mutant {i} of {source.name} (seed {args.seed}): {_one_line(m.description)}")
        child = attrs.evolve(m.spec, items=_relocate_imports(m.spec.items, source.parent, outdir),
                             comments=(header,) + tuple(m.spec.comments))
        try:
            path.write_text(format_spec(child), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        print(f"{path}  {m.hash[:12]}  {m.description}")
    if stats.get("invalid"):
        print(f"note: {stats['invalid']} child(ren) passed check but not validation and were dropped; first: "
              f"{stats['failures'][0]}", file=sys.stderr)
    if not found:
        why = stats.get("refusal")  # each rule tried and why it could not apply (E060 notes)
        raise RuleError(f"no valid mutant found in {stats['attempts']} attempts",
                        hint=(why.hint if why is not None and why.hint else
                              "each note says why a rule could not apply" if why is not None and why.notes else
                              "the rules allow no change that passes check; widen their choices"),
                        notes=why.notes if why is not None else ())
    if len(found) < args.n:
        # Fewer than asked is not a failure: every mutant the rules allow was written.
        print(f"note: only {len(found)} distinct valid mutants exist within {stats['attempts']} attempts "
              f"({args.n} asked for); the rules allow few changes", file=sys.stderr)
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _relocate_imports(items, src_dir: Path, out_dir: Path):
    """`import "x.net"` paths are relative to the file: rewrite them for the output folder."""
    import attrs

    from ..ir import nodes as ir

    out = []
    for item in items:
        if isinstance(item, ir.Import) and not os.path.isabs(item.path):
            target = (src_dir / item.path).resolve()
            item = attrs.evolve(item, path=Path(os.path.relpath(target, out_dir.resolve())).as_posix())
        out.append(item)
    return tuple(out)


__all__ = ["add_parser", "cmd_mutate"]
