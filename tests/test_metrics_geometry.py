"""Alignment, uniformity and OPIS: the geometry of an embedding.

Expected values come from the brute-force references of
``metric_references.py``.
"""

import math

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from sklearn_dml.metrics import (
    _geometry,
    alignment_loss,
    opis_loss,
    rankme_score,
    uniformity_loss,
    wasserstein_uniformity_loss,
)

from .metric_references import (
    brute_distances,
    random_data,
    tied_data,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: KMeans and t-SNE spin badly on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------
# Alignment and uniformity
# --------------------------------------------------------------------------


def brute_alignment(X, y, alpha):
    X = np.asarray(X, dtype=np.float64)
    terms = [
        np.linalg.norm(X[i] - X[j]) ** alpha
        for i in range(len(X))
        for j in range(len(X))
        if i != j and y[i] == y[j]
    ]
    return float(np.mean(terms))


def brute_uniformity(X, t):
    X = np.asarray(X, dtype=np.float64)
    exponents = [
        -t * np.sum((X[i] - X[j]) ** 2)
        for i in range(len(X))
        for j in range(i + 1, len(X))
    ]
    return float(logsumexp(exponents) - np.log(len(exponents)))


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_alignment_matches_direct_formula(alpha, chunk_size):
    X, y = tied_data(seed=10, n=35)  # duplicates: pairs at distance exactly 0
    y = y.copy()
    y[0] = 99  # a singleton class contributes no pair
    assert alignment_loss(X, y, alpha=alpha, chunk_size=chunk_size) == pytest.approx(
        brute_alignment(X, y, alpha), rel=1e-12
    )


@pytest.mark.parametrize("t", [2.0, 0.3])
@pytest.mark.parametrize("chunk_size", [None, 1, 6])
def test_uniformity_matches_direct_formula(t, chunk_size):
    X, _ = random_data(seed=11, n=33)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert uniformity_loss(X, t=t, chunk_size=chunk_size) == pytest.approx(
        brute_uniformity(X, t), rel=1e-12
    )


def test_uniformity_stays_finite_when_every_potential_underflows():
    X = np.array([[0.0], [100.0], [250.0]])
    # exp(-2 * 100**2) underflows to 0; the log-sum-exp does not.
    assert np.exp(-2.0 * 100.0**2) == 0.0
    assert uniformity_loss(X) == pytest.approx(brute_uniformity(X, 2.0), rel=1e-12)


def test_alignment_and_uniformity_order_embeddings():
    # Tight classes align better; spread points are more uniform.
    y = np.repeat([0, 1, 2, 3], 10)
    rng = np.random.default_rng(12)
    angles = np.pi / 2 * y
    tight = np.c_[np.cos(angles), np.sin(angles)] + rng.normal(scale=0.01, size=(40, 2))
    loose = np.c_[np.cos(angles), np.sin(angles)] + rng.normal(scale=0.3, size=(40, 2))
    assert alignment_loss(tight, y) < alignment_loss(loose, y)
    collapsed = np.zeros((40, 2)) + rng.normal(scale=0.01, size=(40, 2))
    assert uniformity_loss(tight) < uniformity_loss(collapsed) <= 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: alignment_loss(np.ones((3, 2)), [0, 1, 2]), "at least 2 samples"),
        (lambda: alignment_loss(np.ones((3, 2)), [0, 0, 1], alpha=0), "alpha must"),
        (lambda: uniformity_loss(np.ones((1, 2))), "at least 2 samples"),
        (lambda: uniformity_loss(np.ones((3, 2)), t=-1.0), "t must be"),
        (lambda: uniformity_loss(np.ones((3, 2)), t=np.inf), "t must be"),
        (lambda: alignment_loss(np.ones((3, 2)), [0, 0, 1], alpha=True), "alpha must"),
        (lambda: uniformity_loss(np.ones((3, 2)), chunk_size=0), "chunk_size must"),
        (lambda: uniformity_loss([[0.0, np.nan]] * 3), "NaN or infinity"),
    ],
)
def test_geometry_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------
# OPIS
# --------------------------------------------------------------------------


