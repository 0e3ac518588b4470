"""WANN results from full evolutionary runs, with their compute.

    python benchmarks/bench_wann_results.py [--quick]

* digits: `specs/wann_digits.net` as shipped (the README's main job). Champion's test accuracy
  at each of the six shared weights (mean +- sd: "random shared weight"), at the best weight
  chosen on the training split, and for the ensemble over weights.
* xor: `specs/wann_xor.net` over 5 seeds; "solved" = the champion classifies >= 95% of the
  test points correctly at its best shared weight (chosen on the training split); generations
  and wall time to solve, and the best mean-over-weights accuracy reached.
* swingup: `specs/wann_swingup.net` at a reduced budget (population and generations below);
  champion reward at random shared weights (mean +- sd) and at the best (tuned) weight.
* majority: `specs/wann_gpt.net` (a transformer genome, NSGA-II); accuracy of the predicted
  majority bit with shared weights, against chance (0.5).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.population import genome_from_text  # noqa: E402
from netevo_dsl.evolve.run import Evolution, evaluate_population  # noqa: E402
from netevo_dsl.evolve.settings import resolve_settings  # noqa: E402
from netevo_dsl.runtime.tasks import make_task  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"
XOR_POPULATION, XOR_GENERATIONS = 128, 300


def run(spec_path, out, **overrides):
    spec = ne.load(spec_path)
    settings = resolve_settings(spec, overrides=overrides)
    t0 = time.perf_counter()
    result = Evolution(spec, settings, out, progress=False, report=False).execute()
    return result, settings, time.perf_counter() - t0


def digits(tmp, quick):
    result, s, wall = run(SPECS / "wann_digits.net", tmp / "digits", **({"generations": 5} if quick else {}))
    task = make_task((s.task, s.task_params))
    m = evaluate_population([result.champion], task, None, "cpu").metrics
    acc = m["test_accuracy"][0].numpy()
    return {"population": s.population, "generations": s.generations, "wall_s": round(wall, 1),
            "random_weight_acc_mean": float(acc.mean()), "random_weight_acc_sd": float(acc.std()),
            "best_weight_acc": float(m["best_test_accuracy"][0]), "ensemble_acc": float(m["ensemble_test_accuracy"][0]),
            "connections": result.champion_scores.get("connections")}


def xor(tmp, quick):
    rows = []
    generations = 10 if quick else XOR_GENERATIONS
    for seed in range(5):
        result, s, wall = run(SPECS / "wann_xor.net", tmp / f"xor{seed}", seed=seed, generations=generations,
                              population=XOR_POPULATION)
        task = make_task((s.task, s.task_params))
        solved_at, best_mean = None, 0.0
        for g in range(generations):
            champ = genome_from_text((tmp / f"xor{seed}" / "champions" / f"gen_{g:04d}.net").read_text())
            m = evaluate_population([champ], task, None, "cpu").metrics
            best_mean = max(best_mean, m["test_accuracy"][0].mean().item())
            if solved_at is None and m["best_test_accuracy"][0].item() >= 0.95:
                solved_at = g
        timing = [json.loads(l)["seconds"] for l in (tmp / f"xor{seed}" / "timing.jsonl").read_text().splitlines()]
        rows.append({"seed": seed, "solved_at_generation": solved_at, "best_mean_over_weights_acc": round(best_mean, 4),
                     "wall_s_to_solve": round(sum(timing[: solved_at + 1]), 2) if solved_at is not None else None,
                     "wall_s_run": round(wall, 1)})
    return {"population": s.population, "max_generations": generations, "runs": rows}


def swingup(tmp, quick):
    pop, gens = (16, 3) if quick else (64, 40)
    result, s, wall = run(SPECS / "wann_swingup.net", tmp / "swingup", population=pop, generations=gens)
    task = make_task((s.task, {**s.task_params, "repeats": 8, "seed": 123}))
    scores = evaluate_population([result.champion], task, None, "cpu")
    per_w = scores.per_weight[0].numpy()
    sweep = np.round(np.linspace(-2, 2, 41), 6)
    sweep = sweep[sweep != 0]
    tuned = evaluate_population([result.champion], task, tuple(sweep), "cpu").per_weight[0].numpy()
    return {"population": pop, "generations": gens, "max_steps": s.task_params.get("max_steps"),
            "wall_s": round(wall, 1), "random_weight_mean": float(per_w.mean()), "random_weight_sd": float(per_w.std()),
            "tuned_weight": float(sweep[int(np.argmax(tuned))]), "tuned_reward": float(tuned.max())}


def majority(tmp, quick):
    pop, gens = (4, 2) if quick else (24, 25)
    result, s, wall = run(SPECS / "wann_gpt.net", tmp / "majority", population=pop, generations=gens)
    task = make_task((s.task, s.task_params))
    m = evaluate_population([result.champion], task, None, "cpu").metrics
    acc = m["token_accuracy"][0].numpy()
    return {"population": pop, "generations": gens, "wall_s": round(wall, 1), "chance": 0.5,
            "token_acc_mean_over_weights": float(acc.mean()), "token_acc_best_weight": float(acc.max())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to check the script runs")
    parser.add_argument("--only", nargs="*", default=["digits", "xor", "swingup", "majority"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    out = {"machine": machine(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in (("digits", digits), ("xor", xor), ("swingup", swingup), ("majority", majority)):
            if name in args.only:
                out[name] = fn(tmp, args.quick)
                print(json.dumps({name: out[name]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
