"""`netevo mutate SPEC`: write n valid, unique mutants of a spec as formatted .net files.

Each mutant is checked, compiled to source, run forward at a small input and
compared with its declared output shapes before it is written, as soon as it is
found: its .net, its compiled .py next to it, and one printed line (the file, the
first 12 hex digits of its canonical hash, what changed). `summary.json` records
every mutant, valid or not (with the reason), its operator, target and hash; it
is written at the end, and on Ctrl-C with the mutants found so far.
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

    from .. import load
    from ..passes.elaborate import parse_override
    from .mutations import mutants

    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    overrides = dict(parse_override(d) for d in args.define or [])
    spec = load(args.spec)
    source = Path(args.spec)
    outdir = Path(args.outdir) if args.outdir else source.with_name(f"{source.stem}_mutants")
    _prepare(outdir, source.stem)
    writer = MutantWriter(spec, source, outdir, args.seed, overrides, target=args.target)
    stats: dict = {}
    from ..runtime.progress import progress_bar

    bar = progress_bar(args.n, not getattr(args, "no_progress", False) and sys.stderr.isatty(), unit="mutant",
                       desc="mutate")
    try:
        found = mutants(spec, args.n, args.seed, target=args.target, overrides=overrides or None,
                        validate=args.validate, stats=stats, strict=False,
                        on_mutant=lambda m: (writer.write(m), bar.update(1)), on_invalid=writer.invalid)
    finally:  # Ctrl-C or an error: the mutants written so far are listed too
        bar.close()
        writer.write_summary()
    if stats.get("invalid"):
        print(f"note: {stats['invalid']} child(ren) passed check but not validation and were dropped; first: "
              f"{stats['failures'][0]}", file=sys.stderr)
    if not found:
        why = stats.get("refusal")  # each rule tried and why it could not apply (E060 notes; issue 20)
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


SUMMARY = "summary.json"


def _prepare(outdir: Path, stem: str) -> None:
    """Create `outdir`; in a used one, remove the mutants and summary of an earlier `netevo mutate`
    of the same spec (its own files only), so that the folder shows this run alone."""
    import re

    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"-o {outdir} is a file, not a folder", hint="pick a folder path with -o", code="E140")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        ours = re.compile(rf"{re.escape(stem)}_\d{{3,}}\.(net|py)\Z")
        listed = _listed(outdir / SUMMARY)
        for entry in outdir.iterdir():
            if entry.is_file() and (ours.match(entry.name) or entry.name in listed or entry.name == SUMMARY):
                entry.unlink()
    except OSError as e:
        raise UsageError(f"cannot prepare {outdir}: {e.strerror}", code="E141") from None


def _listed(summary: Path) -> set[str]:
    """The files an earlier summary.json lists (plain names in the folder only)."""
    import json

    try:
        records = json.loads(summary.read_text(encoding="utf-8")).get("mutants", [])
        names = {r.get(k) for r in records for k in ("file", "source")}
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n.endswith((".net", ".py"))}


class MutantWriter:
    """Writes each mutant as it is found: its .net (formatted, imports relocated), its compiled .py,
    and a line; `write_summary` records every mutant, valid or not, in summary.json."""

    def __init__(self, spec, source: Path, outdir: Path, seed: int, overrides: dict, target=None):
        from .mutations.engine import target_item

        self.source, self.outdir, self.seed, self.overrides = source, outdir, seed, overrides or None
        self.target = target_item(spec, target).name
        self.records: list[dict] = []

    @property
    def count(self) -> int:
        """Mutants written (each recorded only once its files are)."""
        return sum(r["valid"] for r in self.records)

    def write(self, m) -> None:
        import attrs

        from .. import emit_source, load
        from .. import format as format_spec
        from ..ir import nodes as ir
        from .checkpoint import write_atomic

        i = self.count
        path = self.outdir / f"{self.source.stem}_{i:03d}.net"
        header = ir.Comment(0, 1, f"// mutant {i} of {self.source.name} (seed {self.seed}): "
                                  f"{_one_line(m.description)}")
        child = attrs.evolve(m.spec, items=_relocate_imports(m.spec.items, self.source.parent, self.outdir),
                             comments=(header,) + tuple(m.spec.comments))
        record = {"file": path.name, "source": path.with_suffix(".py").name, "valid": True, "reason": None,
                  **_operation(m.description), "hash": m.hash}
        try:
            write_atomic(path, format_spec(child))
            # compiled from the file as written, so that the source names it and its imports resolve
            write_atomic(path.with_suffix(".py"), emit_source(load(path), name=self.target, overrides=self.overrides))
            self.records.append(record)
        except BaseException as e:  # a mutant is its .net, its .py and its record, or nothing (Ctrl-C, full disk)
            if not self.records or self.records[-1] is not record:
                for partial in (path, path.with_suffix(".py")):
                    partial.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise UsageError(f"cannot write {path}: {e.strerror}; {i} mutant(s) before it are written",
                                 code="E141") from None
            raise
        print(f"{path}  {m.hash[:12]}  {m.description}", flush=True)

    def invalid(self, description: str, hash_: str, reason: str) -> None:
        self.records.append({"file": None, "source": None, "valid": False, "reason": reason,
                             **_operation(description), "hash": hash_})

    def write_summary(self) -> None:
        import json

        from .checkpoint import write_atomic

        summary = {"spec": self.source.name, "mutated": self.target, "seed": self.seed,
                   "written": self.count, "mutants": self.records}
        try:
            write_atomic(self.outdir / SUMMARY, json.dumps(summary, indent=1) + "\n")
        except OSError as e:
            raise UsageError(f"cannot write {self.outdir / SUMMARY}: {e.strerror}", code="E141") from None


def _operation(description: str) -> dict:
    """operator and target of a mutant's last step ("width h1.0: 128 -> 64": width, h1.0), and all steps."""
    last = description.split("; then ")[-1]
    words = last.replace(":", " ").split()
    return {"operator": words[0] if words else None, "target": words[1] if len(words) > 1 else None,
            "description": description}


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
