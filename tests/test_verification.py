"""The pair verification API: distances, metric, threshold calibration, decisions."""

import copy
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsClassifier

from sklearn_dml import DeepMetricEmbedder, TripletEmbedder


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=1.5, size=(4, 6))
    y = np.repeat(np.arange(4), 20)
    X = centers[y] + rng.normal(size=(80, 6))
    return X, y


@pytest.fixture(scope="module")
def fitted(blobs):
    X, y = blobs
    return TripletEmbedder(
        n_components=4, hidden_layer_sizes=(16,), max_iter=2, random_state=0
    ).fit(X, y)


@pytest.fixture(scope="module")
def labelled_pairs(blobs):
    X, y = blobs
    rng = np.random.RandomState(1)
    a, b = rng.randint(0, len(X), size=(2, 150))
    return np.stack([X[a], X[b]], axis=1), y[a] == y[b], a, b


def _identity_embedder(n_features=1):
    """A fitted embedder whose embedding is replaced by the identity (hand-checkable)."""
    X = np.arange(8, dtype=float).reshape(4, 2)[:, :n_features]
    emb = DeepMetricEmbedder(backbone=torch.nn.Linear(n_features, 2), max_iter=1)
    emb.fit(np.tile(X, (3, 1)), np.tile([0, 0, 1, 1], 3))
    emb.backbone_ = torch.nn.Identity()
    return emb


def _line_pairs(distances):
    """1-D pairs (0, d): their identity-embedding distances are ``d``."""
    d = np.asarray(distances, dtype=float)
    return np.stack([np.zeros_like(d), d], axis=1)[:, :, None]


# ------------------------------------------------------------ pair distances
def test_pair_distance_and_score_match_numpy(fitted, blobs, labelled_pairs):
    X, _ = blobs
    pairs, _, a, b = labelled_pairs
    Z = fitted.transform(X).astype(np.float64)
    expected = np.sqrt(((Z[a] - Z[b]) ** 2).sum(axis=1))
    dist = fitted.pair_distance(pairs)
    assert dist.shape == (150,) and dist.dtype == np.float64
    # float32 embeddings: a sample embedded in another batch position may differ
    # by a rounding error, so identical samples can be ~1e-7 apart.
    assert_allclose(dist, expected, rtol=1e-6, atol=1e-6)
    assert_allclose(fitted.pair_score(pairs), -expected, rtol=1e-6, atol=1e-6)
    # Lists are accepted and the input array is left untouched.
    before = pairs.copy()
    assert_allclose(fitted.pair_distance(pairs[:5].tolist()), dist[:5], rtol=1e-6)
    assert_array_equal(pairs, before)


@pytest.mark.parametrize(
    "shape",
    [(5, 6), (5, 3, 6), (5, 2, 4), (5, 2, 6, 1), (5, 1, 6)],
)
def test_pairs_of_wrong_shape_are_rejected(fitted, shape):
    with pytest.raises(ValueError, match=r"\(n_pairs, 2, 6\)"):
        fitted.pair_distance(np.zeros(shape))


