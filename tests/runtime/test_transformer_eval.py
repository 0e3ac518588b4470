"""Transformer (WANN-GPT) genomes: the batched evaluator against the reference, grouping, chunking, failures."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.errors import UsageError
from netevo_dsl.evolve.run import evaluate_population
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.runtime import evaluate_transformer as batched
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.evaluate_transformer import evaluate_transformers, member_bytes, shape_groups
from netevo_dsl.runtime.reference import reference_evaluate
from netevo_dsl.runtime.reference_transformer import reference_evaluate_transformers
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.testing.transformer_strategies import genome, transformer_populations

F64 = torch.float64
MAJORITY = ("majority", {"length": 3, "samples": 12})  # vocab 3, 4 tokens
ARCH_A = {"embed": 8, "context": 6, "layers": ((2, 8, "on", "on"), (1, 4, "off", "on"))}
ARCH_B = {"embed": 4, "context": 4, "layers": ((4, 4, "on", "off"),)}
DENSE = ir.Call("dense", (), ())


def random_mask(seed, density=0.5):
    return ir.Call("random", (), (ir.KwArg("density", ir.Num(density)), ir.KwArg("seed", ir.Num(seed))))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/runtime/conftest.py


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Every sequence task, small; built once (they are deterministic and stateless)."""
    text = tmp_path_factory.mktemp("text") / "corpus.txt"
    text.write_text("the cat sat on the mat; a bat ate a rat. " * 3, encoding="utf-8")
    return {
        "copy": make_task(("copy", {"symbols": 3, "length": 3, "samples": 12})),
        "reverse": make_task(("reverse", {"symbols": 3, "length": 3, "samples": 12})),
        "majority": make_task(MAJORITY),
        "parity": make_task(("parity", {"length": 4, "samples": 12})),
        "text": make_task(("text", {"path": str(text), "context": 5})),
    }


def assert_same_scores(batched_scores, reference, tolerance=1e-9):
    assert batched_scores.failures == reference.failures
    assert set(batched_scores.metrics) == set(reference.metrics)
    torch.testing.assert_close(batched_scores.weights, reference.weights)
    torch.testing.assert_close(batched_scores.per_weight, reference.per_weight, rtol=tolerance, atol=tolerance,
                               equal_nan=True)
    for name in reference.metrics:
        torch.testing.assert_close(batched_scores.metrics[name], reference.metrics[name], rtol=tolerance,
                                   atol=tolerance, equal_nan=True, msg=name)


@pytest.mark.parametrize("name", ["copy", "reverse", "majority", "parity", "text"])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_batched_equals_reference_on_every_sequence_task(tasks, name, data):
    task = tasks[name]
    population = data.draw(transformer_populations(task.vocab_size, task.tokens.shape[1]))
    scores = evaluate_transformers(population, task, dtype=F64, device="cpu")
    assert_same_scores(scores, reference_evaluate_transformers(population, task, dtype=F64, device="cpu"))
    assert set(scores.metrics) == {"reward", "token_accuracy", "sequence_accuracy", "bits_per_char"}
    assert scores.per_weight.shape == (len(population), len(scores.weights))
    assert not scores.failures and torch.isfinite(scores.per_weight).all()


@settings(max_examples=6, deadline=None)
@given(population=transformer_populations(3, 4, max_size=8))
def test_chunks_of_any_size_give_the_same_scores(population):
    task = make_task(MAJORITY)
    whole = evaluate_transformers(population, task, dtype=F64, device="cpu")
    two = 2 * member_bytes(batched.config_of(_genome(population[0])), (12, 4), len(whole.weights), F64)
    for chunk_bytes in (1, two):
        assert_same_scores(evaluate_transformers(population, task, dtype=F64, device="cpu", chunk_bytes=chunk_bytes),
                           whole, tolerance=1e-12)


def _genome(item):
    return item.genomes[0] if isinstance(item, ir.Spec) else item


def _mixed_population():
    """Shape A at 0, 2, 3 (masks and activations differ), shape B at 1 and 4."""
    return [genome(3, ARCH_A, random_mask(1), ["gelu", "tanh"], (-1.5, 0.7, 2.0)),
            genome(3, ARCH_B, random_mask(2), ["relu"], (-1.5, 0.7, 2.0)),
            genome(3, ARCH_A, random_mask(3, 0.75), ["sin", "tanh"], (-1.5, 0.7, 2.0)),
            ir.Spec((genome(3, ARCH_A, DENSE, ["gelu", "square"], (-1.5, 0.7, 2.0)),)),
            genome(3, ARCH_B, random_mask(5, 0.25), ["gauss"], (-1.5, 0.7, 2.0))]


def _count_group_calls(monkeypatch) -> list:
    sizes = []
    forward = batched.forward_group

    def counting(configs, tokens, w):
        sizes.append(len(configs))
        return forward(configs, tokens, w)

    monkeypatch.setattr(batched, "forward_group", counting)
    return sizes


