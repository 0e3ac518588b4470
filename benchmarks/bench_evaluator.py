"""Throughput of the batched WANN evaluator against the reference evaluator.

Workload: a population of random WANN genomes (default 1,000 genomes, 30 hidden
nodes with random activations, 150 enabled edges, linear outputs as in WANN's
classification tasks) x 6 shared weights x all 1,797 digits samples, scored
with the full digits task (reward, train/test/ensemble accuracies). Both
evaluators run in this process, side by side, in float32 on the CPU, once with
one torch thread and once with torch's default thread count, interleaved. The
reference is timed on a random subset of the genomes and scaled per genome.
Also: swing-up episode-steps per second (population x weights x repeats), and
one generation on CUDA when available.

    python benchmarks/bench_evaluator.py            # writes benchmarks/results_evaluator.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import torch_machine  # noqa: E402
from netevo_dsl.runtime.evaluate import BLOCK_BYTES, CHUNK_BYTES, block_samples, evaluate  # noqa: E402
from netevo_dsl.runtime.reference import reference_evaluate, reference_forward  # noqa: E402
from netevo_dsl.runtime.wann_pack import pack_population  # noqa: E402
from netevo_dsl.runtime.tasks import make_task  # noqa: E402
from netevo_dsl.testing.wann_strategies import random_genome  # noqa: E402

RESULTS = Path(__file__).with_name("results_evaluator.md")


def best_of(repeats: int, run) -> tuple[float, object]:
    """Fastest of `repeats` runs: the machine is shared, the minimum is the least disturbed."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def digits_benchmark(args, thread_counts: list[int]) -> dict:
    rng = random.Random(args.seed)
    population = [random_genome(rng, 64, 10, args.hidden, args.edges, name=f"g{i}", output_activation="linear")
                  for i in range(args.population)]
    task = make_task("digits")  # whole training split as the batch: every sample is scored
    subset = sorted(rng.sample(range(args.population), args.reference_genomes))
    evaluate(population[:20], task, device="cpu")  # warm-up
    batched = {t: float("inf") for t in thread_counts}
    reference = {t: float("inf") for t in thread_counts}
    for _ in range(args.repeats):  # interleaved, so that both see the same machine
        for threads in thread_counts:
            torch.set_num_threads(threads)
            seconds, scores = best_of(1, lambda: evaluate(population, task, device="cpu"))
            batched[threads] = min(batched[threads], seconds)
            seconds, oracle = best_of(1, lambda: reference_evaluate([population[i] for i in subset], task,
                                                                    device="cpu"))
            reference[threads] = min(reference[threads], seconds / len(subset) * args.population)
    torch.set_num_threads(max(thread_counts))
    phase_s = phases(population, task, args.repeats)
    torch.set_num_threads(1)
    network_batched_s, network_reference_s = network_only(population, subset, task)
    difference = (scores.per_weight[subset] - oracle.per_weight).abs()
    agree = (difference / oracle.per_weight.abs().clamp_min(1.0)).nan_to_num(0).max().item()
    return {
        "batched_s": batched,
        "reference_scaled_s": reference,
        "best_ratio": min(reference.values()) / min(batched.values()),
        "phases_s": phase_s,
        "phase_threads": max(thread_counts),
        "network_batched_s": network_batched_s,
        "network_reference_s": network_reference_s,
        "max_diff": agree,
        "failures": len(scores.failures),
        "evaluations": args.population * 6 * task.n_samples,
        "subset": len(subset),
    }


def phases(population, task, repeats: int, metrics=None) -> dict[str, float]:
    """Seconds of each phase of `evaluate` on this workload (fastest of `repeats`): packing the
    genomes, the forward pass over every sample block, and scoring the blocks' outputs (the
    `metrics` named, default all)."""
    weights = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    features = task.features.float()
    best = {"pack": float("inf"), "forward": float("inf"), "scoring": float("inf")}
    for _ in range(repeats):
        start = time.perf_counter()
        pack, _ = pack_population(population, task.n_inputs, task.n_outputs, weights)
        took = {"pack": time.perf_counter() - start, "forward": 0.0, "scoring": 0.0}
        block = block_samples(pack, task.n_samples, task.n_outputs, weights, BLOCK_BYTES, CHUNK_BYTES)
        storage = pack.buffer(block).view(-1)
        scorer = task.scorer(len(pack.members), weights, task.next_batch_mask(), metrics)
        for first in range(0, task.n_samples, block):
            stop = min(first + block, task.n_samples)
            values = storage[: pack.n_rows * len(weights) * (stop - first)].view(pack.n_rows, len(weights), -1)
            start = time.perf_counter()
            outputs = pack.forward(features[first:stop], values)
            middle = time.perf_counter()
            scorer.add(outputs, slice(first, stop))
            took["forward"] += middle - start
            took["scoring"] += time.perf_counter() - middle
        start = time.perf_counter()
        scorer.finish()
        took["scoring"] += time.perf_counter() - start
        best = {k: min(best[k], took[k]) for k in best}
    return best


def network_only(population, subset, task) -> tuple[float, float]:
    """Seconds to compute every output without scoring it: batched (pack + forward over sample
    blocks) and reference (one genome, one weight at a time, scaled per genome)."""
    weights = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    features = task.features.float()

    def batched():
        pack, _ = pack_population(population, task.n_inputs, task.n_outputs, weights)
        block = block_samples(pack, task.n_samples, task.n_outputs, weights, BLOCK_BYTES, CHUNK_BYTES)
        storage = pack.buffer(block).view(-1)
        for first in range(0, task.n_samples, block):
            rows = features[first: first + block]
            pack.forward(rows, storage[: pack.n_rows * len(weights) * len(rows)].view(pack.n_rows, len(weights), -1))

    def reference():
        for i in subset:
            for w in weights.tolist():
                reference_forward(population[i], features, w)

    batched_s, _ = best_of(2, batched)
    reference_s, _ = best_of(1, reference)
    return batched_s, reference_s / len(subset) * len(population)


