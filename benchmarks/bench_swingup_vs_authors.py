"""Swing-up throughput: netevo's `evaluate` against the WANN authors' per-step code, imported unmodified (issue 18).

    python benchmarks/bench_swingup_vs_authors.py --authors /path/to/WANNRelease/WANN [--genomes 64] [--repeat 3]

(or set NETEVO_WANN_AUTHORS). The authors' code is never part of netevo: get it from
github.com/google/brain-tokyo-workshop (WANNRelease/WANN) and point this script at the folder. Their
`domain/cartpole_swingup.py` (`CartPoleSwingUpEnv`), `domain/config.py` (`games["swingup"]`) and
`wann_src/task.py` (`Task.getDistFitness`, which calls `setWeights` and `testInd`, the per-step loop
over `ind.act`, `selectAct` and `env.step`) run as they are; the environment needs the `gym` package
(0.26.2 here). The only addition is a subclass of their environment whose `reset` adds up `self.t`,
the steps of the episode just finished, so that each episode is counted until it ended.

Workload (the issue's): 64 random genomes x 6 shared weights (-2, -1, -0.5, 0.5, 1, 2) x 3 episodes of
at most 1,000 steps. A genome has the 5 observations + bias, `--hidden` 22 hidden nodes drawn from
swing-up's activation pool (ids 1-10) and `--edges` 62 enabled edges (plus 10% disabled), tanh output:
the size of the authors' published swing-up champion (champions/swing.out: 29 nodes, 62 connections).
Both run the same episodes: the authors' `getDistFitness(seed=0)` seeds numpy with 0, 1, 2 before
each repeat's `reset`, and netevo replays those three starting states (`starts=`). Throughput is
episode-steps per second, each side counting the steps of its episodes until they ended. netevo runs
in float32 (its default; physics float64) with live-episode compaction (`evaluate`), without it (the
packed population as a plain policy: every cart stepped until the last episode ends), and with the
one-thread rule for small rollouts switched off. 1 and 2 threads (torch intra-op threads, numpy's BLAS
through threadpoolctl), interleaved in one process; netevo's time is the fastest of `--repeat` runs, the
authors' one run (it takes minutes). A float64 evaluation checks that both sides agree per episode.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from benchmarks.bench_vs_authors import AUTHORS_ACT, authors_matrices, import_authors  # noqa: E402
from benchmarks.common import torch_machine  # noqa: E402
from netevo_dsl.runtime import live_pack  # noqa: E402
from netevo_dsl.runtime.evaluate import evaluate  # noqa: E402
from netevo_dsl.runtime.tasks import control, make_task  # noqa: E402
from netevo_dsl.runtime.wann_pack import pack_population  # noqa: E402
from netevo_dsl.testing.wann_strategies import random_genome  # noqa: E402

WEIGHTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)  # task.py's "standard" weights
SWINGUP_POOL = tuple(name for name, i in AUTHORS_ACT.items() if i <= 10)  # config.py: h_act 1-10
GOAL = 30.0
AGREEMENT_STEPS = 100


def authors_swingup(folder: Path):
    """The authors' Task for swing-up, with an environment that counts the steps of its episodes."""
    _, task_module = import_authors(folder)
    for stub in ("domain", "domain.make_env"):  # import_authors stood in for them; the real ones now
        sys.modules.pop(stub, None)
    sys.path.insert(0, str(folder))
    from domain.cartpole_swingup import CartPoleSwingUpEnv
    from domain.config import games

    class CountingEnv(CartPoleSwingUpEnv):
        steps = 0

        def reset(self):
            self.steps += self.t  # the episode that just ended ran self.t steps
            return super().reset()

    task = task_module.Task(games["swingup"], paramOnly=True)
    task.env = CountingEnv()
    return task


def authors_starts(repeats: int) -> np.ndarray:
    """The starting states getDistFitness(seed=0) gives repeat r: numpy seeded r, then reset's draw."""
    states = []
    for r in range(repeats):
        np.random.seed(r)
        states.append(np.random.normal(loc=np.array([0.0, 0.0, np.pi, 0.0]), scale=np.array([0.2] * 4)))
    return np.array(states)


