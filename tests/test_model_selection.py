"""Class-disjoint splitters and class-disjoint early stopping (the open-set protocol)."""

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, check_cv

from sklearn_dml import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    TripletEmbedder,
)
from sklearn_dml.losses import TripletMarginLoss
from sklearn_dml.metrics import map_at_r_score, map_at_r_scorer
from sklearn_dml.model_selection import ClassDisjointKFold, ClassDisjointShuffleSplit
from sklearn_dml.training.validation import validation_split


def _labels():
    # 7 string classes of unequal sizes, interleaved.
    sizes = [5, 1, 3, 8, 2, 4, 6]
    y = np.repeat(np.array(list("gfedcba")), sizes)
    return np.random.RandomState(0).permutation(y)


def _assert_class_disjoint(train, test, y, n_samples):
    assert np.intersect1d(np.unique(y[train]), np.unique(y[test])).size == 0
    assert np.intersect1d(train, test).size == 0
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert train.min(initial=0) >= 0 and max(train.max(), test.max()) < n_samples


# ------------------------------------------------------------ ClassDisjointKFold
def test_kfold_partitions_classes_in_sorted_order():
    y = _labels()
    X = np.zeros((len(y), 2))
    expected_folds = np.array_split(np.unique(y), 3)  # [a b c], [d e], [f g]
    cv = ClassDisjointKFold(n_splits=3)
    seen = np.zeros(len(y), dtype=int)
    splits = list(cv.split(X, y))
    assert len(splits) == cv.get_n_splits() == 3
    for (train, test), classes in zip(splits, expected_folds):
        _assert_class_disjoint(train, test, y, len(y))
        assert_array_equal(np.unique(y[test]), classes)
        assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
        seen[test] += 1
    assert np.all(seen == 1)  # every sample is tested exactly once


def test_kfold_shuffle_is_reproducible_and_balanced():
    y = np.repeat(np.arange(20), 3)
    X = np.zeros((60, 1))

    def fold_classes(seed):
        cv = ClassDisjointKFold(4, shuffle=True, random_state=seed)
        return [tuple(np.unique(y[test])) for _, test in cv.split(X, y)]

    first = fold_classes(0)
    assert first == fold_classes(0)
    assert first != fold_classes(1)
    assert sorted(len(c) for c in first) == [5, 5, 5, 5]
    assert sorted(c for fold in first for c in fold) == list(range(20))
    assert first != [tuple(c) for c in np.array_split(np.arange(20), 4)]


@pytest.mark.parametrize(
    "make, y, exc, match",
    [
        (
            lambda: ClassDisjointKFold(4),
            [0, 0, 1, 1, 2, 2],
            ValueError,
            "at least 4 classes",
        ),
        (lambda: ClassDisjointKFold(2), None, ValueError, "needs the labels"),
        (lambda: ClassDisjointKFold(1), [0, 1], ValueError, "n_splits >= 2"),
        (lambda: ClassDisjointKFold(2.0), [0, 1], TypeError, "integer"),
        (lambda: ClassDisjointKFold(2, shuffle="yes"), [0, 1], TypeError, "shuffle"),
        (
            lambda: ClassDisjointKFold(2, random_state=0),
            [0, 1],
            ValueError,
            "shuffle=True",
        ),
    ],
)
def test_kfold_errors(make, y, exc, match):
    with pytest.raises(exc, match=match):
        cv = make()
        list(cv.split(np.zeros((6, 1)), y))


def test_splitters_work_with_check_cv_and_repr():
    cv = ClassDisjointKFold(3, shuffle=True, random_state=0)
    assert check_cv(cv) is cv
    assert repr(cv) == "ClassDisjointKFold(n_splits=3, random_state=0, shuffle=True)"
    ss = ClassDisjointShuffleSplit(2, test_size=0.3)
    assert check_cv(ss) is ss and ss.get_n_splits() == 2
    assert "test_size=0.3" in repr(ss)


# ---------------------------------------------------- ClassDisjointShuffleSplit
@pytest.mark.parametrize(
    "kwargs, n_test, n_train",
    [
        ({}, 4, 3),  # default test_size=0.5 of 7 classes, rounded up
        ({"test_size": 0.25, "train_size": 0.5}, 2, 3),  # ceil(1.75), floor(3.5)
        ({"train_size": 0.6}, 3, 4),  # floor(4.2) train, the rest test
        ({"test_size": 2}, 2, 5),
        ({"test_size": 1, "train_size": 2}, 1, 2),
    ],
)
def test_shuffle_split_class_counts(kwargs, n_test, n_train):
    y = _labels()
    X = np.zeros((len(y), 3))
    cv = ClassDisjointShuffleSplit(n_splits=4, random_state=0, **kwargs)
    splits = list(cv.split(X, y))
    assert len(splits) == 4
    for train, test in splits:
        _assert_class_disjoint(train, test, y, len(y))
        assert np.unique(y[test]).size == n_test
        assert np.unique(y[train]).size == n_train
        # A class is entirely on its side.
        for c in np.unique(y[test]):
            assert np.isin(np.flatnonzero(y == c), test).all()
    # Reproducible with an int seed, and the draws vary between splits.
    again = list(ClassDisjointShuffleSplit(4, random_state=0, **kwargs).split(X, y))
    for (tr1, te1), (tr2, te2) in zip(splits, again):
        assert_array_equal(tr1, tr2) and assert_array_equal(te1, te2)
    assert len({tuple(np.unique(y[test])) for _, test in splits}) > 1


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"test_size": 1.5}, ValueError, "strictly between 0 and 1"),
        ({"test_size": 0.0}, ValueError, "strictly between 0 and 1"),
        ({"test_size": 0}, ValueError, "at least 1 class"),
        ({"test_size": "half"}, TypeError, "fraction of the classes"),
        ({"n_splits": 0}, ValueError, "at least 1"),
        ({"test_size": 5, "train_size": 3}, ValueError, "at most 7"),
        ({"test_size": 7}, ValueError, "0 training classes"),
    ],
)
def test_shuffle_split_errors(kwargs, exc, match):
    y = _labels()
    with pytest.raises(exc, match=match):
        cv = ClassDisjointShuffleSplit(**kwargs)
        list(cv.split(np.zeros((len(y), 1)), y))


