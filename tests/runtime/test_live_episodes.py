"""Live-episode compaction (issue 18): finished episodes leave a control rollout's batch.

Expected values: the same rollout without compaction (the packed population as a plain policy,
every cart stepped until the last episode ends), which is what `evaluate` ran before. Compaction
must give its bits exactly: every episode's return, length and non-finite flag.
"""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.runtime.live_pack import LivePackPolicy
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.runtime.tasks import control
from netevo_dsl.runtime.wann_pack import pack_population
from netevo_dsl.testing.wann_strategies import build_genome, random_genome

WEIGHTS = (-1.7, -0.3, 0.7, 2.9)  # non-powers of two: w * (a + b) and w * a + w * b round differently
TASKS = {"swingup": 5, "cartpole": 4}


def genomes(n_inputs: int, size: int, seed: int) -> list:
    """Small and larger genomes with every activation, outputs linear, tanh or drawn at random,
    then one that overflows: ten `square` nodes in a chain from the bias give (w^2)^(2^10)-ish
    values, infinite at |w| = 1.7 and 2.9 (float64 too), finite at 0.3 and 0.7."""
    rng = random.Random(seed)
    population = [random_genome(rng, n_inputs, 1, (0, 2, 5, 9)[i % 4], rng.randint(2, 14), name=f"g{i}",
                                output_activation=(None, "tanh", "linear")[i % 3]) for i in range(size)]
    chain = [(n_inputs, 0, True)] + [(n_inputs + 1 + k, k + 1, True) for k in range(10)]
    return population + [build_genome("overflow", n_inputs, 1, ["square"] * 10, ["linear"], chain)]


def both_rollouts(name: str, population: list, dtype, max_steps: int, seed: int):
    task = make_task((name, {"repeats": 3, "max_steps": max_steps, "seed": seed}))
    weights = torch.tensor(WEIGHTS, dtype=dtype)
    pack, failures = pack_population(population, TASKS[name], 1, weights, shared_inputs=False)
    assert not failures
    values = pack.buffer(task.repeats)
    shape = (len(pack.members), len(weights))
    plain = task.rollout(lambda obs: pack.forward(obs, values), shape, dtype)
    policy = LivePackPolicy(pack, population, TASKS[name], 1, weights, task.repeats)
    return plain, task.rollout(policy, shape, dtype), policy


def assert_same_bits(plain: dict, compacted: dict) -> None:
    assert plain.keys() == compacted.keys()
    for key, value in plain.items():
        assert value.dtype == compacted[key].dtype and value.shape == compacted[key].shape, key
        assert torch.equal(torch.nan_to_num(value, nan=7.0), torch.nan_to_num(compacted[key], nan=7.0)), key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_compacted_rollout_gives_the_bits_of_the_full_one(name, dtype):
    plain, compacted, policy = both_rollouts(name, genomes(TASKS[name], 40, seed=3), dtype, 400, seed=1)
    assert_same_bits(plain, compacted)
    lengths = plain["episode_steps"]
    # the test means something: episodes ended at many different times (on swing-up some ran to
    # the limit), the batch was repacked, and some episodes had non-finite outputs, others not
    assert len(torch.unique(lengths)) > 10 and float(lengths.max()) >= 4 * float(lengths.min())
    assert bool((lengths == 400).any()) or name == "cartpole"
    assert policy.repacks >= 1
    assert 0 < int(plain["nonfinite"].sum()) < plain["nonfinite"].numel()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 12), dtype=st.sampled_from([torch.float64, torch.float32]),
       name=st.sampled_from(sorted(TASKS)))
def test_compaction_never_changes_a_bit(seed, size, dtype, name):
    plain, compacted, _ = both_rollouts(name, genomes(TASKS[name], size, seed), dtype, 150, seed)
    assert_same_bits(plain, compacted)


def test_two_threads_give_the_same_bits_and_the_thread_count_is_restored():
    population = genomes(5, 12, seed=5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with_two = both_rollouts("swingup", population, torch.float64, 200, seed=2)[1]
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with_one = both_rollouts("swingup", population, torch.float64, 200, seed=2)[1]
    finally:
        torch.set_num_threads(before)
    assert_same_bits(with_one, with_two)


def test_small_batches_run_on_one_thread():
    assert control.rollout_threads(control.SINGLE_THREAD_EPISODES - 1, 2) == 1
    assert control.rollout_threads(control.SINGLE_THREAD_EPISODES, 2) == 2
    seen = []
    task = make_task(("swingup", {"repeats": 2, "max_steps": 3}))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        task.rollout(lambda obs: seen.append(torch.get_num_threads()) or obs[..., :1], (4,), torch.float64)
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