class Seconds:
    """Wall-clock and CPU seconds (all threads of this process) of one run. On the shared VM a run
    gets a varying share of the cores: CPU seconds are the steadier measure of one-thread work."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    @classmethod
    def start(cls) -> "Seconds":
        return cls(time.perf_counter(), time.process_time())

    def stop(self) -> "Seconds":
        return Seconds(time.perf_counter() - self.wall, time.process_time() - self.cpu)


def run_authors(task, matrices, repeats: int) -> tuple[Seconds, int, np.ndarray]:
    """Seconds, episode-steps and [P, W] mean returns of the authors' getDistFitness over the population."""
    hyp = {"alg_wDist": "standard", "alg_nReps": repeats, "alg_absWCap": 2.0}
    env = task.env
    env.steps, env.t = 0, 0
    seconds = Seconds.start()
    rewards = np.array([task.getDistFitness(w_vec, a_vec, hyp, seed=0, nVals=len(WEIGHTS))
                        for w_vec, a_vec, _, _ in matrices])
    return seconds.stop(), env.steps + env.t, rewards


class CountingPolicy(live_pack.LivePackPolicy):
    """LivePackPolicy that adds up the carts it steps (live or riding along)."""

    carts = 0

    def __call__(self, observations):
        self.carts += observations.shape[:-1].numel()
        return super().__call__(observations)


def uncompacted(population, task, weights):
    """`evaluate`'s control path before compaction: the whole pack stepped until the last episode ends."""
    pack, _ = pack_population(population, task.n_inputs, task.n_outputs, weights, shared_inputs=False)
    values = pack.buffer(task.repeats)
    return task.rollout(lambda obs: pack.forward(obs, values), (len(pack.members), len(weights)), weights.dtype)


def best_of(repeat: int, fn) -> tuple[Seconds, object]:
    """The fastest wall-clock and the fastest CPU seconds of `repeat` runs, and the last result."""
    best, result = Seconds(float("inf"), float("inf")), None
    for _ in range(repeat):
        seconds = Seconds.start()
        result = fn()
        seconds = seconds.stop()
        best = Seconds(min(best.wall, seconds.wall), min(best.cpu, seconds.cpu))
    return best, result


def step_costs(population, task, weights, steps: int = 200) -> dict:
    """Microseconds per step of the packed forward and of the rest (observe, physics, reward, bookkeeping)
    for the whole population and for its quarter (what compaction leaves on this workload)."""
    out = {}
    for n in (len(population), max(1, len(population) // 4)):
        pack, _ = pack_population(population[:n], task.n_inputs, task.n_outputs, weights, shared_inputs=False)
        values = pack.buffer(task.repeats)
        obs = torch.zeros(n, len(weights), task.repeats, task.n_inputs, dtype=weights.dtype)
        forward = best_of(3, lambda: [pack.forward(obs, values) for _ in range(steps)])[0].cpu
        zero = torch.zeros(n, len(weights), task.repeats, 1, dtype=weights.dtype)
        task_copy = make_task(("swingup", {"starts": task.starts.tolist(), "max_steps": steps}))
        task_copy.reward_and_done = lambda state: (control.swingup_reward(state), torch.zeros_like(state[..., 0],
                                                                                                   dtype=torch.bool))
        rest = best_of(3, lambda: task_copy.rollout(lambda o: zero, (n, len(weights)), weights.dtype))[0].cpu
        groups = sum(len(level.groups) for level in pack.levels)
        out[n] = (1e6 * forward / steps, 1e6 * rest / steps, len(pack.levels), groups)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, default=os.environ.get("NETEVO_WANN_AUTHORS"),
                    help="the authors' WANNRelease/WANN folder (or NETEVO_WANN_AUTHORS)")
    ap.add_argument("--genomes", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=22)
    ap.add_argument("--edges", type=int, default=62)
    ap.add_argument("--repeats", type=int, default=3, help="episodes per (genome, weight)")
    ap.add_argument("--repeat", type=int, default=3, help="netevo timings: fastest of this many")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--large", type=int, default=1000,
                    help="also netevo alone on this many genomes x 6 weights x 4 episodes (0: skip)")
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    if args.authors is None:
        sys.exit("pass --authors /path/to/WANNRelease/WANN or set NETEVO_WANN_AUTHORS")
    authors = authors_swingup(args.authors)
    rng = random.Random(0)
    population = [random_genome(rng, 5, 1, args.hidden, args.edges, activations=SWINGUP_POOL, name=f"g{i}",
                                output_activation="tanh") for i in range(args.genomes)]
    matrices = [authors_matrices(g) for g in population]
    starts = authors_starts(args.repeats)
    task = make_task(("swingup", {"starts": starts.tolist(), "max_steps": 1000}))
    weights = torch.tensor(WEIGHTS)
    evaluate(population[:4], task, weights, device="cpu")  # warm-up
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"{threads} thread(s)", file=sys.stderr, flush=True)
        with threadpool_limits(threads):
            theirs_s, theirs_steps, theirs_rewards = run_authors(authors, matrices, args.repeats)
            ours_s, scores = best_of(args.repeat, lambda: evaluate(population, task, weights, device="cpu"))
            plain_s, plain = best_of(args.repeat, lambda: uncompacted(population, task, weights))
            rule, control.SINGLE_THREAD_EPISODES = control.SINGLE_THREAD_EPISODES, 0
            try:
                forced_s, _ = best_of(1, lambda: evaluate(population, task, weights, device="cpu"))
            finally:
                control.SINGLE_THREAD_EPISODES = rule
        ours_steps = float((scores.metrics["steps"] * args.repeats).sum())
        rows.append(dict(threads=threads, theirs_steps=theirs_steps, theirs=theirs_s, ours_steps=ours_steps,
                         ours=ours_s, plain=plain_s, forced=forced_s))
        print({k: vars(v) if isinstance(v, Seconds) else v for k, v in rows[-1].items()}, file=sys.stderr, flush=True)
        scored = ~torch.isnan(scores.per_weight)  # rows with non-finite outputs are failures (NaN) in `evaluate`
        assert torch.equal(plain["reward"].double()[scored], scores.per_weight[scored]), "compaction changed a reward"
    torch.set_num_threads(args.threads[0])
    counting = carts(population, task, weights)
    print("cart-steps with, without compaction, repacks:", counting, file=sys.stderr, flush=True)
    costs = step_costs(population, task, weights)
    print("per-step costs:", costs, file=sys.stderr, flush=True)
    agreement = agree(population, authors, matrices, args.repeats)
    print("agreement:", agreement, file=sys.stderr, flush=True)
    large = large_rows(args.large, args.hidden, args.edges, args.threads) if args.large else []
    report = write(args, rows, counting, costs, agreement, large)
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")