def swingup_benchmark(args, device="cpu") -> dict:
    rng = random.Random(args.seed + 1)
    population = [random_genome(rng, 5, 1, 10, 40, name=f"s{i}") for i in range(args.swingup_population)]
    task = make_task(("swingup", {"repeats": args.repeats_per_weight, "max_steps": args.swingup_steps}))
    evaluate(population[:10], task, device=device)
    seconds, scores = best_of(args.repeats, lambda: evaluate(population, task, device=device))
    carts = args.swingup_population * 6 * args.repeats_per_weight
    running = carts * scores.metrics["steps"].nanmean().item()  # cart-steps of episodes still running
    simulated = carts * scores.metrics["steps"].nan_to_num(0).max().item()  # the loop steps every cart
    return {"seconds": seconds, "steps_per_s": running / seconds, "simulated_per_s": simulated / seconds}


def cuda_generation(args) -> tuple[float, float] | None:
    """(ms per digits generation on CUDA, ms of it spent packing the genomes on the host)."""
    if not torch.cuda.is_available():
        return None
    rng = random.Random(args.seed)
    population = [random_genome(rng, 64, 10, args.hidden, args.edges, output_activation="linear")
                  for _ in range(args.population)]
    task = make_task("digits")
    weights = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], device="cuda")
    evaluate(population[:20], task, device="cuda")
    torch.cuda.synchronize()
    seconds, _ = best_of(args.repeats, lambda: (evaluate(population, task, device="cuda"), torch.cuda.synchronize()))
    packing, _ = best_of(args.repeats, lambda: (pack_population(population, 64, 10, weights),
                                                torch.cuda.synchronize()))
    return seconds * 1e3, packing * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=30)
    parser.add_argument("--edges", type=int, default=150)
    parser.add_argument("--reference-genomes", type=int, default=40, help="random subset timed with the reference")
    parser.add_argument("--repeats", type=int, default=3, help="batched runs; the fastest is reported")
    parser.add_argument("--swingup-population", type=int, default=1000)
    parser.add_argument("--swingup-steps", type=int, default=200)
    parser.add_argument("--repeats-per-weight", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="thread count to compare with 1 (default: torch's default)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results_evaluator.md alone")
    args = parser.parse_args()
    default_threads = args.threads or torch.get_num_threads()
    thread_counts = sorted({1, default_threads})

    digits = digits_benchmark(args, thread_counts)
    torch.set_num_threads(default_threads)
    swing = swingup_benchmark(args)
    gpu_ms = cuda_generation(args)
    load = os.getloadavg()
    table = [
        "| measurement | value |",
        "|---|---|",
        f"| population x weights x samples | {args.population} x 6 x 1,797 = {digits['evaluations']:,} |",
        *[f"| {t} thread{'s' if t > 1 else ''}: batched `evaluate` (best of {args.repeats}) / reference "
          f"({digits['subset']} random genomes, scaled) / ratio | {digits['batched_s'][t]:.2f} s / "
          f"{digits['reference_scaled_s'][t]:.1f} s / {digits['reference_scaled_s'][t] / digits['batched_s'][t]:.1f}x |"
          for t in thread_counts],
        f"| **speed-up, each at its best thread count (reference / batched)** | **{digits['best_ratio']:.1f}x** |",
        f"| {digits['phase_threads']} threads, `evaluate`'s phases: packing / forward / scoring | "
        f"{digits['phases_s']['pack']:.2f} s / {digits['phases_s']['forward']:.2f} s / "
        f"{digits['phases_s']['scoring']:.2f} s |",
        f"| outputs only, no scoring, 1 thread: batched (pack + forward) / reference (scaled) / ratio | "
        f"{digits['network_batched_s']:.2f} s / {digits['network_reference_s']:.1f} s / "
        f"{digits['network_reference_s'] / digits['network_batched_s']:.1f}x |",
        f"| max relative reward difference on the subset (float32) | {digits['max_diff']:.1e} |",
        f"| genomes reported as failures | {digits['failures']} |",
        f"| swing-up (best of {args.repeats}): {args.swingup_population} genomes x 6 weights x {args.repeats_per_weight} repeats, "
        f"<= {args.swingup_steps} steps | {swing['seconds']:.2f} s: {swing['steps_per_s']:,.0f} episode-steps/s "
        f"({swing['simulated_per_s']:,.0f} cart-steps/s simulated) |",
        f"| one digits generation on CUDA (of which packing on the host) | "
        f"{'%.1f ms (%.1f ms)' % gpu_ms if gpu_ms is not None else 'no CUDA device'} |",
    ]
    command = "python " + " ".join([sys.argv[0]] + sys.argv[1:])
    report = "\n".join([
        "# Batched WANN evaluator throughput",
        "",
        f"Command: `{command}`  ",
        f"Machine: {torch_machine()}  ",
        f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}, "
        f"load average during the run: {load[0]:.2f} (other work shares this machine)",
        "",
        *table,
        "",
        "Both evaluators compute the same scores (reward = minus cross-entropy on the training split, "
        "train/test accuracy per weight, best-weight and ensemble accuracies). The reference runs one genome "
        "and one weight at a time with a Python loop over nodes; its time is measured on a random subset "
        "and scaled per genome. Swing-up episode-steps count every (genome, weight, repeat) cart still "
        "running at each step; the batched simulation keeps stepping finished carts until every episode of "
        "the batch has ended, which the second figure counts.",
        "",
    ])
    print(report)
    if not args.no_write:
        RESULTS.write_text(report)


if __name__ == "__main__":
    main()
