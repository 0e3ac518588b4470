"""Selection cost as a share of generation time, at N = 1,000 and 5,000.

    python benchmarks/bench_selection.py

A generation = batched evaluation of N WANN genomes on digits (6 shared weights, all
1,797 samples) + selection. Selection is measured for the WANN protocol (Pareto rank on
2 objectives with crowding, cull, elites, tournaments) and for NSGA-II's mu+lambda
survivor selection on 3 objectives over 2N individuals (DEAP selNSGA2, nd="log").
Goal: selection <= 10% of the generation.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, timeit  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.population import wann_initial_population  # noqa: E402
from netevo_dsl.evolve.selection import nsga2_select, wann_breeding_plan, wann_rank  # noqa: E402
from netevo_dsl.ir.wann import connection_count  # noqa: E402
from netevo_dsl.runtime.evaluate import evaluate  # noqa: E402
from netevo_dsl.runtime.tasks import make_task  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"


def main():
    seed = ne.load(SPECS / "wann_digits.net").genomes[0]
    task = make_task("digits")
    rows = []
    for n in (1000, 5000):
        rng = np.random.default_rng(0)
        population = wann_initial_population(seed, n, rng, density=0.05)
        eval_time = timeit(lambda: evaluate(population, task, device="cpu"), repeat=3)
        scores = evaluate(population, task, device="cpu")
        mean, best = scores.mean.numpy(), scores.max.numpy()
        conns = np.array([connection_count(g) for g in population], dtype=float)

        def wann_selection():
            rank, _ = wann_rank(mean, best, conns, np.random.default_rng(1))
            wann_breeding_plan(rank, n, np.random.default_rng(2))

        objs = np.c_[np.r_[mean, mean], np.r_[best, best], -np.r_[conns, conns]]
        wann_t = timeit(wann_selection, repeat=5)
        nsga_t = timeit(lambda: nsga2_select(objs, n), repeat=3)
        rows.append((n, eval_time, wann_t, nsga_t))
    print(f"Machine: {machine()}\n")
    print("| N | evaluation | WANN selection | share | NSGA-II (2N -> N, 3 objectives) | share |")
    print("|---|---|---|---|---|---|")
    for n, e, w, s in rows:
        print(f"| {n} | {e:.3f} s | {w * 1e3:.1f} ms | {w / (e + w):.1%} | {s * 1e3:.1f} ms | {s / (e + s):.1%} |")


if __name__ == "__main__":
    main()
