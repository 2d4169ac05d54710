"""Tests of recall at k, mean average precision, MRR, NMI/AMI, OPIS, alignment,
uniformity and their scorers.

Expected values come from the brute-force references below: a full distance
matrix, a per-query ranking sorted on the key (distance, reference index) and
the textbook definitions written one query, pair or class at a time.
"""

import math

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_dml.metrics import (
    _geometry,
    _retrieval,
    alignment_loss,
    ami_score,
    get_scorer,
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    nmi_score,
    opis_loss,
    precision_at_k_score,
    recall_at_k_score,
    uniformity_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: KMeans and t-SNE spin badly on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------
# Brute-force references
# --------------------------------------------------------------------------


def brute_distances(query, reference, metric="euclidean"):
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if metric == "euclidean":
        return np.sqrt(((query[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2))

    def unit(a):
        norms = np.sqrt((a**2).sum(axis=1, keepdims=True))
        return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)

    products = (unit(query)[:, None, :] * unit(reference)[None, :, :]).sum(axis=2)
    return np.clip(1.0 - products, 0.0, 2.0)


def brute_relevance(
    query, labels, reference=None, reference_labels=None, metric="euclidean"
):
    """Per query, the relevance list of its full ranking by (distance, index)."""
    loo = reference is None
    if loo:
        reference, reference_labels = query, labels
    distances = brute_distances(query, reference, metric)
    lists = []
    for i in range(len(query)):
        candidates = [j for j in range(len(reference)) if not (loo and j == i)]
        order = sorted(candidates, key=lambda j: (distances[i, j], j))
        lists.append([reference_labels[j] == labels[i] for j in order])
    return lists


def brute_retrieval(
    query, labels, reference=None, reference_labels=None, metric="euclidean", k=1
):
    """(Recall@k, P@k, MAP@R, full MAP, MRR), skipping queries without relevant."""
    recall, precision, map_r, full_ap, rr = [], [], [], [], []
    for relevant in brute_relevance(query, labels, reference, reference_labels, metric):
        n_relevant = sum(relevant)
        if n_relevant == 0:
            continue
        recall.append(float(any(relevant[:k])))
        precision.append(sum(relevant[:k]) / k)
        hits, total, total_r, first = 0, 0.0, 0.0, None
        for position, is_relevant in enumerate(relevant, start=1):
            if is_relevant:
                hits += 1
                total += hits / position
                if position <= n_relevant:
                    total_r += hits / position
                if first is None:
                    first = position
        full_ap.append(total / n_relevant)
        map_r.append(total_r / n_relevant)
        rr.append(1.0 / first)
    return tuple(float(np.mean(v)) for v in (recall, precision, map_r, full_ap, rr))


def new_scores(X, y, k=1, **kwargs):
    return (
        recall_at_k_score(X, y, k=k, **kwargs),
        mean_average_precision_score(X, y, **kwargs),
        mean_reciprocal_rank_score(X, y, **kwargs),
    )


def expected_new_scores(X, y, k=1, **kwargs):
    recall, _, _, full_ap, rr = brute_retrieval(X, y, k=k, **kwargs)
    return recall, full_ap, rr


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def random_data(seed=0, n=60, d=5, n_classes=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, n_classes, size=n)


def tied_data(seed=0, n=60, d=3):
    """Integer coordinates in {0, 1, 2}: many exact distance ties and duplicates."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n, d)).astype(np.float32)
    assert len(np.unique(X, axis=0)) < n
    return X, rng.integers(0, 3, size=n)


# --------------------------------------------------------------------------
# Recall at k, mean average precision, mean reciprocal rank
# --------------------------------------------------------------------------


def test_new_retrieval_scores_on_a_hand_checked_example():
    # Sample 4 (label 1) ranks 1, 2, 0, 3 with labels 0, 1, 0, 1: its first
    # relevant neighbour is 2nd (RR 1/2, no hit at k=1) and its relevant ones
    # are 2nd and 4th (AP (1/2 + 2/4) / 2 = 1/2). Sample 1 ties 0 and 4 at
    # distance 3 and takes index 0. Every other query is perfect.
    X = [[0], [3], [10], [13], [6]]
    y = [0, 0, 1, 1, 1]
    assert recall_at_k_score(X, y, k=1) == pytest.approx(4 / 5)
    assert recall_at_k_score(X, y, k=2) == 1.0
    assert mean_average_precision_score(X, y) == pytest.approx(4.5 / 5)
    assert mean_reciprocal_rank_score(X, y) == pytest.approx(4.5 / 5)


@pytest.mark.parametrize(
    "make_data, metric",
    # Parallel integer vectors make cosine near-ties that differ in the last
    # bit between two routes of computation: cosine is tested on random data.
    [(random_data, "euclidean"), (tied_data, "euclidean"), (random_data, "cosine")],
)
@pytest.mark.parametrize("k", [1, 4])
def test_new_retrieval_scores_match_brute_force(make_data, metric, k):
    X, y = make_data(seed=1)
    np.testing.assert_allclose(
        new_scores(X, y, k=k, metric=metric),
        expected_new_scores(X, y, k=k, metric=metric),
        rtol=1e-12,
    )


def test_new_retrieval_scores_skip_singleton_classes():
    X, y = tied_data(seed=2, n=40)
    y = y.copy()
    y[[0, 5, 9]] = [10, 11, 12]
    expected = expected_new_scores(X, y, k=3)
    np.testing.assert_allclose(new_scores(X, y, k=3), expected, rtol=1e-12)
    # Skipped, not scored 0: counting those queries as 0 gives other values.
    assert new_scores(X, y)[1] != pytest.approx(expected[1] * 37 / 40)


def test_new_retrieval_scores_query_vs_reference():
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 3, size=(45, 2)).astype(float)
    reference_labels = rng.choice(["ant", "bee", "cow"], size=45)
    query = rng.integers(0, 3, size=(20, 2)).astype(float)
    query_labels = rng.choice(["ant", "bee", "cow", "dog"], size=20)  # dog: R = 0
    kwargs = dict(reference_embeddings=reference, reference_labels=reference_labels)
    np.testing.assert_allclose(
        new_scores(query, query_labels, k=2, **kwargs),
        expected_new_scores(
            query,
            query_labels,
            k=2,
            reference=reference,
            reference_labels=reference_labels,
        ),
        rtol=1e-12,
    )


def test_deepening_search_gives_the_same_scores(monkeypatch):
    # Labels unrelated to the points put relevant references deep in the
    # ranking; a depth of 1 and a tiny pair budget force many rounds and groups.
    X, y = random_data(seed=4, n=70, n_classes=3)
    expected = expected_new_scores(X, y)
    monkeypatch.setattr(_retrieval, "_MIN_DEPTH", 1)
    monkeypatch.setattr(_retrieval, "_PAIR_BUDGET", 30)
    np.testing.assert_allclose(new_scores(X, y)[1:], expected[1:], rtol=1e-12)
    np.testing.assert_allclose(
        new_scores(X, y, chunk_size=7)[1:], expected[1:], rtol=1e-12
    )


def test_full_map_counts_relevant_items_beyond_r():
    X, y = random_data(seed=5, n=50, n_classes=3)
    full = mean_average_precision_score(X, y)
    truncated = map_at_r_score(X, y)
    _, _, expected_truncated, expected_full, _ = brute_retrieval(X, y)
    assert full == pytest.approx(expected_full, rel=1e-12)
    assert truncated == pytest.approx(expected_truncated, rel=1e-12)
    assert full > truncated  # the relevant items ranked after R add precision


def test_recall_at_k_grows_with_k_and_reaches_one():
    X, y = random_data(seed=6, n=40)
    recalls = [recall_at_k_score(X, y, k=k) for k in (1, 2, 5, 39)]
    assert recalls == sorted(recalls)
    assert recalls[-1] == 1.0
    # Recall@1 is the precision at 1.
    assert recalls[0] == precision_at_k_score(X, y, k=1)


def test_perfect_embedding_scores_one():
    y = np.repeat([0, 1, 2], 5)
    X = (y * 100.0)[:, None] + np.arange(15)[:, None] * 0.01
    assert new_scores(X, y) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: recall_at_k_score(np.ones((4, 2)), [0, 0, 1, 1], k=4),
            "only 3 reference",
        ),
        (lambda: recall_at_k_score(np.ones((4, 2)), [0, 0, 1, 1], k=0), "k must be"),
        (lambda: mean_average_precision_score(np.ones((3, 2)), [0, 1, 2]), "No query"),
        (lambda: mean_reciprocal_rank_score(np.ones((3, 2)), [0, 0]), "labels has 2"),
        (
            lambda: mean_reciprocal_rank_score(
                np.ones((3, 2)), [0, 0, 1], metric="manhattan"
            ),
            "metric must be",
        ),
        (
            lambda: mean_average_precision_score(
                np.ones((3, 2)), [0, 0, 1], chunk_size=-1
            ),
            "chunk_size must be",
        ),
    ],
)
def test_new_retrieval_score_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_inputs_are_not_modified():
    X, y = tied_data(seed=7, n=30)
    X_copy, y_copy = X.copy(), y.copy()
    new_scores(X, y, k=2)
    opis_loss(X, y)
    alignment_loss(X, y)
    nmi_score(X, y, random_state=0)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


# --------------------------------------------------------------------------
# NMI and AMI
# --------------------------------------------------------------------------


def brute_nmi(labels, clusters):
    """Arithmetic-mean NMI from the contingency table."""
    _, a = np.unique(labels, return_inverse=True)
    _, b = np.unique(clusters, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a.ravel(), b.ravel()), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mutual = (joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum()
    entropy_a = -(pa * np.log(pa)).sum()
    entropy_b = -(pb * np.log(pb)).sum()
    return mutual / ((entropy_a + entropy_b) / 2)


def test_nmi_and_ami_match_kmeans_and_the_entropy_formula():
    X, y = random_data(seed=8, n=90, d=3, n_classes=3)
    X = X + 3.0 * y[:, None]  # partly separated classes
    clusters = KMeans(n_clusters=3, n_init=4, random_state=1).fit_predict(X)
    assert nmi_score(X, y, n_init=4, random_state=1) == pytest.approx(
        brute_nmi(y, clusters), rel=1e-10
    )
    assert ami_score(X, y, n_init=4, random_state=1) == pytest.approx(
        adjusted_mutual_info_score(y, clusters), rel=1e-10
    )


def test_nmi_ami_perfect_clusters_with_string_labels():
    y = np.repeat(["a", "b", "c", "d"], 6)
    X = np.repeat(np.arange(4) * 50.0, 6)[:, None] + np.tile(np.arange(6), 4)[:, None]
    X = np.hstack([X, -X])
    assert nmi_score(X, y, random_state=0) == pytest.approx(1.0)
    assert ami_score(X, y, random_state=0) == pytest.approx(1.0)


def test_ami_is_near_zero_for_unrelated_labels():
    X, y = random_data(seed=9, n=200, d=2, n_classes=3)
    assert abs(ami_score(X, y, n_init=2, random_state=0)) < 0.05
    assert nmi_score(X, y, n_init=2, random_state=0) < 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": [0, 0, 0, 0]}, "at least 2 classes"),
        ({"n_init": 0}, "n_init must be"),
        ({"average_method": "median"}, "average_method must be"),
        ({"labels": [0, 1]}, "labels has 2 entries"),
    ],
)
def test_clustering_errors(kwargs, message):
    arguments = {"embeddings": np.arange(8.0).reshape(4, 2), "labels": [0, 0, 1, 1]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nmi_score(**arguments)


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
# Scorers and model selection
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("recall_at_1", lambda Z, y: brute_retrieval(Z, y)[0]),
        ("mean_average_precision", lambda Z, y: brute_retrieval(Z, y)[3]),
        ("mrr", lambda Z, y: brute_retrieval(Z, y)[4]),
        (
            "nmi",
            lambda Z, y: brute_nmi(
                y, KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(Z)
            ),
        ),
        (
            "ami",
            lambda Z, y: adjusted_mutual_info_score(
                y, KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(Z)
            ),
        ),
    ],
)
def test_new_scorers_rate_the_transformed_data(name, expected):
    X, y = random_data(seed=17, n=45, n_classes=3)
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    scorer = get_scorer(name)
    assert scorer(scaler, X, y) == pytest.approx(expected(Z, y), rel=1e-10)
    # The clustering scorers are seeded: the same embedding, the same score.
    assert scorer(scaler, X, y) == scorer(scaler, X, y)


def test_multi_metric_grid_search_refits_on_map_at_r():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    grid = {"pca__n_components": [2, 6, 16]}
    search = GridSearchCV(
        make_pipeline(StandardScaler(), PCA(random_state=0)),
        grid,
        scoring={
            "map_at_r": get_scorer("map_at_r"),
            "p_at_1": get_scorer("precision_at_1"),
        },
        refit="map_at_r",
        cv=cv,
    )
    search.fit(X, y)
    # Recompute every fold score by brute force on the fold's embedding.
    for index, n_components in enumerate(grid["pca__n_components"]):
        map_r, p_at_1 = [], []
        for train, test in cv.split(X, y):
            pipe = make_pipeline(
                StandardScaler(), PCA(n_components=n_components, random_state=0)
            ).fit(X[train], y[train])
            _, precision, map_at_r, _, _ = brute_retrieval(
                pipe.transform(X[test]), y[test]
            )
            map_r.append(map_at_r)
            p_at_1.append(precision)
        assert search.cv_results_["mean_test_map_at_r"][index] == pytest.approx(
            np.mean(map_r), rel=1e-10
        )
        assert search.cv_results_["mean_test_p_at_1"][index] == pytest.approx(
            np.mean(p_at_1), rel=1e-10
        )
    best = int(np.argmax(search.cv_results_["mean_test_map_at_r"]))
    assert search.best_params_ == {"pca__n_components": grid["pca__n_components"][best]}
    assert (
        search.best_estimator_.named_steps["pca"].n_components_
        == (grid["pca__n_components"][best])
    )
    assert search.best_params_["pca__n_components"] > 2  # 2-D loses most classes
