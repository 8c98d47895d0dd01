"""Dataset API: name/argument errors, balanced subsets, batch iteration, shape adapters."""

from __future__ import annotations

import numpy as np
import pytest

from fxpsim.errors import FxpsimError
from fxpsim.training.data import (
    Dataset,
    adapt,
    balanced_subset,
    batches,
    first_per_class,
    load_dataset,
    pad_to,
    to_channels,
)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(FxpsimError, match="fmnist_small, fashion_mnist, cifar10") as err:
        load_dataset("digits")
    assert "'digits'" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"data_dir": "/tmp"}, "data_dir: fmnist_small is embedded"),
        ({"seed": -1}, "seed: must be an integer >= 0"),
        ({"limit_train": 0}, "limit_train: must be an integer >= 1"),
        ({"limit_test": 2.5}, "limit_test: must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, expect: str) -> None:
    with pytest.raises(FxpsimError, match=expect):
        load_dataset("fmnist_small", **kwargs)


def test_balanced_subset_hand_example() -> None:
    """Classes of sizes 4, 1, 3: limit 6 -> class 1 gives its only sample, the others
    share the rest by rank (class 0: 3, class 2: 2 -- lower class first at equal rank)."""
    labels = np.array([0, 2, 0, 1, 2, 0, 2, 0])
    keep = balanced_subset(labels, 6, np.random.default_rng(0), 3)
    assert keep.dtype == np.int64 and np.all(np.diff(keep) > 0)
    assert np.bincount(labels[keep], minlength=3).tolist() == [3, 1, 2]
    again = balanced_subset(labels, 6, np.random.default_rng(0), 3)
    np.testing.assert_array_equal(keep, again)
    assert balanced_subset(labels, 8, np.random.default_rng(0), 3).tolist() == list(range(8))
    assert balanced_subset(labels, 3, np.random.default_rng(1), 3).size == 3


def test_balanced_subset_covers_different_samples_per_seed() -> None:
    labels = np.repeat(np.arange(4), 50)
    picks = {tuple(balanced_subset(labels, 8, np.random.default_rng(s), 4)) for s in range(5)}
    assert len(picks) == 5


def test_first_per_class() -> None:
    labels = np.array([1, 0, 1, 1, 0, 2, 2, 0])
    assert first_per_class(labels, 2, 3).tolist() == [0, 1, 2, 4, 5, 6]
    with pytest.raises(FxpsimError, match="class 2 has 2 samples"):
        first_per_class(labels, 3, 3)


def test_batches_deterministic_and_complete() -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    y = np.arange(10, dtype=np.int64)
    state = np.random.get_state()[1].copy()
    e0 = [b[1].tolist() for b in batches(x, y, 4, seed=5, epoch=0)]
    assert np.array_equal(np.random.get_state()[1], state)  # no global RNG touched
    assert [len(b) for b in e0] == [4, 4, 2]
    assert sorted(sum(e0, [])) == list(range(10))
    assert e0 == [b[1].tolist() for b in batches(x, y, 4, seed=5, epoch=0)]
    assert e0 != [b[1].tolist() for b in batches(x, y, 4, seed=5, epoch=1)]
    assert e0 != [b[1].tolist() for b in batches(x, y, 4, seed=6, epoch=0)]
    for bx, by in batches(x, y, 4, seed=5, epoch=0):
        np.testing.assert_array_equal(bx[:, 0, 0, 0], by.astype(np.float32))
    dropped = [b[1].tolist() for b in batches(x, y, 4, seed=5, epoch=0, drop_last=True)]
    assert dropped == e0[:2]
    plain = [b[1].tolist() for b in batches(x, y, 3, seed=5, epoch=0, shuffle=False)]
    assert plain == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    expected = np.random.default_rng((5, 2, 0)).permutation(10)
    assert sum(e0, []) == expected.tolist()


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [({"batch": 0}, "batch"), ({"seed": -1}, "seed"), ({"epoch": 1.0}, "epoch")],
)
def test_batches_bad_arguments(kwargs: dict, expect: str) -> None:
    args = {"batch": 2, "seed": 0, "epoch": 0} | kwargs
    x = np.zeros((4, 1, 1, 1))
    with pytest.raises(ValueError, match=expect):
        list(batches(x, np.zeros(4), args.pop("batch"), **args))
    with pytest.raises(ValueError, match="y: has 3 samples but x has 4"):
        list(batches(x, np.zeros(3), 2, seed=0, epoch=0))


def test_pad_to_centres_images() -> None:
    x = np.arange(2 * 1 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28) + 1
    p = pad_to(x, 32)
    assert p.shape == (2, 1, 32, 32) and p.dtype == np.float32
    np.testing.assert_array_equal(p[:, :, 2:30, 2:30], x)
    assert p.sum() == x.sum()  # the border is zero
    q = pad_to(x, (31, 29))
    np.testing.assert_array_equal(q[:, :, 1:29, 0:28], x)
    assert pad_to(x, 28) is x
    with pytest.raises(ValueError, match="hw: target 27x27"):
        pad_to(x, 27)


def test_to_channels_and_adapt() -> None:
    x = np.random.default_rng(0).random((3, 1, 4, 4), dtype=np.float32)
    t = to_channels(x, 3)
    assert t.shape == (3, 3, 4, 4) and all(np.array_equal(t[:, c], x[:, 0]) for c in range(3))
    assert to_channels(t, 3) is t
    with pytest.raises(ValueError, match="cannot turn 3-channel"):
        to_channels(t, 1)
    ds = Dataset("t", x, np.zeros(3, np.int64), x[:1], np.zeros(1, np.int64), 10, (1, 4, 4),
                 "s", "l")
    a = adapt(ds, (3, 8, 8))
    assert a.input_shape == (3, 8, 8) and a.train_x.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(a.test_x[0, 2, 2:6, 2:6], x[0, 0])
