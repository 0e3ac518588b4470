"""Network search results (issue 12): hypervolume of (validation accuracy, params) for nsga2, aging and
random search, the front's test accuracy, inheritance on against off, and Optuna's NSGAIISampler over the
same search space as an outside baseline.

Equal budget per run = the same number of trained candidates (population x generations), each trained
for the spec's `train` budget; wall seconds are reported beside it (the machine is shared, so seconds are
noisy). Hypervolume: `evolve.network_selection.hypervolume_2d`, reference point (accuracy 0, 4x the spec
network's params), over every candidate a run trained.

    python benchmarks/bench_network_search.py --seeds 3 --population 8 --generations 4
        [--specs digits_mlp digits_cnn] [--out /tmp/bench_search] [--json results.json]

Optuna is a benchmark-only dependency (`pip install 'netevo[bench]'`); without it that column is skipped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.network_run import NetworkEvolution  # noqa: E402
from netevo_dsl.evolve.network_selection import hypervolume_2d  # noqa: E402
from netevo_dsl.evolve.network_settings import resolve_network_settings  # noqa: E402


def run_search(spec_name, selection, seed, population, generations, out, inherit=True, epochs=None) -> dict:
    spec = ne.load(ROOT / "specs" / f"{spec_name}.net")
    settings = resolve_network_settings(spec, overrides={"selection": selection, "seed": seed, "inherit": inherit,
                                                         "population": population, "generations": generations,
                                                         "epochs": epochs})
    t0, c0 = time.perf_counter(), time.process_time()
    run = NetworkEvolution(spec, settings, out, overwrite=True, progress=False, report=False)
    result = run.execute()
    lines = [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines()]
    best = result.front[0]
    test = {t["id"]: t["test_accuracy"] for t in result.test}
    return {"hypervolume": lines[-1]["hypervolume"], "best_val": best["metrics"]["accuracy"],
            "best_test": test.get(best["id"]), "best_params": best["metrics"]["params"],
            "curve": [(l["trained_epochs"], l["best_accuracy"]) for l in lines], "trained": lines[-1]["trained"],
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "params_ref": run.params_ref}


# --- Optuna over the same search space -----------------------------------------------------------------

MLP = """version 1

network digits_mlp {{
  input x: [B, 64]
  h1 = x |> linear(out={h1}) |> {a1}()
  h2 = h1 |> linear(out={h2}) |> {a2}()
  output logits = linear(h2, out=10)
}}
"""
CNN = """version 1

