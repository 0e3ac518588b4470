"""Populations of layered networks with mixed widths: exact-shape groups against one padded group.

Each workload is a population of networks of one architecture whose widths take `d` distinct
values, evenly spread over a range (member i gets the (i mod d)-th width). The batched evaluator
scores it three ways, side by side in this process (rounds interleaved):

* group: one vmap-ed group per distinct shape (d groups);
* pad:   one group, every network padded to the widest with zero-masked units;
* auto:  the evaluator's default rule (`evaluate_networks.prefer_padding`).

Only the evaluation is timed (`evaluate_graphs`: planning, stacking masks, forward, scoring);
checking and elaborating the specs is the same in every mode and is done once beforehand.
The table gives the padded FLOPs over the exact FLOPs (multiply-adds plus one per element),
the medians, and group/pad.

A calibration first measures the constants of the `auto` cost model (`evaluate_networks.
estimated_cost`): the time of one node of a call (a one-network call on one sample), the time
per FLOP of large calls (an MLP and a conv net), and the fixed work of a call (the scorer's `add`
on a small block, one simulator step) in node-equivalents.

    python benchmarks/bench_network_eval.py --threads 1   # writes benchmarks/results_network_eval.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import side_by_side, timeit, torch_machine  # noqa: E402
from netevo_dsl import parse  # noqa: E402
from netevo_dsl.runtime import evaluate_networks as en  # noqa: E402
from netevo_dsl.runtime.evaluate import BLOCK_BYTES  # noqa: E402
from netevo_dsl.runtime.network_groups import network_groups  # noqa: E402
from netevo_dsl.runtime.network_program import GroupProgram  # noqa: E402

WEIGHTS = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])

RESULTS = Path(__file__).with_name("results_network_eval.md")
DIGITS_MLP = Path(__file__).resolve().parents[1] / "specs" / "digits_mlp.net"

CONV = """network digits_conv {{
  input x: [B, 64]
  c1 = x |> reshape(shape=[B, 1, 8, 8]) |> conv2d(out={c}, k=3, pad=1, mask=random(density=0.5, seed={seed}))
  c2 = c1 |> relu() |> maxpool2d(k=2) |> conv2d(out={c2}, k=3, pad=1) |> relu()
  output logits = c2 |> flatten() |> linear(out=10)
}}"""

CONTROL = """network policy {{
  input x: [B, 5]
  h1 = x |> linear(out={h}, mask=random(density=0.5, seed={seed})) |> tanh()
  h2 = h1 |> linear(out={h}) |> tanh()
  output action = linear(h2, out=1)
}}"""


def digits_mlp(width: int, seed: int) -> str:
    text = DIGITS_MLP.read_text()
    return text.replace("param hidden: int = 128", f"param hidden: int = {2 * (width // 2)}")


IRIS = """network iris_mlp {{
  input x: [B, 4]
  h = x |> linear(out={h}, mask=random(density=0.5, seed={seed})) |> tanh()
  output y = linear(h, out=3)
}}"""

WORKLOADS = {
    # name: (task, spec text for (width, seed), width range)
    "digits MLP, hidden 16..256": ("digits", digits_mlp, (16, 256)),
    "digits MLP, hidden 96..128": ("digits", digits_mlp, (96, 128)),
    "digits MLP, hidden 4..32": ("digits", digits_mlp, (4, 32)),
    "digits conv, channels 2..16": ("digits", lambda c, s: CONV.format(c=c, c2=c, seed=s), (2, 16)),
    "iris MLP, hidden 4..64": ("iris", lambda h, s: IRIS.format(h=h, seed=s), (4, 64)),
    "swingup MLP, hidden 4..64, 200 steps": (("swingup", {"max_steps": 200}),
                                             lambda h, s: CONTROL.format(h=h, seed=s), (4, 64)),
}


def widths_for(distinct: int, low: int, high: int) -> list[int]:
    if distinct == 1:
        return [high]
    return [round(low + (high - low) * i / (distinct - 1)) for i in range(distinct)]


def measure(name: str, population: int, distinct: int, repeat: int) -> dict:
    task_arg, make, (low, high) = WORKLOADS[name]
    task = en.network_task(task_arg)
    widths = widths_for(distinct, low, high)
    specs = [parse(make(widths[i % distinct], i)) for i in range(population)]
    graphs, failures = en.network_graphs(specs, task)
    assert not failures, failures
    samples = task.n_samples if task.kind == "classification" else task.repeats
    padded = network_groups(graphs, "pad")
    exact = network_groups(graphs, "group")
    auto = network_groups(graphs, "auto", lambda p, e: en.prefer_padding(p, e, samples, 6, 4, BLOCK_BYTES))
    times = side_by_side({mode: (lambda m=mode: en.evaluate_graphs(graphs, population, task, WEIGHTS, widths=m))
                          for mode in ("group", "pad", "auto")}, repeat=repeat, number=1)
    return {"workload": name, "distinct": distinct, "groups": len(exact), "auto_groups": len(auto),
            "flops": sum(g.cost for g in padded) / sum(g.cost for g in exact), **times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--distinct", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    constants = calibrate()
    print(", ".join(f"{k} {v:.3g}" for k, v in constants.items()), flush=True)
    rows = []
    for name in args.workloads:
        for distinct in args.distinct:
            if distinct > args.population:
                continue
            row = measure(name, args.population, distinct, args.repeat)
            rows.append(row)
            print(f"{name:40s} d={distinct:3d} groups={row['groups']:3d} flops x{row['flops']:.2f}  "
                  f"group {row['group']:.3f}s  pad {row['pad']:.3f}s  auto {row['auto']:.3f}s "
                  f"({row['auto_groups']} groups)  group/pad {row['group'] / row['pad']:.2f}", flush=True)
    write(constants, rows, args)


def _program(texts: list[str], task) -> tuple:
    graphs, _ = en.network_graphs([parse(t) for t in texts], task)
    plan = network_groups(graphs, "group")[0]
    return plan, GroupProgram(plan, "cpu", torch.float32)


def calibrate() -> dict:
    """The cost model's constants on this machine (see the module docstring)."""
    digits = en.network_task("digits")
    out = {}
    with torch.no_grad():
        plan, program = _program([digits_mlp(16, 0)], digits)
        x = digits.features[:1].float()
        stacks = program.select(slice(0, 1))
        node = timeit(lambda: program(stacks, x, WEIGHTS, 1, shared_input=True), repeat=5, number=200) / plan.nodes
        out["node us"] = node * 1e6
        for name, text, n in (("MLP", digits_mlp(256, 0), 64), ("conv", CONV.format(c=16, c2=16, seed=0), 16)):
            plan, program = _program([text] * n, digits)
            members, block = en.chunk_sizes(n, plan.peak, 6, digits.n_samples, 4, BLOCK_BYTES)
            x = digits.features[:block].float()
            stacks = program.select(slice(0, members))
            seconds = timeit(lambda: program(stacks, x, WEIGHTS, block, shared_input=True), repeat=5)
            flop = seconds / (plan.cost / n * members * len(WEIGHTS) * block)
            out[f"{name} ns/FLOP"] = flop * 1e9
            out[f"NODE_FLOPS from {name}"] = node / flop
        swingup = en.network_task(("swingup", {"max_steps": 100}))
        idle = lambda obs: torch.zeros(*obs.shape[:-1], 1)  # noqa: E731 - the simulator alone
        step = timeit(lambda: swingup.rollout(idle, (1, 6), torch.float32, "cpu"), repeat=3) / swingup.max_steps
        out["simulator step in nodes"] = step / node
        scorer = digits.scorer(1, WEIGHTS, digits.next_batch_mask())
        block = torch.randn(1, len(WEIGHTS), 64, 10)
        out["scorer add in nodes"] = timeit(lambda: scorer.add(block, slice(0, 64)), repeat=5, number=100) / node
    return out


