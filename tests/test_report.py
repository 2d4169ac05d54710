"""Tests of retrieval_report and of the plotting helpers.

Expected values come from brute-force references written here: a full
distance matrix, per-query rankings by (distance, index), and the direct
formulas of every metric.
"""

import builtins
import math
import sys

import matplotlib
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_dml import TripletEmbedder
from sklearn_dml.metrics import retrieval_report
from sklearn_dml.plotting import plot_embedding, plot_precision_at_k

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: KMeans and t-SNE spin badly on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------
# Brute-force references
# --------------------------------------------------------------------------


def distances(query, reference):
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return np.sqrt(((query[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2))


def brute_report(X, y, reference=None, reference_labels=None, ks=(1, 5, 10)):
    loo = reference is None
    if loo:
        reference, reference_labels = X, y
    D = distances(X, reference)
    pairs = []  # (query class, same class, distance) of every pair
    rows = []
    for i in range(len(X)):
        others = [j for j in range(len(reference)) if not (loo and j == i)]
        pairs += [(y[i], reference_labels[j] == y[i], D[i, j]) for j in others]
        order = sorted(others, key=lambda j: (D[i, j], j))
        relevant = [reference_labels[j] == y[i] for j in order]
        if sum(relevant):
            rows.append(relevant)
    report = {}
    for k in ks:
        report[f"precision_at_{k}"] = np.mean([sum(r[:k]) / k for r in rows])
    for k in ks:
        report[f"recall_at_{k}"] = np.mean([any(r[:k]) for r in rows])
    r_precision, map_r, full_ap, rr = [], [], [], []
    for r in rows:
        n_relevant = sum(r)
        positions = [p for p, hit in enumerate(r, start=1) if hit]
        r_precision.append(sum(r[:n_relevant]) / n_relevant)
        map_r.append(
            sum(m / p for m, p in enumerate(positions, 1) if p <= n_relevant)
            / n_relevant
        )
        full_ap.append(sum(m / p for m, p in enumerate(positions, 1)) / n_relevant)
        rr.append(1 / positions[0])
    report.update(
        r_precision=np.mean(r_precision),
        map_at_r=np.mean(map_r),
        mean_average_precision=np.mean(full_ap),
        mrr=np.mean(rr),
    )
    clusters = KMeans(len(np.unique(y)), n_init=10, random_state=0).fit_predict(
        np.asarray(X, dtype=np.float64)
    )
    report["nmi"] = normalized_mutual_info_score(y, clusters)
    report["ami"] = adjusted_mutual_info_score(y, clusters)
    report["opis_loss"] = brute_opis(pairs, y)
    Dx = distances(X, X)
    same = [
        (i, j) for i in range(len(X)) for j in range(len(X)) if i != j and y[i] == y[j]
    ]
    report["alignment_loss"] = np.mean([Dx[i, j] ** 2 for i, j in same])
    upper = Dx[np.triu_indices(len(X), 1)]
    report["uniformity_loss"] = logsumexp(-2 * upper**2) - np.log(upper.size)
    return report


def brute_opis(pairs, y, far_range=(1e-4, 1e-2), n_thresholds=50):
    negatives = np.sort([d for _, same, d in pairs if not same])
    low, high = (
        negatives[max(1, math.ceil(negatives.size * f)) - 1] for f in far_range
    )

    def f1(selected, t):
        tp = sum(same and d <= t for _, same, d in selected)
        fn = sum(same and d > t for _, same, d in selected)
        fp = sum(not same and d <= t for _, same, d in selected)
        return 2 * tp / (2 * tp + fp + fn)

    thresholds = np.linspace(low, high, n_thresholds)
    pooled = [f1(pairs, t) for t in thresholds]
    values = []
    for c in np.unique(y):
        own = [p for p in pairs if p[0] == c]
        if any(same for _, same, _ in own):
            values.append(
                np.mean([(f1(own, t) - u) ** 2 for t, u in zip(thresholds, pooled)])
            )
    return np.mean(values)


def small_data(seed=0, n=40, d=3, n_classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    return rng.normal(size=(n, d)) + 1.5 * y[:, None], y


# --------------------------------------------------------------------------
# retrieval_report
# --------------------------------------------------------------------------


def test_report_on_embeddings_matches_brute_force():
    X, y = small_data()
    report = retrieval_report(None, X, y)
    expected = brute_report(X, y)
    assert list(report) == list(expected)  # same keys, same order
    for key, value in expected.items():
        assert isinstance(report[key], float)
        assert report[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_report_with_an_embedder_and_a_gallery():
    X, y = small_data(seed=1, n=60, d=5)
    pipe = make_pipeline(StandardScaler(), PCA(n_components=2, random_state=0)).fit(X)
    query, gallery = X[:25], X[25:]
    report = retrieval_report(
        pipe, query, y[:25], reference_X=gallery, reference_y=y[25:], k=[3, 1]
    )
    Zq, Zg = pipe.transform(query), pipe.transform(gallery)
    expected = brute_report(Zq, y[:25], Zg, y[25:], ks=(1, 3))
    assert list(report) == list(expected)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_report_as_frame():
    X, y = small_data(seed=2)
    report = retrieval_report(None, X, y, k=2)
    frame = retrieval_report(None, X, y, k=2, as_frame=True)
    assert frame.shape == (1, len(report))
    assert list(frame.columns) == list(report)
    np.testing.assert_allclose(
        frame.iloc[0].to_numpy(dtype=float), list(report.values())
    )


def test_report_without_pandas_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    X, y = small_data(seed=3, n=12)
    with pytest.raises(ImportError, match="pip install pandas"):
        retrieval_report(None, X, y, k=1, as_frame=True)
    assert isinstance(retrieval_report(None, X, y, k=1), dict)


def test_report_of_a_fitted_triplet_embedder():
    X, y = small_data(seed=4, n=48, d=6, n_classes=4)
    embedder = TripletEmbedder(
        n_components=4, hidden_layer_sizes=(), max_iter=3, batch_size=16, random_state=0
    ).fit(X, y)
    Z = embedder.transform(X)
    report = retrieval_report(embedder, X, y, k=(1, 3))
    expected = brute_report(Z, y, ks=(1, 3))
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"k": 0}, ValueError, "k must be a positive integer"),
        ({"k": (1, 2.5)}, ValueError, "k must be a positive integer"),
        ({"k": 12}, ValueError, "only 11 reference points"),
        ({"reference_X": np.ones((3, 2))}, ValueError, "given together"),
        ({"as_frame": "yes"}, ValueError, "as_frame must be"),
    ],
)
def test_report_errors(kwargs, error, message):
    X, y = small_data(seed=5, n=12, d=2)
    with pytest.raises(error, match=message):
        retrieval_report(None, X, y, **kwargs)


