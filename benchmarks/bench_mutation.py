"""Mutation throughput: valid mutants per second, validity and uniqueness, for resnet18 and wann_swingup.

    python benchmarks/bench_mutation.py [--resnet N] [--wann N] [--seed S] [--repeats R] [-o results.md]

Pipelines, each with the spec's own `mutate` rules:

* IR level: `mutants(spec, n, validate="ir")`: mutate, `check`, and the compiled module built on the
  meta device (the module `compile_module(device="meta")` builds, from the graph `check` already
  elaborated, so the network is not elaborated a second time);
* end to end: `mutants(spec, n, validate="source")`: mutate, `check`, emit the standalone source,
  exec it, instantiate the model (weights allocated, zeroed, not initialised) and run it forward on
  CPU at a small input (B=2, H=W=32), comparing every output shape with the declared one;
* one step from the parent: n children of the parent alone (`mutate(parent, rng)`), each run end to
  end: how valid and how unique single mutations are.

resnet18's rules (`width("layer1.*", choices={32, 64, 96})`, `kernel("*conv1", choices={3, 5})`) reach
35 specs besides the parent in all: the layer1 width is one coupled choice (3), the stem kernel 3, the
kernel of each block template's conv1 2 x 2. So at most 35 unique mutants exist, and a one-step child of
the parent is one of about six.

The baseline is the channel mutator's own claim (SEEDS.md): about 60 mutations in 15-20 s, 3-4 per
second, i.e. 3.5/s. Throughput is given by wall clock and by this process's CPU time: the machine is
shared, and CPU time is what the pipeline itself costs.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from netevo_dsl.evolve.mutations import mutants, mutate, validate_source  # noqa: E402
from netevo_dsl.evolve.mutations.engine import Mutator, target_item  # noqa: E402
from netevo_dsl.ir.hashing import canonical_hash  # noqa: E402

OLD_RATE = 3.5  # mutations per second claimed by the channel mutator (60 in 15-20 s)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def pipeline(spec, n, seed, validate, repeats):
    best = None
    for r in range(repeats):
        stats: dict = {}
        found, wall, cpu = timed(lambda: mutants(spec, n, seed + r, validate=validate, stats=stats))
        assert len({m.hash for m in found}) == n and canonical_hash(spec) not in {m.hash for m in found}
        row = dict(n=n, wall=wall, cpu=cpu, invalid=stats["invalid"], valid=n, unique=100.0,
                   attempts=stats["attempts"], rejected=stats["rejected_by_check"], checked=stats["checked"])
        if best is None or row["cpu"] < best["cpu"]:
            best = row
    return best


def one_step(spec, n, seed):
    name = target_item(spec).name
    rng = random.Random(seed)
    engine = Mutator()
    hashes, valid = [], 0

    def run():
        nonlocal valid
        for _ in range(n):
            child, _ = engine.mutate(spec, rng, name, None)
            hashes.append(canonical_hash(child))
            try:
                validate_source(child, name, check_result=engine.last_check)
                valid += 1
            except Exception as e:  # noqa: BLE001 - counted as invalid and printed
                print(f"  invalid child: {type(e).__name__}: {e}", file=sys.stderr)

    _, wall, cpu = timed(run)
    return dict(n=n, wall=wall, cpu=cpu, valid=valid, invalid=n - valid, unique=100.0 * len(set(hashes)) / n,
                attempts=n, rejected=engine.rejected, checked=engine.checked)


def stages(spec, seed, k=10):
    """CPU milliseconds per stage of the end-to-end pipeline, for one mutant, averaged over k runs."""
    from netevo_dsl.compiler.emit import class_name, emit_network_source
    from netevo_dsl.evolve.mutations.validate import SMALL_SIZES, _instantiate, concrete
    from netevo_dsl.passes.check import check

    name = target_item(spec).name
    child, _ = mutate(spec, seed)
    item = target_item(child, name)
    out = {}

    def clock(label, fn):
        start = time.process_time()
        for _ in range(k):
            value = fn()
        out[label] = 1000 * (time.process_time() - start) / k
        return value

    engine = Mutator()
    if hasattr(item, "body"):
        from netevo_dsl.evolve.mutations.analysis import NetworkAnalysis

        clock("analysis of the parent (once per parent)", lambda: NetworkAnalysis(spec, name).groups)
    clock("mutate (operator + check)", lambda: engine.mutate(spec, random.Random(seed), name, None))
    result = clock("check", lambda: check(child))
    if not hasattr(item, "body"):
        clock("validate_source (emit, exec, forward)", lambda: validate_source(child, name, check_result=result))
        return out
    source = clock("emit source", lambda: emit_network_source(child, name))
    code = clock("compile + exec", lambda: exec(compile(source, "<m>", "exec"), ns := {}) or ns)
    model = clock("instantiate", lambda: _instantiate(code[class_name(name)], "cpu"))
    graph = result.graphs[name]
    x = [torch.zeros(concrete(i.shape, SMALL_SIZES)) for i in graph.inputs]
    with torch.no_grad():
        clock("forward", lambda: model(*x))
    clock("canonical hash", lambda: canonical_hash(child))
    return out


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resnet", type=int, default=30,
                    help="mutants of resnet18 per pipeline (default 30; its rules reach 35 specs in all)")
    ap.add_argument("--wann", type=int, default=600, help="mutants of wann_swingup per pipeline (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="runs per pipeline; the fastest (by CPU time) is kept")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the forward passes (default 1)")
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "results_mutation.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = []
    for name, n in (("resnet18", args.resnet), ("wann_swingup", args.wann)):
        spec = ne.load(ROOT / "specs" / f"{name}.net")
        mutants(spec, 3, args.seed + 99)  # warm-up: imports, first compilations
        mutate(spec, args.seed)
        for label, run in (
            ("IR level (mutate + check + meta module)", lambda: pipeline(spec, n, args.seed, "ir", args.repeats)),
            ("end to end (+ emit, exec, CPU forward)", lambda: pipeline(spec, n, args.seed, "source", args.repeats)),
            ("one step from the parent, end to end", lambda: one_step(spec, n, args.seed)),
        ):
            row = run()
            row.update(spec=name, pipeline=label)
            rows.append(row)
            print(f"{name:13s} {label:42s} {row['valid'] / row['wall']:8.1f}/s wall {row['valid'] / row['cpu']:8.1f}/s "
                  f"cpu  valid {100.0 * row['valid'] / row['n']:5.1f}%  unique {row['unique']:5.1f}%", flush=True)
    breakdown = {name: stages(ne.load(ROOT / "specs" / f"{name}.net"), args.seed)
                 for name in ("resnet18", "wann_swingup")}
    load_after = os.getloadavg()
    write(args, rows, breakdown, load_before, load_after, argv)
    return 0


def write(args, rows, breakdown, load_before, load_after, argv):
    command = "python benchmarks/bench_mutation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Mutation throughput",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine()}. Load average (1, 5, 15 min) {tuple(round(x, 2) for x in load_before)} before, "
        f"{tuple(round(x, 2) for x in load_after)} after: the machine was shared with other work, so wall-clock "
        "rates are lower bounds; CPU-time rates count only this process's own work.",
        "",
        f"Each pipeline row is the fastest (by CPU time) of {args.repeats} runs; every mutant is checked, "
        "unique by canonical hash and different from the parent. Baseline: the channel mutator's claim of "
        f"~60 mutations in 15-20 s ({OLD_RATE}/s), measured end to end on its own models.",
        "",
        "| spec | pipeline | mutants | wall s | valid/s (wall) | CPU s | valid/s (CPU) | valid % | unique % "
        "| candidates rejected by check | x baseline (wall) | x baseline (CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['spec']} | {r['pipeline']} | {r['n']} | {r['wall']:.2f} | {r['valid'] / r['wall']:.1f} | "
            f"{r['cpu']:.2f} | {r['valid'] / r['cpu']:.1f} | {100.0 * r['valid'] / r['n']:.1f} | "
            f"{r['unique']:.1f} | "
            f"{r['rejected']} of {r['checked']} | {r['valid'] / r['wall'] / OLD_RATE:.0f} | "
            f"{r['valid'] / r['cpu'] / OLD_RATE:.0f} |")
    lines += ["", "resnet18's rules reach only 35 distinct specs besides the parent (3 layer1 widths x 3 stem "
              "kernels x 2 x 2 block-template kernels), hence 30 mutants per run and the low uniqueness of "
              "one-step children.",
              "", "Columns: *valid %* is valid children over all children the pipeline produced (a child that "
              "passed `check` but whose emitted source failed counts as invalid); *unique %* is distinct canonical "
              "hashes over children; *candidates rejected by check* are operator proposals the engine discarded "
              "before producing a child (for example a width that a later layer's shape rule refuses).", ""]
    lines += ["## Where the time goes", "", "CPU milliseconds per stage for one mutant (mean of 10):", ""]
    for name, parts in breakdown.items():
        lines.append(f"* {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    lines += ["", "## Against the goal (100% valid, >= 100x the baseline end to end)", ""]
    for r in rows:
        if not r["pipeline"].startswith("end to end"):
            continue
        wall, cpu = r["valid"] / r["wall"] / OLD_RATE, r["valid"] / r["cpu"] / OLD_RATE
        verdict = "goal met." if max(wall, cpu) >= 100 else "goal not met."
        lines.append(f"* {r['spec']}: {100.0 * r['valid'] / r['n']:.0f}% valid; {wall:.0f}x by wall clock, "
                     f"{cpu:.0f}x by CPU time: {verdict}")
    res = breakdown.get("resnet18", {})
    if res:
        front = res.get("check", 0) + res.get("emit source", 0)
        torch_ms = res.get("instantiate", 0) + res.get("forward", 0)
        per_mutant = sum(v for k, v in res.items() if k != "check" and not k.startswith("analysis"))
        own = res.get("mutate (operator + check)", 0) - res.get("check", 0) + res.get("canonical hash", 0)
        analysis = res.get("analysis of the parent (once per parent)", 0)
        lines += ["", " ".join((
            f"For resnet18 a mutant costs about {per_mutant:.0f} ms of CPU: {torch_ms:.0f} ms build and run an",
            "11.7M-parameter network in PyTorch (already without weight initialisation, one thread, B=2 at",
            f"32x32), and {front:.0f} ms are the front end: `check` and `emit_source` elaborate the network",
            "three times between them, and most of that is `Dim` arithmetic in the conv shape rule. The",
            f"mutation itself (operator, edits, canonical hash) is about {own:.0f} ms, after the parent's",
            f"analysis ({analysis:.0f} ms), which all its children share. 100x the baseline (350/s, under 3 ms",
            "a mutant) is out of reach while every mutant is compiled to source and run as a ResNet-18; a",
            "faster front end (a concrete-size fast path in `ir.dims`, no second `elaborate` inside",
            "`emit_network_source`) would remove most of the front end's share."))]
    lines.append("")
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
