"""Tests of the exact chunked kNN, the retrieval metrics and their scorers.

Every expected value comes from the brute-force NumPy / pure Python references
below: a full distance matrix and a per-query sort on the key
(distance, reference index).
"""

import pickle

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_dml.metrics import (
    _retrieval,
    chunked_knn,
    get_scorer,
    make_retrieval_scorer,
    map_at_r_score,
    map_at_r_scorer,
    precision_at_1_scorer,
    precision_at_k_score,
    r_precision_score,
    r_precision_scorer,
)

# --------------------------------------------------------------------------
# Brute-force references
# --------------------------------------------------------------------------


def brute_distances(query, reference, metric):
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if metric == "euclidean":
        diff = query[:, None, :] - reference[None, :, :]
        return np.sqrt((diff**2).sum(axis=2))

    def unit(a):
        norms = np.sqrt((a**2).sum(axis=1, keepdims=True))
        return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)

    products = (unit(query)[:, None, :] * unit(reference)[None, :, :]).sum(axis=2)
    return np.clip(1.0 - products, 0.0, 2.0)


def brute_order(distances, exclude_self):
    """Per row, all reference indices sorted by (distance, index)."""
    n_queries, n_references = distances.shape
    orders = []
    for i in range(n_queries):
        candidates = [j for j in range(n_references) if not (exclude_self and j == i)]
        orders.append(sorted(candidates, key=lambda j: (distances[i, j], j)))
    return orders


def brute_knn(query, k, reference=None, metric="euclidean", exclude_self=False):
    distances = brute_distances(
        query, query if reference is None else reference, metric
    )
    orders = brute_order(distances, exclude_self)
    indices = np.array([order[:k] for order in orders], dtype=np.int64)
    return np.take_along_axis(distances, indices, axis=1), indices


def brute_scores(
    embeddings,
    labels,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    k=1,
):
    """(P@k, R-precision, MAP@R) by the textbook definitions, one query at a time."""
    loo = reference_embeddings is None
    if loo:
        reference_embeddings, reference_labels = embeddings, labels
    distances = brute_distances(embeddings, reference_embeddings, metric)
    orders = brute_order(distances, exclude_self=loo)
    p_at_k, r_precision, average_precision = [], [], []
    for i, order in enumerate(orders):
        relevant = [reference_labels[j] == labels[i] for j in order]
        n_relevant = sum(relevant)
        if n_relevant == 0:
            continue
        p_at_k.append(sum(relevant[:k]) / k)
        r_precision.append(sum(relevant[:n_relevant]) / n_relevant)
        hits, total = 0, 0.0
        for position in range(n_relevant):
            if relevant[position]:
                hits += 1
                total += hits / (position + 1)
        average_precision.append(total / n_relevant)
    return np.mean(p_at_k), np.mean(r_precision), np.mean(average_precision)


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
    y = rng.integers(0, 3, size=n)
    assert len(np.unique(X, axis=0)) < n  # duplicates really are present
    return X, y


