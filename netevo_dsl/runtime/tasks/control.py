"""Control tasks: batched cart-pole simulations over population x weights x repeats.

Every (individual, weight) pair of one evaluation faces the same `repeats`
starting states (common random numbers, as the WANN code tests a population on
the same seeds), so differences in reward come from the networks, not from luck.
In a run the states are drawn afresh every generation from the run's seed and
the generation number (`start_generation`), as the authors draw them per
generation, so evolution cannot overfit a fixed set of starts; `starts=` replays
given ones instead. Physics runs in float64 unless `precision="float32"`; the
policy sees the observations in its own dtype. Per-episode returns are kept
(`episode_reward`, [population, weights, repeats]); `reward` is their mean.

swingup: a port of the WANN authors' environment, google/brain-tokyo-workshop,
  WANNRelease/WANN/domain/cartpole_swingup.py (itself from DeepPILCO), with the
  episode loop of WANNRelease/WANN/wann_src/task.py: same constants, dt, starting
  state N([0, 0, pi, 0], 0.2), reward, 1,000-step limit and termination when the
  cart leaves [-2.4, 2.4] (the terminating step is still rewarded).
cartpole: gymnasium's CartPole-v1 (euler integrator, bang-bang force, +1 per
  step including the terminating one, 500-step limit).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ...errors import UsageError
from .classification import draw_seed

# --- swing-up constants, from cartpole_swingup.py ---------------------------------
SWINGUP_GRAVITY = 9.82
SWINGUP_CART_MASS = 0.5
SWINGUP_POLE_MASS = 0.5
SWINGUP_POLE_LENGTH = 0.6
SWINGUP_FORCE = 10.0
SWINGUP_DT = 0.01
SWINGUP_FRICTION = 0.1
SWINGUP_X_LIMIT = 2.4

# --- balance constants, from gymnasium CartPole-v1 ---------------------------------
CARTPOLE_GRAVITY = 9.8
CARTPOLE_CART_MASS = 1.0
CARTPOLE_POLE_MASS = 0.1
CARTPOLE_HALF_LENGTH = 0.5
CARTPOLE_FORCE = 10.0
CARTPOLE_TAU = 0.02
CARTPOLE_X_LIMIT = 2.4
CARTPOLE_THETA_LIMIT = 12 * 2 * math.pi / 360


def swingup_physics(state: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
    """One explicit-Euler step of the swing-up dynamics; state [..., 4] = x, x_dot, theta, theta_dot."""
    x, x_dot, theta, theta_dot = state.unbind(-1)
    m_p, total_m, length = SWINGUP_POLE_MASS, SWINGUP_CART_MASS + SWINGUP_POLE_MASS, SWINGUP_POLE_LENGTH
    m_p_l, g, b = m_p * length, SWINGUP_GRAVITY, SWINGUP_FRICTION
    s, c = torch.sin(theta), torch.cos(theta)
    xdot_update = (-2 * m_p_l * theta_dot**2 * s + 3 * m_p * g * s * c + 4 * force - 4 * b * x_dot) / (
        4 * total_m - 3 * m_p * c**2
    )
    thetadot_update = (-3 * m_p_l * theta_dot**2 * s * c + 6 * total_m * g * s + 6 * (force - b * x_dot) * c) / (
        4 * length * total_m - 3 * m_p_l * c**2
    )
    dt = SWINGUP_DT
    return torch.stack(
        [x + x_dot * dt, x_dot + xdot_update * dt, theta + theta_dot * dt, theta_dot + thetadot_update * dt], -1
    )


def swingup_reward(state: torch.Tensor) -> torch.Tensor:
    x, theta = state[..., 0], state[..., 2]
    return (torch.cos(theta) + 1.0) / 2.0 * torch.cos((x / SWINGUP_X_LIMIT) * (math.pi / 2.0))


def cartpole_physics(state: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
    """One euler step of CartPole-v1's dynamics, same operations as gymnasium's `step`."""
    x, x_dot, theta, theta_dot = state.unbind(-1)
    total_mass = CARTPOLE_POLE_MASS + CARTPOLE_CART_MASS
    polemass_length = CARTPOLE_POLE_MASS * CARTPOLE_HALF_LENGTH
    costheta, sintheta = torch.cos(theta), torch.sin(theta)
    temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
    thetaacc = (CARTPOLE_GRAVITY * sintheta - costheta * temp) / (
        CARTPOLE_HALF_LENGTH * (4.0 / 3.0 - CARTPOLE_POLE_MASS * costheta**2 / total_mass)
    )
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    tau = CARTPOLE_TAU
    return torch.stack([x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc], -1)


Policy = Callable[[torch.Tensor], torch.Tensor]  # observations [..., n_inputs] -> outputs [..., n_outputs]


PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


class ControlTask:
    kind = "control"
    n_outputs = 1
    state_size = 4

    def __init__(self, name: str, repeats: int, max_steps: int, seed: int, params: dict | None = None, *,
                 precision: str = "float64", starts=None):
        self.name = name
        self.max_steps = int(max_steps)
        self.seed = int(seed)
        self.params = dict(params or {})
        if precision not in PRECISIONS:
            raise UsageError(f"task `{name}`: precision must be float64 or float32, got {precision!r}",
                             hint="float64 (the default) matches the authors' numpy physics; float32 on request",
                             code="E191")
        self.physics_dtype = PRECISIONS[precision]
        self.starts = None if starts is None else read_starts(starts, name, self.state_size)
        self.repeats = int(repeats) if self.starts is None else len(self.starts)
        self.draw_base, self.generation = self.seed, 0
        # [population, weights] except episode_reward: [population, weights, repeats]
        self.metric_dims = {"reward": 2, "steps": 2, "episode_reward": 3}

    def start_generation(self, run_seed: int, generation: int) -> dict:
        """The next evaluations start from generation `generation`'s states of a run seeded
        `run_seed` (given `starts` stay); returns what the run's log records."""
        if self.starts is not None:
            return {"starts": "given"}
        self.draw_base, self.generation = int(run_seed), int(generation)
        return {"episode_seed": draw_seed(run_seed, generation)}

    def initial_states(self, dtype=None, device="cpu") -> torch.Tensor:
        """[repeats, 4] starting states: the given ones, or this generation's draw."""
        dtype = self.physics_dtype if dtype is None else dtype
        if self.starts is not None:
            return self.starts.to(device, dtype)
        rng = np.random.default_rng(draw_seed(self.draw_base, self.generation))
        return torch.from_numpy(self.draw_starts(rng)).to(device, dtype)

    def rollout(self, policy: Policy, batch_shape: tuple, dtype=torch.float64, device="cpu") -> dict:
        """Run `repeats` episodes for every element of `batch_shape` (e.g. population x weights).

        `policy` gets observations [*batch_shape, repeats, n_inputs] in `dtype` and returns
        outputs [*batch_shape, repeats, n_outputs]; the physics runs in the task's precision.
        Returns `episode_reward` and `episode_steps` [*batch_shape, repeats], reward and steps
        averaged over repeats, and `nonfinite`: True where the policy produced a NaN or
        infinity while its episode was still running.

        A policy with a `keep(alive)` method (a `LivePolicy`) lets finished episodes leave the
        batch: every COMPACT_EVERY steps, if episodes ended since the last time, it is shown
        which are live and may name, per axis of the batch, the indices it keeps running;
        observations then come shaped by those. Results are the same bits as without compaction: every episode's
        arithmetic is elementwise and its own. Small batches run on one thread (`rollout_threads`).
        """
        start = self.initial_states(self.physics_dtype, device)
        state = start.expand(*batch_shape, *start.shape).clone()
        shape = state.shape[:-1]
        alive = torch.ones(shape, dtype=torch.bool, device=device)
        total = torch.zeros(shape, dtype=torch.float64, device=device)
        steps = torch.zeros(shape, dtype=torch.float64, device=device)
        nonfinite = torch.zeros(shape, dtype=torch.bool, device=device)
        live = LiveEpisodes(shape, device) if callable(getattr(policy, "keep", None)) else None
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(rollout_threads(alive.numel(), previous_threads))
        try:
            for step in range(1, self.max_steps + 1):
                outputs = policy(self.observe(state).to(dtype)).to(self.physics_dtype)
                finite = torch.isfinite(outputs).all(-1)
                nonfinite |= alive & ~finite
                force = self.force(torch.where(finite, outputs[..., 0], torch.zeros_like(outputs[..., 0])))
                state = self.physics(state, force)
                reward, done = self.reward_and_done(state)
                # where, not multiply: finished episodes keep simulating and may overflow to NaN
                total += torch.where(alive, reward, torch.zeros_like(reward)).to(torch.float64)
                steps += alive.to(torch.float64)
                alive &= ~done
                if not bool(alive.any()):
                    break
                if live is not None and step % COMPACT_EVERY == 0:
                    n_alive = int(alive.sum())
                    if n_alive < live.checked_at:  # episodes ended since the last look
                        state, alive, total, steps, nonfinite = live.compact(
                            policy, n_alive, state, alive, total, steps, nonfinite)
        finally:
            torch.set_num_threads(previous_threads)
        if live is not None:
            total, steps, nonfinite = live.results(total, steps, nonfinite)
        return {"reward": total.mean(-1), "steps": steps.mean(-1), "nonfinite": nonfinite.any(-1),
                "episode_reward": total, "episode_steps": steps}

    @staticmethod
    def metrics_of(outcome: dict) -> dict:
        """The metrics a `Scores` keeps from a rollout (besides `reward`)."""
        return {"steps": outcome["steps"], "episode_reward": outcome["episode_reward"]}