def test_each_shape_group_runs_in_one_batched_call(monkeypatch):
    population = _mixed_population()
    configs, failures = batched.fitting_configs(population, make_task(MAJORITY))
    assert not failures and sorted(shape_groups(configs).values()) == [[0, 2, 3], [1, 4]]
    sizes = _count_group_calls(monkeypatch)
    scores = evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu")
    assert sizes == [3, 2]
    assert_same_scores(scores, reference_evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu"))


def test_a_small_chunk_budget_splits_groups(monkeypatch):
    population = _mixed_population()
    sizes = _count_group_calls(monkeypatch)
    two_of_a = 2 * member_bytes(batched.config_of(population[0]), (12, 4), 3, F64)
    scores = evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu", chunk_bytes=two_of_a)
    assert sizes == [2, 1, 2]  # group A in chunks of two; B's genomes are smaller, both fit
    assert_same_scores(scores, reference_evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu"))
    sizes.clear()
    evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu", chunk_bytes=1)
    assert sizes == [1] * 5


def test_misfits_are_reported_identically_and_scored_nan():
    weights = (-1.0, 0.5)
    good = genome(3, ARCH_B, random_mask(0), ["tanh"], weights)
    two = ir.Spec((good, genome(3, ARCH_B, DENSE, ["relu"], weights, name="other")))
    wann = parse("genome w: wann {\n inputs a\n outputs y: linear\n edge a -> y\n}")
    population = [
        good,
        genome(5, ARCH_B, DENSE, ["tanh"], weights),  # vocab
        genome(3, {**ARCH_B, "context": 3}, DENSE, ["tanh"], weights),  # context
        genome(3, {**ARCH_B, "layers": ((3, 4, "on", "on"),)}, DENSE, ["tanh"], weights),  # heads
        genome(3, ARCH_B, ir.Call("block", (), (ir.KwArg("blocks", ir.Num(3)),)), ["tanh"], weights),
        two,
        wann,
        ir.Spec((good,)),
    ]
    scores = evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu")
    assert_same_scores(scores, reference_evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu"))
    assert sorted(scores.failures) == [1, 2, 3, 4, 5, 6]
    assert scores.failures[1] == "vocab 5 does not match the task's 3 tokens"
    assert scores.failures[2] == "context 3 is shorter than the task's 4 tokens"
    assert "3 heads do not divide the embedding size 4" in scores.failures[3]
    assert scores.failures[4].startswith("mask of `wte`: 3 blocks do not divide")
    assert scores.failures[5] == "a spec must hold exactly one genome to be evaluated, it holds 2"
    assert scores.failures[6] == "WannGenome `w` is not a transformer genome"
    for name, value in scores.metrics.items():
        assert torch.isnan(value[1:7]).all(), name
        assert torch.isfinite(value[[0, 7]]).all(), name
    torch.testing.assert_close(scores.per_weight[0], scores.per_weight[7])


def test_nonfinite_outputs_are_failures_not_zero_scores():
    mlp_only = {"embed": 8, "context": 4, "layers": ((1, 8, "off", "on"),)}
    # one shape group: at w = 1e18, square overflows float32 (1e36 x 1e18), tanh stays bounded
    overflowing = genome(3, mlp_only, random_mask(5), ["square"], (1.0, 1e18))
    fine = genome(3, mlp_only, random_mask(4), ["tanh"], (1.0, 1e18))
    for evaluator in (evaluate_transformers, reference_evaluate_transformers):
        scores = evaluator([fine, overflowing], MAJORITY, device="cpu")  # float32
        assert scores.failures == {1: "non-finite outputs (overflow or NaN) at shared weight(s) 1e+18"}
        assert torch.isnan(scores.per_weight[1]).all() and torch.isfinite(scores.per_weight[0]).all()


def test_metrics_are_present_when_every_genome_fails():
    scores = evaluate_transformers([genome(4, ARCH_B, DENSE, ["tanh"], (1.0,))], MAJORITY, device="cpu")
    assert set(scores.metrics) == {"reward", "token_accuracy", "sequence_accuracy", "bits_per_char"}
    assert scores.failures and torch.isnan(scores.per_weight).all()


def test_evaluate_and_reference_evaluate_route_transformer_populations():
    population = _mixed_population()
    direct = evaluate_transformers(population, MAJORITY, dtype=F64, device="cpu")
    assert_same_scores(evaluate(population, MAJORITY, dtype=F64, device="cpu"), direct, tolerance=0)
    assert_same_scores(reference_evaluate(population, MAJORITY, dtype=F64, device="cpu"), direct)
    genomes = [_genome(p) for p in population]
    assert_same_scores(evaluate_population(genomes, make_task(MAJORITY), None, "cpu"),
                       evaluate_transformers(genomes, MAJORITY, device="cpu"), tolerance=0)


def test_weights_default_to_the_genomes_setting_and_must_agree():
    first = genome(3, ARCH_B, DENSE, ["tanh"], (-1.0, 2.0))
    other = genome(3, ARCH_B, DENSE, ["tanh"], (0.5,))
    assert evaluate_transformers([first], MAJORITY, device="cpu").weights.tolist() == [-1.0, 2.0]
    for evaluator in (evaluate_transformers, reference_evaluate_transformers):
        with pytest.raises(UsageError, match="different shared weights"):
            evaluator([first, other], MAJORITY, device="cpu")
        assert evaluator([first, other], MAJORITY, weights=[1.0], device="cpu").per_weight.shape == (2, 1)


def test_out_of_scope_tasks_and_arguments_raise_usage_errors():
    good = genome(3, ARCH_B, DENSE, ["tanh"], (1.0,))
    for evaluator in (evaluate_transformers, reference_evaluate_transformers):
        with pytest.raises(UsageError, match="transformer genomes are scored on sequence tasks"):
            evaluator([good], "iris")
        with pytest.raises(UsageError, match="list of individuals"):
            evaluator(good, MAJORITY)
        with pytest.raises(UsageError, match="no shared weights"):
            evaluator([good], MAJORITY, weights=[])
