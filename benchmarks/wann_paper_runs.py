"""Issue 16's results: what `--preset paper` reaches on a fixed CPU budget, scored the paper's way.

Three steps, each also usable alone:

    python benchmarks/wann_paper_runs.py run SPEC --out DIR [--cpu-minutes 60] [--seed 0]
        `netevo evolve SPEC --preset paper` on one torch thread, stopped (Ctrl-C, so the last
        generation is checkpointed and the run can be resumed for longer) once the process has used
        --cpu-minutes of CPU time (user + system, read from /proc).
    python benchmarks/wann_paper_runs.py pick DIR
        the run's candidate: the champions of its last 10 generations re-scored on fresh validation
        draws (20 episodes for control; the whole training split for classification: the authors
        re-test their best with `bestReps` repeats), the best written to DIR/picked.net.
    python benchmarks/wann_paper_runs.py score SPEC [--task T]
        the genome of SPEC on held-out draws: control, 100 fresh episodes (starting states from a seed
        no run or tuning uses) at each shared weight; classification, the held-out test split.
        Prints the random-shared-weight mean +- std over the weights, the best shared weight, the
        ensemble (classification), and a genome with per-edge weights (tuned) as one number.

The curve of the champion's score against generations is DIR/report.md's (netevo evolve writes it
when a run finishes; `netevo evolve --resume DIR --generations N` continues a stopped run).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TEST_SEED = 9_000_001  # episodes for the final scores: no run (seeds < 1e6) or validation draws them
VALIDATION_SEED = 8_000_001
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its waited-for children (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[k]) for k in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def run(spec: str, out: str, cpu_minutes: float, seed: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, "-m", "netevo_dsl.cli", "evolve", spec, "--preset", "paper", "--seed", str(seed),
               "--out", out, "--no-progress", "--overwrite"]
    print("$", " ".join(command), f"  # stopped after {cpu_minutes} CPU-minutes", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    used = 0.0
    while process.poll() is None:
        time.sleep(2.0)
        try:
            used = cpu_seconds(process.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if used >= cpu_minutes * 60:
            process.send_signal(signal.SIGINT)  # finishes and checkpoints the running generation
            break
    process.wait()
    log = Path(out) / "log.jsonl"
    generations = len(log.read_text().splitlines()) if log.exists() else 0
    print(f"stopped: {used / 60:.1f} CPU-minutes, {(time.perf_counter() - started) / 60:.1f} wall minutes, "
          f"{generations} generations, exit {process.returncode}")
    (Path(out) / "budget.json").write_text(json.dumps({"cpu_minutes": round(used / 60, 2), "generations": generations,
                                                       "wall_minutes": round((time.perf_counter() - started) / 60, 2)}))


def _task(settings: dict, repeats: int | None = None, seed: int = 0):
    from netevo_dsl.runtime.tasks import make_task

    params = dict(settings.get("task_params") or {})
    if repeats is not None:
        params["repeats"] = repeats
    task = make_task((settings["task"], params))
    task.start_generation(seed, 0)
    return task


def pick(out: str) -> None:
    import torch
    import yaml

    import netevo_dsl as ne
    from netevo_dsl.runtime.evaluate import evaluate

    folder = Path(out)
    settings = yaml.safe_load((folder / "config.yaml").read_text())
    files = sorted((folder / "champions").glob("gen_*.net"))[-10:]
    genomes = [ne.load(f).genomes[0] for f in files]
    control = settings["task"] in ("swingup", "cartpole")
    task = _task(settings, repeats=20 if control else None, seed=VALIDATION_SEED)
    scores = evaluate(genomes, task, device="cpu")
    value = scores.mean if control else scores.metrics["ensemble_train_accuracy"]
    best = int(torch.nan_to_num(value, nan=-float("inf")).argmax())
    (folder / "picked.net").write_text(files[best].read_text())
    print(f"picked {files[best].name}: " + ", ".join(f"{f.stem}={v:.3f}" for f, v in zip(files, value.tolist())))


def score(spec: str, task_name: str | None, settings_from: str | None) -> dict:
    import torch
    import yaml

    import netevo_dsl as ne
    from netevo_dsl.runtime.evaluate import evaluate

    genome = ne.load(spec).genomes[0]
    settings = yaml.safe_load(Path(settings_from).read_text()) if settings_from else {"task": task_name}
    if task_name:
        settings["task"] = task_name
    control = settings["task"] in ("swingup", "cartpole")
    tuned = any(getattr(e, "weight", None) is not None for e in genome.edges if e.enabled)
    task = _task(settings, repeats=100 if control else None, seed=TEST_SEED)
    scores = evaluate([genome], task, device="cpu", dtype=torch.float64)
    weights = scores.weights.tolist()
    if control:
        per_weight = scores.per_weight[0]  # mean over the 100 episodes, per shared weight
        episodes = scores.metrics["episode_reward"][0]  # [W, 100]
        result = {"weights": weights, "per_weight": per_weight.tolist(),
                  "random_shared": [float(per_weight.mean()), float(per_weight.std())],
                  "best_shared": [float(per_weight.max()), float(episodes[int(per_weight.argmax())].std())]}
        if tuned:
            result["tuned"] = [float(episodes[0].mean()), float(episodes[0].std())]
    else:
        accuracy = scores.metrics["test_accuracy"][0]
        result = {"weights": weights, "test_accuracy": accuracy.tolist(),
                  "random_shared": [float(accuracy.mean()), float(accuracy.std())],
                  "best_shared": float(scores.metrics["best_test_accuracy"][0]),
                  "ensemble": float(scores.metrics["ensemble_test_accuracy"][0])}
        if tuned:
            result["tuned"] = float(accuracy[0])
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run")
    r.add_argument("spec")
    r.add_argument("--out", required=True)
    r.add_argument("--cpu-minutes", type=float, default=60.0)
    r.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("pick")
    p.add_argument("out")
    s = sub.add_parser("score")
    s.add_argument("spec")
    s.add_argument("--task", help="task name (default: the run's, with --settings)")
    s.add_argument("--settings", help="a run's config.yaml, for its task and task parameters")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.step == "run":
        run(args.spec, args.out, args.cpu_minutes, args.seed)
    elif args.step == "pick":
        pick(args.out)
    else:
        score(args.spec, args.task, args.settings)


if __name__ == "__main__":
    main()
