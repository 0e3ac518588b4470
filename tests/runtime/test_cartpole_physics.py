"""Cart-pole physics: balance against gymnasium's CartPole-v1, swing-up against the WANN
authors' equations (google/brain-tokyo-workshop, WANNRelease/WANN/domain/cartpole_swingup.py),
transcribed here in scalar Python as an independent judge."""
import math

import gymnasium
import numpy as np
import torch

from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.runtime.tasks.control import cartpole_physics, swingup_physics, swingup_reward


def test_cartpole_equations_match_gymnasium_step_by_step():
    env = gymnasium.make("CartPole-v1").unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    compared = terminations = 0
    for _ in range(600):
        before = np.array(env.state, dtype=np.float64)
        action = int(rng.integers(2))
        _, reward, terminated, _, _ = env.step(action)
        force = torch.tensor(10.0 if action == 1 else -10.0, dtype=torch.float64)
        ours = cartpole_physics(torch.from_numpy(before), force).numpy()
        np.testing.assert_allclose(ours, env.state, rtol=1e-12, atol=1e-12)
        _, done = make_task("cartpole").reward_and_done(torch.from_numpy(ours))
        assert bool(done) == terminated and reward == 1.0
        compared += 1
        if terminated:
            terminations += 1
            env.reset(seed=int(rng.integers(1000)))
    assert compared == 600 and terminations > 5  # the episodes did end, so termination was tested


def test_cartpole_episode_length_matches_gymnasium():
    task = make_task(("cartpole", {"repeats": 3, "max_steps": 500, "seed": 4}))
    starts = task.initial_states(torch.float64, "cpu")

    def push_right(obs):
        return torch.ones(*obs.shape[:-1], 1, dtype=obs.dtype)

    steps = task.rollout(push_right, (1,), torch.float64)["steps"]
    env = gymnasium.make("CartPole-v1").unwrapped
    lengths = []
    for start in starts:
        env.reset(seed=0)
        env.state = start.numpy().copy()
        n, done = 0, False
        while not done and n < 500:
            _, _, done, _, _ = env.step(1)
            n += 1
        lengths.append(n)
    assert steps.item() == sum(lengths) / len(lengths)
    assert all(n < 100 for n in lengths)  # pushing one way fails fast


def authors_state_update(action, state):
    """cartpole_swingup.py, CartPoleSwingUpEnv.stateUpdate with noise 0."""
    g, m_c, m_p, l_, force_dt = 9.82, 0.5, 0.5, 0.6, 0.01
    total_m, m_p_l, b = m_p + m_c, m_p * l_, 0.1
    x, x_dot, theta, theta_dot = state
    s, c = math.sin(theta), math.cos(theta)
    xdot_update = (-2 * m_p_l * (theta_dot ** 2) * s + 3 * m_p * g * s * c + 4 * action - 4 * b * x_dot) / (
        4 * total_m - 3 * m_p * c ** 2)
    thetadot_update = (-3 * m_p_l * (theta_dot ** 2) * s * c + 6 * total_m * g * s + 6 * (action - b * x_dot) * c) / (
        4 * l_ * total_m - 3 * m_p_l * c ** 2)
    x = x + x_dot * force_dt
    theta = theta + theta_dot * force_dt
    x_dot = x_dot + xdot_update * force_dt
    theta_dot = theta_dot + thetadot_update * force_dt
    return (x, x_dot, theta, theta_dot)


def authors_reward(state):
    x, _, theta, _ = state
    return (math.cos(theta) + 1.0) / 2.0 * math.cos((x / 2.4) * (math.pi / 2.0))


def test_swingup_equations_match_the_authors_step_by_step():
    rng = np.random.default_rng(1)
    state = (0.1, -0.2, math.pi - 0.3, 0.5)
    for _ in range(500):
        action = float(np.clip(rng.normal(), -1, 1)) * 10.0
        expected = authors_state_update(action, state)
        ours = swingup_physics(torch.tensor(state, dtype=torch.float64), torch.tensor(action, dtype=torch.float64))
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)
        assert abs(swingup_reward(ours).item() - authors_reward(expected)) < 1e-12
        state = expected


def test_swingup_episode_matches_the_authors_loop():
    """A policy that always outputs 0.3 (force 3 N), 1,000 steps unless the cart leaves the track."""
    task = make_task(("swingup", {"repeats": 2, "seed": 7}))
    starts = task.initial_states(torch.float64, "cpu")
    result = task.rollout(lambda obs: torch.full((*obs.shape[:-1], 1), 0.3, dtype=obs.dtype), (1,), torch.float64)
    totals, lengths = [], []
    for start in starts.tolist():
        state, total, t = tuple(start), 0.0, 0
        while True:  # task.py: one step, then up to max_episode_length more, env done at t_limit
            state = authors_state_update(0.3 * 10.0, state)
            t += 1
            total += authors_reward(state)
            if state[0] < -2.4 or state[0] > 2.4 or t >= 1000:
                break
        totals.append(total)
        lengths.append(t)
    assert abs(result["reward"].item() - sum(totals) / 2) < 1e-8
    assert result["steps"].item() == sum(lengths) / 2


def test_swingup_starts_hanging_down_with_the_authors_spread():
    starts = make_task(("swingup", {"repeats": 4000, "seed": 0})).initial_states(torch.float64, "cpu")
    mean, std = starts.mean(0), starts.std(0)
    np.testing.assert_allclose(mean.numpy(), [0, 0, math.pi, 0], atol=0.02)
    np.testing.assert_allclose(std.numpy(), [0.2] * 4, atol=0.01)


def test_swingup_observation_is_x_xdot_cos_sin_thetadot():
    task = make_task("swingup")
    obs = task.observe(torch.tensor([0.5, -1.0, math.pi / 2, 2.0], dtype=torch.float64))
    np.testing.assert_allclose(obs.numpy(), [0.5, -1.0, 0.0, 1.0, 2.0], atol=1e-15)
    assert task.force(torch.tensor([3.0, -0.25])).tolist() == [10.0, -2.5]  # clipped to [-1, 1], times 10 N
