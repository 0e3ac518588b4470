"""netevo's `evaluate` against the WANN authors' own numpy evaluator, imported unmodified (issue 18).

    python benchmarks/bench_vs_authors.py --authors /path/to/WANNRelease/WANN [--genomes 200] [--repeat 3]

(or set NETEVO_WANN_AUTHORS). The authors' code is never part of netevo: get it from
github.com/google/brain-tokyo-workshop (WANNRelease/WANN) and point this script at the folder. Its
`wann_src/ind.py` (`act`, `selectAct`) and `wann_src/task.py` (`Task.setWeights`) are imported as they
are; `task.py` imports the gym environments, which are not needed here, so `domain.make_env` is
stood in for by an empty module before the import.

Workload (the issue's): random genomes, 64 inputs + bias, 30 hidden nodes with random activations, 10
linear outputs, 150 enabled edges (plus 15 disabled), x 6 shared weights (-2, -1, -0.5, 0.5, 1, 2) x all
1,797 scikit-learn digits scaled by 1/16 (the authors' `digit_raw`). The authors' reward is their
`ClassifyEnv.step`'s: minus the mean log of the softmax probability of the label, over every sample.
netevo scores the same with the digits task over the whole set (`test_fraction=0`, `batch_size=1797`,
`scale=16`), in float32, once with its nine other metrics (`evaluate`'s default) and once with the
reward only (`metrics=["reward"]`, what a run's selection asks for). Rewards are compared per (genome,
weight). Both run in this process with 1 and 2 threads (numpy's BLAS through threadpoolctl, torch's
intra-op threads), interleaved; each time is the fastest of `--repeat` runs.

Also: the multiply-adds of the forward pass per second (the genomes' useful work: enabled edges x
samples x weights), timed apart from packing and scoring, next to this machine's float32 matmul rate
(`torch.mm` of 1024 x 1024 matrices) at the same thread count. The phases run one block after another
with torch's threads splitting each operation; with more than one thread `evaluate` instead runs the
sample blocks on a pool, one block per thread, so at 2 threads the table also gives `evaluate`'s own
split: packing, and the blocks' forward and scoring together (its time less packing's).

`--baseline DIR` also times another checkout's `evaluate` (reward only), interleaved with this one's
on the same genomes: DIR holds that commit's `netevo_dsl` (e.g. `git worktree add DIR <commit>`, or
`git archive <commit> netevo_dsl | tar -x -C DIR`), imported as a separate package. Its rewards must
equal this checkout's bit for bit (the script stops otherwise).
"""
from __future__ import annotations

import argparse
import importlib
import os
import random
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from benchmarks.bench_evaluator import phases  # noqa: E402
from benchmarks.common import torch_machine  # noqa: E402
from netevo_dsl.ir.wann import output_names  # noqa: E402
from netevo_dsl.runtime.evaluate import evaluate  # noqa: E402
from netevo_dsl.runtime.tasks import make_task  # noqa: E402
from netevo_dsl.runtime.wann_pack import pack_population  # noqa: E402
from netevo_dsl.testing.wann_strategies import random_genome  # noqa: E402

WEIGHTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
# netevo's WANN activation names -> the authors' `applyAct` ids (ind.py's table)
AUTHORS_ACT = {"linear": 1, "step": 2, "sin": 3, "gauss": 4, "tanh": 5, "sigmoid": 6, "inverse": 7, "abs": 8,
               "relu": 9, "cos": 10, "square": 11}
GOAL, STRETCH = 30.0, 100.0