def test_shuffle_split_needs_labels():
    with pytest.raises(ValueError, match="needs the labels"):
        next(ClassDisjointShuffleSplit().split(np.zeros((4, 1))))


# ------------------------------------------------------ GridSearchCV end to end
def test_grid_search_on_unseen_classes_of_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16, y[:600]
    est = TripletEmbedder(
        n_components=8,
        hidden_layer_sizes=(16,),
        max_iter=3,
        mining="batch_hard",
        random_state=0,
    )
    search = GridSearchCV(
        est,
        {"margin": [0.05, 0.2]},
        cv=ClassDisjointKFold(3),
        scoring=map_at_r_scorer,
        refit=False,
    )
    search.fit(X, y)
    scores = np.array([search.cv_results_[f"split{k}_test_score"] for k in range(3)])
    assert scores.shape == (3, 2) and np.all((scores > 0) & (scores <= 1))
    assert search.best_params_["margin"] in (0.05, 0.2)
    # Independent recomputation of one cell: train on the classes outside fold
    # 1 (digits 4-6), score leave-one-out retrieval among digits 4-6 only.
    in_test = np.isin(y, [4, 5, 6])
    model = clone(est).set_params(margin=0.2).fit(X[~in_test], y[~in_test])
    assert set(model.classes_) == {0, 1, 2, 3, 7, 8, 9}
    expected = map_at_r_score(model.transform(X[in_test]), y[in_test])
    assert scores[1, 1] == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------- class-disjoint early stopping
class _RecordingLoss(torch.nn.Module):
    """Triplet loss that records the class codes of every training batch."""

    def __init__(self):
        super().__init__()
        self.inner = TripletMarginLoss(margin=0.1)
        self.seen = set()

    def forward(self, embeddings, labels, indices_tuple=None):
        self.seen.update(labels.unique().tolist())
        return self.inner(embeddings, labels, indices_tuple)


@pytest.fixture(scope="module")
def eight_classes():
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=2.0, size=(8, 5))
    y = np.repeat(np.arange(8), 12)
    return centers[y] + rng.normal(size=(96, 5)), y


@pytest.mark.parametrize(
    "cls",
    [TripletEmbedder, ContrastiveEmbedder, MultiSimilarityEmbedder, DeepMetricEmbedder],
)
def test_validation_split_is_a_parameter_of_every_embedder(cls):
    assert cls().get_params()["validation_split"] == "stratified"
    names = list(cls().get_params())
    assert "validation_split" in names


def test_class_disjoint_early_stopping_validates_on_unseen_classes(eight_classes):
    X, y = eight_classes
    emb = DeepMetricEmbedder(
        loss=_RecordingLoss(),
        n_components=4,
        hidden_layer_sizes=(8,),
        max_iter=3,
        early_stopping=True,
        validation_fraction=0.25,
        validation_split="class_disjoint",
        random_state=0,
    ).fit(X, y)
    trained = sorted(emb.loss_.seen)
    held_out = np.setdiff1d(np.arange(8), trained)
    assert held_out.size == 2  # round(0.25 * 8) classes never reach the loss
    assert len(emb.validation_scores_) == 3
    # The restored best weights reproduce the best validation MAP@R, computed
    # here on the held-out classes only.
    val = np.isin(y, held_out)
    expected = map_at_r_score(emb.transform(X[val]), y[val])
    assert emb.best_validation_score_ == pytest.approx(expected, rel=1e-6)
    # The default stratified split trains on every class.
    strat = clone(emb).set_params(validation_split="stratified").fit(X, y)
    assert sorted(strat.loss_.seen) == list(range(8))


@pytest.mark.parametrize(
    "n_classes, fraction, n_val",
    [(10, 0.1, 2), (10, 0.25, 3), (10, 0.5, 5), (5, 0.9, 3), (4, 0.1, 2), (9, 0.5, 5)],
)
def test_class_disjoint_hold_out_size(n_classes, fraction, n_val):
    codes = np.repeat(np.arange(n_classes), 3)
    train, val = validation_split(codes, fraction, "class_disjoint", seed=3)
    assert np.unique(codes[val]).size == n_val
    assert np.intersect1d(codes[train], codes[val]).size == 0
    assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(codes.size))


@pytest.mark.parametrize("n_classes, warns", [(10, True), (22, True), (23, False)])
def test_class_disjoint_hold_out_warns_with_few_held_out_classes(n_classes, warns):
    codes = np.repeat(np.arange(n_classes), 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validation_split(codes, 0.2, "class_disjoint", seed=0)
    few = [w for w in caught if "so few classes" in str(w.message)]
    assert bool(few) == warns


def test_class_disjoint_early_stopping_needs_four_classes(eight_classes):
    X, y = eight_classes
    keep = y < 3
    emb = TripletEmbedder(
        max_iter=1, early_stopping=True, validation_split="class_disjoint"
    )
    with pytest.raises(ValueError, match="at least 4 classes"):
        emb.fit(X[keep], y[keep])
    assert not hasattr(emb, "backbone_")


def test_bad_validation_split_rejected(eight_classes):
    X, y = eight_classes
    with pytest.raises(ValueError, match="'validation_split' parameter"):
        TripletEmbedder(max_iter=1, validation_split="random").fit(X, y)