def test_pairs_with_nan_or_no_rows_are_rejected(fitted):
    pairs = np.zeros((3, 2, 6))
    pairs[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.pair_distance(pairs)
    with pytest.raises(ValueError, match="0 sample"):
        fitted.pair_distance(np.zeros((0, 2, 6)))


def test_unfitted_estimator_raises_not_fitted():
    emb = TripletEmbedder()
    with pytest.raises(NotFittedError):
        emb.pair_distance(np.zeros((2, 2, 6)))
    with pytest.raises(NotFittedError):
        emb.get_metric()


# ------------------------------------------------------------ get_metric
def test_get_metric_gives_knn_the_same_neighbours_as_transform(fitted, blobs):
    X, y = blobs
    rng = np.random.RandomState(2)
    idx = rng.permutation(len(X))
    train, query = idx[:30], idx[30:40]
    knn_metric = KNeighborsClassifier(
        n_neighbors=3, metric=fitted.get_metric(), algorithm="brute"
    ).fit(X[train], y[train])
    Z = fitted.transform(X).astype(np.float64)
    # Independent neighbours: brute-force Euclidean distances between embeddings.
    D = np.sqrt(((Z[query][:, None, :] - Z[train][None, :, :]) ** 2).sum(-1))
    expected_idx = np.argsort(D, axis=1, kind="stable")[:, :3]
    dist, ind = knn_metric.kneighbors(X[query])
    assert_array_equal(ind, expected_idx)
    assert_allclose(dist, np.take_along_axis(D, expected_idx, axis=1), rtol=1e-5)
    knn_emb = KNeighborsClassifier(n_neighbors=3).fit(Z[train], y[train])
    assert_array_equal(knn_metric.predict(X[query]), knn_emb.predict(Z[query]))


def test_get_metric_pickles_and_is_a_snapshot(blobs):
    X, y = blobs
    emb = TripletEmbedder(
        n_components=4, hidden_layer_sizes=(8,), max_iter=1, random_state=0
    ).fit(X, y)
    metric = emb.get_metric()
    value = metric(X[0], X[5])
    Z = emb.transform(X[[0, 5]]).astype(np.float64)
    assert value == pytest.approx(np.linalg.norm(Z[0] - Z[1]), rel=1e-6)
    assert pickle.loads(pickle.dumps(metric))(X[0], X[5]) == pytest.approx(value)
    # Exactly a distance on identical and swapped samples.
    assert metric(X[3], X[3].copy()) == 0.0
    assert metric(X[5], X[0]) == value
    emb.partial_fit(X, y)  # training on does not change the metric taken before
    assert metric(X[0], X[5]) == pytest.approx(value)
    assert emb.get_metric()(X[0], X[5]) != pytest.approx(value)
    with pytest.raises(ValueError, match="6 features"):
        metric(X[0, :4], X[5, :4])


# ------------------------------------------------------------ calibration
# Hand-worked example: distances 0.1 .. 0.6, labels same/same/diff/same/diff/diff.
HAND_D = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
HAND_SAME = [1, 1, 0, 1, 0, 0]


@pytest.mark.parametrize(
    "same, kwargs, expected",
    [
        # accuracy: accept {.1,.2} -> 5/6, ties with {.1..4}; smallest wins.
        (HAND_SAME, {"strategy": "accuracy"}, 0.25),
        # F1: k=2 -> 4/5, k=4 -> 6/7 (best).
        (HAND_SAME, {"strategy": "f_beta"}, 0.45),
        # F0.5: k=2 -> 2.5/2.75, k=4 -> 3.75/4.75; precision wins.
        (HAND_SAME, {"strategy": "f_beta", "beta": 0.5}, 0.25),
        # No false positive allowed: stop before the first different pair.
        (HAND_SAME, {"strategy": "tpr_at_fpr", "max_fpr": 0.0}, 0.25),
        # One of three negatives allowed: all positives reached at 0.4.
        (HAND_SAME, {"strategy": "tpr_at_fpr", "max_fpr": 1 / 3}, 0.45),
        # The closest pair is different and no false positive is allowed:
        # nothing is accepted, half a mean gap (0.05) below the smallest distance.
        ([0, 1, 1, 1, 1, 1], {"strategy": "tpr_at_fpr", "max_fpr": 0.0}, 0.05),
        # Recall-heavy F-beta accepts everything: 0.05 above the largest.
        ([0, 1, 0, 1, 0, 1], {"strategy": "f_beta", "beta": 10.0}, 0.65),
    ],
)
def test_calibrate_threshold_hand_worked(same, kwargs, expected):
    emb = _identity_embedder()
    pairs = _line_pairs(HAND_D)
    assert_allclose(emb.pair_distance(pairs), HAND_D, rtol=1e-6)
    emb.calibrate_threshold(pairs, np.asarray(same), **kwargs)
    assert emb.threshold_ == pytest.approx(expected, abs=1e-6)


def _brute_force_threshold(d, same, strategy, beta=1.0, max_fpr=0.01):
    """Best cut over every candidate 'accept d <= t' by direct counting."""
    candidates = np.concatenate([[-np.inf], np.sort(np.unique(d))])
    P, N = same.sum(), (~same).sum()
    best_value, best_t = -np.inf, None
    for t in candidates:
        pred = d <= t
        tp = int(np.sum(pred & same))
        fp = int(np.sum(pred & ~same))
        fn = P - tp
        if strategy == "accuracy":
            value = (tp + N - fp) / (P + N)
        elif strategy == "f_beta":
            value = (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp)
        else:
            value = tp / P if fp / N <= max_fpr else -1.0
        if value > best_value:
            best_value, best_t = value, t
    accepted = d <= best_t
    return accepted, best_value


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "accuracy"},
        {"strategy": "f_beta"},
        {"strategy": "f_beta", "beta": 0.3},
        {"strategy": "f_beta", "beta": 3.0},
        {"strategy": "tpr_at_fpr", "max_fpr": 0.0},
        {"strategy": "tpr_at_fpr", "max_fpr": 0.05},
        {"strategy": "tpr_at_fpr", "max_fpr": 0.3},
    ],
)
def test_calibrate_threshold_matches_brute_force(kwargs, fitted, blobs, labelled_pairs):
    X, _ = blobs
    pairs, same, a, b = labelled_pairs
    Z = fitted.transform(X).astype(np.float64)
    d = np.sqrt(((Z[a] - Z[b]) ** 2).sum(axis=1))
    accepted, best_value = _brute_force_threshold(d, same, **kwargs)
    emb = copy.deepcopy(fitted).calibrate_threshold(pairs, same, **kwargs)
    # The threshold separates exactly the brute-force accepted pairs, halfway
    # between the largest accepted and the smallest rejected distance.
    assert_array_equal(emb.predict_pairs(pairs), accepted.astype(int))
    if accepted.any() and not accepted.all():
        midpoint = (d[accepted].max() + d[~accepted].min()) / 2
        assert emb.threshold_ == pytest.approx(midpoint, abs=1e-6)
    # The objective reached is the brute-force optimum.
    P, N = same.sum(), (~same).sum()
    tp, fp = np.sum(accepted & same), np.sum(accepted & ~same)
    if kwargs["strategy"] == "accuracy":
        assert (tp + N - fp) / (P + N) == pytest.approx(best_value)
    elif kwargs["strategy"] == "tpr_at_fpr":
        assert fp / N <= kwargs["max_fpr"] and tp / P == pytest.approx(best_value)