# How often (in steps) a `LivePolicy` is shown which episodes are live: a look costs a few
# reductions, a repack (the policy's choice) about as much as a few steps.
COMPACT_EVERY = 16

# Below this many episodes per step, the rollout runs on one thread: its tensors are small and a
# second thread only adds a barrier per call (benchmarks/RESULTS.md, "Swing-up throughput").
SINGLE_THREAD_EPISODES = 1 << 14


def rollout_threads(episodes: int, threads: int) -> int:
    return 1 if episodes < SINGLE_THREAD_EPISODES else threads


class LivePolicy(Protocol):
    """A policy whose batch can shrink to the episodes still running (see `ControlTask.rollout`)."""

    def __call__(self, observations: torch.Tensor) -> torch.Tensor: ...

    def keep(self, alive: torch.Tensor) -> tuple | None:
        """alive: [*current batch] bool. Returns, per axis, the indices (a LongTensor, or None for
        all) the policy runs from now on, every live episode among them; or None to go on as is."""


class LiveEpisodes:
    """Where the episodes of a compacted batch sit in the full [*batch_shape, repeats] results."""

    def __init__(self, shape: torch.Size, device):
        self.shape = shape
        self.index = torch.arange(shape.numel(), device=device).view(shape)  # full position of each
        self.total = torch.zeros(shape.numel(), dtype=torch.float64, device=device)
        self.steps = torch.zeros_like(self.total)
        self.nonfinite = torch.zeros(shape.numel(), dtype=torch.bool, device=device)
        self.checked_at = shape.numel()

    def compact(self, policy: LivePolicy, n_alive: int, *batch):
        """Ask the policy which episodes it keeps; returns `batch` (state, alive, total, steps,
        nonfinite) cut to them, after saving the results of those that leave."""
        self.checked_at = n_alive
        state, alive, total, steps, nonfinite = batch
        keep = policy.keep(alive)
        if keep is None:
            return batch
        self.save(total, steps, nonfinite)
        cut = []
        for tensor in (state, alive, total, steps, nonfinite, self.index):
            for axis, indices in enumerate(keep):
                if indices is not None:
                    tensor = tensor.index_select(axis, indices)
            cut.append(tensor)
        self.index = cut.pop()
        return tuple(cut)

    def save(self, total, steps, nonfinite) -> None:
        where = self.index.reshape(-1)
        self.total[where] = total.reshape(-1)
        self.steps[where] = steps.reshape(-1)
        self.nonfinite[where] = nonfinite.reshape(-1)

    def results(self, total, steps, nonfinite) -> tuple:
        self.save(total, steps, nonfinite)
        return self.total.view(self.shape), self.steps.view(self.shape), self.nonfinite.view(self.shape)