def import_authors(folder: Path):
    """`wann_src.ind` and `wann_src.task` from the authors' folder, without running its package __init__
    (which imports the training loop and gym)."""
    if not (folder / "wann_src" / "ind.py").is_file():
        sys.exit(f"no wann_src/ind.py under {folder}: pass --authors /path/to/WANNRelease/WANN")
    package = types.ModuleType("wann_src")
    package.__path__ = [str(folder / "wann_src")]
    sys.modules["wann_src"] = package
    domain, make_env = types.ModuleType("domain"), types.ModuleType("domain.make_env")
    make_env.make_env = None  # only Task(..., paramOnly=False) would call it
    sys.modules.update({"domain": domain, "domain.make_env": make_env})
    return importlib.import_module("wann_src.ind"), importlib.import_module("wann_src.task")


def authors_matrices(genome):
    """A genome as the authors' `act` takes it: a connection matrix over nodes ordered bias, inputs,
    hidden (topologically: random_genome feeds hidden node i only from earlier ones), outputs, and
    their activation ids."""
    observed = [n for n in genome.inputs if n != "bias"]
    order = ["bias", *observed, *(n.name for n in genome.nodes), *output_names(genome)]
    index = {name: i for i, name in enumerate(order)}
    conn = np.zeros((len(order), len(order)))
    for e in genome.edges:
        if e.enabled:
            conn[index[e.src], index[e.dst]] = 1.0
    acts = [1] * (1 + len(observed)) + [AUTHORS_ACT[n.activation] for n in genome.nodes] + \
           [AUTHORS_ACT[o.activation] for o in genome.outputs]
    return conn.reshape(-1), np.array(acts), len(observed), len(genome.outputs)


def authors_rewards(ind, task_cls, genomes, x, y) -> np.ndarray:
    """[P, W] the authors' rewards: their setWeights, act and softmax, scored as ClassifyEnv.step does."""
    out = np.empty((len(genomes), len(WEIGHTS)))
    rows = np.arange(len(y))
    for p, (w_vec, a_vec, n_in, n_out) in enumerate(genomes):
        for k, w in enumerate(WEIGHTS):
            w_mat = task_cls.setWeights(None, w_vec, w)  # sets NaNs to 0 and links to 1 in place: idempotent
            probs = ind.selectAct(ind.act(w_mat, a_vec, n_in, n_out, x), "softmax")
            with np.errstate(divide="ignore"):
                out[p, k] = -np.sum(-np.log(probs[rows, y])) / len(y)
    return out


def import_baseline(folder: Path):
    """(evaluate, make_task, random_genome) of the checkout at `folder`, its `netevo_dsl` copied to a
    temporary folder as the package `netevo_baseline` (its imports are relative, so it runs as itself)."""
    if not (folder / "netevo_dsl" / "runtime" / "evaluate.py").is_file():
        sys.exit(f"no netevo_dsl/runtime/evaluate.py under {folder}: pass --baseline /path/to/checkout")
    copy = Path(tempfile.mkdtemp(prefix="netevo_baseline_"))
    shutil.copytree(folder / "netevo_dsl", copy / "netevo_baseline", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(copy))
    modules = [importlib.import_module(f"netevo_baseline.{name}")
               for name in ("runtime.evaluate", "runtime.tasks", "testing.wann_strategies")]
    return modules[0].evaluate, modules[1].make_task, modules[2].random_genome


