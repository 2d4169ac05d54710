"""EmbeddingIndex: scikit-learn's NearestNeighbors semantics, faiss modes, memory maps, saving."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_dml.neighbors import EmbeddingIndex, load_index, save_index

RNG = np.random.default_rng(0)
GALLERY = RNG.normal(size=(200, 6))
QUERIES = RNG.normal(size=(25, 6))


def _clustered(n, d, n_centres, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_centres, d))
    return (centres[rng.integers(n_centres, size=n)] + rng.normal(size=(n, d))).astype(
        np.float32
    )


@parametrize_with_checks([EmbeddingIndex(n_neighbors=2)])
def test_sklearn_compatible_index(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "metric,block", [("euclidean", None), ("euclidean", 70), ("cosine", None)]
)
@pytest.mark.parametrize("queries", [QUERIES, None], ids=["X", "None"])
def test_kneighbors_matches_sklearn_brute(metric, block, queries):
    # block=70 streams the gallery in three blocks merged by (distance, index).
    index = EmbeddingIndex(n_neighbors=7, metric=metric, gallery_block_size=block)
    reference = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute")
    dist, ind = index.fit(GALLERY).kneighbors(queries)
    ref_dist, ref_ind = reference.fit(GALLERY).kneighbors(queries)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12, atol=1e-12)
    only = index.kneighbors(queries, n_neighbors=3, return_distance=False)
    np.testing.assert_array_equal(only, ref_ind[:, :3])


def test_kneighbors_graph_matches_sklearn_brute():
    index = EmbeddingIndex(n_neighbors=4).fit(GALLERY)
    reference = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(GALLERY)
    for queries in (QUERIES, None):
        graph = index.kneighbors_graph(queries, mode="distance")
        ref_graph = reference.kneighbors_graph(queries, mode="distance")
        assert graph.shape == ref_graph.shape
        assert abs(graph - ref_graph).max() < 1e-12
        connectivity = index.kneighbors_graph(queries)
        assert (connectivity != reference.kneighbors_graph(queries)).nnz == 0


@pytest.mark.parametrize("metric,radius", [("euclidean", 2.5), ("cosine", 0.2)])
@pytest.mark.parametrize("queries", [QUERIES, None], ids=["X", "None"])
def test_radius_neighbors_matches_sklearn_brute(metric, radius, queries):
    index = EmbeddingIndex(metric=metric, gallery_block_size=50).fit(GALLERY)
    reference = NearestNeighbors(metric=metric, algorithm="brute").fit(GALLERY)
    dist, ind = index.radius_neighbors(queries, radius, sort_results=True)
    ref_dist, ref_ind = reference.radius_neighbors(queries, radius, sort_results=True)
    assert sum(map(len, ind)) > len(ind)  # the radius keeps several per query
    for d, i, rd, ri in zip(dist, ind, ref_dist, ref_ind):
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_allclose(d, rd, rtol=1e-12, atol=1e-12)
    unsorted = index.radius_neighbors(queries, radius, return_distance=False)
    for i, ri in zip(unsorted, ref_ind):
        assert sorted(i.tolist()) == sorted(ri.tolist())


def test_x_none_excludes_only_the_point_itself():
    # Duplicates stay neighbours at distance 0; the point itself never does.
    X = np.array([[0.0], [0.0], [1.0], [5.0]])
    dist, ind = EmbeddingIndex(n_neighbors=2).fit(X).kneighbors()
    np.testing.assert_array_equal(ind, [[1, 2], [0, 2], [0, 1], [2, 0]])
    assert dist[0, 0] == 0.0
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        EmbeddingIndex().fit(X).kneighbors(n_neighbors=4)


def test_memory_mapped_gallery_gives_the_same_result(tmp_path):
    X = GALLERY.astype(np.float32)
    np.save(tmp_path / "gallery.npy", X)
    mapped = np.load(tmp_path / "gallery.npy", mmap_mode="r")
    index = EmbeddingIndex(n_neighbors=5, gallery_block_size=64).fit(mapped)
    in_memory = EmbeddingIndex(n_neighbors=5).fit(X)
    for queries in (QUERIES.astype(np.float32), None):
        np.testing.assert_array_equal(
            index.kneighbors(queries)[1], in_memory.kneighbors(queries)[1]
        )
    # The gallery is read in place, not copied.
    assert np.shares_memory(index.gallery_, mapped)
    # Saved by reference to the file, mapped again on load.
    save_index(index, tmp_path / "index.pt")
    again = load_index(tmp_path / "index.pt")
    assert isinstance(again.gallery_, np.memmap)
    np.testing.assert_array_equal(again.kneighbors()[1], index.kneighbors()[1])


def test_save_load_round_trip_and_embedder(tmp_path):
    from sklearn.datasets import load_digits

    from sklearn_dml import TripletEmbedder

    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16
    emb = TripletEmbedder(
        n_components=4,
        hidden_layer_sizes=(8,),
        max_iter=1,
        anchor_weight=None,
        random_state=0,
    ).fit(X, y[:200])
    index = EmbeddingIndex(n_neighbors=3, embedder=emb).fit(X)
    direct = EmbeddingIndex(n_neighbors=3).fit(emb.transform(X))
    np.testing.assert_array_equal(
        index.kneighbors(X[:10])[1], direct.kneighbors(emb.transform(X[:10]))[1]
    )
    save_index(index, tmp_path / "index.pt")
    again = load_index(tmp_path / "index.pt")
    dist, ind = again.kneighbors(X[:10])
    ref_dist, ref_ind = index.kneighbors(X[:10])
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)
    with pytest.raises(ValueError, match="not a file written by save_index"):
        from sklearn_dml.persistence import save

        save(emb, tmp_path / "emb.pt")
        load_index(tmp_path / "emb.pt")


@pytest.mark.parametrize("method", ["ivf_flat", "hnsw", "ivf_pq"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_faiss_methods_recall_on_clustered_data(method, metric, tmp_path):
    faiss = pytest.importorskip("faiss")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # OpenMP spinning slows a loaded machine
    try:
        _check_faiss_method(method, metric, tmp_path)
    finally:
        faiss.omp_set_num_threads(threads)


def _check_faiss_method(method, metric, tmp_path):
    data = _clustered(2100, 16, 20, seed=1)
    X, Q = data[:2000], data[2000:]
    index = EmbeddingIndex(
        n_neighbors=10,
        metric=metric,
        method=method,
        n_lists=16,
        n_probe=4,
        refine_factor=4 if method == "ivf_pq" else 1,
        random_state=0,
    ).fit(X)
    recall = index.recall_at_k(Q)
    assert recall >= 0.9
    exact = EmbeddingIndex(n_neighbors=10, metric=metric).fit(X)
    dist, ind = index.kneighbors(Q)
    # Returned distances are exact ones, sorted.
    if metric == "cosine":
        unit = X / np.linalg.norm(X, axis=1, keepdims=True)
        q_unit = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        expected = 1.0 - np.einsum("qd,qkd->qk", q_unit, unit[ind]).astype(float)
    else:
        expected = np.linalg.norm(X[ind].astype(float) - Q[:, None], axis=2)
    np.testing.assert_allclose(dist, expected, atol=1e-6)
    assert (np.diff(dist, axis=1) >= 0).all()
    # X=None: never the point itself.
    self_ind = index.kneighbors(None, 3, return_distance=False)
    assert not (self_ind == np.arange(len(X))[:, None]).any()
    assert exact.recall_at_k(Q) == 1.0
    save_index(index, tmp_path / "faiss.pt")
    np.testing.assert_array_equal(
        load_index(tmp_path / "faiss.pt").kneighbors(Q)[1], ind
    )


def test_approximate_methods_without_faiss_name_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r"sklearn-dml\[faiss\]"):
        EmbeddingIndex(method="hnsw").fit(GALLERY)


def test_bad_parameters_are_refused_before_fitting():
    with pytest.raises(ValueError, match="metric"):
        EmbeddingIndex(metric="manhattan").fit(GALLERY)
    index = EmbeddingIndex().fit(GALLERY)
    with pytest.raises(ValueError, match="sort_results"):
        index.radius_neighbors(QUERIES, return_distance=False, sort_results=True)
    with pytest.raises(ValueError, match="6 features"):
        index.kneighbors(QUERIES[:, :3])
