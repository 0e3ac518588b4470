"""Task declarations (ops.tasks) and their implementations (runtime.tasks)."""
import math

import numpy as np
import pytest
import torch

from netevo_dsl.errors import UsageError
from netevo_dsl.ops.tasks import REQUIRED, get_task_spec, task_names
from netevo_dsl.runtime.tasks import make_task
from netevo_dsl.runtime.tasks.classification import make_xor_data
from netevo_dsl.runtime.tasks.sequence import IGNORE

BUILTIN = ["digits", "iris", "wine", "breast_cancer", "xor", "swingup", "cartpole", "copy", "reverse", "majority",
           "parity"]


def test_registry_lists_every_task_and_each_reports_reward():
    assert set(BUILTIN + ["text", "csv"]) <= set(task_names())
    for name in task_names():
        assert "reward" in get_task_spec(name).metrics


@pytest.mark.parametrize("name", BUILTIN)
def test_declared_counts_match_the_implementation(name):
    spec = get_task_spec(name)
    task = make_task(name)
    assert (spec.n_inputs(), spec.n_outputs()) == (task.n_inputs, task.n_outputs)
    assert spec.kind == task.kind
    if task.kind == "sequence":
        _, metrics = task.score(torch.zeros(*task.targets.shape, task.vocab_size))
        assert set(metrics) == set(spec.metrics)
    else:
        assert set(task.metric_dims) == set(spec.metrics)


def test_declared_counts_of_known_datasets():
    assert (get_task_spec("digits").n_inputs(), get_task_spec("digits").n_outputs()) == (64, 10)
    assert (get_task_spec("swingup").n_inputs(), get_task_spec("swingup").n_outputs()) == (5, 1)
    assert get_task_spec("xor").n_outputs({"outputs": 1}) == 1
    assert get_task_spec("copy").n_inputs({"symbols": 5}) == 6  # symbols plus the separator


def test_unknown_tasks_and_parameters_suggest_names():
    with pytest.raises(UsageError) as unknown:
        get_task_spec("digit")
    assert unknown.value.hint == "did you mean `digits`?"
    with pytest.raises(UsageError) as bad_param:
        get_task_spec("digits").resolve({"test_fractoin": 0.1})
    assert bad_param.value.hint == "did you mean `test_fraction`?"
    with pytest.raises(UsageError, match="needs `path`"):
        make_task("text")
    assert get_task_spec("text").params["path"] is REQUIRED


def test_classification_split_is_stratified_seeded_and_standardised_on_train():
    task = make_task(("wine", {"test_fraction": 0.25, "seed": 3}))
    again = make_task(("wine", {"test_fraction": 0.25, "seed": 3}))
    other = make_task(("wine", {"test_fraction": 0.25, "seed": 4}))
    assert task.n_train + task.n_test == 178 and task.n_test == 45
    assert torch.equal(task.features, again.features)
    assert not torch.equal(task.features, other.features)
    train = task.features[: task.n_train]
    torch.testing.assert_close(train.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-12, rtol=0)
    train_share = torch.bincount(task.labels[: task.n_train]) / task.n_train
    test_share = torch.bincount(task.labels[task.n_train:]) / task.n_test
    assert (train_share - test_share).abs().max() < 0.05


def test_minibatches_come_from_the_training_split_and_change_per_evaluation():
    task = make_task(("digits", {"batch_size": 100}))
    first, second = task.next_batch_mask(), task.next_batch_mask()
    assert int(first.sum()) == int(second.sum()) == 100
    assert not first[task.n_train:].any() and not torch.equal(first, second)
    assert torch.equal(make_task(("digits", {"batch_size": 100})).next_batch_mask(), first)
    whole = make_task("iris")
    assert whole.batch_size == whole.n_train and torch.equal(whole.next_batch_mask(), whole.next_batch_mask())


def test_xor_data_follow_the_authors_rule():
    points, labels = make_xor_data()
    assert points.shape == (500, 2)
    assert np.array_equal(labels, ((points[:, 0] > 0.5) ^ (points[:, 1] > 0.5)).astype(int))


def test_scorer_reward_is_minus_cross_entropy_and_accuracy_is_argmax():
    task = make_task("iris")
    gen = torch.Generator().manual_seed(0)
    outputs = torch.randn(2, 3, task.n_samples, 3, generator=gen, dtype=torch.float64)  # [P, W, N, O]
    weights = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    scorer = task.scorer(2, weights, task.next_batch_mask())
    scorer.add(outputs, slice(0, task.n_samples))
    reward, metrics = scorer.finish()
    train = slice(0, task.n_train)
    for p in range(2):
        for j in range(3):
            ce = torch.nn.functional.cross_entropy(outputs[p, j, train], task.labels[train])
            assert reward[p, j].item() == pytest.approx(-ce.item(), rel=1e-12)
            accuracy = (outputs[p, j, train].argmax(-1) == task.labels[train]).double().mean()
            assert metrics["train_accuracy"][p, j].item() == pytest.approx(accuracy.item())
        mean_softmax = outputs[p, :, task.n_train:].softmax(-1).mean(0)
        ensemble = (mean_softmax.argmax(-1) == task.labels[task.n_train:]).double().mean()
        assert metrics["ensemble_test_accuracy"][p].item() == pytest.approx(ensemble.item())
        best = metrics["train_accuracy"][p].argmax()
        assert metrics["best_weight"][p].item() == weights[best].item()
        assert metrics["best_test_accuracy"][p].item() == metrics["test_accuracy"][p, best].item()


