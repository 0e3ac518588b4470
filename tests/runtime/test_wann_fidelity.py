"""The WANN protocol as the authors run it (Gaier & Ha 2019; their code, google/brain-tokyo-workshop,
WANNRelease/WANN: domain/classify_gym.py, domain/config.py, domain/cartpole_swingup.py, wann_src/task.py).

The expected values are written out here from the authors' definitions, not taken from netevo:
- digits: `digits.images / 16` reshaped to 64 features (classify_gym.py, digit_raw);
- ClassifyEnv.reset draws `np.random.permutation(n)[:1000]`: 1,000 training samples per evaluation;
- swing-up starts at N([0, 0, pi, 0], 0.2), fresh each episode; the episode loop of task.py.
"""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import netevo_dsl as ne
from netevo_dsl.errors import UsageError
from netevo_dsl.ir import nodes as ir
from netevo_dsl.evolve.run import Evolution
from netevo_dsl.evolve.settings import resolve_settings
from netevo_dsl.runtime.tasks import make_task


# --- classification -------------------------------------------------------------------


def test_digits_features_are_the_authors_pixels_over_16():
    task = make_task("digits")
    authors = load_digits().images.reshape(-1, 64) / 16.0  # classify_gym.py: digits.images / 16, 8x8 -> 64
    assert task.features.dtype == torch.float64
    np.testing.assert_array_equal(task.features.numpy(), authors[task.rows])
    assert float(task.features.min()) == 0.0 and float(task.features.max()) == 1.0
    # labels stay with their rows
    np.testing.assert_array_equal(task.labels.numpy(), load_digits().target[task.rows])