def test_calibration_accepts_bool_01_and_pm1_labels():
    emb = _identity_embedder()
    pairs = _line_pairs(HAND_D)
    same = np.array(HAND_SAME)
    thresholds = [
        emb.calibrate_threshold(pairs, labels).threshold_
        for labels in (same.astype(bool), same, 2 * same - 1, (2 * same - 1).tolist())
    ]
    assert_allclose(thresholds, 0.25, atol=1e-6)


@pytest.mark.parametrize(
    "labels, match",
    [
        ([1, 1, 1, 1, 1, 1], "only same-class"),
        ([False] * 6, "only different-class"),
        ([-1] * 6, "only different-class"),
        ([0, 1, 2, 0, 1, 0], r"\{0, 1\} or \{-1, 1\}"),
        ([-1, 0, 1, 0, 1, 0], r"\{0, 1\} or \{-1, 1\}"),
        (["a", "b", "a", "b", "a", "b"], r"\{0, 1\} or \{-1, 1\}"),
        ([1, 0, 1], "one label per pair"),
    ],
)
def test_calibration_rejects_bad_labels(labels, match):
    emb = _identity_embedder()
    with pytest.raises(ValueError, match=match):
        emb.calibrate_threshold(_line_pairs(HAND_D), labels)
    assert not hasattr(emb, "threshold_")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "auc"}, "'strategy' parameter"),
        ({"strategy": "f_beta", "beta": 0.0}, "'beta' parameter"),
        ({"strategy": "f_beta", "beta": float("nan")}, "'beta' parameter"),
        ({"strategy": "f_beta", "beta": True}, "'beta' parameter"),
        ({"strategy": "tpr_at_fpr", "max_fpr": 1.5}, "'max_fpr' parameter"),
        ({"strategy": "tpr_at_fpr", "max_fpr": float("nan")}, "'max_fpr' parameter"),
    ],
)
def test_calibration_rejects_bad_options(kwargs, match):
    emb = _identity_embedder()
    with pytest.raises(ValueError, match=match):
        emb.calibrate_threshold(_line_pairs(HAND_D), HAND_SAME, **kwargs)


# ------------------------------------------------------------ decisions
def test_decision_function_and_predict_pairs(fitted, labelled_pairs):
    pairs, same, _, _ = labelled_pairs
    emb = copy.deepcopy(fitted)
    assert not hasattr(emb, "decision_function")  # hidden until calibrated
    with pytest.raises(NotFittedError, match="calibrate_threshold"):
        emb.decision_function(pairs)
    with pytest.raises(NotFittedError, match="calibrate_threshold"):
        emb.predict_pairs(pairs)
    emb.calibrate_threshold(pairs, same)
    d = emb.pair_distance(pairs)
    decision = emb.decision_function(pairs)
    assert_allclose(decision, emb.threshold_ - d)
    pred = emb.predict_pairs(pairs)
    assert pred.dtype.kind == "i"
    assert_array_equal(pred, (d < emb.threshold_).astype(int))
    assert set(np.unique(pred)) <= {0, 1}


def test_threshold_pickles_clone_drops_it_and_training_resets_it(
    fitted, blobs, labelled_pairs
):
    X, y = blobs
    pairs, same, _, _ = labelled_pairs
    emb = copy.deepcopy(fitted).calibrate_threshold(
        pairs, same, strategy="f_beta", beta=2.0
    )
    loaded = pickle.loads(pickle.dumps(emb))
    assert loaded.threshold_ == emb.threshold_
    assert_array_equal(loaded.predict_pairs(pairs), emb.predict_pairs(pairs))
    assert "threshold_" not in clone(emb).__dict__
    assert "threshold" not in clone(emb).get_params()
    emb.partial_fit(X, y)  # a new embedding invalidates the old threshold
    assert not hasattr(emb, "threshold_")
