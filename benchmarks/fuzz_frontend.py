"""Fuzz the front end with hostile specs: `check(load(path))` must answer every case with a result or a
NetevoError (never another exception), within 5 s.

    python benchmarks/fuzz_frontend.py                   # 10,000 cases, seed 0
    python benchmarks/fuzz_frontend.py --cases 500 --seed 7

Cases come from `netevo_dsl.testing.hostile`: deep nesting, long pipelines and sums, huge and nested
repeats, big numbers and symbolic sizes, recursive and exponentially fanning blocks, imports of odd files
(/dev/zero, /proc/self/environ, FIFOs, folders, symlinks, 5 MiB files, binary files), names taken by
nn.Module, bad encodings, thousands of errors, long WANN genome chains, and random mutations of the
shipped specs/*.net. Each case runs in a fresh folder, with its errors rendered as `netevo check` does;
a timer interrupts a case after --limit seconds and counts it as a hang.
"""
from __future__ import annotations

import argparse
import collections
import glob
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402
from netevo_dsl.testing.hostile import hostile_case, run_case  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=float, default=5.0, help="seconds before a case counts as a hang")
    args = ap.parse_args()

    seeds = [Path(p).read_text() for p in sorted(glob.glob(str(ROOT / "specs" / "*.net")))]
    rng = random.Random(args.seed)
    per_kind: dict = collections.defaultdict(lambda: collections.Counter())
    slowest: dict = collections.defaultdict(float)
    failures = []
    t_start = time.perf_counter()
    for i in range(args.cases):
        case = hostile_case(rng, seeds)
        with tempfile.TemporaryDirectory() as folder:
            outcome, seconds, detail = run_case(case, folder, args.limit)
        per_kind[case.kind][outcome] += 1
        slowest[case.kind] = max(slowest[case.kind], seconds)
        if outcome in ("crash", "hang"):
            failures.append((i, case.kind, outcome, detail))
            print(f"case {i} ({case.kind}): {outcome} {detail}", file=sys.stderr)
    total = time.perf_counter() - t_start

    print(f"cases: {args.cases}, seed {args.seed}, limit {args.limit} s, {total:.0f} s in all; {machine()}\n")
    print("| kind | cases | passed check | NetevoError | other exception | hang | slowest case |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in sorted(per_kind):
        c = per_kind[kind]
        print(f"| {kind} | {sum(c.values())} | {c['ok']} | {c['error']} | {c['crash']} | {c['hang']} | "
              f"{slowest[kind]:.2f} s |")
    c = sum(per_kind.values(), collections.Counter())
    print(f"| **all** | {sum(c.values())} | {c['ok']} | {c['error']} | **{c['crash']}** | **{c['hang']}** | "
          f"{max(slowest.values()):.2f} s |")
    print(f"\n8,000 syntax errors in one file (`param pI int = 3` x 8000): parse + render "
          f"{many_errors_seconds(8000):.2f} s, 2,000: {many_errors_seconds(2000):.2f} s (linear: about 4x)")
    return 1 if failures else 0


def many_errors_seconds(n: int) -> float:
    """Best of 3: parse a file of n syntax errors and render them all, as `netevo check` does."""
    from netevo_dsl.errors import NetevoError
    from netevo_dsl.grammar.parser import parse

    text = "".join(f"param p{i} int = 3\n" for i in range(n))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            parse(text, "m.net")
        except NetevoError as e:
            e.render({"m.net": text})
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    sys.exit(main())