def brute_opis(
    X,
    y,
    reference=None,
    reference_labels=None,
    far_range=(1e-4, 1e-2),
    n_thresholds=50,
    thresholds=None,
    utility="f1",
    metric="euclidean",
):
    """OPIS from the definition, one pair and one class at a time."""
    loo = reference is None
    if loo:
        reference, reference_labels = X, y
    distances = brute_distances(X, reference, metric)
    pairs = [
        (y[i], y[i] == reference_labels[j], distances[i, j])
        for i in range(len(X))
        for j in range(len(reference))
        if not (loo and i == j)
    ]
    if thresholds is None:
        negatives = np.sort([d for _, same, d in pairs if not same])
        bounds = [
            negatives[max(1, math.ceil(len(negatives) * far)) - 1] for far in far_range
        ]
        thresholds = np.linspace(bounds[0], bounds[1], n_thresholds)

    def quality(selected, threshold):
        tp = sum(1 for _, same, d in selected if same and d <= threshold)
        fn = sum(1 for _, same, d in selected if same and d > threshold)
        fp = sum(1 for _, same, d in selected if not same and d <= threshold)
        tn = sum(1 for _, same, d in selected if not same and d > threshold)
        if utility == "f1":
            return 2 * tp / (2 * tp + fp + fn)
        return (tp + tn) / (tp + fn + fp + tn)

    classes = [
        c for c in np.unique(y) if any(same for cls, same, _ in pairs if cls == c)
    ]
    total = 0.0
    for c in classes:
        own = [pair for pair in pairs if pair[0] == c]
        total += np.mean(
            [(quality(own, t) - quality(pairs, t)) ** 2 for t in thresholds]
        )
    return total / len(classes)


@pytest.mark.parametrize("utility", ["f1", "accuracy"])
@pytest.mark.parametrize("make_data", [random_data, tied_data])
def test_opis_matches_definition_with_far_range(utility, make_data):
    X, y = make_data(seed=13, n=40)
    kwargs = dict(far_range=(0.05, 0.4), n_thresholds=7, utility=utility)
    expected = brute_opis(X, y, **kwargs)
    assert expected > 0
    assert opis_loss(X, y, **kwargs) == pytest.approx(expected, rel=1e-10)


def test_opis_default_range_cosine_and_explicit_thresholds():
    X, y = random_data(seed=14, n=45)
    assert opis_loss(X, y, metric="cosine") == pytest.approx(
        brute_opis(X, y, metric="cosine"), rel=1e-10, abs=1e-15
    )
    thresholds = [2.5, 1.0, 3.0]  # any order
    assert opis_loss(X, y, thresholds=thresholds, chunk_size=4) == pytest.approx(
        brute_opis(X, y, thresholds=np.sort(thresholds)), rel=1e-10
    )


def test_opis_query_vs_reference_and_singletons():
    rng = np.random.default_rng(15)
    reference = rng.normal(size=(30, 3))
    reference_labels = rng.choice(["a", "b", "c"], size=30)
    query = rng.normal(size=(12, 3))
    query_labels = rng.choice(["a", "b", "c", "z"], size=12)  # z: no positive pair
    kwargs = dict(far_range=(0.1, 0.5), n_thresholds=5)
    assert opis_loss(
        query,
        query_labels,
        reference_embeddings=reference,
        reference_labels=reference_labels,
        **kwargs,
    ) == pytest.approx(
        brute_opis(query, query_labels, reference, reference_labels, **kwargs),
        rel=1e-10,
    )


def test_opis_radix_selection_path_gives_the_same_result(monkeypatch):
    X, y = tied_data(seed=16, n=50)
    expected = brute_opis(X, y, far_range=(0.01, 0.3), n_thresholds=9)
    monkeypatch.setattr(_geometry, "_SELECT_BUDGET", 0)
    assert opis_loss(
        X, y, far_range=(0.01, 0.3), n_thresholds=9, chunk_size=3
    ) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_kth_smallest_radix_selection(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.exponential(size=500), np.zeros(20), np.full(30, 0.5), [1e-300, 1e300]]
    )
    rng.shuffle(values)
    blocks = lambda: iter(np.array_split(values, 7))  # noqa: E731
    ks = [1, 20, 21, 200, 552]
    expected = np.sort(values)[np.array(ks) - 1]
    monkeypatch.setattr(_geometry, "_SELECT_BUDGET", 0)
    np.testing.assert_array_equal(
        _geometry._kth_smallest(blocks, ks, values.size), expected
    )
    monkeypatch.setattr(_geometry, "_SELECT_BUDGET", 10**6)
    np.testing.assert_array_equal(
        _geometry._kth_smallest(blocks, ks, values.size), expected
    )