def carts(population, task, weights) -> tuple[int, int, int]:
    """Cart-steps simulated with and without compaction, and the repacks."""
    pack, _ = pack_population(population, task.n_inputs, task.n_outputs, weights, shared_inputs=False)
    policy = CountingPolicy(pack, population, task.n_inputs, task.n_outputs, weights, task.repeats)
    outcome = task.rollout(policy, (len(population), len(weights)), weights.dtype)
    longest = int(outcome["episode_steps"].max())
    return policy.carts, len(population) * len(weights) * task.repeats * longest, policy.repacks


def agree(population, authors, matrices, repeats, horizon: int = AGREEMENT_STEPS) -> tuple[float, int, int]:
    """(genome, weight) mean returns, netevo in float64 against the authors, over episodes cut at `horizon`
    steps (their environment's `t_limit`, an attribute): the largest |difference|, the pairs within 1e-9,
    the pairs. The dynamics amplify one rounding (netevo's sin against math.sin, a sum in another order)
    step after step, most where a `step` node's input is near 0 or the gain |w| is 2, so the comparison
    is over a horizon and counts the pairs that agree."""
    limit, authors.env.t_limit = authors.env.t_limit, horizon
    try:
        _, _, theirs = run_authors(authors, matrices, repeats)
    finally:
        authors.env.t_limit = limit
    task = make_task(("swingup", {"starts": authors_starts(repeats).tolist(), "max_steps": horizon}))
    ours = evaluate(population, task, torch.tensor(WEIGHTS, dtype=torch.float64), device="cpu",
                    dtype=torch.float64).per_weight.numpy()
    difference = np.abs(ours - theirs)
    return float(difference.max()), int((difference <= 1e-9).sum()), ours.size


def large_rows(n: int, hidden: int, edges: int, thread_counts) -> list[dict]:
    """netevo alone on a large population (the RESULTS row of issue 6 at 1,000 steps): compaction
    and threads where the per-step tensors are not small."""
    rng = random.Random(1)
    population = [random_genome(rng, 5, 1, hidden, edges, activations=SWINGUP_POOL, name=f"g{i}",
                                output_activation="tanh") for i in range(n)]
    task = make_task(("swingup", {"repeats": 4, "max_steps": 1000}))
    weights = torch.tensor(WEIGHTS)
    out = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"large population, {threads} thread(s)", file=sys.stderr, flush=True)
        compacted_s, scores = best_of(1, lambda: evaluate(population, task, weights, device="cpu"))
        plain_s, _ = best_of(1, lambda: uncompacted(population, task, weights))
        steps = float((scores.metrics["steps"] * task.repeats).sum())
        out.append(dict(threads=threads, n=n, episodes=n * len(WEIGHTS) * task.repeats, steps=steps,
                        compacted_s=compacted_s, plain_s=plain_s))
        print(out[-1]["n"], threads, vars(compacted_s), vars(plain_s), file=sys.stderr, flush=True)
    torch.set_num_threads(thread_counts[0])
    return out


