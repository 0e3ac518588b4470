"""The batched evaluator against the reference evaluator, and its failure reporting."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netevo_dsl.errors import UsageError
from netevo_dsl.grammar.parser import parse
from netevo_dsl.ir import nodes as ir
from netevo_dsl.runtime.evaluate import evaluate
from netevo_dsl.runtime.reference import reference_evaluate, reference_forward
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.runtime.wann_pack import pack_population
from netevo_dsl.testing.wann_strategies import build_genome, wann_genomes

F64 = torch.float64


def populations(n_inputs, n_outputs, max_size=5, **kw):
    return st.lists(wann_genomes(n_inputs=n_inputs, n_outputs=n_outputs, **kw), min_size=1, max_size=max_size)


def assert_same_scores(batched, reference, tolerance=1e-9):
    assert batched.failures == reference.failures
    assert set(batched.metrics) == set(reference.metrics)
    torch.testing.assert_close(batched.per_weight, reference.per_weight, rtol=tolerance, atol=tolerance,
                               equal_nan=True)
    for name in batched.metrics:
        torch.testing.assert_close(batched.metrics[name], reference.metrics[name], rtol=tolerance, atol=tolerance,
                                   equal_nan=True, msg=name)


TASKS = [
    (("iris", {}), 4, 3),
    (("xor", {}), 2, 2),
    (("breast_cancer", {"outputs": 1}), 30, 1),
    (("wine", {"batch_size": 40}), 13, 3),
]


@pytest.mark.parametrize("task,n_in,n_out", TASKS, ids=[t[0][0] for t in TASKS])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_batched_equals_reference_on_classification(task, n_in, n_out, data):
    population = data.draw(populations(n_in, n_out, max_hidden=6, max_edges=18))
    batched = evaluate(population, task, dtype=F64, device="cpu")
    reference = reference_evaluate(population, task, dtype=F64, device="cpu")
    assert batched.per_weight.shape == (len(population), 6)
    assert_same_scores(batched, reference)


@settings(max_examples=3, deadline=None)
@given(population=populations(64, 10, max_size=3, max_hidden=8, max_edges=40))
def test_batched_equals_reference_on_digits_in_small_blocks(population):
    # tiny blocks and chunks force several sample blocks and population chunks
    batched = evaluate(population, "digits", dtype=F64, device="cpu", block_bytes=1, chunk_bytes=1)
    assert_same_scores(batched, reference_evaluate(population, "digits", dtype=F64, device="cpu"))


@pytest.mark.parametrize("activation", ["linear", "tanh", None])
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_output_layouts_agree_with_reference(activation, data):
    # all-linear outputs are read straight from the last gather, outputs sharing an
    # activation as one block of rows, mixed ones through an index; all must agree
    outputs = (activation,) if activation else None
    population = data.draw(populations(4, 3, max_hidden=5, max_edges=16, output_activations=outputs))
    weights = torch.tensor([-1.5, 0.5, 2.0], dtype=F64)
    pack, _ = pack_population(population, 4, 3, weights)
    if activation == "linear" and pack.levels[-1].from_rows is not None:  # else nothing is gathered per weight
        assert pack.linear_outputs is pack.levels[-1]
    if activation is not None:
        assert pack.output_range == (pack.n_rows - 3 * len(pack.members), pack.n_rows)
    batched = evaluate(population, "iris", weights=weights, dtype=F64, device="cpu")
    assert_same_scores(batched, reference_evaluate(population, "iris", weights=weights, dtype=F64, device="cpu"))


# Short episodes: the two evaluators sum a node's sources in different orders, and a genome
# can amplify that last-bit difference several-fold per step (a sin output at w = 2 grew it to
# 7e-6 in 30 swing-up steps; cart-pole's bang-bang force can flip). The per-step computation
# is compared on long random observation sequences below, without the dynamics in between.
CONTROL = [(("cartpole", {"max_steps": 6, "repeats": 3}), 4), (("swingup", {"max_steps": 6, "repeats": 2}), 5)]


@pytest.mark.parametrize("task,n_in", CONTROL, ids=["cartpole", "swingup"])
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_batched_equals_reference_on_control(task, n_in, data):
    population = data.draw(populations(n_in, 1, max_size=4, max_hidden=5, max_edges=14))
    batched = evaluate(population, task, dtype=F64, device="cpu")
    assert_same_scores(batched, reference_evaluate(population, task, dtype=F64, device="cpu"), tolerance=1e-7)
    assert set(batched.metrics) == {"reward", "steps", "episode_reward"}


@settings(max_examples=10, deadline=None)
@given(population=populations(5, 1, max_size=4, max_hidden=5, max_edges=14), seed=st.integers(0, 2**16))
def test_control_layout_forward_equals_reference(population, seed):
    # per-genome inputs (each genome drives its own carts): every genome, weight and repeat
    # sees its own observations, 40 steps' worth at once
    weights = torch.tensor([-2.0, -0.5, 1.0, 2.0], dtype=F64)
    pack, failures = pack_population(population, 5, 1, weights, shared_inputs=False)
    gen = torch.Generator().manual_seed(seed)
    observations = torch.randn(len(pack.members), len(weights), 40, 5, generator=gen, dtype=F64)
    outputs = pack.forward(observations, pack.buffer(40))  # [P, W, B, 1]
    for k, member in enumerate(pack.members):
        for j, w in enumerate(weights.tolist()):
            expected = reference_forward(population[member], observations[k, j], w)
            torch.testing.assert_close(outputs[k, j], expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def genome(text):
    return parse(text).genomes[0]


GOOD = genome("genome good: wann {\n inputs a, b, bias\n outputs y0: linear, y1: linear\n node h: tanh\n"
              " edge a -> h\n edge h -> y0\n edge b -> y1\n edge bias -> y1\n}")


def test_failures_are_reported_with_reasons_and_nan_scores():
    cyclic = ir.WannGenome("cyclic", ["a", "b"], [ir.WannOutput("y0", "linear"), ir.WannOutput("y1", "linear")],
                           [ir.WannNode("h", "tanh")],
                           [ir.WannEdge("a", "h"), ir.WannEdge("h", "h", False), ir.WannEdge("h", "y0")])
    wrong_io = genome("genome small: wann {\n inputs a\n outputs y: linear\n edge a -> y\n}")
    spec_two = parse("genome one: wann {\n inputs a, b\n outputs y0: linear, y1: linear\n}\n"
                     "genome two: wann {\n inputs a, b\n outputs y0: linear, y1: linear\n}")
    population = [GOOD, cyclic, wrong_io, spec_two, parse(GOOD_SPEC)]
    for scorer in (evaluate, reference_evaluate):
        scores = scorer(population, "xor", dtype=F64, device="cpu")
        assert sorted(scores.failures) == [1, 2, 3], scorer.__name__
        assert "cycle" in scores.failures[1]
        assert "1 observation inputs and 1 outputs; the task gives 2 and expects 2" in scores.failures[2]
        assert "exactly one genome" in scores.failures[3]
        assert torch.isnan(scores.per_weight[1:4]).all() and torch.isnan(scores.mean[1:4]).all()
        assert torch.isfinite(scores.per_weight[[0, 4]]).all()
        assert torch.isnan(scores.metrics["test_accuracy"][1:4]).all()
        torch.testing.assert_close(scores.per_weight[0], scores.per_weight[4])


GOOD_SPEC = "genome good: wann {\n inputs a, b, bias\n outputs y0: linear, y1: linear\n node h: tanh\n" \
            " edge a -> h\n edge h -> y0\n edge b -> y1\n edge bias -> y1\n}"


def test_overflowing_outputs_fail_at_the_weights_that_overflow():
    # five squares in a chain from the feature with the largest values: at w = 2 the chain
    # overflows float32 (~(2 * 50)^32), at w = 0.25 it stays finite (z-scored pixels reach ~50)
    task = make_task(("digits", {"scale": "z"}))
    column = int(task.features.abs().max(0).values.argmax())
    assert task.features[:, column].abs().max() > 20
    nodes = "".join(f" node s{i}: square\n" for i in range(5))
    edges = f" edge x{column} -> s0\n" + "".join(f" edge s{i} -> s{i + 1}\n" for i in range(4)) + \
        "".join(f" edge s4 -> y{k}\n" for k in range(10))
    inputs = ", ".join(f"x{i}" for i in range(64))
    outputs = ", ".join(f"y{k}: linear" for k in range(10))
    chain = genome(f"genome chain: wann {{\n inputs {inputs}\n outputs {outputs}\n{nodes}{edges}}}")
    for scorer in (evaluate, reference_evaluate):
        scores = scorer([chain], task, weights=[0.25, 2.0], dtype=torch.float32, device="cpu")
        assert scores.failures[0].endswith("at shared weight(s) 2"), scorer.__name__
        assert torch.isnan(scores.per_weight).all()
        finite = scorer([chain], task, weights=[0.25], dtype=torch.float32, device="cpu")
        assert finite.failures == {} and torch.isfinite(finite.per_weight).all()


def test_mean_and_max_are_over_weights():
    scores = evaluate([GOOD], "xor", dtype=F64, device="cpu")
    assert scores.mean.item() == pytest.approx(scores.per_weight.mean().item())
    assert scores.max.item() == scores.per_weight.max().item()
    assert scores.weights.tolist() == [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]


def test_weights_default_to_the_genomes_setting_and_must_agree():
    custom = genome("genome c: wann {\n inputs a, b\n outputs y0: linear, y1: linear\n weights {-1, 3}\n"
                    " edge a -> y0\n}")
    assert evaluate([custom], "xor", device="cpu").weights.tolist() == [-1.0, 3.0]
    with pytest.raises(UsageError, match="different shared weights"):
        evaluate([custom, GOOD], "xor", device="cpu")
    assert evaluate([custom, GOOD], "xor", weights=[1.0], device="cpu").per_weight.shape == (2, 1)


def test_out_of_scope_genomes_and_tasks_raise_usage_errors():
    transformer = parse("genome t: transformer {\n vocab 8\n layer { heads 2 }\n}")
    with pytest.raises(UsageError, match="transformer genome"):
        evaluate([transformer], "iris")
    with pytest.raises(UsageError, match="transformer genome"):
        reference_evaluate([transformer.genomes[0]], "iris")
    with pytest.raises(UsageError, match="sequence task"):
        evaluate([GOOD], "copy")
    with pytest.raises(UsageError, match="list of individuals"):
        evaluate(GOOD, "xor")


def test_each_evaluation_draws_a_new_training_minibatch():
    task = make_task(("digits", {"batch_size": 50}))
    population = [build_genome("g", 64, 10, ["tanh"], ["linear"] * 10,
                               [(i, 0, True) for i in range(0, 64, 3)] + [(65, k, True) for k in range(1, 11)] +
                               [(6 * k + 2, 1 + k, True) for k in range(10)])]  # outputs differ
    first, second = evaluate(population, task, device="cpu"), evaluate(population, task, device="cpu")
    assert not torch.equal(first.per_weight, second.per_weight)  # rewards on different minibatches
    torch.testing.assert_close(first.metrics["train_accuracy"], second.metrics["train_accuracy"])
    replay = evaluate(population, make_task(("digits", {"batch_size": 50})), device="cpu")
    torch.testing.assert_close(first.per_weight, replay.per_weight)  # same seed, same first minibatch


def test_evaluation_does_not_depend_on_the_population_it_is_in():
    population = [build_genome("g", 4, 3, ["sin", "gauss"], ["linear", "tanh", "sigmoid"],
                               [(0, 0, True), (1, 1, True), (4, 1, True), (5, 2, True), (6, 3, True), (2, 4, True)])]
    other = [build_genome("o", 4, 3, ["abs"], ["relu", "cos", "square"], [(3, 0, True), (5, 1, True), (4, 3, True)])]
    alone = evaluate(population, "iris", dtype=F64, device="cpu")
    mixed = evaluate(other + population + other, "iris", dtype=F64, device="cpu")
    torch.testing.assert_close(alone.per_weight[0], mixed.per_weight[1], rtol=0, atol=1e-12)


def test_sample_blocks_fit_the_temporaries_and_the_value_buffer_budgets():
    import random

    from netevo_dsl.runtime import evaluate as evaluate_module
    from netevo_dsl.testing.wann_strategies import random_genome

    assert evaluate_module.block_budget(torch.device("cpu")) == evaluate_module.BLOCK_BYTES
    rng = random.Random(0)
    population = [random_genome(rng, 64, 10, 30, 150, output_activation="linear") for _ in range(50)]
    weights = torch.tensor([-1.0, 1.0])
    pack, _ = pack_population(population, 64, 10, weights)
    per_sample = len(weights) * weights.element_size()
    widest = 50 * 10  # the outputs level is the widest here

    def block(block_bytes, chunk_bytes):
        return evaluate_module.block_samples(pack, 1797, 10, weights, block_bytes, chunk_bytes)

    assert max(lv.stop - lv.start for lv in pack.levels) <= widest
    assert block(1 << 40, 1 << 40) == 1797  # everything fits: one block
    # the value buffer bounds it, then a level's temporaries, in whole 64-sample scoring segments
    assert block(1 << 40, pack.n_rows * per_sample * 100) == 64
    assert block(1 << 40, pack.n_rows * per_sample * 200) == 192
    assert block(widest * per_sample * 200, 1 << 40) == 192
    assert block(1, 1) == evaluate_module.MIN_BLOCK_SAMPLES