def test_opis_zero_for_translated_copies_and_positive_for_uneven_spread():
    # Two classes with the same shape, far apart: any threshold serves both
    # alike (hand-checked: the per-class counts are identical).
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    X = np.vstack([base, base + 100.0])
    y = [0, 0, 0, 1, 1, 1]
    assert opis_loss(X, y, thresholds=np.linspace(0.5, 3.0, 6)) == 0.0
    # Shrinking one class makes a threshold of 0.5 accept all its pairs and
    # none of the other's: F1 of 1 and 0 around the pooled 4/7 (TP 6, FN 6).
    X_uneven = np.vstack([base * 0.1, base + 100.0])
    pooled = 2 * 6 / (2 * 6 + 0 + 6)
    expected = ((1.0 - pooled) ** 2 + (0.0 - pooled) ** 2) / 2
    assert opis_loss(X_uneven, y, thresholds=[0.5]) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": [0, 0, 0, 0]}, "pairs of different classes"),
        ({"labels": [0, 1, 2, 3]}, "pairs of the same class"),
        ({"far_range": (0.5, 0.1)}, "far_range must satisfy"),
        ({"far_range": 0.1}, "far_range must be a pair"),
        ({"thresholds": []}, "thresholds must be"),
        ({"n_thresholds": 0}, "n_thresholds must be"),
        ({"utility": "precision"}, "utility must be"),
        ({"metric": "l1"}, "metric must be"),
    ],
)
def test_opis_errors(kwargs, message):
    arguments = {"embeddings": np.arange(8.0).reshape(4, 2), "labels": [0, 0, 1, 1]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        opis_loss(**arguments)


# --------------------------------------------------------------------------
# RankMe and the Wasserstein uniformity (label-free, from second moments)
# --------------------------------------------------------------------------


def numpy_rankme(Z, epsilon):
    singular = np.linalg.svd(np.asarray(Z, dtype=np.float64), compute_uv=False)
    p = singular / singular.sum() + epsilon
    return float(np.exp(-np.sum(p * np.log(p))))


def numpy_gaussian_w2(Z):
    """W2 between N(mean, cov) of the unit rows and N(0, I/m), general formula."""
    Z = np.asarray(Z, dtype=np.float64)
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    m = Z.shape[1]
    mu, cov = Z.mean(axis=0), np.cov(Z.T, bias=True)
    target = np.eye(m) / m
    root = sqrtm(sqrtm(target) @ cov @ sqrtm(target)).real
    squared = mu @ mu + np.trace(cov + target - 2 * root)
    return float(np.sqrt(max(squared, 0.0)))


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
@pytest.mark.parametrize("epsilon", [1e-7, 0.0, 0.01])
def test_rankme_matches_numpy_svd(chunk_size, epsilon):
    Z = np.random.default_rng(20).normal(size=(40, 6)) * [5, 3, 1, 1, 0.2, 0.01]
    assert rankme_score(Z, epsilon=epsilon, chunk_size=chunk_size) == pytest.approx(
        numpy_rankme(Z, epsilon), rel=1e-9
    )


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_wasserstein_uniformity_matches_gaussian_w2(chunk_size):
    Z = np.random.default_rng(21).normal(size=(50, 5)) + [2.0, 0, 0, 0, 0]
    assert wasserstein_uniformity_loss(Z, chunk_size=chunk_size) == pytest.approx(
        numpy_gaussian_w2(Z), rel=1e-7
    )


def test_collapse_gives_rank_one_and_the_worst_uniformity():
    rng = np.random.default_rng(22)
    direction = rng.normal(size=8)
    collapsed = rng.uniform(0.5, 2.0, size=(200, 1)) * direction  # one ray
    assert rankme_score(collapsed) == pytest.approx(1.0, abs=1e-4)
    assert wasserstein_uniformity_loss(collapsed) == pytest.approx(np.sqrt(2), abs=1e-6)


def test_isotropic_gaussian_is_near_the_best():
    Z = np.random.default_rng(23).normal(size=(20000, 8))
    assert rankme_score(Z) > 7.9  # the maximum is 8
    assert wasserstein_uniformity_loss(Z) < 0.03  # the minimum is 0


def test_dimensional_collapse_orders_both_measures():
    # Isotropic in the first k coordinates only: fewer used dimensions give
    # a lower rank and a larger distance to the uniform sphere.
    rng = np.random.default_rng(24)
    ranks, distances = [], []
    for k in (8, 4, 2, 1):
        Z = np.zeros((3000, 8))
        Z[:, :k] = rng.normal(size=(3000, k))
        ranks.append(rankme_score(Z))
        distances.append(wasserstein_uniformity_loss(Z))
    assert ranks == sorted(ranks, reverse=True)
    assert distances == sorted(distances)
    assert ranks[-1] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rankme_score(np.zeros((3, 2))), "all 0"),
        (lambda: rankme_score(np.ones((3, 2)), epsilon=-1.0), "epsilon must"),
        (lambda: rankme_score(np.ones((3, 2)), chunk_size=0), "chunk_size must"),
        (lambda: wasserstein_uniformity_loss(np.ones(3)), "2-D array"),
        (lambda: wasserstein_uniformity_loss([[np.inf, 1.0]]), "NaN or infinity"),
    ],
)
def test_spectral_measure_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
