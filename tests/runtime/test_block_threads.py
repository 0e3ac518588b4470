"""Sample blocks evaluated on several threads at once (issue 18, item 1).

With more than one torch thread, `evaluate` runs each sample block's forward and scoring on one
thread of a pool instead of splitting every operation over the threads. Expected values: the same
evaluation with one torch thread, where blocks run one after another (the path that the
reference-evaluator tests hold to `reference_evaluate`). Every score must be the same bits, and the
caller's thread count must be left as it was.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.testing.wann_strategies import wann_genomes

WEIGHTS = (-1.7, -0.3, 0.3, 0.7, 1.3, 2.9)  # not powers of two: w * s rounds


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0))


def on_threads(threads: int, *args, **kwargs):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        scores = evaluate(*args, **kwargs)
        assert torch.get_num_threads() == threads  # the pool's threads leave the caller's count alone
        return scores
    finally:
        torch.set_num_threads(before)


@settings(max_examples=8, deadline=None)
@given(population=st.lists(wann_genomes(n_inputs=64, n_outputs=10, max_hidden=8, max_edges=40), min_size=1,
                           max_size=4),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       metrics=st.sampled_from([None, ["reward"], ["reward", "train_accuracy"]]),
       block_bytes=st.sampled_from([1, 1 << 16, 1 << 20]))
def test_blocks_on_threads_give_the_bits_of_blocks_in_turn(population, dtype, metrics, block_bytes):
    # random output activations too: outputs gathered through an index, not read in place
    kwargs = dict(weights=WEIGHTS, device="cpu", dtype=dtype, metrics=metrics, block_bytes=block_bytes)
    alone = on_threads(1, population, "digits", **kwargs)
    pooled = on_threads(2, population, "digits", **kwargs)
    assert pooled.failures == alone.failures
    assert set(pooled.metrics) == set(alone.metrics)
    for name in alone.metrics:
        assert same_bits(pooled.metrics[name], alone.metrics[name]), name


@pytest.mark.parametrize("threads", [2, 3])
def test_more_threads_than_blocks_and_an_odd_count(threads):
    import random

    from netevo_dsl.testing.wann_strategies import random_genome

    rng = random.Random(3)
    population = [random_genome(rng, 64, 10, 6, 40, name=f"g{i}", output_activation="linear") for i in range(5)]
    alone = on_threads(1, population, "digits", weights=WEIGHTS, device="cpu")
    for block_bytes in (1, 1 << 30):  # 29 blocks of 64 samples; one block for everything
        pooled = on_threads(threads, population, "digits", weights=WEIGHTS, device="cpu", block_bytes=block_bytes)
        small = on_threads(1, population, "digits", weights=WEIGHTS, device="cpu", block_bytes=block_bytes)
        for name in alone.metrics:
            assert same_bits(pooled.metrics[name], alone.metrics[name]), name
            assert same_bits(small.metrics[name], alone.metrics[name]), name
