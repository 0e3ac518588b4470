"""Issue 16's protocol changes, measured: digits scaling and the swing-up physics' precision.

1. The seed genome of specs/wann_digits.net: reward at each shared weight with pixels / 16 (the authors'
   scaling, now the default) and with z-scores, on generation 0's 1,000-sample minibatch of a run seeded 0.
2. Swing-up: a population of random WANN genomes evaluated with float64 physics (the default) and float32
   physics, same starting states: time of each, and how far single episodes and their mean drift.

    python benchmarks/bench_wann_fidelity.py [--population 32] [--repeats 4]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.population import wann_initial_population
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.tasks import make_task


def digits_rewards() -> None:
    genome = ne.load("specs/wann_digits.net").genomes[0]
    for scale in (16, "z"):
        task = make_task(("digits", {"scale": scale}))
        task.start_generation(0, 0)
        reward = evaluate([genome], task, dtype=torch.float64, device="cpu").per_weight[0]
        print(f"digits seed genome, scale={scale!s:>2}: rewards {np.round(reward.numpy(), 2).tolist()} "
              f"(range {reward.min():.2f} .. {reward.max():.2f})")


def swingup_precision(population: int, repeats: int) -> None:
    seed = ne.load("specs/wann_swingup.net").genomes[0]
    genomes = wann_initial_population(seed, population, np.random.default_rng(0), 0.5)
    results = {}
    for precision in ("float64", "float32"):
        task = make_task(("swingup", {"repeats": repeats, "precision": precision}))
        evaluate(genomes[:2], task, device="cpu")  # warm-up
        t0 = time.perf_counter()
        scores = evaluate(genomes, task, device="cpu")
        results[precision] = (time.perf_counter() - t0, scores.metrics["episode_reward"])
    (t64, e64), (t32, e32) = results["float64"], results["float32"]
    drift = (e32 - e64).abs()
    mean_drift = (e32.mean(-1) - e64.mean(-1)).abs()
    print(f"swing-up, {population} genomes x 6 weights x {repeats} episodes x 1,000 steps: "
          f"float64 {t64:.2f} s, float32 {t32:.2f} s (float64 / float32 = {t64 / t32:.2f}x)")
    print(f"  float32 against float64 physics: single episodes differ by up to {drift.max():.2f} "
          f"(median {drift.median():.3g}); means over {repeats} episodes by up to {mean_drift.max():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    digits_rewards()
    swingup_precision(args.population, args.repeats)


if __name__ == "__main__":
    main()
