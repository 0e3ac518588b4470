"""An individual's scores do not depend on which others share its batch (issue 14, defect 7).

Expected values: the same individual evaluated alone. The batched evaluator must give it bit for
bit, whatever the population around it, the chunk it is cut into, or the sample blocks: otherwise
a run's log depends on the cluster's CPU count (Ray splits the population per CPU).
"""
import random

import pytest
import torch

from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.testing.wann_strategies import random_genome

# non-powers of two: w * (a + b) and w * a + w * b then round differently
WEIGHTS = (-1.7, -0.3, 0.3, 0.7, 1.3, 2.9)


def population(n_inputs, n_outputs, size, seed=0):
    """Genomes with and without hidden nodes, all activations, linear outputs as in WANN's
    classification tasks (then the outputs are read without a copy) and random ones."""
    rng = random.Random(seed)
    out = []
    for i in range(size):
        hidden = (0, 2, 6, 12)[i % 4]
        out.append(random_genome(rng, n_inputs, n_outputs, hidden, rng.randint(n_outputs, 3 * n_outputs + 2 * hidden),
                                 name=f"g{i}", output_activation="linear" if i % 3 else None))
    return out


def assert_bitwise(part, whole, rows):
    assert part.failures == {k - rows.start: v for k, v in whole.failures.items() if k in rows}
    for name, value in whole.metrics.items():
        a, b = part.metrics[name], value[rows.start:rows.stop]
        assert torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0)), (name, rows)


TASKS = [(("xor", {"outputs": 1}), 2, 1), (("xor", {}), 2, 2), ("digits", 64, 10)]


@pytest.mark.parametrize("task,n_in,n_out", TASKS, ids=["xor1", "xor2", "digits"])
def test_every_chunk_size_gives_the_same_bits(task, n_in, n_out):
    genomes = population(n_in, n_out, 10)
    whole = evaluate(genomes, task, WEIGHTS, device="cpu")
    for size in range(1, len(genomes)):
        for start in range(0, len(genomes), size):
            rows = range(start, min(start + size, len(genomes)))
            assert_bitwise(evaluate(genomes[rows.start:rows.stop], task, WEIGHTS, device="cpu"), whole, rows)


@pytest.mark.parametrize("task,n_in,n_out", TASKS, ids=["xor1", "xor2", "digits"])
def test_sample_blocks_and_chunk_budgets_give_the_same_bits(task, n_in, n_out):
    genomes = population(n_in, n_out, 8, seed=1)
    whole = evaluate(genomes, task, WEIGHTS, device="cpu")
    for block_bytes, chunk_bytes in ((1, 1 << 30), (1 << 14, 1 << 30), (1 << 30, 1), (200_000, 300_000)):
        small = evaluate(genomes, task, WEIGHTS, device="cpu", block_bytes=block_bytes, chunk_bytes=chunk_bytes)
        assert_bitwise(small, whole, range(len(genomes)))


def test_an_individual_without_hidden_nodes_next_to_one_with_them():
    """The case that differed: a pack whose output level has hidden sources once scaled every
    output's sources by w inside the gather, so a genome without hidden nodes changed its bits."""
    genomes = population(2, 1, 4)
    assert not genomes[0].nodes and genomes[2].nodes
    alone = evaluate(genomes[:1], ("xor", {"outputs": 1}), WEIGHTS, device="cpu")
    mixed = evaluate([genomes[0], genomes[2]], ("xor", {"outputs": 1}), WEIGHTS, device="cpu")
    assert_bitwise(alone, mixed, range(1))
