"""What a generation of `netevo evolve` costs outside evaluation (issue 18, a lean run loop).

    python benchmarks/bench_run_loop.py [--generations 20] [--profile N] [SPEC ...]

Runs each spec's evolve block (default `specs/wann_xor.net` and `specs/wann_digits.net`) for
`--generations` generations through `Evolution` (no progress bar, no report) and splits the
process's CPU seconds (`time.process_time`, so that a loaded machine does not inflate them) into
evaluation (`Evolution.evaluate`) and everything else: mutation, selection, logging, champion
files, checkpoints, genome text. `--profile N` prints the N costliest functions of the loop.
Run it with PYTHONPATH pointing at another checkout to measure that one (the "before" figures in
benchmarks/RESULTS.md came from `git archive` of the commit before the change).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.run import Evolution  # noqa: E402
from netevo_dsl.evolve.settings import resolve_settings  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


class TimedEvolution(Evolution):
    """An `Evolution` that adds up the CPU seconds its evaluations take."""

    evaluation_cpu = 0.0

    def evaluate(self, population, generation):
        t0 = time.process_time()
        try:
            return super().evaluate(population, generation)
        finally:
            self.evaluation_cpu += time.process_time() - t0


def measure(spec_path: Path, generations: int, folder: Path, profile: int = 0) -> dict:
    spec = ne.load(spec_path)
    settings = resolve_settings(spec, overrides={"generations": generations})
    run = TimedEvolution(spec, settings, folder / spec_path.stem, progress=False, report=False, overwrite=True)
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    run.execute()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
    return {"spec": spec_path.name, "population": settings.population, "generations": generations,
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "evaluation_cpu_s": round(run.evaluation_cpu, 2),
            "loop_cpu_ms_per_generation": round(1000 * (cpu - run.evaluation_cpu) / generations, 1),
            "evaluation_cpu_ms_per_generation": round(1000 * run.evaluation_cpu / generations, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", type=Path,
                        default=[SPECS / "wann_xor.net", SPECS / "wann_digits.net"])
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print this many of the costliest functions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}, torch {torch.__version__}, {args.threads} thread(s), netevo from {ne.__file__}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.specs:
            print(measure(spec, args.generations, Path(tmp), args.profile), flush=True)


if __name__ == "__main__":
    main()
