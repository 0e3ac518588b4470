"""Live-episode compaction for layered networks (issue 18, item 2): the network evaluator's control
rollouts let finished episodes leave the batch.

Expected values: the same rollout without compaction (the group program as a plain policy, every
cart stepped until the last episode ends), which is what `evaluate_networks` ran before. Compaction
must give its bits exactly: every episode's return, length and non-finite flag.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netevo_dsl as ne
from netevo_dsl.runtime.evaluate_networks import network_graphs
from netevo_dsl.runtime.live_group import LiveGroupPolicy
from netevo_dsl.runtime.network_groups import network_groups
from netevo_dsl.runtime.network_program import GroupProgram
from netevo_dsl.runtime.tasks import make_task

from .test_live_episodes import assert_same_bits

WEIGHTS = (-2.3, -0.6, 0.4, 1.1, 3.7)  # at 3.7 a deep square chain overflows, at 0.4 it does not
N_OBS = {"swingup": 5, "cartpole": 4}

TEMPLATE = """mask m = random(density={density}, seed={seed})
network n {{
  input x: [B, {n_obs}]
  h = x |> linear(out={width}, mask=m) |> {act}()
  g = h |> linear(out={width}) |> {act2}()
  output y = linear(g, out=1, mask=random(density=0.7, seed={seed}))
}}"""


def population(name: str, seed: int, size: int) -> list:
    """One architecture (one group, widths padded), masks and widths differing between members."""
    acts = ["tanh", "relu", "sin", "gauss", "sigmoid", "square"]
    return [ne.parse(TEMPLATE.format(density=(0.4, 0.7, 1.0)[(seed + i) % 3], seed=seed + i, n_obs=N_OBS[name],
                                     width=(3, 6)[i % 2], act=acts[seed % 6], act2=acts[(seed // 6) % 6]))
            for i in range(size)]


def both_rollouts(name: str, specs: list, dtype, max_steps: int, seed: int):
    task = make_task((name, {"repeats": 3, "max_steps": max_steps, "seed": seed}))
    weights = torch.tensor(WEIGHTS, dtype=dtype)
    graphs, failures = network_graphs(specs, task)
    assert not failures
    results = []
    with torch.no_grad():
        for plan in network_groups(graphs, "pad"):
            program = GroupProgram(plan, weights.device, dtype)
            rows = slice(0, len(plan.members))
            stacks = program.select(rows)
            plain = task.rollout(lambda obs: program(stacks, obs, weights, task.repeats, shared_input=False),
                                 (len(plan.members), len(weights)), dtype)
            policy = LiveGroupPolicy(program, rows, weights, task.repeats)
            results.append((plain, task.rollout(policy, (len(plan.members), len(weights)), dtype), policy))
    return results


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(N_OBS))
def test_compacted_network_rollout_gives_the_bits_of_the_full_one(name, dtype):
    seed = {"cartpole": 2, "swingup": 5}[name]  # populations whose episodes end at many different times
    (plain, compacted, policy), = both_rollouts(name, population(name, seed, 24), dtype, 300, seed=1)
    assert_same_bits(plain, compacted)
    lengths = plain["episode_steps"]
    # the test means something: episodes ended at many different times and the batch was cut
    assert len(torch.unique(lengths)) > 5 and float(lengths.max()) >= 3 * float(lengths.min())
    assert policy.cuts >= 1


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**12), size=st.integers(1, 10), dtype=st.sampled_from([torch.float64, torch.float32]),
       name=st.sampled_from(sorted(N_OBS)))
def test_network_compaction_never_changes_a_bit(seed, size, dtype, name):
    for plain, compacted, _ in both_rollouts(name, population(name, seed, size), dtype, 120, seed):
        assert_same_bits(plain, compacted)
