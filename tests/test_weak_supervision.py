"""Weak supervision: constraints from labels, tuple input, the learners' contract.

The constraint builders against brute force; tuples given as features, as
indices with an array or a callable preprocessor, and the errors of bad
input; the contract of the learners fitted on tuples (clone, parameters, no
mutation, atomic refit) which scikit-learn's checks cannot test on 2-D X;
their composition with Pipeline, GridSearchCV and cross_val_score; the deep
embedders fitted on pairs and triplets.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_dml import WeakContrastiveEmbedder, WeakTripletEmbedder
from sklearn_dml.constraints import (
    chunks_from_labels,
    knn_triplets,
    positive_negative_pairs,
    quadruplets_from_labels,
    triplets_from_labels,
)
from sklearn_dml.embedders._weak import _TupleLoss
from sklearn_dml.losses import ContrastiveLoss
from sklearn_dml.mahalanobis import ITML, LSML, SCML, ITMLSupervised

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)
Y5 = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])


# ------------------------------------------------------------------ constraints
def test_positive_negative_pairs_are_valid_and_seeded():
    pairs, y_pairs = positive_negative_pairs(Y5, 200, random_state=0)
    same = Y5[pairs[:, 0]] == Y5[pairs[:, 1]]
    np.testing.assert_array_equal(same, y_pairs == 1)
    assert (y_pairs == 1).sum() == (y_pairs == -1).sum() == 200
    assert (pairs[:, 0] != pairs[:, 1]).all()
    # Every valid positive pair of Y5 is drawn eventually (uniform partners).
    drawn = {tuple(p) for p in pairs[y_pairs == 1]}
    valid = {(i, j) for i in range(10) for j in range(10) if i != j and Y5[i] == Y5[j]}
    assert drawn == valid
    again, _ = positive_negative_pairs(Y5, 200, random_state=0)
    np.testing.assert_array_equal(pairs, again)


def test_triplets_and_quadruplets_are_valid():
    t = triplets_from_labels(Y5, 100, random_state=0)
    assert (Y5[t[:, 0]] == Y5[t[:, 1]]).all() and (Y5[t[:, 0]] != Y5[t[:, 2]]).all()
    assert (t[:, 0] != t[:, 1]).all()
    q = quadruplets_from_labels(Y5, 50, random_state=0)
    assert (Y5[q[:, 0]] == Y5[q[:, 1]]).all() and (Y5[q[:, 2]] != Y5[q[:, 3]]).all()


def test_knn_triplets_match_brute_force():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), np.repeat([0, 1, 2], 10)
    t = knn_triplets(X, y, k_genuine=2, k_impostor=3)
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    expected = []
    for a in range(30):
        same = [j for j in np.argsort(D[a]) if y[j] == y[a] and j != a][:2]
        other = [j for j in np.argsort(D[a]) if y[j] != y[a]][:3]
        expected += [(a, p, n) for p in same for n in other]
    assert sorted(map(tuple, t)) == sorted(expected)


def test_chunks_are_disjoint_single_class_groups():
    chunks = chunks_from_labels(Y_IRIS, 20, 4, random_state=0)
    assert np.bincount(chunks[chunks >= 0]).tolist() == [4] * 20
    for c in range(20):
        assert np.unique(Y_IRIS[chunks == c]).size == 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: positive_negative_pairs([0, 1, 2], 5), "No class of y has two"),
        (lambda: positive_negative_pairs([1, 1, 1], 5), "single class"),
        (lambda: triplets_from_labels([1, 1], 5), "single class"),
        (lambda: chunks_from_labels([0, 0, 1, 1], 3, 2), "n_chunks=3"),
        (lambda: knn_triplets(np.ones((4, 1)), [0, 0, 1, 1]), "k_genuine=3"),
        (lambda: positive_negative_pairs([0, 1], 0), "n_constraints"),
    ],
)
def test_impossible_constraints_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ tuple input
PAIRS, Y_PAIRS = positive_negative_pairs(Y_IRIS, 40, random_state=0)


def test_index_tuples_with_a_preprocessor_equal_tuples_of_features():
    by_features = ITML().fit(X_IRIS[PAIRS], Y_PAIRS)
    by_array = ITML(preprocessor=X_IRIS).fit(PAIRS, Y_PAIRS)
    calls = []

    def lookup(ids):
        calls.append(ids.copy())
        return X_IRIS[ids]

    by_callable = ITML(preprocessor=lookup).fit(PAIRS, Y_PAIRS)
    for other in (by_array, by_callable):
        np.testing.assert_allclose(other.components_, by_features.components_)
    # The callable is called once, with the distinct identifiers.
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], np.unique(PAIRS))
    np.testing.assert_array_equal(
        by_array.predict(PAIRS), by_features.predict(X_IRIS[PAIRS])
    )


@pytest.mark.parametrize(
    "tuples, y, preprocessor, match",
    [
        (PAIRS, Y_PAIRS, None, "no preprocessor"),
        (PAIRS.astype(float), Y_PAIRS, X_IRIS, "must be integers"),
        (PAIRS + 1000, Y_PAIRS, X_IRIS, "outside the 150 rows"),
        (PAIRS, Y_PAIRS, lambda ids: X_IRIS[ids][:3], "one row of features per"),
        (X_IRIS[PAIRS][:, :1], Y_PAIRS, None, r"shape \(n_pairs, 2, n_features\)"),
        (X_IRIS[:10], Y_PAIRS[:10], None, r"shape \(n_pairs, 2, n_features\)"),
        (X_IRIS[PAIRS], Y_PAIRS * 2, None, "y must hold booleans"),
        (X_IRIS[PAIRS], np.ones_like(Y_PAIRS), None, "only same-class"),
        (X_IRIS[PAIRS], Y_PAIRS[:5], None, "one label per pair"),
        (X_IRIS[PAIRS], None, None, "needs y"),
    ],
)
def test_bad_pairs_input_raises_clear_errors(tuples, y, preprocessor, match):
    with pytest.raises(ValueError, match=match):
        ITML(max_iter=2, preprocessor=preprocessor).fit(tuples, y)


def test_tuple_learners_refuse_labels_and_wrong_tuple_sizes():
    triplets = triplets_from_labels(Y_IRIS, 30, random_state=0)
    with pytest.raises(ValueError, match="without y"):
        SCML(n_basis=8, max_iter=10, preprocessor=X_IRIS).fit(triplets, np.ones(30))
    with pytest.raises(ValueError, match=r"shape \(n_quadruplets, 4"):
        LSML(preprocessor=X_IRIS).fit(triplets)
    itml = ITML(preprocessor=X_IRIS).fit(PAIRS, Y_PAIRS)
    with pytest.raises(ValueError, match="have 3 features"):
        itml.predict(X_IRIS[PAIRS][:, :, :3])


# -------------------------------------------------------------------- contract
def test_weak_learner_contract_clone_params_no_mutation_atomic_refit():
    pairs = X_IRIS[PAIRS]
    pairs_before, y_before = pairs.copy(), Y_PAIRS.copy()
    itml = ITML(gamma=2.0)
    assert clone(itml).get_params() == itml.get_params()
    itml.fit(pairs, Y_PAIRS)
    np.testing.assert_array_equal(pairs, pairs_before)
    np.testing.assert_array_equal(Y_PAIRS, y_before)
    assert not hasattr(clone(itml), "components_")
    state = {k: np.copy(v) for k, v in vars(itml).items() if k.endswith("_")}
    with pytest.raises(ValueError):
        itml.fit(pairs[:, :, :2] * np.nan, Y_PAIRS)
    for key, value in state.items():
        np.testing.assert_array_equal(getattr(itml, key), value)
    with pytest.raises(ValueError, match="gamma"):
        ITML(gamma=-1.0).fit(pairs, Y_PAIRS)


def test_pairs_predict_in_fits_label_encoding_and_score_is_roc_auc():
    from sklearn.metrics import roc_auc_score

    for y in (Y_PAIRS, Y_PAIRS == 1, (Y_PAIRS == 1).astype(int)):
        itml = ITML(preprocessor=X_IRIS).fit(PAIRS, y)
        assert set(np.unique(itml.predict(PAIRS))) <= set(np.unique(y))
        expected = roc_auc_score(y == y.max(), -itml.pair_distance(PAIRS))
        assert itml.score(PAIRS, y) == pytest.approx(expected)
    assert np.mean(itml.predict(PAIRS) == y) > 0.9


# ----------------------------------------------------------------- composition
def test_grid_search_on_pairs_with_ordinary_kfold():
    search = GridSearchCV(
        ITML(preprocessor=X_IRIS),
        {"gamma": [0.1, 10.0]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(PAIRS, Y_PAIRS)
    assert search.best_params_["gamma"] in (0.1, 10.0)
    assert search.best_score_ > 0.8
    accuracy = cross_val_score(
        ITML(), X_IRIS[PAIRS], Y_PAIRS, cv=KFold(3), scoring="accuracy"
    )
    assert accuracy.mean() > 0.8


def test_cross_val_score_on_triplets_and_pipeline_on_tuples():
    triplets = triplets_from_labels(Y_IRIS, 90, random_state=0)
    scores = cross_val_score(
        SCML(n_basis=16, max_iter=300, random_state=0, preprocessor=X_IRIS),
        triplets,
        cv=KFold(3),
    )
    assert scores.mean() > 0.8
    # A stateless step may reshape the 3-D tuples before the learner.
    pipe = make_pipeline(FunctionTransformer(lambda t: t / 2), ITML())
    assert pipe.fit(X_IRIS[PAIRS], Y_PAIRS).score(X_IRIS[PAIRS], Y_PAIRS) > 0.8


def test_supervised_learner_in_pipeline_with_its_own_splitter():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(
        StandardScaler(),
        ITMLSupervised(random_state=0),
        KNeighborsClassifier(3),
    )
    search = GridSearchCV(
        pipe,
        {"itmlsupervised__gamma": [0.5, 2.0]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_score_ > 0.9


# ------------------------------------------------------------- deep embedders
def test_tuple_loss_is_the_contrastive_loss_of_the_given_pairs_only():
    rng = np.random.default_rng(0)
    Z = torch.tensor(rng.normal(size=(6, 2, 3)))
    labels = torch.tensor([1, 0, 1, 0, 0, 1])
    value = _TupleLoss(ContrastiveLoss(pos_margin=0.0, neg_margin=1.5), 2)(
        Z.reshape(6, 6), labels
    )
    U = Z.numpy() / np.linalg.norm(Z.numpy(), axis=2, keepdims=True)  # unit sphere
    d = np.linalg.norm(U[:, 0] - U[:, 1], axis=1)
    same = labels.numpy() == 1
    pos, neg = d[same], np.maximum(1.5 - d[~same], 0)
    expected = pos[pos > 0].mean() + neg[neg > 0].mean()
    assert float(value) == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def test_weak_contrastive_embedder_learns_from_pairs(digits):
    X, y = digits
    train, test = np.arange(0, 900), np.arange(900, 1797)
    pairs, y_pairs = positive_negative_pairs(y[train], 400, random_state=0)
    held, y_held = positive_negative_pairs(y[test], 300, random_state=1)
    emb = WeakContrastiveEmbedder(
        n_components=16, max_iter=5, random_state=0, preprocessor=X[train]
    ).fit(pairs, y_pairs)
    # Held-out pairs of other samples, as features.
    before = WeakContrastiveEmbedder(
        n_components=16, max_iter=1, learning_rate_init=1e-9, random_state=0
    ).fit(X[train][pairs], y_pairs)
    assert emb.score(X[test][held], y_held) > before.score(X[test][held], y_held)
    assert emb.score(X[test][held], y_held) > 0.85
    assert set(emb.predict(X[test][held])) <= {-1, 1}
    assert emb.transform(X[:3]).shape == (3, 16)


def test_weak_triplet_embedder_learns_from_triplets(digits):
    X, y = digits
    triplets = triplets_from_labels(y[:900], 1000, random_state=0)
    held = triplets_from_labels(y[900:], 300, random_state=1)
    emb = WeakTripletEmbedder(
        n_components=16, max_iter=5, random_state=0, preprocessor=X[:900]
    ).fit(triplets)
    before = WeakTripletEmbedder(
        n_components=16, max_iter=1, learning_rate_init=1e-9, random_state=0
    ).fit(X[:900][triplets])
    assert emb.score(X[900:][held]) > before.score(X[900:][held]) + 0.02
    assert emb.score(X[900:][held]) > 0.85
    with pytest.raises(ValueError, match="without y"):
        emb.fit(triplets, np.ones(1000))


def test_weak_embedders_refuse_options_of_labelled_training(digits):
    X, y = digits
    pairs, y_pairs = positive_negative_pairs(y[:200], 50, random_state=0)
    with pytest.raises(ValueError, match="early_stopping"):
        WeakContrastiveEmbedder(early_stopping=True).fit(X[:200][pairs], y_pairs)
    with pytest.raises(ValueError, match="mixup"):
        WeakContrastiveEmbedder(mixup="input").fit(X[:200][pairs], y_pairs)
    assert not hasattr(WeakContrastiveEmbedder(), "partial_fit")