def duplicated_float_data(seed=0, n=40, d=4):
    """Random directions where each row appears twice or three times."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n // 2, d))
    X = base[rng.integers(0, n // 2, size=n)]
    return X, rng.integers(0, 3, size=n)


# --------------------------------------------------------------------------
# chunked_knn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make_data", [random_data, tied_data, duplicated_float_data])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_matches_brute_force_euclidean(make_data, exclude_self):
    X, _ = make_data()
    k = 12
    distances, indices = chunked_knn(X, k, exclude_self=exclude_self)
    expected_distances, expected_indices = brute_knn(X, k, exclude_self=exclude_self)
    assert indices.dtype == np.int64 and indices.shape == (len(X), k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_data", [random_data, duplicated_float_data])
def test_knn_matches_brute_force_cosine(make_data):
    X, _ = make_data()
    X = X.copy()
    X[3] = 0.0  # a zero vector sits at cosine distance 1 from everything
    distances, indices = chunked_knn(X, 10, metric="cosine", exclude_self=True)
    expected_distances, expected_indices = brute_knn(
        X, 10, metric="cosine", exclude_self=True
    )
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-12)
    assert np.all(distances[3] == 1.0)


def test_knn_query_vs_reference():
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 3, size=(50, 2)).astype(float)
    query = rng.integers(0, 3, size=(17, 2)).astype(float)
    distances, indices = chunked_knn(query, 50, reference)
    expected_distances, expected_indices = brute_knn(query, 50, reference)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)
    # Every reference index appears once per row: it is a full, tie-broken ranking.
    np.testing.assert_array_equal(
        np.sort(indices, axis=1), np.tile(np.arange(50), (17, 1))
    )


def test_knn_ties_are_broken_by_reference_index():
    # Six copies of one point and the query: every distance ties.
    X = np.zeros((7, 2))
    distances, indices = chunked_knn(
        X, 6, exclude_self=True, chunk_size=2, block_size=3
    )
    for i in range(7):
        assert indices[i].tolist() == [j for j in range(7) if j != i]
    assert np.all(distances == 0.0)


def test_exclude_self_removes_the_index_not_the_duplicates():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [0.0, 0.0]])
    distances, indices = chunked_knn(X, 2, exclude_self=True)
    np.testing.assert_array_equal(indices[:2], [[1, 3], [0, 3]])
    np.testing.assert_array_equal(indices[3], [0, 1])
    np.testing.assert_array_equal(distances[[0, 1, 3]], 0.0)
    assert not np.any(indices == np.arange(4)[:, None])


def test_duplicates_are_exactly_at_distance_zero():
    # Values whose expansion ||q||^2 - 2 q.r + ||r||^2 does not cancel exactly.
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(10, 16)) * 1e3 + 1e4).astype(np.float32)
    X = np.concatenate([X, X[:3]])
    distances, indices = chunked_knn(X, 1, exclude_self=True)
    np.testing.assert_array_equal(distances[:3, 0], 0.0)
    np.testing.assert_array_equal(indices[:3, 0], [10, 11, 12])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("make_data", [tied_data, duplicated_float_data])
def test_knn_independent_of_chunking(metric, make_data):
    X, _ = make_data(seed=3, n=36)
    X = X + 1.0  # no zero vectors for the cosine metric
    n = len(X)
    expected_distances, expected_indices = brute_knn(
        X, 9, metric=metric, exclude_self=True
    )
    results = [
        chunked_knn(
            X, 9, metric=metric, exclude_self=True, chunk_size=chunk, block_size=block
        )
        for chunk in (1, 7, n)
        for block in (1, 4, 10, n)
    ] + [chunked_knn(X, 9, metric=metric, exclude_self=True, chunk_size=7)]
    for distances, indices in results:
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_allclose(distances, expected_distances, atol=1e-12)
        np.testing.assert_array_equal(distances, results[0][0])


def test_knn_resolves_near_duplicates_beyond_expansion_precision():
    # Far from the origin, float32 neighbours one unit in the last place apart
    # are closer than the rounding of ||q||^2 - 2 q.r + ||r||^2 in float64
    # (ranking by that expansion alone gets dozens of these neighbours wrong).
    rng = np.random.default_rng(13)
    base = (1e4 + rng.uniform(0, 1e3, size=(8, 128))).astype(np.float32)
    nudged = base.copy()
    nudged[:, 0] = np.nextafter(nudged[:, 0], np.float32(np.inf))
    nudged_twice = nudged.copy()
    nudged_twice[:, 1] = np.nextafter(nudged_twice[:, 1], np.float32(-np.inf))
    X = np.concatenate([nudged_twice, base, nudged, base])
    distances, indices = chunked_knn(X, 4, exclude_self=True, block_size=5)
    expected_distances, expected_indices = brute_knn(X, 4, exclude_self=True)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)


def test_knn_accepts_torch_tensors_and_lists():
    torch = pytest.importorskip("torch")
    X, _ = random_data(n=20)
    from_tensor = chunked_knn(torch.from_numpy(X).float(), 3)
    from_list = chunked_knn(X.astype(np.float32).tolist(), 3)
    assert isinstance(from_tensor[0], np.ndarray)
    np.testing.assert_array_equal(from_tensor[1], from_list[1])
    np.testing.assert_array_equal(from_tensor[1], brute_knn(X, 3)[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"query": np.ones(5), "k": 1}, "2-D array"),
        ({"query": np.ones((4, 2)), "k": 0}, "k must be a positive integer"),
        ({"query": np.ones((4, 2)), "k": 1.5}, "k must be a positive integer"),
        ({"query": np.ones((4, 2)), "k": 4, "exclude_self": True}, "only 3 reference"),
        ({"query": np.ones((4, 2)), "k": 5}, "only 4 reference"),
        ({"query": np.ones((4, 2)), "k": 1, "metric": "manhattan"}, "metric must be"),
        ({"query": np.ones((4, 2)), "k": 1, "chunk_size": 0}, "chunk_size must be"),
        (
            {"query": np.ones((4, 2)), "k": 1, "reference": np.ones((4, 3))},
            "features but reference has",
        ),
        (
            {
                "query": np.ones((4, 2)),
                "k": 1,
                "reference": np.ones((5, 2)),
                "exclude_self": True,
            },
            "exclude_self=True needs",
        ),
        ({"query": np.array([[0.0, np.nan]]), "k": 1}, "NaN or infinity"),
        ({"query": np.array([["a", "b"]]), "k": 1}, "must contain numbers"),
    ],
)
def test_knn_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        chunked_knn(**kwargs)


# --------------------------------------------------------------------------
# Retrieval metrics
# --------------------------------------------------------------------------


def scores(embeddings, labels, k=1, **kwargs):
    return (
        precision_at_k_score(embeddings, labels, k=k, **kwargs),
        r_precision_score(embeddings, labels, **kwargs),
        map_at_r_score(embeddings, labels, **kwargs),
    )


def test_scores_on_a_hand_checked_example():
    # Ranks by hand: sample 4 (label 1, R=2) retrieves 1 (label 0) then 2
    # (label 1): P@1 = 0, R-precision = 1/2, AP@R = (1/2) / 2; sample 1 ties
    # between 0 and 4 and takes index 0; every other query is perfect.
    X = [[0], [3], [10], [13], [6]]
    y = [0, 0, 1, 1, 1]
    p1, rp, mapr = scores(X, y)
    assert p1 == pytest.approx(4 / 5)
    assert rp == pytest.approx(4.5 / 5)
    assert mapr == pytest.approx(4.25 / 5)


@pytest.mark.parametrize("make_data", [random_data, tied_data])
@pytest.mark.parametrize("k", [1, 5])
def test_scores_match_brute_force(make_data, k):
    X, y = make_data(seed=4)
    np.testing.assert_allclose(scores(X, y, k=k), brute_scores(X, y, k=k), rtol=1e-12)


def test_scores_cosine_match_brute_force():
    X, y = duplicated_float_data(seed=5, n=50)
    np.testing.assert_allclose(
        scores(X, y, k=3, metric="cosine"),
        brute_scores(X, y, metric="cosine", k=3),
        rtol=1e-12,
    )


def test_singleton_classes_are_skipped():
    X, y = tied_data(seed=6, n=40)
    y = y.copy()
    y[[0, 5, 9]] = [10, 11, 12]  # three classes of one sample
    expected = brute_scores(X, y, k=2)
    np.testing.assert_allclose(scores(X, y, k=2), expected, rtol=1e-12)
    # Skipping is not scoring zero: the scores differ from counting those as 0.
    n_scored = len(y) - 3
    assert scores(X, y)[2] != pytest.approx(expected[2] * n_scored / len(y))


def test_query_vs_reference_with_string_labels():
    rng = np.random.default_rng(7)
    reference = rng.integers(0, 3, size=(40, 2)).astype(float)
    reference_labels = rng.choice(["cat", "dog", "eel"], size=40)
    query = rng.integers(0, 3, size=(15, 2)).astype(float)
    query_labels = rng.choice(["cat", "dog", "eel", "fox"], size=15)  # fox: R = 0
    kwargs = dict(reference_embeddings=reference, reference_labels=reference_labels)
    np.testing.assert_allclose(
        scores(query, query_labels, k=3, **kwargs),
        brute_scores(query, query_labels, reference, reference_labels, k=3),
        rtol=1e-12,
    )


def test_scores_independent_of_chunk_size():
    X, y = tied_data(seed=8, n=50)
    results = {chunk: scores(X, y, k=4, chunk_size=chunk) for chunk in (1, 7, 50)}
    assert results[1] == results[7] == results[50]
    np.testing.assert_allclose(results[1], brute_scores(X, y, k=4), rtol=1e-12)


def test_grouping_by_r_gives_the_same_scores(monkeypatch):
    # A tiny pair budget forces many groups of queries with their own depth.
    X, y = random_data(seed=9, n=70, n_classes=5)
    y = np.where(np.arange(70) < 30, 0, y)  # one large class
    monkeypatch.setattr(_retrieval, "_PAIR_BUDGET", 40)
    expected = brute_scores(X, y)
    assert r_precision_score(X, y) == pytest.approx(expected[1], rel=1e-12)
    assert map_at_r_score(X, y) == pytest.approx(expected[2], rel=1e-12)


def test_perfect_and_worst_embeddings():
    y = np.repeat([0, 1, 2], 4)
    separated = (y * 100.0)[:, None] + np.arange(12)[:, None] * 0.01
    assert scores(separated, y, k=3) == (1.0, 1.0, 1.0)
    # Each query is nearer to all other classes than to its own.
    interleaved = np.array([0, 1, 2] * 4)
    X = np.repeat(np.arange(4) * 10.0, 3)[:, None] + interleaved[:, None] * 0.1
    X = X.copy()
    assert precision_at_k_score(X, interleaved, k=1) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: map_at_r_score(np.ones((3, 2)), [0, 1, 2]), "No query has a relevant"),
        (lambda: map_at_r_score(np.ones((3, 2)), [0, 0]), "labels has 2 entries"),
        (lambda: map_at_r_score(np.ones((3, 2)), np.zeros((3, 1))), "1-D array"),
        (lambda: map_at_r_score(np.ones(3), [0, 0, 1]), "2-D array"),
        (lambda: map_at_r_score([[0.0], [np.inf]], [0, 0]), "NaN or infinity"),
        (lambda: map_at_r_score([[0.0]], [0]), "at least 2 samples"),
        (
            lambda: map_at_r_score(
                np.ones((3, 2)), [0, 0, 1], reference_embeddings=np.ones((3, 2))
            ),
            "must be given together",
        ),
        (
            lambda: map_at_r_score(
                np.ones((3, 2)),
                [0, 0, 1],
                reference_embeddings=np.ones((3, 3)),
                reference_labels=[0, 0, 1],
            ),
            "features but reference_embeddings",
        ),
        (
            lambda: map_at_r_score(
                np.ones((3, 2)),
                [0, 0, 1],
                reference_embeddings=np.ones((3, 2)),
                reference_labels=[5, 6, 7],
            ),
            "No query has a relevant",
        ),
        (
            lambda: precision_at_k_score(np.ones((3, 2)), [0, 0, 1], k=3),
            "only 2 reference",
        ),
        (
            lambda: r_precision_score(np.ones((3, 2)), [0, 0, 1], metric="l1"),
            "metric must",
        ),
        (
            lambda: r_precision_score(np.ones((3, 2)), [0, 0, 1], chunk_size=-1),
            "chunk_size must",
        ),
    ],
)
def test_metric_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


def test_ready_made_scorers_and_get_scorer():
    X, y = random_data(seed=10, n=40)
    identity = FunctionTransformer().fit(X)
    expected = brute_scores(X, y)
    assert get_scorer("precision_at_1") is precision_at_1_scorer
    assert get_scorer("r_precision") is r_precision_scorer
    assert get_scorer("map_at_r") is map_at_r_scorer
    assert precision_at_1_scorer(identity, X, y) == pytest.approx(expected[0])
    assert r_precision_scorer(identity, X, y) == pytest.approx(expected[1])
    assert map_at_r_scorer(identity, X, y) == pytest.approx(expected[2])


def test_make_retrieval_scorer_passes_options_and_pickles():
    X, y = duplicated_float_data(seed=11, n=30)
    scorer = make_retrieval_scorer(precision_at_k_score, k=3, metric="cosine")
    scorer = pickle.loads(pickle.dumps(scorer))
    value = scorer(FunctionTransformer().fit(X), X, y)
    assert value == pytest.approx(brute_scores(X, y, metric="cosine", k=3)[0])
    assert "k=3" in repr(scorer)


def test_scorer_errors():
    with pytest.raises(ValueError, match="Unknown retrieval scorer 'accuracy'"):
        get_scorer("accuracy")
    with pytest.raises(TypeError, match="must be callable"):
        make_retrieval_scorer("map_at_r")
    from sklearn.linear_model import LogisticRegression

    X, y = random_data(n=20)
    with pytest.raises(TypeError, match="has no transform method"):
        map_at_r_scorer(LogisticRegression().fit(X, y), X, y)


def test_grid_search_with_retrieval_scorers():
    rng = np.random.default_rng(12)
    y = np.repeat(np.arange(3), 20)
    # Two informative dimensions plus four of large-variance noise.
    X = np.hstack(
        [
            y[:, None] * 1.0 + rng.normal(scale=0.3, size=(60, 2)),
            rng.normal(scale=5.0, size=(60, 4)),
        ]
    )
    pipe = make_pipeline(StandardScaler(), PCA(random_state=0))
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    search = GridSearchCV(
        pipe,
        {"pca__n_components": [1, 3, 6]},
        scoring={"map": map_at_r_scorer, "p1": get_scorer("precision_at_1")},
        refit="map",
        cv=cv,
    )
    search.fit(X, y)
    # Recompute every fold score with the brute-force reference.
    for i, n_components in enumerate([1, 3, 6]):
        for fold, (train, test) in enumerate(cv.split(X, y)):
            model = make_pipeline(StandardScaler(), PCA(n_components, random_state=0))
            embedded = model.fit(X[train], y[train]).transform(X[test])
            p1, _, mapr = brute_scores(embedded, y[test])
            results = search.cv_results_
            assert results[f"split{fold}_test_map"][i] == pytest.approx(mapr)
            assert results[f"split{fold}_test_p1"][i] == pytest.approx(p1)
    best = np.argmax(search.cv_results_["mean_test_map"])
    assert search.best_index_ == best
