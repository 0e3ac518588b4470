"""Overhead and memory of NeuronTracker on CPU.

Workloads: a 784-256-128-10 ReLU MLP and a small CNN, batch 512. For each,
forward passes (inference) and training steps are timed with the tracker off,
with statistics, and with statistics plus correlations, in interleaved
repetitions so that drifting machine load hits every mode alike. The overhead
is the median over repetitions of (time with tracking) / (time without, same
repetition).

Statistics run through the one-pass numba kernel (runtime/stats_kernel.py) when numba is
installed; the mode "stats (torch path)" times the eager torch reductions in the same run (the
kernel switched off for that mode only), and the header says which kernel ran. The last line
gives issue 18's figure: the forward-only overhead of "stats" on each workload, goal <= 1.15x:

    python benchmarks/bench_tracker.py --threads 1 --reps 30 --warmup 3 --clock cpu \
        --modes stats "stats (torch path)" --steps forward --memory-batches 0

Memory compares the tracker's accumulated state after N batches with the old
tool's design of keeping every activation (samples * width * 4 bytes).

    python benchmarks/bench_tracker.py                      # print a markdown table
    python benchmarks/bench_tracker.py --write benchmarks/results_tracker.md

With --torchvision (needs torchvision; issue 21): torchvision's resnet18 (random init, batch 8 x 3 x
224 x 224), tracker off against statistics through the torch.fx graph (the default) and through
module hooks (trace=False), same interleaved protocol.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netevo_dsl.runtime import stats_kernel  # noqa: E402
from netevo_dsl.runtime.tracker import NeuronTracker  # noqa: E402

BATCH = 512
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}  # cpu: this thread's CPU time (1 torch thread)
clock = CLOCKS["wall"]


def mlp() -> tuple[nn.Module, torch.Tensor]:
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return model, torch.randn(BATCH, 784)


def cnn() -> tuple[nn.Module, torch.Tensor]:
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip
    return model, torch.randn(BATCH, 1, 28, 28)


TORCHVISION_INPUT = [8, 3, 224, 224]  # --tv-batch and --tv-size change it


def resnet18() -> tuple[nn.Module, torch.Tensor]:
    import torchvision

    return torchvision.models.resnet18(), torch.randn(*TORCHVISION_INPUT)


WORKLOADS = {"MLP 784-256-128-10": mlp, "CNN 2xconv(16,32)+linear": cnn}
TORCHVISION_MODES = {"stats (fx graph)": dict(), "stats (module hooks)": dict(trace=False)}
MODES = {
    "stats": dict(),
    "stats (torch path)": dict(kernel=False),  # the eager reductions, as without numba
    "stats+corr (f64)": dict(correlation=True),
    "stats+corr (f32 products)": dict(correlation=True, corr_dtype=torch.float32),
}


def forward_step(model, inputs, targets, optimizer):
    with torch.no_grad():
        model(inputs)


def train_step(model, inputs, targets, optimizer):
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()


def time_once(step, model, inputs, targets, optimizer, tracker, kernel: bool = True) -> float:
    if tracker is not None:
        tracker.start()
    saved, stats_kernel.ENABLED = stats_kernel.ENABLED, kernel and stats_kernel.ENABLED
    start = clock()
    step(model, inputs, targets, optimizer)
    elapsed = clock() - start
    stats_kernel.ENABLED = saved
    if tracker is not None:
        tracker.stop()
    return elapsed


def tracker_options(options: dict) -> dict:
    return {key: value for key, value in options.items() if key != "kernel"}


def measure(make, step, reps: int, warmup: int, modes: dict | None = None) -> dict[str, dict]:
    """Median seconds per mode and median per-repetition ratio against no tracking."""
    torch.manual_seed(0)
    model, inputs = make()
    targets = torch.randint(0, 10, (len(inputs),))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    modes = MODES if modes is None else modes
    trackers = {"off": None} | {name: NeuronTracker(model, **tracker_options(options)) for name, options in modes.items()}
    kernel = {"off": True} | {name: options.get("kernel", True) for name, options in modes.items()}
    times = {name: [] for name in trackers}
    for rep in range(warmup + reps):
        names = list(trackers)
        names = names[rep % len(names) :] + names[: rep % len(names)]  # rotate the order every repetition
        for name in names:
            elapsed = time_once(step, model, inputs, targets, optimizer, trackers[name], kernel[name])
            if rep >= warmup:
                times[name].append(elapsed)
    result = {}
    for name, samples in times.items():
        ratios = [t / off for t, off in zip(samples, times["off"])]
        result[name] = {"ms": 1e3 * statistics.median(samples), "ratio": statistics.median(ratios)}
    return result


def memory(make, batches: int) -> dict[str, int]:
    """Tracker state after `batches` batches vs storing every activation as float32."""
    torch.manual_seed(0)
    model, inputs = make()
    result = {}
    for name, options in MODES.items():
        tracker = NeuronTracker(model, **tracker_options(options))
        stored = 0
        with tracker, torch.no_grad():
            for _ in range(batches):
                model(inputs)
        for layer in tracker.layer_names:
            info = tracker.layer_info(layer)
            stored += info["samples"] * info["width"] * 4  # every sample of every neuron, float32
        result[name] = tracker.state_nbytes()
    result["keep every sample (old design)"] = stored
    return result


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")]
    return names[0] if names else "unknown"


def kernel_name() -> str:
    if not stats_kernel.available():
        return "none (numba is not installed): the eager torch path"
    state = "on" if stats_kernel.ENABLED else "off (NETEVO_STATS_KERNEL=0)"
    return f"numba {importlib.metadata.version('numba')}, {state}"


def clock_name(chosen) -> str:
    return next(name for name, function in CLOCKS.items() if function is chosen)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


STEPS = {"forward": ("forward (no_grad)", forward_step), "train": ("train step (SGD)", train_step)}


def report(reps: int, warmup: int, memory_batches: int, modes: dict, steps: list[str], workloads: dict) -> str:
    lines = [
        f"CPU: {cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"load average (1, 5, 15 min) at start: {load_average()}",
        f"batch {BATCH}, {reps} interleaved repetitions after {warmup} warm-up, {clock_name(clock)} time; "
        "ratio = median over repetitions of (time with tracker) / (time without, same repetition)",
        f"statistics kernel: {kernel_name()}",
        "",
        "| workload | step | no tracker (ms) | " + " | ".join(f"{m} (ms, ratio)" for m in modes) + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    goal = {}
    for workload, make in workloads.items():
        for step_key in steps:
            step_name, step = STEPS[step_key]
            result = measure(make, step, reps, warmup, modes)
            cells = [f"{result[m]['ms']:.2f}, **{result[m]['ratio']:.3f}x**" for m in modes]
            lines.append(f"| {workload} | {step_name} | {result['off']['ms']:.2f} | " + " | ".join(cells) + " |")
            if step_key == "forward" and "stats" in result:
                goal[workload.split()[0]] = result["stats"]["ratio"]
    lines.append(f"\nload average at the end of the timings: {load_average()}")
    if goal:
        figures = ", ".join(f"{name} **{ratio:.3f}x**" for name, ratio in goal.items())
        verdict = "met" if all(ratio <= 1.15 for ratio in goal.values()) else "not met"
        lines.append(f"\nIssue 18 goal, forward-only overhead of statistics <= 1.15x: {figures} ({verdict})")
    if not memory_batches:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Memory after {memory_batches} batches of {BATCH} (bytes of accumulated state):",
        "",
        "| workload | " + " | ".join(MODES) + " | keep every sample (old design) |",
        "|---|" + "---|" * (len(MODES) + 1),
    ]
    for workload, make in WORKLOADS.items():
        result = memory(make, memory_batches)
        lines.append(f"| {workload} | " + " | ".join(f"{value:,}" for value in result.values()) + " |")
    return "\n".join(lines) + "\n"


def torchvision_report(reps: int, warmup: int) -> str:
    lines = [
        f"CPU: {cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"load average (1, 5, 15 min) at start: {load_average()}",
        f"{reps} interleaved repetitions after {warmup} warm-up; ratio = median over repetitions of "
        "(time with tracker) / (time without, same repetition)",
        "",
        "| workload | step | no tracker (ms) | " + " | ".join(f"{m} (ms, ratio)" for m in TORCHVISION_MODES) + " |",
        "|---|---|---|" + "---|" * len(TORCHVISION_MODES),
    ]
    for step_name, step in (("train step (SGD)", train_step), ("forward (no_grad)", forward_step)):
        result = measure(resnet18, step, reps, warmup, TORCHVISION_MODES)
        cells = [f"{result[m]['ms']:.0f}, **{result[m]['ratio']:.3f}x**" for m in TORCHVISION_MODES]
        shape = "x".join(map(str, TORCHVISION_INPUT))
        lines.append(f"| resnet18, batch {shape} | {step_name} | {result['off']['ms']:.0f} | " + " | ".join(cells) + " |")
    lines.append(f"\nload average at the end of the timings: {load_average()}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--memory-batches", type=int, default=100, help="0: skip the memory table")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="tracker modes to time")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="steps to time")
    parser.add_argument("--workloads", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall",
        help="cpu: the thread's CPU time, less disturbed by other jobs on a loaded machine (use with --threads 1)",
    )  # fmt: skip
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--torchvision", action="store_true", help="time torchvision's resnet18 instead")
    parser.add_argument("--tv-batch", type=int, default=8, help="resnet18 batch size")
    parser.add_argument("--tv-size", type=int, default=224, help="resnet18 image height and width")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    TORCHVISION_INPUT[0], TORCHVISION_INPUT[2:] = args.tv_batch, [args.tv_size, args.tv_size]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.torchvision:
        text = torchvision_report(args.reps, args.warmup)
    else:
        modes = {name: MODES[name] for name in args.modes}
        workloads = {name: make for name, make in WORKLOADS.items() if make.__name__ in args.workloads}
        text = report(args.reps, args.warmup, args.memory_batches, modes, args.steps, workloads)
    print(text)
    if args.write:
        command = "python " + " ".join(sys.argv)
        args.write.write_text(f"# NeuronTracker overhead\n\nCommand: `{command}`\n\n{text}")


if __name__ == "__main__":
    main()