def test_tied_outputs_predict_the_first_class_not_every_class():
    task = make_task("iris")
    scorer = task.scorer(1, torch.tensor([1.0]), task.next_batch_mask())
    scorer.add(torch.zeros(1, 1, task.n_samples, 3), slice(0, task.n_samples))
    _, metrics = scorer.finish()
    assert metrics["train_accuracy"].item() == pytest.approx(1 / 3)  # only the class-0 samples
    assert metrics["reward"].item() == pytest.approx(-math.log(3), rel=1e-6)


@pytest.mark.parametrize("name", ["copy", "reverse", "majority", "parity"])
def test_sequence_targets_and_scoring(name):
    task = make_task((name, {"samples": 64}))
    tokens, targets = task.tokens, task.targets
    graded = targets != IGNORE
    assert tokens.shape == targets.shape and graded.any(1).all()
    assert torch.equal(tokens[:, 1:], targets[:, :-1].where(graded[:, :-1], tokens[:, 1:]))  # shifted by one
    perfect = torch.full((*targets.shape, task.vocab_size), -10.0)
    perfect.scatter_(-1, targets.clamp_min(0).unsqueeze(-1), 10.0)
    reward, metrics = task.score(perfect)
    assert metrics["token_accuracy"].item() == 1.0 and metrics["sequence_accuracy"].item() == 1.0
    assert reward.item() > -1e-6
    uniform_reward, _ = task.score(torch.zeros(*targets.shape, task.vocab_size))
    assert uniform_reward.item() == pytest.approx(-math.log(task.vocab_size))


def test_sequence_answers_are_right():
    copy = make_task(("copy", {"samples": 8, "length": 5}))
    sep = copy.tokens[0].tolist().index(8)
    assert copy.targets[0, sep:].tolist() == copy.tokens[0, :5].tolist()
    reverse = make_task(("reverse", {"samples": 8, "length": 5}))
    assert reverse.targets[0, 5:].tolist() == reverse.tokens[0, :5].flip(0).tolist()
    parity = make_task(("parity", {"samples": 50, "length": 6}))
    assert torch.equal(parity.targets[:, -1], parity.tokens[:, :6].sum(1) % 2)
    majority = make_task(("majority", {"samples": 50, "length": 7}))
    assert torch.equal(majority.targets[:, -1], (majority.tokens[:, :7].sum(1) > 3).long())
    with pytest.raises(UsageError, match="odd"):
        make_task(("majority", {"length": 4}))


def test_text_task_reads_a_local_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello world, hello netevo\n" * 20)
    spec = get_task_spec("text")
    task = make_task(("text", {"path": str(path), "context": 16}))
    assert spec.n_inputs({"path": str(path)}) == task.vocab_size == len(set(path.read_text()))
    assert task.tokens.shape[1] == 16 and torch.equal(task.tokens[0, 1:], task.targets[0, :-1])
    assert 0 < task.n_train < task.tokens.shape[0]
    with pytest.raises(UsageError, match="cannot read"):
        make_task(("text", {"path": str(tmp_path / "missing.txt")}))


def test_csv_task_reads_features_and_classes(tmp_path):
    path = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    rows = ["a,b,kind,c"] + [f"{x:.3f},{y:.3f},{'big' if x + y > 0 else 'small'},{z:.3f}"
                             for x, y, z in rng.normal(size=(60, 3))]
    path.write_text("\n".join(rows) + "\n")
    params = {"path": str(path), "target": "kind"}
    spec = get_task_spec("csv")
    task = make_task(("csv", params))
    assert (spec.n_inputs(params), spec.n_outputs(params)) == (task.n_inputs, task.n_outputs) == (3, 2)
    assert task.classes == ("big", "small")
    path.write_text("a,kind\n1,x\noops,y\n2,x\n")
    with pytest.raises(UsageError, match="non-numeric"):
        make_task(("csv", params))


def test_task_objects_and_pairs_are_accepted():
    task = make_task("iris")
    assert make_task(task) is task
    assert make_task(("iris", {"seed": 1})).params["seed"] == 1
    with pytest.raises(UsageError):
        make_task(42)