def test_report_rejects_an_object_without_transform():
    X, y = small_data(seed=6, n=12, d=2)
    with pytest.raises(TypeError, match="transform method"):
        retrieval_report(object(), X, y)


# --------------------------------------------------------------------------
# Plotting
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_embedding_draws_one_scatter_per_class(method):
    X, y = small_data(seed=7, n=30, d=4)
    labels = np.array(["cat", "dog", "eel"])[y]
    fig, ax = plt.subplots()
    try:
        returned = plot_embedding(None, X, labels, ax=ax, method=method)
        assert returned is ax
        assert len(ax.collections) == 3
        for collection, name in zip(ax.collections, ["cat", "dog", "eel"]):
            assert collection.get_label() == name
            assert len(collection.get_offsets()) == int((labels == name).sum())
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert legend == ["cat", "dog", "eel"]
        assert ax.get_xlabel() == f"{method.upper()} 1"
    finally:
        plt.close(fig)


def test_plot_embedding_pca_points_are_the_principal_coordinates():
    X, y = small_data(seed=8, n=25, d=3)
    pipe = make_pipeline(StandardScaler()).fit(X)
    ax = plot_embedding(pipe, X, y)
    try:
        Z = pipe.transform(X)
        Z = Z - Z.mean(axis=0)
        _, _, vt = np.linalg.svd(Z, full_matrices=False)
        expected = Z @ vt[:2].T
        drawn = np.vstack([c.get_offsets() for c in ax.collections])
        order = np.concatenate([np.flatnonzero(y == c) for c in np.unique(y)])
        # Principal axes are defined up to sign.
        np.testing.assert_allclose(np.abs(drawn), np.abs(expected[order]), atol=1e-9)
    finally:
        plt.close(ax.figure)


def test_plot_precision_at_k_draws_the_brute_force_curve():
    X, y = small_data(seed=9, n=30)
    fig, ax = plt.subplots()
    try:
        plot_precision_at_k(None, X, y, ks=(5, 1, 3), ax=ax)
        plot_precision_at_k(StandardScaler().fit(X), X, y, ks=(1, 3, 5), ax=ax)
        assert len(ax.lines) == 2
        line = ax.lines[0]
        assert list(line.get_xdata()) == [1, 3, 5]
        expected = brute_report(X, y, ks=(1, 3, 5))
        np.testing.assert_allclose(
            line.get_ydata(), [expected[f"precision_at_{k}"] for k in (1, 3, 5)]
        )
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels == ["embeddings", "StandardScaler"]
        assert ax.get_ylabel() == "precision at k"
    finally:
        plt.close(fig)


def test_plotting_errors():
    X, y = small_data(seed=10, n=12)
    with pytest.raises(ValueError, match="method must be one of"):
        plot_embedding(None, X, y, method="umap")
    with pytest.raises(ValueError, match="at least 2 embedding"):
        plot_embedding(None, X[:, :1], y)
    with pytest.raises(ValueError, match="ks must be"):
        plot_precision_at_k(None, X, y, ks=[0])
    with pytest.raises(TypeError, match="transform method"):
        plot_precision_at_k(object(), X, y)


def test_plotting_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    X, y = small_data(seed=11, n=12)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_embedding(None, X, y)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_precision_at_k(None, X, y)
