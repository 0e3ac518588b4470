"""Training data for network evolution: splits, standardisation, shapes, the guarded test split.

Outside definitions: scikit-learn's bundled datasets (the samples must be exactly sklearn's rows,
standardised with the training split's numpy mean and std), numpy's own .npz files.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import datasets as skd

from netevo_dsl.errors import NetevoError
from netevo_dsl.ops.training_tasks import TRAINING_TASKS
from netevo_dsl.runtime.datasets import load_training_data, split_indices


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_sklearn_tasks_split_without_overlap_and_standardise_with_train_stats(name):
    raw = getattr(skd, f"load_{name}")()
    x_all, y_all = raw.data, raw.target
    data = load_training_data(name, {}, (x_all.shape[1],), seed=3, dtype=torch.float64)
    data.unlock_test()
    x_test, y_test = data.test_split()
    n = len(data.y_train) + len(data.y_val) + len(y_test)
    assert n == len(y_all) and data.n_classes == len(np.unique(y_all))
    # the training split has mean 0 and std 1 per non-constant feature (numpy's population std)
    train, val, test = split_indices(y_all, 0.2, 0.2, 3)
    xt = data.x_train.numpy()
    live = x_all[train].std(0) > 0
    np.testing.assert_allclose(xt.mean(0)[live], 0, atol=1e-9)
    np.testing.assert_allclose(xt.std(0)[live], 1, atol=1e-9)
    # the samples are sklearn's rows of the three disjoint index sets, standardised with the train rows' stats
    assert len(set(train) | set(val) | set(test)) == len(y_all) == len(train) + len(val) + len(test)
    mean, std = x_all[train].mean(0), x_all[train].std(0)
    std[std == 0] = 1
    for x, y, idx in ((data.x_train, data.y_train, train), (data.x_val, data.y_val, val), (x_test, y_test, test)):
        np.testing.assert_allclose(x.numpy(), (x_all[idx] - mean) / std, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(y.numpy(), y_all[idx])


def test_split_is_stratified_and_seeded():
    y = skd.load_digits().target
    a = split_indices(y, 0.2, 0.2, 0)
    b = split_indices(y, 0.2, 0.2, 0)
    c = split_indices(y, 0.2, 0.2, 1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    for part, share in ((a[1], 0.2), (a[2], 0.2)):
        per_class = np.bincount(y[part], minlength=10) / np.bincount(y, minlength=10)
        assert np.all(np.abs(per_class - share) < 0.02)


def test_digits_as_images_or_features():
    flat = load_training_data("digits", {}, (64,), seed=0)
    img = load_training_data("digits", {}, (1, 8, 8), seed=0)
    assert flat.x_train.shape[1:] == (64,) and img.x_train.shape[1:] == (1, 8, 8)
    assert torch.equal(img.x_train.reshape(len(img.x_train), 64), flat.x_train)
    # pixel (row 3, column 5) of the image is feature 3 * 8 + 5, as in sklearn's images array
    raw = skd.load_digits()
    assert np.array_equal(raw.images.reshape(len(raw.images), 64), raw.data)
    with pytest.raises(NetevoError) as info:
        load_training_data("digits", {}, (32,))
    assert info.value.code == "E131"


def test_test_split_is_locked_until_unlocked():
    data = load_training_data("iris", {}, (4,), seed=0)
    with pytest.raises(NetevoError) as info:
        data.test_split()
    assert info.value.code == "E130" and data.test_reads == 0
    data.unlock_test()
    x, y = data.test_split()
    assert len(x) == len(y) == 30 and data.test_reads == 1


def test_npz_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3))
    y = np.repeat(["a", "b", "c"], 20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_training_data("npz", {"path": str(tmp_path / "d.npz")}, (2, 3), seed=0, dtype=torch.float64)
    assert data.n_classes == 3 and data.x_train.shape[1:] == (2, 3)
    assert len(data.y_train) + len(data.y_val) == 48
    rows = ["f1,f2,label"] + [f"{a},{b},{c}" for (a, b), c in zip(rng.normal(size=(40, 2)), np.repeat(["x", "y"], 20))]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    data = load_training_data("csv", {"path": str(tmp_path / "d.csv"), "target": "label"}, (2,), seed=0)
    assert data.n_classes == 2 and len(data.y_train) == 24
    np.savez(tmp_path / "bad.npz", x=x)
    for task, params in (("npz", {"path": str(tmp_path / "bad.npz")}), ("npz", {"path": str(tmp_path / "no.npz")}),
                         ("csv", {"path": str(tmp_path / "d.csv")}), ("mnist", {}), ("iris", {"seed": 1})):
        with pytest.raises(NetevoError) as info:
            load_training_data(task, params, (2,))
        assert info.value.code == "E131"


def test_task_table_is_pure_python():
    import subprocess
    import sys

    code = "import sys; from netevo_dsl.ops.training_tasks import TRAINING_TASKS; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(TRAINING_TASKS) == {"digits", "iris", "wine", "breast_cancer", "csv", "npz"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=12, max_size=300), st.floats(0.05, 0.4), st.floats(0.05, 0.4),
       st.integers(0, 2 ** 16))
def test_split_partitions_every_class_in_proportion(labels, val_fraction, test_fraction, seed):
    """Property: the three parts partition the samples; each class's share per part is its rounded fraction."""
    labels = np.array(labels)
    try:
        parts = split_indices(labels, val_fraction, test_fraction, seed)
    except NetevoError as e:
        assert e.code == "E131"  # too few samples for three non-empty parts
        return
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) and len(set(joined.tolist())) == len(labels)
    for c in np.unique(labels):
        n = int((labels == c).sum())
        n_test = min(int(round(test_fraction * n)), n - 1)
        assert int((labels[parts[2]] == c).sum()) == n_test
        assert int((labels[parts[0]] == c).sum()) >= 1  # every class keeps a training sample