def interleaved_best(repeat: int, fns: dict) -> tuple[dict, dict]:
    """Fastest of `repeat` runs of each function, the functions taking turns; and their last results."""
    best, results = {name: float("inf") for name in fns}, {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def best_of(repeat: int, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def matmul_rate(threads: int) -> float:
    """Multiply-adds per second of a float32 1024 x 1024 matmul (fastest of 5)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    seconds, _ = best_of(5, lambda: torch.mm(a, b))
    return 1024 ** 3 / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, default=os.environ.get("NETEVO_WANN_AUTHORS"),
                    help="the authors' WANNRelease/WANN folder (or NETEVO_WANN_AUTHORS)")
    ap.add_argument("--genomes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--baseline", type=Path, help="another checkout whose evaluate is timed alongside (reward only)")
    args = ap.parse_args()
    if args.authors is None:
        sys.exit("pass --authors /path/to/WANNRelease/WANN or set NETEVO_WANN_AUTHORS")
    ind, task_module = import_authors(args.authors)
    rng = random.Random(0)
    population = [random_genome(rng, 64, 10, 30, 150, name=f"g{i}", output_activation="linear")
                  for i in range(args.genomes)]
    task = make_task(("digits", {"test_fraction": 0.0, "batch_size": 1797, "scale": 16}))
    from sklearn import datasets

    digits = datasets.load_digits()
    x, y = digits.images.reshape(-1, 64) / 16, digits.target  # the authors' digit_raw
    matrices = [authors_matrices(g) for g in population]
    weights = torch.tensor(WEIGHTS)
    evaluate(population[:10], task, weights, device="cpu")  # warm-up
    baseline = None
    if args.baseline is not None:
        base_evaluate, base_make_task, base_random_genome = import_baseline(args.baseline)
        rng = random.Random(0)  # the same genomes, as the baseline's own IR objects
        base_population = [base_random_genome(rng, 64, 10, 30, 150, name=f"g{i}", output_activation="linear")
                           for i in range(args.genomes)]
        base_task = base_make_task(("digits", {"test_fraction": 0.0, "batch_size": 1797, "scale": 16}))
        baseline = lambda: base_evaluate(base_population, base_task, weights, device="cpu",  # noqa: E731
                                         metrics=["reward"])
        baseline()  # warm-up
    rows, rewards = [], None
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            theirs_s, theirs = best_of(args.repeat, lambda: authors_rewards(ind, task_module.Task, matrices, x, y))
            ours_s, scores = best_of(args.repeat, lambda: evaluate(population, task, weights, device="cpu"))
            timed = {"lean": lambda: evaluate(population, task, weights, device="cpu", metrics=["reward"])}
            if baseline is not None:
                timed["base"] = baseline
            best, results = interleaved_best(args.repeat, timed)
            lean_s, lean = best["lean"], results["lean"]
        assert torch.equal(lean.per_weight.nan_to_num(7.0), scores.per_weight.nan_to_num(7.0))
        if baseline is not None:
            assert torch.equal(results["base"].per_weight.nan_to_num(7.0), lean.per_weight.nan_to_num(7.0)), \
                "the baseline's rewards differ from this checkout's"
        phase = phases(population, task, args.repeat)
        phase["scoring reward only"] = phases(population, task, args.repeat, ["reward"])["scoring"]
        # evaluate's own split (reward only): its packing alone, and the rest (the sample blocks)
        pack_s, _ = best_of(args.repeat, lambda: pack_population(population, task.n_inputs, task.n_outputs, weights))
        phase["evaluate pack"], phase["evaluate blocks"] = pack_s, lean_s - pack_s
        rewards = (theirs, scores.per_weight.numpy())
        work = len(population) * len(WEIGHTS)
        macs = sum(sum(e.enabled for e in g.edges) for g in population) * len(y) * len(WEIGHTS)
        dense_macs = sum(int(np.sqrt(m[0].size)) * (len(m[1]) - 1 - m[2]) for m in matrices) * len(y) * len(WEIGHTS)
        rows.append(dict(threads=threads, work=work, theirs=work / theirs_s, ours=work / ours_s, lean=work / lean_s,
                         base=work / best["base"] if baseline is not None else None, phase=phase, macs=macs,
                         dense=dense_macs, theirs_s=theirs_s, peak=matmul_rate(threads)))
        torch.set_num_threads(threads)
    ours_f64 = evaluate(population[:20], task, weights, device="cpu", dtype=torch.float64).per_weight.numpy()
    finite = np.isfinite(rewards[0])  # the authors' softmax underflows to 0 for some outputs: log 0 = -inf
    scale = np.maximum(np.abs(np.where(finite, rewards[0], 0.0)), 1.0)  # relative where |reward| > 1
    diff32 = (np.abs(rewards[0] - rewards[1]) / scale)[finite].max()
    diff64 = (np.abs(rewards[0][:20] - ours_f64) / scale[:20])[finite[:20]].max()
    print(f"largest |authors' reward| {np.abs(rewards[0][finite]).max():.3g}", file=sys.stderr)
    report = write(args, rows, diff32, diff64, int((~finite).sum()), rewards[1][~finite])
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")


def write(args, rows, diff32, diff64, n_inf, ours_at_inf) -> str:
    lines = [f"Command: `python benchmarks/bench_vs_authors.py --genomes {args.genomes} --repeat {args.repeat}`",
             f"Machine: {torch_machine()}; load average {tuple(round(v, 1) for v in os.getloadavg())} (shared).", "",
             "| threads | authors' code (individual x weight / s) | netevo `evaluate`, all metrics | ratio | "
             "netevo, reward only (a run's selection) | ratio | goal 30x | stretch 100x |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ratio, lean = r["ours"] / r["theirs"], r["lean"] / r["theirs"]
        lines.append(f"| {r['threads']} | {r['theirs']:,.0f} | {r['ours']:,.0f} | {ratio:.1f}x | {r['lean']:,.0f} | "
                     f"{lean:.1f}x | {'met' if lean >= GOAL else f'missed by {GOAL / lean:.1f}x'} | "
                     f"{'met' if lean >= STRETCH else f'missed by {STRETCH / lean:.1f}x'} |")
    lines += ["", f"Rewards agree: max |difference| / max(1, |reward|) {diff32:.2e} (netevo in float32, all genomes), "
              f"{diff64:.2e} (netevo in float64, first 20 genomes), over the pairs where the authors' reward is "
              f"finite; in {n_inf} of {rows[0]['work']} (genome, weight) pairs their softmax underflows to 0 for a "
              "label and their reward is -inf, where netevo's log-softmax gives "
              + (f"{ours_at_inf.max():.1f} at most." if n_inf else "nothing to compare.")]
    if rows[0]["base"] is not None:
        lines += ["", f"Against the baseline checkout `{args.baseline}` (reward only, interleaved, the same genomes, "
                  "rewards bit for bit equal):", "",
                  "| threads | baseline (individual x weight / s) | this checkout | speed-up | baseline / authors |",
                  "|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['threads']} | {r['base']:,.0f} | {r['lean']:,.0f} | {r['lean'] / r['base']:.2f}x | "
                         f"{r['base'] / r['theirs']:.1f}x |")
    lines += ["", "`evaluate` itself (reward only): packing / the sample blocks' forward and scoring, ms: " +
              "; ".join(f"{r['threads']} thread(s) {1e3 * r['phase']['evaluate pack']:.0f} / "
                        f"{1e3 * r['phase']['evaluate blocks']:.0f}" for r in rows), "",
              "| threads | netevo pack / forward / scoring (reward only) ms, one block after another | forward "
              "multiply-adds/s | authors' dense multiply-adds/s | float32 matmul multiply-adds/s | forward / matmul |",
              "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        p = r["phase"]
        forward_rate = r["macs"] / p["forward"]
        lines.append(f"| {r['threads']} | {1e3 * p['pack']:.0f} / {1e3 * p['forward']:.0f} / {1e3 * p['scoring']:.0f} "
                     f"({1e3 * p['scoring reward only']:.0f}) | "
                     f"{forward_rate / 1e9:.2f} G | {r['dense'] / r['theirs_s'] / 1e9:.2f} G | {r['peak'] / 1e9:.1f} G | "
                     f"{100 * forward_rate / r['peak']:.0f}% |")
    lines += ["", f"Useful forward work: {rows[0]['macs'] / 1e6:.0f} M multiply-adds (enabled edges x samples x "
              f"weights); the authors' dense loop does {rows[0]['dense'] / 1e6:.0f} M."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