def read_starts(starts, name: str, size: int) -> torch.Tensor:
    """Explicit starting states: rows of `size` numbers, or a text file with one state per line
    (numbers separated by spaces or commas, `#` comments), e.g. someone else's episodes to replay."""
    where = ""
    try:
        if isinstance(starts, (str, Path)):
            where = f" in {starts}"
            rows = np.loadtxt(starts, delimiter=None if "," not in Path(starts).read_text() else ",", ndmin=2)
        else:
            rows = np.array(starts, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"task `{name}`: cannot read starting states{where}: {e}",
                         hint=f"give rows of {size} numbers (x, x_dot, theta, theta_dot), one per episode",
                         code="E192") from None
    if rows.ndim != 2 or rows.shape[1] != size or len(rows) == 0 or not np.isfinite(rows).all():
        raise UsageError(f"task `{name}`: starting states{where} must be finite rows of {size} numbers, "
                         f"got shape {tuple(rows.shape)}",
                         hint=f"one row per episode: x, x_dot, theta, theta_dot", code="E192")
    return torch.from_numpy(rows.astype(np.float64))


class SwingUpTask(ControlTask):
    n_inputs = 5

    def draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        # cartpole_swingup.py's reset: N([0, 0, pi, 0], 0.2) per episode
        return np.array([0.0, 0.0, math.pi, 0.0]) + 0.2 * rng.standard_normal((self.repeats, 4))

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        x, x_dot, theta, theta_dot = state.unbind(-1)
        return torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], -1)

    def force(self, output: torch.Tensor) -> torch.Tensor:
        return output.clamp(-1.0, 1.0) * SWINGUP_FORCE

    def physics(self, state, force):
        return swingup_physics(state, force)

    def reward_and_done(self, state):
        x = state[..., 0]
        return swingup_reward(state), (x < -SWINGUP_X_LIMIT) | (x > SWINGUP_X_LIMIT)


class CartPoleTask(ControlTask):
    n_inputs = 4

    def draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        # gymnasium's reset: uniform in [-0.05, 0.05]^4
        return rng.uniform(-0.05, 0.05, (self.repeats, 4))

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def force(self, output: torch.Tensor) -> torch.Tensor:
        # CartPole-v1 has two discrete actions; a positive output pushes right.
        return torch.where(output > 0, CARTPOLE_FORCE, -CARTPOLE_FORCE).to(output.dtype)

    def physics(self, state, force):
        return cartpole_physics(state, force)

    def reward_and_done(self, state):
        x, theta = state[..., 0], state[..., 2]
        done = (x < -CARTPOLE_X_LIMIT) | (x > CARTPOLE_X_LIMIT) | (theta < -CARTPOLE_THETA_LIMIT) | (
            theta > CARTPOLE_THETA_LIMIT)
        return torch.ones_like(x), done


def load_control_task(name: str, params: dict) -> ControlTask:
    cls = {"swingup": SwingUpTask, "cartpole": CartPoleTask}[name]
    return cls(name, params["repeats"], params["max_steps"], params["seed"], params,
               precision=params["precision"], starts=params["starts"])
