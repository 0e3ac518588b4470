"""Live-episode compaction for layered networks (issue 18, item 2): swing-up rollouts of a population of
networks in shared-weight mode, with finished episodes leaving the batch (`runtime/live_group.py`) and
without (every cart stepped until the last episode of the chunk ends, what `evaluate_networks` ran before).

    python benchmarks/bench_live_networks.py [--networks 64] [--repeat 3] [--threads 1]

Workload: `--networks` two-hidden-layer networks (5 observations -> 8 or 16 tanh/sin units -> 1 output, random
masks), one architecture so one group (widths padded), x 6 shared weights x 3 episodes of at most 1,000
steps, float32 policy, float64 physics, CPU. Prints episode-steps per second both ways (the fastest of
`--repeat`, interleaved), the cart-steps each simulated, and asserts that both give the same bits.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import netevo_dsl as ne  # noqa: E402
from benchmarks.common import torch_machine  # noqa: E402
from netevo_dsl.runtime.evaluate_networks import network_graphs  # noqa: E402
from netevo_dsl.runtime.live_group import LiveGroupPolicy  # noqa: E402
from netevo_dsl.runtime.network_groups import network_groups  # noqa: E402
from netevo_dsl.runtime.network_program import GroupProgram  # noqa: E402
from netevo_dsl.runtime.tasks import make_task  # noqa: E402

WEIGHTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
SPEC = """mask m = random(density={density}, seed={seed})
network n {{
  input x: [B, 5]
  h = x |> linear(out={width}, mask=m) |> tanh()
  g = h |> linear(out={width}) |> sin()
  output y = linear(g, out=1, mask=random(density=0.7, seed={seed}))
}}"""


class CountingPolicy:
    """Counts the cart-steps a policy is asked for (the batch it is called on, step by step)."""

    def __init__(self, policy):
        self.policy, self.cart_steps = policy, 0
        if hasattr(policy, "keep"):
            self.keep = policy.keep

    def __call__(self, observations):
        self.cart_steps += observations.shape[:-1].numel()
        return self.policy(observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = [ne.parse(SPEC.format(density=(0.4, 0.7, 1.0)[i % 3], seed=i, width=(8, 16)[i % 2]))
             for i in range(args.networks)]
    task = make_task(("swingup", {"repeats": 3, "max_steps": 1000, "seed": 0}))
    weights = torch.tensor(WEIGHTS, dtype=torch.float32)
    graphs, failures = network_graphs(specs, task)
    assert not failures
    (plan,) = network_groups(graphs, "pad")
    program = GroupProgram(plan, weights.device, weights.dtype)
    shape = (len(plan.members), len(weights))
    rows = slice(0, len(plan.members))

    def plain():
        stacks = program.select(rows)
        policy = CountingPolicy(lambda obs: program(stacks, obs, weights, task.repeats, shared_input=False))
        return task.rollout(policy, shape, weights.dtype), policy

    def live():
        policy = CountingPolicy(LiveGroupPolicy(program, rows, weights, task.repeats))
        return task.rollout(policy, shape, weights.dtype), policy

    best = {"plain": float("inf"), "live": float("inf")}
    outcomes = {}
    with torch.no_grad():
        for _ in range(args.repeat):
            for name, run in (("plain", plain), ("live", live)):
                t0 = time.perf_counter()
                outcomes[name] = run()
                best[name] = min(best[name], time.perf_counter() - t0)
    for key, value in outcomes["plain"][0].items():
        assert torch.equal(torch.nan_to_num(value, nan=7.0), torch.nan_to_num(outcomes["live"][0][key], nan=7.0)), key
    episode_steps = int(outcomes["plain"][0]["episode_steps"].sum())
    print(f"machine: {torch_machine()}")
    print(f"{args.networks} networks x {len(WEIGHTS)} weights x {task.repeats} episodes <= 1,000 steps: "
          f"{episode_steps:,} episode-steps; results bit for bit the same")
    print("| rollout | cart-steps simulated | s (fastest of %d) | episode-steps/s |" % args.repeat)
    print("|---|---:|---:|---:|")
    for name in ("plain", "live"):
        print(f"| {name} | {outcomes[name][1].cart_steps:,} | {best[name]:.3f} | {episode_steps / best[name]:,.0f} |")
    print(f"compaction speed-up: {best['plain'] / best['live']:.2f}x")


if __name__ == "__main__":
    main()
