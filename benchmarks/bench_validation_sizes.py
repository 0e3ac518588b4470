"""Mutation validation at the default test sizes against the smallest the spec's shapes allow (issue 18, item 6).

    python benchmarks/bench_validation_sizes.py [--n N] [--repeat R]

For resnet18 and digits_cnn, N one-step children of the parent are made with the spec's own rules
(`Mutator.mutate`: operator + `check`), then each child is validated end to end (`validate_source`:
emit, exec, instantiate, forward, compare shapes) twice, rounds interleaved: at the default sizes
(`sizes={}`: B=2, H=W=32, as before this change) and at `smallest_sizes` (the new default). Reported in
CPU time of this process (the machine is shared): valid mutants per second of the whole pipeline
(mutate + validate), and the share of it spent validating.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from common import machine  # noqa: E402
from netevo_dsl.evolve.mutations import validate_source  # noqa: E402
from netevo_dsl.evolve.mutations.engine import Mutator, target_item  # noqa: E402
from netevo_dsl.evolve.mutations.validate import smallest_sizes  # noqa: E402


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="children per spec")
    ap.add_argument("--repeat", type=int, default=3, help="validation rounds (median kept)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in ("resnet18", "digits_cnn"):
        spec = ne.load(ROOT / "specs" / f"{name}.net")
        item = target_item(spec).name
        engine, rng = Mutator(), random.Random(0)
        children, mutate_s = [], 0.0
        for _ in range(args.n):
            start = time.process_time()
            child, _ = engine.mutate(spec, rng, item, None)
            mutate_s += time.process_time() - start
            children.append((child, engine.last_check))
        sizes = smallest_sizes(children[0][1].graphs[item])
        for child, result in children:  # warm-up, and every child must be valid both ways
            validate_source(child, item, check_result=result, sizes={})
            validate_source(child, item, check_result=result)
        samples = {"default": [], "smallest": []}
        for _ in range(args.repeat):
            samples["default"].append(sum(cpu(lambda: validate_source(c, item, check_result=r, sizes={}))
                                          for c, r in children))
            samples["smallest"].append(sum(cpu(lambda: validate_source(c, item, check_result=r))
                                           for c, r in children))
        for label, shown in (("default", "B=2, H=W=32" if name == "resnet18" else "B=2"),
                             ("smallest", ", ".join(f"{k}={v}" for k, v in sizes.items()))):
            validate_s = statistics.median(samples[label])
            total = mutate_s + validate_s
            rows.append(f"| {name} | {label} ({shown}) | {args.n} | {1000 * mutate_s / args.n:.1f} | "
                        f"{1000 * validate_s / args.n:.1f} | {args.n / total:.1f} | {100 * validate_s / total:.0f}% |")
    print(f"Machine: {machine()}, torch {torch.__version__}, 1 thread (shared, loaded: CPU time of this process)\n")
    print("| spec | test sizes | children | mutate ms (CPU) | validate ms (CPU) | valid/s (CPU) | validating |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