def rate(steps: float, seconds: Seconds) -> tuple[float, float]:
    return steps / seconds.wall, steps / seconds.cpu


def write(args, rows, counting, costs, agreement, large) -> str:
    compacted, uncompacted_carts, repacks = counting
    lines = [f"Command: `python benchmarks/bench_swingup_vs_authors.py --authors ... --genomes {args.genomes} "
             f"--hidden {args.hidden} --edges {args.edges} --repeat {args.repeat}`",
             f"Machine: {torch_machine()}; load average {tuple(round(v, 1) for v in os.getloadavg())} (shared).", "",
             "Episode-steps per second, by wall clock and per CPU second (in brackets); ratios against the "
             "authors' code on the same measure:", "",
             "| threads | authors' code | netevo `evaluate` | ratio | goal 30x (wall) | netevo without compaction "
             "| netevo, rollout threads not capped |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        theirs = rate(r["theirs_steps"], r["theirs"])
        ours = rate(r["ours_steps"], r["ours"])
        ratio = ours[0] / theirs[0]

        def against(seconds):
            mine = rate(r["ours_steps"], seconds)
            return f"{mine[0]:,.0f} [{mine[1]:,.0f}] ({mine[0] / theirs[0]:.1f}x [{mine[1] / theirs[1]:.1f}x])"

        lines.append(f"| {r['threads']} | {theirs[0]:,.0f} [{theirs[1]:,.0f}] | {ours[0]:,.0f} [{ours[1]:,.0f}] | "
                     f"{ratio:.1f}x [{ours[1] / theirs[1]:.1f}x] | "
                     f"{'met' if ratio >= GOAL else f'missed by {GOAL / ratio:.1f}x'} | "
                     f"{against(r['plain'])} | {against(r['forced'])} |")
    steps = rows[0]["ours_steps"]
    lines += ["", f"Episode-steps: the authors {rows[0]['theirs_steps']:,}, netevo (float32 policy) {steps:,.0f}; "
              f"authors' run {rows[0]['theirs'].wall:.0f} s wall with 1 thread, netevo's {rows[0]['ours'].wall:.2f} s. "
              "Cart-steps simulated by netevo: "
              f"{uncompacted_carts:,} without compaction ({100 * (1 - steps / uncompacted_carts):.0f}% of them for "
              f"episodes that had ended), {compacted:,} with it ({100 * (1 - steps / compacted):.0f}%), "
              f"{repacks} repacks.",
              f"Same episodes: netevo in float64 against the authors, episodes cut at {AGREEMENT_STEPS} steps: "
              f"{agreement[1]} of {agreement[2]} (genome, weight) mean returns agree within 1e-9; the largest "
              f"difference is {agreement[0]:.2g} (a rounding amplified by the dynamics).", "",
              "| genomes packed | levels | activation groups | forward per step (CPU) | rest of a step (observe, "
              "physics, reward, bookkeeping) |", "|---:|---:|---:|---:|---:|"]
    for n, (forward, rest, levels, groups) in costs.items():
        lines.append(f"| {n} | {levels} | {groups} | {forward:.0f} us | {rest:.0f} us |")
    if large:
        lines += ["", f"netevo alone, {large[0]['n']:,} genomes x 6 weights x 4 episodes ({large[0]['episodes']:,} "
                  f"episodes, {large[0]['steps']:,.0f} episode-steps), <= 1,000 steps, one run each:", "",
                  "| threads | with compaction | without | speed-up, wall [CPU] |", "|---|---:|---:|---:|"]
        for r in large:
            lines.append(f"| {r['threads']} | {r['compacted_s'].wall:.2f} s [{r['compacted_s'].cpu:.2f} CPU s] | "
                         f"{r['plain_s'].wall:.2f} s [{r['plain_s'].cpu:.2f} CPU s] | "
                         f"{r['plain_s'].wall / r['compacted_s'].wall:.2f}x "
                         f"[{r['plain_s'].cpu / r['compacted_s'].cpu:.2f}x] |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