def test_digits_z_scoring_is_still_available():
    task = make_task(("digits", {"scale": "z"}))
    raw = load_digits().images.reshape(-1, 64).astype(np.float64)
    train = raw[task.rows[: task.n_train]]
    std = train.std(0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(task.features.numpy(), (raw[task.rows] - train.mean(0)) / std, rtol=0, atol=1e-12)
    with pytest.raises(UsageError, match="scale") as err:
        make_task(("digits", {"scale": -1}))
    assert err.value.code == "E190"


def test_minibatch_is_1000_training_samples_fresh_per_generation_and_reproducible():
    task = make_task("digits")
    assert task.n_train == 1437 and task.batch_size == 1000  # 80% of 1,797; the authors' 1,000
    masks = {}
    for generation in range(3):
        record = task.start_generation(5, generation)
        mask = task.next_batch_mask()
        assert int(mask.sum()) == 1000
        assert not mask[task.n_train:].any()  # never a test sample
        # the authors' draw, written out: the first 1,000 of a permutation of the training rows
        expected = np.zeros(task.n_samples, dtype=bool)
        expected[np.random.default_rng(record["minibatch_seed"]).permutation(task.n_train)[:1000]] = True
        np.testing.assert_array_equal(mask.numpy(), expected)
        masks[generation] = mask
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    other = make_task("digits")
    other.start_generation(5, 1)
    assert torch.equal(other.next_batch_mask(), masks[1])  # same run seed and generation: same samples
    other.start_generation(6, 1)
    assert not torch.equal(other.next_batch_mask(), masks[1])  # another run seed: other samples


def test_small_training_sets_are_used_whole():
    task = make_task("iris")
    assert task.batch_size == task.n_train == 120
    assert task.start_generation(0, 3) == {"minibatch": "whole training split"}
    assert bool(task.next_batch_mask()[:120].all())


DIGITS_RUN = "specs/wann_digits.net"


def test_run_log_records_each_generations_minibatch(tmp_path):
    spec = ne.load(DIGITS_RUN)
    s = resolve_settings(spec, overrides={"population": 8, "generations": 2, "device": "cpu"})
    Evolution(spec, s, tmp_path / "run", progress=False, report=False).execute()
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    seeds = [line["draw"]["minibatch_seed"] for line in lines]
    task = make_task("digits")
    assert seeds == [task.start_generation(s.seed, g)["minibatch_seed"] for g in range(2)]
    assert seeds[0] != seeds[1]


# --- control ------------------------------------------------------------------------------

from netevo_dsl.runtime.evaluate import evaluate  # noqa: E402
from netevo_dsl.runtime.reference import reference_evaluate  # noqa: E402
from netevo_dsl.runtime.tasks.control import SWINGUP_FORCE, swingup_physics, swingup_reward  # noqa: E402

SWING = ne.load("specs/wann_swingup.net").genomes[0]


def test_fresh_starting_states_every_generation_reproducible_from_the_seed():
    task = make_task(("swingup", {"repeats": 3}))
    starts = []
    for generation in range(3):
        task.start_generation(11, generation)
        starts.append(task.initial_states(torch.float64, "cpu"))
    assert all(s.shape == (3, 4) for s in starts)
    assert not torch.equal(starts[0], starts[1]) and not torch.equal(starts[1], starts[2])
    again = make_task(("swingup", {"repeats": 3}))
    record = again.start_generation(11, 1)
    assert torch.equal(again.initial_states(torch.float64, "cpu"), starts[1])
    # the authors' distribution N([0, 0, pi, 0], 0.2), written out from the recorded seed
    expected = np.array([0, 0, np.pi, 0]) + 0.2 * np.random.default_rng(record["episode_seed"]).standard_normal((3, 4))
    np.testing.assert_array_equal(starts[1].numpy(), expected)
    again.start_generation(12, 1)
    assert not torch.equal(again.initial_states(torch.float64, "cpu"), starts[1])


def hand_written_returns(policy_output, starts, max_steps=1000):
    """The authors' episode loop (task.py) over swingup_physics in float64, one episode at a time."""
    returns = []
    for start in starts:
        state, total = torch.tensor(start, dtype=torch.float64), 0.0
        for _ in range(max_steps):
            x, x_dot, theta, theta_dot = state.tolist()
            obs = torch.tensor([x, x_dot, np.cos(theta), np.sin(theta), theta_dot], dtype=torch.float64)
            force = torch.tensor(min(max(policy_output(obs), -1.0), 1.0) * SWINGUP_FORCE, dtype=torch.float64)
            state = swingup_physics(state, force)
            total += float(swingup_reward(state))
            if not -2.4 <= float(state[0]) <= 2.4:
                break
        returns.append(total)
    return returns


def test_explicit_starting_states_replay_exactly_and_episodes_are_kept(tmp_path):
    starts = [[0.1, 0.0, 3.0, 0.2], [-0.3, 0.5, 2.9, -0.1], [0.0, 0.0, 3.3, 0.0]]
    path = tmp_path / "starts.txt"
    path.write_text("# x x_dot theta theta_dot\n" + "\n".join(" ".join(map(str, s)) for s in starts) + "\n")
    steps = 300

    def policy(obs):  # a fixed nonlinear controller: 0.7 * tanh(x_dot - 2 sin(theta))
        return float(0.7 * torch.tanh(obs[1] - 2 * obs[3]))

    expected = hand_written_returns(policy, starts, steps)
    for given in (starts, str(path)):
        task = make_task(("swingup", {"starts": given, "max_steps": steps}))
        assert task.repeats == 3 and task.start_generation(4, 9) == {"starts": "given"}  # a run keeps them
        out = task.rollout(lambda obs: 0.7 * torch.tanh(obs[..., 1:2] - 2 * obs[..., 3:4]), (1,), torch.float64)
        np.testing.assert_allclose(out["episode_reward"][0].numpy(), expected, rtol=1e-12, atol=1e-9)
        assert out["reward"].item() == pytest.approx(float(np.mean(expected)), rel=1e-12)
    for bad in ([[0.0, 1.0]], str(tmp_path / "missing.txt"), [[0.0, 0.0, float("nan"), 0.0]]):
        with pytest.raises(UsageError) as err:
            make_task(("swingup", {"starts": bad}))
        assert err.value.code == "E192"


def test_scores_keep_per_episode_returns_whose_mean_is_the_reward():
    task = make_task(("swingup", {"repeats": 3, "max_steps": 120}))
    task.start_generation(0, 2)
    for scorer in (evaluate, reference_evaluate):
        scores = scorer([SWING], task, dtype=torch.float64, device="cpu")
        episodes = scores.metrics["episode_reward"]
        assert episodes.shape == (1, len(scores.weights), 3)
        torch.testing.assert_close(episodes.mean(-1), scores.per_weight, rtol=1e-12, atol=0)
        assert episodes.std(-1).gt(0).any()  # the three episodes differ


def test_physics_is_float64_by_default_and_float32_on_request():
    default = make_task(("swingup", {"repeats": 2, "max_steps": 200}))
    fast = make_task(("swingup", {"repeats": 2, "max_steps": 200, "precision": "float32"}))
    assert default.physics_dtype == torch.float64 and fast.physics_dtype == torch.float32
    assert default.initial_states().dtype == torch.float64

    def push(obs):
        return torch.full((*obs.shape[:-1], 1), 0.5, dtype=obs.dtype)  # exact in float32 too

    exact = default.rollout(push, (1,), torch.float32)["episode_reward"]  # a float32 policy, float64 physics
    expected = hand_written_returns(lambda obs: 0.5, default.initial_states().tolist(), 200)
    np.testing.assert_allclose(exact[0].numpy(), expected, rtol=1e-12)
    rough = fast.rollout(push, (1,), torch.float32)["episode_reward"]
    assert not torch.equal(rough, exact)
    np.testing.assert_allclose(rough[0].numpy(), expected, rtol=1e-3)
    with pytest.raises(UsageError) as err:
        make_task(("swingup", {"precision": "float16"}))
    assert err.value.code == "E191"


def test_report_and_analyze_show_mean_and_std_over_episodes():
    from netevo_dsl.evolve.report import headline
    from netevo_dsl.runtime.analysis import ensemble_evaluation

    task = ("swingup", {"repeats": 4, "max_steps": 100})
    flat = evaluate([SWING], task, device="cpu").metrics["episode_reward"][0].flatten().numpy()  # as the run
    numbers = headline(SWING, task)
    assert numbers["episodes per weight"] == 4
    assert numbers["episode return, mean over all weights and episodes"] == pytest.approx(flat.mean(), rel=1e-6)
    assert numbers["episode return, std over all weights and episodes"] == pytest.approx(flat.std(), rel=1e-6)
    episodes = evaluate([SWING], task, dtype=torch.float64, device="cpu").metrics["episode_reward"][0]
    data = ensemble_evaluation(SWING, task, device="cpu")  # in float64
    assert data["episodes"] == 4 and data["episode_std"] == pytest.approx(episodes.numpy().std(), rel=1e-12)
    np.testing.assert_allclose(data["episode_std_per_weight"], episodes.numpy().std(1), rtol=1e-12)


# --- activation pools ------------------------------------------------------------------------

# config.py's h_act, in the authors' ids (1 linear, 2 step, 3 sin, 4 gauss, 5 tanh, 6 sigmoid, 7 inverse,
# 8 abs, 9 relu, 10 cos, 11 square); netevo's WANN ids are theirs minus one
AUTHORS_H_ACT = {"digits": [1, 3, 4, 5, 6, 7, 8, 9, 10], "swingup": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}


def authors_names(ids):
    from netevo_dsl.ops.activations import ALL_BY_ID

    return {ALL_BY_ID[i - 1].name for i in ids}


def test_task_pools_and_shipped_specs_follow_the_authors():
    from netevo_dsl.evolve.mutations.wann import ALL_ACTIVATIONS
    from netevo_dsl.ops.tasks import get_task_spec

    assert set(get_task_spec("digits").activations) == authors_names(AUTHORS_H_ACT["digits"])
    assert set(get_task_spec("swingup").activations) == authors_names(AUTHORS_H_ACT["swingup"])
    assert set(ALL_ACTIVATIONS) == authors_names(range(1, 11))
    for path, task in (("specs/wann_digits.net", "digits"), ("specs/wann_swingup.net", "swingup"),
                       ("specs/wann_xor.net", "xor")):
        spec = ne.load(path)
        choices = [c for m in spec.of_kind(ir.MutateBlock) for c in m.rules if c.func == "change_activation"]
        (rule,) = choices
        named = {item.value if hasattr(item, "value") else item.id for k in rule.kwargs if k.name == "choices"
                 for item in k.value.items}
        assert named == set(get_task_spec(task).activations), path


def test_a_run_draws_from_its_tasks_pool_when_the_rules_name_none(tmp_path):
    text = ("genome g: wann {\n inputs a, b, bias\n outputs y0: linear, y1: linear\n edge a -> y0\n edge b -> y1\n"
            "}\nmutate g {\n add_node(p=0.5)\n change_activation(p=0.5)\n}\n"
            "evolve g {\n task xor\n population 4\n generations 1\n seed 0\n}\n")
    spec = ne.parse(text)
    run = Evolution(spec, resolve_settings(spec), tmp_path / "run", progress=False, report=False)
    rng, genome, seen = np.random.default_rng(0), spec.genomes[0], set()
    for _ in range(150):
        genome = run.child_of(genome, rng)
        seen |= {n.activation for n in genome.nodes}
    assert seen and seen <= authors_names(AUTHORS_H_ACT["digits"])  # classification: never step or square
    assert len(seen) >= 5


# --- the draws in a run: local, resumed and Ray agree ----------------------------------------------

SWING_RUN = {"population": 6, "task_params": {"max_steps": 40, "repeats": 2}, "device": "cpu"}


def _swing_run(out, generations, resume=False, **flags):
    spec = ne.load("specs/wann_swingup.net")
    s = resolve_settings(spec, overrides={**SWING_RUN, "generations": generations, **flags})
    Evolution(spec, s, out, progress=False, report=False, resume=resume).execute()
    return (out / "log.jsonl").read_text()


def test_control_run_draws_fresh_starts_per_generation_and_resume_agrees(tmp_path):
    full = _swing_run(tmp_path / "full", 3)
    seeds = [json.loads(line)["draw"]["episode_seed"] for line in full.splitlines()]
    task = make_task("swingup")
    assert seeds == [task.start_generation(42, g)["episode_seed"] for g in range(3)]  # the spec's seed 42
    assert len(set(seeds)) == 3
    _swing_run(tmp_path / "part", 2)
    assert _swing_run(tmp_path / "part", 3, resume=True) == full


def test_control_run_on_ray_equals_local(tmp_path):
    pytest.importorskip("ray")
    import ray

    from netevo_dsl.evolve.ray_backend import ensure_ray

    ensure_ray(num_cpus=2)
    try:
        assert _swing_run(tmp_path / "ray", 2, backend="ray", chunk=2) == _swing_run(tmp_path / "local", 2)
    finally:
        ray.shutdown()
