"""Candidates trained per minute: batched group training against training candidates one by one (issue 12).

A population of 32 `specs/digits_mlp.net` candidates (each its own seed, fresh weights) is trained for one
epoch on digits (Adam, batch 64, float32) by `runtime.train_networks.train_candidates`, batched
(candidates of one architecture stacked and vmapped, one optimizer on the stack) and one by one
(`batched=False`), rounds interleaved in this process. Workloads: all 32 of one architecture, and
32 spread over 2 and 4 architectures (widths h1 x h2), as a search population has them. Everything a
candidate needs is inside the timed call (building modules, training, scoring on the validation split),
so candidates per minute is 32 / (seconds / 60).

    python benchmarks/bench_network_training.py [--threads N] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import side_by_side, torch_machine  # noqa: E402
import netevo_dsl as ne  # noqa: E402
from netevo_dsl.runtime.datasets import load_training_data  # noqa: E402
from netevo_dsl.runtime.train_networks import Candidate, TrainConfig, train_candidates  # noqa: E402

SPEC = Path(__file__).resolve().parents[1] / "specs" / "digits_mlp.net"
WIDTHS = [(128, 64), (64, 32), (256, 128), (128, 128)]


def population(n_arch: int, size: int = 32) -> list[Candidate]:
    text = SPEC.read_text()
    specs = []
    for h1, h2 in WIDTHS[:n_arch]:
        specs.append(ne.parse(text.replace("linear(out=hidden)", f"linear(out={h1})")
                              .replace("linear(out=hidden / 2)", f"linear(out={h2})")))
    return [Candidate(specs[i % n_arch], "digits_mlp", seed=i) for i in range(size)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=1.0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_training_data("digits", {}, (64,), seed=0)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, optimizer="Adam", optimizer_args=(("lr", 1e-3),))
    print(f"machine: {torch_machine()}")
    print(f"budget: {args.epochs} epoch(s) of {len(data.y_train)} samples, batch 64, Adam, float32\n")
    print("| architectures | batched (cand./min) | one by one (cand./min) | speed-up |")
    print("|---|---|---|---|")
    for n_arch in (1, 2, 4):
        cands = population(n_arch)
        train_candidates(cands[:n_arch], data, cfg)  # warm-up: checks the specs, first vmap
        t = side_by_side({"batched": lambda: train_candidates(cands, data, cfg, batched=True),
                          "alone": lambda: train_candidates(cands, data, cfg, batched=False)},
                         repeat=args.repeat, number=1)
        rate = {k: len(cands) / (v / 60) for k, v in t.items()}
        print(f"| {n_arch} ({len(cands)} candidates) | {rate['batched']:.0f} | {rate['alone']:.0f} | "
              f"{t['alone'] / t['batched']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