network digits_cnn {{
  input img: [B, 1, 8, 8]
  c1 = img |> conv2d(out={w1}, k={k1}, pad="same") |> {a1}()
  c2 = {skip}c1 |> conv2d(out={w2}, k={k2}, pad="same") |> {a2}(){extra}{close}
  pooled = maxpool2d(c2, k=2)
  flat = flatten(pooled)
  output logits = linear(flat, out=10)
}}
"""


def optuna_space(spec_name, trial) -> str:
    """The spec's rule space as Optuna parameters (the choices the spec's mutate rules draw from)."""
    if spec_name == "digits_mlp":
        return MLP.format(h1=trial.suggest_categorical("h1", [64, 128, 256]),
                          h2=trial.suggest_categorical("h2", [32, 64, 128]), a1="relu", a2="relu")
    acts = ["relu", "tanh", "gelu"]
    w1 = trial.suggest_categorical("w1", [4, 8, 16, 24])
    w2 = trial.suggest_categorical("w2", [4, 8, 16, 24])
    skip = trial.suggest_categorical("skip", [False, True]) and w1 == w2
    extra = trial.suggest_categorical("extra_conv", [False, True])
    return CNN.format(w1=w1, w2=w2, k1=trial.suggest_categorical("k1", [1, 3, 5]),
                      k2=trial.suggest_categorical("k2", [1, 3, 5]), a1=trial.suggest_categorical("a1", acts),
                      a2=trial.suggest_categorical("a2", acts), skip="c1 + (" if skip else "",
                      extra=f' |> conv2d(out={w2}, k=3, pad="same") |> relu()' if extra else "",
                      close=")" if skip else "")


def run_optuna(spec_name, seed, n_trials, params_ref, epochs=None) -> dict | None:
    try:
        import optuna
    except ImportError:
        return None
    from netevo_dsl.grammar.parser import parse
    from netevo_dsl.passes import measures
    from netevo_dsl.runtime.datasets import load_training_data
    from netevo_dsl.runtime.train_networks import Candidate, network_graph, train_candidates

    spec = ne.load(ROOT / "specs" / f"{spec_name}.net")
    settings = resolve_network_settings(spec, overrides={"seed": seed, "epochs": epochs})
    shape = (64,) if spec_name == "digits_mlp" else (1, 8, 8)
    data = load_training_data(settings.task, settings.task_params, shape, seed=seed)
    cfg = settings.train_config()
    points = []

    def objective(trial):
        candidate_spec = parse(optuna_space(spec_name, trial))
        cand = Candidate(candidate_spec, spec_name, seed=seed * 100003 + trial.number)
        trained = train_candidates([cand], data, cfg)[0]
        params = measures.param_count(network_graph(candidate_spec, spec_name))
        points.append((trained.val_accuracy, params, trial.number))
        return trained.val_accuracy, params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0, c0 = time.perf_counter(), time.process_time()
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=seed, population_size=settings.population))
    study.optimize(objective, n_trials=n_trials)
    acc, params, _ = zip(*points)
    return {"hypervolume": hypervolume_2d(acc, params, params_ref), "best_val": max(acc), "trained": len(points),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


# --- summary -------------------------------------------------------------------------------------------


def epochs_to_reach(curve, target) -> float | None:
    return next((e for e, a in curve if a is not None and a >= target), None)


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +- {sd:.4f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specs", nargs="+", default=["digits_mlp", "digits_cnn"], help="shipped specs to search")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per configuration (0..N-1)")
    ap.add_argument("--population", type=int, default=8, help="candidates per generation")
    ap.add_argument("--generations", type=int, default=4, help="generations per run")
    ap.add_argument("--epochs", type=float, help="training epochs per candidate (default: the spec's)")
    ap.add_argument("--out", default="/tmp/bench_network_search", help="folder for the run folders")
    ap.add_argument("--json", help="also write every number to this JSON file")
    ap.add_argument("--no-optuna", action="store_true", help="skip the Optuna baseline")
    args = ap.parse_args(argv)
    print(f"machine: {machine()} (shared with other jobs)")
    print(f"budget per run: population {args.population} x {args.generations} generations = "
          f"{args.population * args.generations} trained candidates, {args.epochs or 'the spec'} epoch(s) each")
    print("command: python benchmarks/bench_network_search.py " + " ".join(sys.argv[1:] if argv is None else argv))
    everything = {}
    for spec_name in args.specs:
        rows = {k: [] for k in ("nsga2", "aging", "random", "nsga2_no_inherit", "optuna")}
        for seed in range(args.seeds):
            for key, selection, inherit in (("random", "random", True), ("nsga2", "nsga2", True),
                                            ("aging", "aging", True), ("nsga2_no_inherit", "nsga2", False)):
                out = Path(args.out) / f"{spec_name}-{key}-{seed}"
                r = run_search(spec_name, selection, seed, args.population, args.generations, out, inherit,
                               args.epochs)
                rows[key].append(r)
                print(f"{spec_name} seed {seed} {key:17s} hv {r['hypervolume']:.4f} best val {r['best_val']:.4f} "
                      f"test {r['best_test']} params {int(r['best_params'])} {r['seconds']:.0f} s "
                      f"({r['cpu_seconds']:.0f} CPU s)", flush=True)
            if not args.no_optuna:
                r = run_optuna(spec_name, seed, args.population * args.generations, rows["random"][-1]["params_ref"],
                               args.epochs)
                if r is not None:
                    rows["optuna"].append(r)
                    print(f"{spec_name} seed {seed} optuna            hv {r['hypervolume']:.4f} best val "
                          f"{r['best_val']:.4f} {r['seconds']:.0f} s", flush=True)
        everything[spec_name] = rows
        print(f"\n## {spec_name}")
        print("| method | hypervolume (mean +- std) | best val acc | its test acc | wall s per run | CPU s per run |")
        print("|---|---|---|---|---|---|")
        for key, rs in rows.items():
            if rs:
                print(f"| {key} | {mean_std([r['hypervolume'] for r in rs])} | {mean_std([r['best_val'] for r in rs])}"
                      f" | {mean_std([r.get('best_test') for r in rs])} | {statistics.mean(r['seconds'] for r in rs):.0f}"
                      f" | {statistics.mean(r['cpu_seconds'] for r in rs):.0f} |")
        wins = {k: sum(a["hypervolume"] > b["hypervolume"] for a, b in zip(rows[k], rows["random"]))
                for k in ("nsga2", "aging")}
        print(f"seeds where evolution beats random search's hypervolume: nsga2 {wins['nsga2']}/{args.seeds}, "
              f"aging {wins['aging']}/{args.seeds}")
        for seed in range(args.seeds):
            target = rows["random"][seed]["best_val"]
            on = epochs_to_reach(rows["nsga2"][seed]["curve"], target)
            off = epochs_to_reach(rows["nsga2_no_inherit"][seed]["curve"], target)
            print(f"seed {seed}: training epochs to reach random search's best {target:.4f}: inherit on {on}, off {off}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
