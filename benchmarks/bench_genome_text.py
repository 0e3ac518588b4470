"""Genome text parsing: the full Lark parser against the fast path for the printer's form (issue 18).

    python benchmarks/bench_genome_text.py [--repeat R] [-o results.md]

Every path that round-trips a WANN genome through text (checkpoints, champion files, reports) calls
`evolve.population.genome_from_text`. Each genome below is printed with `genome_text` and read back
by `parse(text).items[0]` (the full parser) and by `parse_generated_genome(text)` (the fast path),
rounds interleaved; both results are checked equal before timing. Sizes: the issue's digits genome
(64 inputs + bias, 30 hidden, 10 outputs, 150 enabled edges, 6 weights), a small one (XOR-sized) and
an MNIST-sized one (784 inputs + bias, 100 hidden, 10 outputs, 2,000 enabled edges).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import attrs  # noqa: E402

from common import machine, side_by_side  # noqa: E402
from netevo_dsl.evolve.population import genome_text  # noqa: E402
from netevo_dsl.grammar.fast_genome import parse_generated_genome  # noqa: E402
from netevo_dsl.grammar.parser import parse  # noqa: E402
from netevo_dsl.ir import nodes as ir  # noqa: E402
from netevo_dsl.testing.wann_strategies import random_genome  # noqa: E402

WEIGHTS = ir.Setting("weights", ir.SetExpr([ir.Neg(ir.Num(2)), ir.Neg(ir.Num(1)), ir.Neg(ir.Num(0.5)),
                                             ir.Num(0.5), ir.Num(1), ir.Num(2)]))
SIZES = {  # name: (inputs, outputs, hidden, enabled edges)
    "xor (2+1, 2 hidden, 1 out, 6 edges)": (2, 1, 2, 6),
    "digits (64+1, 30 hidden, 10 out, 150 edges)": (64, 10, 30, 150),
    "mnist (784+1, 100 hidden, 10 out, 2000 edges)": (784, 10, 100, 2000),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    rows = []
    for label, (n_in, n_out, n_hidden, n_edges) in SIZES.items():
        genome = random_genome(random.Random(0), n_in, n_out, n_hidden, n_edges, output_activation="linear")
        text = genome_text(attrs.evolve(genome, settings=(WEIGHTS,)))
        full = parse(text).items[0]
        assert parse_generated_genome(text) == full, "fast path and full parser disagree"
        number = 3 if n_edges > 1000 else 10
        t = side_by_side({"full": lambda: parse(text).items[0], "fast": lambda: parse_generated_genome(text)},
                         repeat=args.repeat, number=number)
        rows.append(f"| {label} | {len(text):,} | {t['full'] * 1e3:.2f} | {t['fast'] * 1e3:.3f} | "
                    f"{t['full'] / t['fast']:.1f}x |")
    lines = [f"Machine: {machine()} (shared, loaded: timings are medians, side by side).", "",
             "| genome | text bytes | full parser ms | fast path ms | speed-up |", "|---|---|---|---|---|", *rows]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
