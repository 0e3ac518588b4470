"""Packing and breeding with array-native WANN genomes (issue 18, item 4).

    python benchmarks/bench_genome_arrays.py [--genomes 200] [--repeat 7]

On the issue's digits workload (random genomes: 64 inputs + bias, 30 hidden nodes, 10 linear
outputs, 150 enabled connections), 1 thread, fastest of `--repeat`, CPU seconds
(`time.process_time`, so that a loaded machine inflates them less), prints one JSON line:

* `pack_fresh_ms`: `pack_population` on genomes whose arrays nobody has made yet (new genome
  objects each time: the IR is read), as every pack did before this change;
* `pack_ms`: `pack_population` on the same genome objects again (their arrays carried, when the
  code carries them);
* `breed_ms`: one generation's breeding as `Evolution` does it (a child of each genome by
  `mutate_genome`, the published roulette, no per-child check), then packing the children:
  mutation and packing together, since the mutation now makes the arrays that packing used to read;
* `mutate_ms`: the mutations alone, in the same loop.

Run it with PYTHONPATH pointing at another checkout (e.g. `git archive` of an earlier commit) to
measure that code in the same session; benchmarks/RESULTS.md compares both.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.mutations import mutate_genome  # noqa: E402
from netevo_dsl.runtime.wann_pack import pack_population  # noqa: E402
from netevo_dsl.testing.wann_strategies import random_genome  # noqa: E402

WEIGHTS = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genomes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(0)
    population = [random_genome(rng, 64, 10, 30, 150, name=f"g{i}", output_activation="linear")
                  for i in range(args.genomes)]

    def pack(genomes):
        pack_population(genomes, 64, 10, WEIGHTS)

    def fresh():
        copies = [attrs.evolve(g) for g in population]  # new identities: nothing carried
        start = time.process_time()
        pack(copies)
        return time.process_time() - start

    pack(population)  # warm-up; carries the population's arrays where the code does
    pack_fresh = min(fresh() for _ in range(args.repeat))
    pack_warm = best_of(args.repeat, lambda: pack(population))
    mutate_s = []

    def breed():
        draw = np.random.default_rng(1)
        start = time.process_time()
        children = [mutate_genome(g, draw, check_child=False) for g in population]
        mutate_s.append(time.process_time() - start)
        pack(children)

    breed_s = best_of(args.repeat, breed)
    print(json.dumps({"machine": machine(), "netevo": ne.__file__, "genomes": args.genomes,
                      "pack_fresh_ms": round(1e3 * pack_fresh, 1), "pack_ms": round(1e3 * pack_warm, 1),
                      "breed_ms": round(1e3 * breed_s, 1), "mutate_ms": round(1e3 * min(mutate_s), 1)}))


if __name__ == "__main__":
    main()