def write(constants: dict, rows: list[dict], args) -> None:
    command = "python benchmarks/bench_network_eval.py" + (f" --threads {args.threads}" if args.threads else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Layered-network populations with mixed widths: exact groups against padding",
        "",
        f"Command: `{command}`  ",
        f"Machine: {torch_machine()}  ",
        f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}, load average after the run: {load:.2f}",
        "",
        f"Population {args.population}, 6 shared weights, float32, CPU; median of {args.repeat} interleaved rounds. "
        "`d`: distinct widths; `padded FLOPs`: the padded group's FLOPs over the exact groups'; "
        "`auto`: the evaluator's default rule (its group count in brackets).",
        "",
        "Calibration of the `auto` cost model: " + ", ".join(f"{k} {v:.3g}" for k, v in constants.items())
        + f"; the evaluator uses NODE_FLOPS = {en.NODE_FLOPS:.3g}, CALL_NODES = {en.CALL_NODES}.",
        "",
        "| workload | d | padded FLOPs | group (s) | pad (s) | group / pad | auto (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['distinct']} | {r['flops']:.2f}x | {r['group']:.3f} | {r['pad']:.3f} | "
                     f"**{r['group'] / r['pad']:.2f}** | {r['auto']:.3f} ({r['auto_groups']}) |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
