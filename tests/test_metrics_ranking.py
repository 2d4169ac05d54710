"""Recall at k, mean average precision, mean reciprocal rank, and the scorers
of the ranking and clustering scores.

Expected values come from the brute-force references of
``metric_references.py``.
"""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_dml.metrics import (
    _retrieval,
    alignment_loss,
    get_scorer,
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    nmi_score,
    opis_loss,
    precision_at_k_score,
    recall_at_k_score,
)

from .metric_references import (
    brute_nmi,
    brute_retrieval,
    expected_ranking_scores,
    random_data,
    ranking_scores,
    tied_data,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: KMeans and t-SNE spin badly on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------
# Recall at k, mean average precision, mean reciprocal rank
# --------------------------------------------------------------------------


def test_ranking_scores_on_a_hand_checked_example():
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
def test_ranking_scores_match_brute_force(make_data, metric, k):
    X, y = make_data(seed=1)
    np.testing.assert_allclose(
        ranking_scores(X, y, k=k, metric=metric),
        expected_ranking_scores(X, y, k=k, metric=metric),
        rtol=1e-12,
    )


def test_ranking_scores_skip_singleton_classes():
    X, y = tied_data(seed=2, n=40)
    y = y.copy()
    y[[0, 5, 9]] = [10, 11, 12]
    expected = expected_ranking_scores(X, y, k=3)
    np.testing.assert_allclose(ranking_scores(X, y, k=3), expected, rtol=1e-12)
    # Skipped, not scored 0: counting those queries as 0 gives other values.
    assert ranking_scores(X, y)[1] != pytest.approx(expected[1] * 37 / 40)


def test_ranking_scores_query_vs_reference():
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 3, size=(45, 2)).astype(float)
    reference_labels = rng.choice(["ant", "bee", "cow"], size=45)
    query = rng.integers(0, 3, size=(20, 2)).astype(float)
    query_labels = rng.choice(["ant", "bee", "cow", "dog"], size=20)  # dog: R = 0
    kwargs = dict(reference_embeddings=reference, reference_labels=reference_labels)
    np.testing.assert_allclose(
        ranking_scores(query, query_labels, k=2, **kwargs),
        expected_ranking_scores(
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
    expected = expected_ranking_scores(X, y)
    monkeypatch.setattr(_retrieval, "_MIN_DEPTH", 1)
    monkeypatch.setattr(_retrieval, "_PAIR_BUDGET", 30)
    np.testing.assert_allclose(ranking_scores(X, y)[1:], expected[1:], rtol=1e-12)
    np.testing.assert_allclose(
        ranking_scores(X, y, chunk_size=7)[1:], expected[1:], rtol=1e-12
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
    assert ranking_scores(X, y) == (1.0, 1.0, 1.0)


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
def test_ranking_score_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_inputs_are_not_modified():
    X, y = tied_data(seed=7, n=30)
    X_copy, y_copy = X.copy(), y.copy()
    ranking_scores(X, y, k=2)
    opis_loss(X, y)
    alignment_loss(X, y)
    nmi_score(X, y, random_state=0)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


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
def test_ranking_and_clustering_scorers_rate_the_transformed_data(name, expected):
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
