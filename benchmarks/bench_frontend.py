"""Front-end speed: parse, resolve + infer_shapes, and check, for resnet18.net and generated specs.

    python benchmarks/bench_frontend.py            # prints a markdown table
    python benchmarks/bench_frontend.py --write    # also writes benchmarks/results_frontend.md

Generated specs:
* `chain N`: N ops written out, one statement each (`x = linear(x, out=64)` / `x = relu(x)`), so parsing
  and elaboration both grow with N;
* `repeat N`: a residual block (linear, relu, add) inside `repeat N/3`: a few lines of text that
  elaborate to N ops, so it measures resolve + infer_shapes alone.

Times are the best of several runs, in CPU time of this process (`time.process_time`), which other
processes on a shared machine disturb far less than wall time; the wall time of the front-end total is
shown too. `check` runs resolve + infer_shapes itself, so the front end of `netevo check` is parse + check.
Goals: time per op flat from 1,000 to 10,000 ops (10,000 / 1,000 ratio <= 12), resnet18 < 20 ms.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netevo_dsl.grammar.parser import lark_parser, parse  # noqa: E402
from netevo_dsl.passes.check import check  # noqa: E402
from netevo_dsl.passes.elaborate import elaborate  # noqa: E402


def chain_spec(n_ops: int) -> str:
    lines = ["version 1", "", "network chain {", "  input x: [B, 64]"]
    for i in range(n_ops):
        lines.append("  x = linear(x, out=64)" if i % 2 == 0 else "  x = relu(x)")
    lines += ["  output y = x", "}"]
    return "\n".join(lines) + "\n"


def repeat_spec(n_ops: int) -> str:
    return (
        "version 1\n\n"
        "block res(x: [B, c], c: int) -> [B, c] {\n  h = linear(x, out=c)\n  return relu(h) + x\n}\n\n"
        f"network deep {{\n  input x: [B, 64]\n  repeat {n_ops // 3} as layer {{\n    x = res(x, c=64)\n  }}\n"
        "  output y = x\n}\n"
    )


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) over `repeats` calls."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall


def measure(name: str, text: str, repeats: int) -> dict:
    spec = parse(text)
    n_ops = len(elaborate(spec).nodes)
    (t_parse, _), (t_elab, _), (t_check, _) = (best_of(f, repeats) for f in (
        lambda: parse(text), lambda: elaborate(spec), lambda: check(spec)))
    _, wall = best_of(lambda: check(parse(text)), repeats)
    return {"name": name, "ops": n_ops, "lines": text.count("\n"), "parse": t_parse, "elaborate": t_elab,
            "check": t_check, "total": t_parse + t_check, "wall": wall}


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    import os

    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def calibration_ms() -> float:
    """CPU ms for `sum(range(10**6))`: about 10-12 ms on a recent desktop CPU with Python 3.11."""
    return best_of(lambda: sum(range(10**6)), 5)[0] * 1000


def run(quick: bool = False) -> list[dict]:
    lark_parser()  # build the grammar once, outside the timings
    sizes = (100, 1000) if quick else (100, 1000, 10000)
    rows = [measure("resnet18.net", (ROOT / "specs" / "resnet18.net").read_text(), 20)]
    for n in sizes:
        rows.append(measure(f"chain {n}", chain_spec(n), 7 if n <= 1000 else 3))
    for n in sizes:
        rows.append(measure(f"repeat {n}", repeat_spec(n), 7 if n <= 1000 else 3))
    return rows


def table(rows: list[dict]) -> str:
    ms = lambda s: f"{s * 1000:.1f}"  # noqa: E731
    us = lambda s, n: f"{s / n * 1e6:.0f}"  # noqa: E731
    out = ["| spec | ops | lines | parse ms | resolve + infer_shapes ms | check ms | parse + check ms "
           "| per op µs | parse + check, wall ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['ops']} | {r['lines']} | {ms(r['parse'])} | {ms(r['elaborate'])} | "
                   f"{ms(r['check'])} | {ms(r['total'])} | {us(r['total'], r['ops'])} | {ms(r['wall'])} |")
    return "\n".join(out)


def ratios(rows: list[dict]) -> list[str]:
    by = {r["name"]: r for r in rows}
    out = []
    for kind in ("chain", "repeat"):
        big, small = by.get(f"{kind} 10000"), by.get(f"{kind} 1000")
        if big and small:
            r = big["total"] / small["total"]
            out.append(f"- `{kind}`: 10,000 / 1,000 ops time ratio **{r:.1f}** (goal <= 12: "
                       f"{'met' if r <= 12 else 'NOT met'})")
    resnet = by["resnet18.net"]["total"] * 1000
    verdict = "met" if resnet < 20 else "NOT met"
    out.append(f"- resnet18.net: parse + check **{resnet:.1f} ms** (goal < 20 ms: {verdict})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write benchmarks/results_frontend.md")
    ap.add_argument("--quick", action="store_true", help="skip the 10,000-op specs")
    args = ap.parse_args(argv)
    rows = run(args.quick)
    report = "\n".join([table(rows), "", *ratios(rows)])
    print(report)
    if args.write:
        text = "\n".join([
            "# Front-end benchmark",
            "",
            f"Command: `python benchmarks/bench_frontend.py --write`  ",
            f"Machine: {machine()}; `sum(range(10**6))` takes {calibration_ms():.1f} ms CPU here "
            "(about 10-12 ms on a recent desktop CPU)  ",
            f"Date: {time.strftime('%Y-%m-%d')}; best of 20 runs (resnet18), 7 (100 and 1,000 ops), 3 (10,000 ops); "
            "CPU time of the process except the last column.",
            "",
            "`check` includes resolve + infer_shapes, so `parse + check` is what `netevo check` spends after start-up.",
            "",
            report,
            "",
        ])
        (ROOT / "benchmarks" / "results_frontend.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
