"""Nearest-neighbour search over a gallery of embeddings, as an estimator.

:class:`EmbeddingIndex` is fitted once on a gallery (embeddings, or raw
inputs embedded by a fitted embedder) and then answers ``kneighbors``,
``radius_neighbors`` and ``kneighbors_graph`` queries with the interface of
scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`. The search is
exact by default (the package's chunked kNN, streamed over blocks of the
gallery, so a memory-mapped gallery larger than memory is searched in
bounded memory); with the optional ``faiss`` extra it can be approximate
(IVF-flat, HNSW, IVF-PQ). :func:`save_index` and :func:`load_index` write
and read a fitted index without pickle.
"""

import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._param_validation import HasMethods, Interval, StrOptions, validate_params
from .metrics import chunked_knn
from .persistence import (
    _decode,
    _embedder_from_payload,
    _embedder_payload,
    _encode,
    _write_payload,
)

__all__ = ["EmbeddingIndex", "load_index", "save_index"]

#: Format tag of the files written by :func:`save_index`.
INDEX_FORMAT = "sklearn-dml-index/1"

_APPROXIMATE = ("ivf_flat", "hnsw", "ivf_pq")
# Gallery values searched per block by default (2**25 float32 values: 128 MiB).
_GALLERY_BLOCK_VALUES = 2**25
# Queries searched at once by the streamed exact search.
_QUERY_CHUNK = 2**16
# Queries handed to faiss at once (the candidates' exact distances are
# recomputed from a gathered float64 copy of their rows).
_APPROX_QUERY_CHUNK = 2**11
# Float64 entries of one distance tile of the radius search (32 MiB).
_RADIUS_TILE = 2**22


def _import_faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "The approximate methods of EmbeddingIndex (method='ivf_flat', 'hnsw' "
            "or 'ivf_pq') need faiss: pip install 'sklearn-dml[faiss]' (or "
            "faiss-cpu). method='exact' needs nothing more."
        ) from exc
    return faiss


def _as_tensor(array):
    """A torch view of a NumPy array, read-only arrays (memory maps) included.

    The package's kNN never writes into its inputs; torch only warns that it
    could.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(array))


def _unit(rows):
    """Float64 rows divided by their norm (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows * np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)


def _pair_distances(query, rows, metric):
    """Float64 distances of ``query[i]`` to each ``rows[i, j]`` (pair by pair)."""
    query = np.asarray(query, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - np.einsum("id,ijd->ij", _unit(query), _unit(rows))
    diff = rows - query[:, None, :]
    return np.sqrt(np.einsum("ijd,ijd->ij", diff, diff))


def _sorted_by_distance(dist, ind, keep):
    """The ``keep`` first of each row ordered by (distance, index)."""
    order = np.lexsort((ind, dist))[:, :keep]
    return (
        np.take_along_axis(dist, order, axis=1),
        np.take_along_axis(ind, order, axis=1),
    )


def _drop_self(dist, ind, own):
    """Remove each row's own index (or its last column when absent)."""
    mask = ind == own[:, None]
    mask[~mask.any(axis=1), -1] = True
    n_rows, width = ind.shape
    return (
        dist[~mask].reshape(n_rows, width - 1),
        ind[~mask].reshape(n_rows, width - 1),
    )


class EmbeddingIndex(BaseEstimator):
    """Nearest-neighbour index over a gallery of embeddings.

    ``fit`` stores a gallery (a NumPy array, a memory map from
    ``np.load(..., mmap_mode="r")`` or ``np.memmap``, or raw inputs that a
    fitted ``embedder`` turns into embeddings); ``kneighbors``,
    ``radius_neighbors`` and ``kneighbors_graph`` answer queries with the
    signatures and semantics of scikit-learn's
    :class:`~sklearn.neighbors.NearestNeighbors`, including ``X=None``
    (the gallery queried against itself, each point excluded from its own
    neighbours).

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours returned by ``kneighbors`` when it is not given.
    radius : float, default=1.0
        Radius used by ``radius_neighbors`` when it is not given.
    metric : {"euclidean", "cosine"}, default="euclidean"
        The distance, as in :func:`~sklearn_dml.metrics.chunked_knn`:
        the L2 distance, or one minus the cosine similarity (a zero vector
        is at distance 1 from everything).
    method : {"exact", "ivf_flat", "hnsw", "ivf_pq"}, default="exact"
        ``"exact"`` searches every gallery point (streamed in blocks). The
        others build a faiss index (the ``faiss`` extra): an inverted file
        of ``n_lists`` k-means cells holding the vectors (``"ivf_flat"``)
        or their product-quantised codes (``"ivf_pq"``), or a hierarchical
        navigable small-world graph (``"hnsw"``). Their neighbours are
        approximate; the returned distances are always exact.
    embedder : fitted estimator with ``transform``, default=None
        When given, ``fit`` and the query methods take raw inputs and embed
        them with ``embedder.transform``. It is used as given (never
        refitted); :func:`sklearn.base.clone` returns it unfitted, so wrap
        it in :class:`sklearn.frozen.FrozenEstimator` for model selection.
    n_lists : int, default=None
        Number of inverted lists of the IVF methods; ``None`` uses about
        the square root of the gallery size.
    n_probe : int, default=16
        Inverted lists visited per query by the IVF methods (more: higher
        recall, slower).
    hnsw_m : int, default=32
        Neighbours per node of the HNSW graph.
    ef_search : int, default=64
        Size of the HNSW search's candidate list (at least the number of
        neighbours asked for).
    pq_m : int, default=None
        Sub-quantisers of ``"ivf_pq"`` (one byte each per vector); must
        divide the number of features. ``None`` takes the largest divisor
        of the number of features that is at most a quarter of it.
    refine_factor : int, default=1
        Approximate methods fetch ``refine_factor * n_neighbors`` candidates
        and keep the nearest by exact distance; above 1 it recovers recall
        lost to quantisation (``"ivf_pq"``).
    gallery_block_size : int, default=None
        Gallery rows searched at once by the exact search and added at once
        to a faiss index; ``None`` uses blocks of about 128 MiB of float32
        values.
    random_state : int, RandomState instance or None, default=None
        Seeds the sample and the k-means of the faiss training.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during ``fit`` (of the raw inputs when an
        ``embedder`` is given).
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during ``fit``, when they are all strings.
    n_samples_fit_ : int
        Number of gallery points.
    gallery_ : ndarray of shape (``n_samples_fit_``, n_dims)
        The gallery embeddings, as given (a memory map stays a memory map;
        float32 and float64 are kept, not copied).
    faiss_index_ : faiss.Index or None
        The approximate index, ``None`` for ``method="exact"``.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : The interface followed here.
    sklearn_dml.metrics.chunked_knn : The exact search.

    Notes
    -----
    *Exact search.* Queries go through
    :func:`~sklearn_dml.metrics.chunked_knn` against one gallery block at
    a time; each block's ``k`` nearest (by distance, then index) are merged
    into a running top-``k``. Memory is that of one block's search, never
    of the gallery: a float32 memory map is read in place, block after
    block. Ties are broken by the smaller gallery index, so the result does
    not depend on the block size. ``X=None`` asks for ``k + 1`` neighbours
    and drops each point's own index (the last neighbour when the point is
    not among them), as scikit-learn does. ``radius_neighbors`` is always
    exact: float64 distance tiles filtered at the radius (with a rounding
    slack), the survivors' distances recomputed pair by pair as in
    ``kneighbors``; a point at exactly ``radius`` is included.

    *Approximate search.* The faiss index stores float32 vectors (unit
    vectors for ``"cosine"``, whose L2 order is the cosine order); it is
    trained on at most ``max(64 * n_lists, 20000)`` gallery rows drawn
    with ``random_state`` (the product quantiser's codebooks on at most
    16,384 of them, 15 k-means rounds), then the gallery is added block by
    block.
    ``"ivf_flat"`` and ``"hnsw"`` hold a float32 copy of the gallery in
    memory; ``"ivf_pq"`` holds ``pq_m`` bytes per vector, the choice for a
    gallery beyond memory. :meth:`recall_at_k` measures the fraction of
    the exact neighbours it finds.

    References
    ----------
    .. [1] J. Johnson, M. Douze and H. Jégou, "Billion-scale similarity search
       with GPUs", IEEE Transactions on Big Data, 2019.
    .. [2] Y. A. Malkov and D. A. Yashunin, "Efficient and robust approximate
       nearest neighbor search using hierarchical navigable small world
       graphs", IEEE TPAMI, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.neighbors import EmbeddingIndex
    >>> gallery = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> index = EmbeddingIndex(n_neighbors=2).fit(gallery)
    >>> distances, indices = index.kneighbors([[0.9, 0.1]])
    >>> indices
    array([[1, 0]])
    >>> index.kneighbors(n_neighbors=1, return_distance=False).ravel()
    array([1, 0, 0, 2])
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "radius": [Interval(Real, 0, None, closed="left")],
        "metric": [StrOptions({"euclidean", "cosine"})],
        "method": [StrOptions({"exact", *_APPROXIMATE})],
        "embedder": [None, HasMethods("transform")],
        "n_lists": [None, Interval(Integral, 1, None, closed="left")],
        "n_probe": [Interval(Integral, 1, None, closed="left")],
        "hnsw_m": [Interval(Integral, 2, None, closed="left")],
        "ef_search": [Interval(Integral, 1, None, closed="left")],
        "pq_m": [None, Interval(Integral, 1, None, closed="left")],
        "refine_factor": [Interval(Integral, 1, None, closed="left")],
        "gallery_block_size": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_neighbors=5,
        radius=1.0,
        *,
        metric="euclidean",
        method="exact",
        embedder=None,
        n_lists=None,
        n_probe=16,
        hnsw_m=32,
        ef_search=64,
        pq_m=None,
        refine_factor=1,
        gallery_block_size=None,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.metric = metric
        self.method = method
        self.embedder = embedder
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.pq_m = pq_m
        self.refine_factor = refine_factor
        self.gallery_block_size = gallery_block_size
        self.random_state = random_state

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y=None):
        """Store the gallery (and build the approximate index).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The gallery: embeddings, or raw inputs of ``embedder``. A
            float32 or float64 array (memory maps included) is kept as it
            is, not copied.
        y : None
            Ignored.

        Returns
        -------
        self : EmbeddingIndex
            The fitted index.
        """
        validate_params(
            self._parameter_constraints, self.get_params(deep=False), "EmbeddingIndex"
        )
        if self.method != "exact":
            _import_faiss()
        if self.embedder is not None:
            check_is_fitted(self.embedder)
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        gallery = self._embed(X)
        if self.method != "exact":
            faiss_index = self._build_faiss(gallery)
        else:
            faiss_index = None
        self.gallery_ = gallery
        self.n_samples_fit_ = gallery.shape[0]
        self.faiss_index_ = faiss_index
        return self

    def _embed(self, X):
        if self.embedder is None:
            return X
        Z = np.asarray(self.embedder.transform(X))
        if Z.ndim != 2 or Z.dtype.kind != "f":
            raise ValueError(
                "embedder.transform must return a 2-D float array, got "
                f"shape {Z.shape} and dtype {Z.dtype}."
            )
        return Z

    def _block_size(self, n_dims):
        if self.gallery_block_size is not None:
            return int(self.gallery_block_size)
        return max(1, _GALLERY_BLOCK_VALUES // n_dims)

    def _blocks(self, n_rows, n_dims):
        step = self._block_size(n_dims)
        return [(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]

    def _faiss_rows(self, rows):
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.metric == "cosine":
            rows = _unit(rows.astype(np.float64)).astype(np.float32)
        return rows

    def _build_faiss(self, gallery):
        faiss = _import_faiss()
        n, d = gallery.shape
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        n_lists = self.n_lists
        if n_lists is None:
            n_lists = max(1, int(round(math.sqrt(n))))
        n_lists = min(n_lists, n)
        if self.method == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(self.hnsw_m))
        else:
            quantizer = faiss.IndexFlatL2(d)
            if self.method == "ivf_flat":
                index = faiss.IndexIVFFlat(quantizer, d, n_lists)
            else:
                pq_m = self.pq_m
                if pq_m is None:
                    pq_m = max(m for m in range(1, max(1, d // 4) + 1) if d % m == 0)
                if d % pq_m:
                    raise ValueError(
                        f"pq_m={pq_m} must divide the number of features ({d})."
                    )
                n_bits = int(min(8, max(1, math.floor(math.log2(n)))))
                index = faiss.IndexIVFPQ(quantizer, d, n_lists, int(pq_m), n_bits)
                index.pq.cp.seed = seed
                # The codebooks' k-means on a 16,384-row sample, 15 rounds:
                # low-dimensional k-means is slow in faiss, and re-ranking
                # (refine_factor) recovers more recall than longer training.
                index.pq.cp.max_points_per_centroid = 64
                index.pq.cp.niter = 15
            index.cp.seed = seed
            n_train = min(n, max(64 * n_lists, 20000))
            rows = np.sort(rng.choice(n, n_train, replace=False))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                index.train(self._faiss_rows(gallery[rows]))
        for start, stop in self._blocks(n, d):
            index.add(self._faiss_rows(gallery[start:stop]))
        return index

    # ---------------------------------------------------------------- queries
    def _queries(self, X):
        """Validated query embeddings and, for ``X=None``, the own indices."""
        check_is_fitted(self, "gallery_")
        if X is None:
            return self.gallery_, np.arange(self.n_samples_fit_)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        Q = self._embed(X)
        if Q.shape[1] != self.gallery_.shape[1]:
            raise ValueError(
                f"The queries have {Q.shape[1]} dimensions, the gallery "
                f"{self.gallery_.shape[1]}."
            )
        return Q, None

    def _check_k(self, n_neighbors, query_is_gallery):
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        validate_params(
            {"n_neighbors": [Interval(Integral, 1, None, closed="left")]},
            {"n_neighbors": n_neighbors},
            "EmbeddingIndex.kneighbors",
        )
        needed = n_neighbors + (1 if query_is_gallery else 0)
        if needed > self.n_samples_fit_:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {needed}, "
                f"n_samples_fit = {self.n_samples_fit_}"
                + (" (X=None excludes each point itself)." if query_is_gallery else ".")
            )
        return int(n_neighbors)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the nearest gallery points of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries (raw inputs of ``embedder`` when one is given). ``None``
            queries every gallery point, excluding the point itself from its
            neighbours.
        n_neighbors : int, default=None
            Number of neighbours; ``None`` uses the ``n_neighbors``
            parameter.
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), dtype float64
            Distances to the neighbours, non-decreasing per row; only when
            ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), dtype int64
            Gallery indices of the neighbours.
        """
        Q, own = self._queries(X)
        k = self._check_k(n_neighbors, own is not None)
        if self.method == "exact":
            dist, ind = self._exact_kneighbors(Q, k, own)
        else:
            dist, ind = self._approximate_kneighbors(Q, k, own)
        return (dist, ind) if return_distance else ind

    def _exact_kneighbors(self, Q, k, own):
        gallery = self.gallery_
        n, d = gallery.shape
        width = k + (0 if own is None else 1)
        blocks = self._blocks(n, d)
        out_dist = np.empty((Q.shape[0], k), dtype=np.float64)
        out_ind = np.empty((Q.shape[0], k), dtype=np.int64)
        for q_start in range(0, Q.shape[0], _QUERY_CHUNK):
            q_stop = min(q_start + _QUERY_CHUNK, Q.shape[0])
            queries = _as_tensor(Q[q_start:q_stop])
            best = None
            for start, stop in blocks:
                dist, ind = chunked_knn(
                    queries,
                    min(width, stop - start),
                    _as_tensor(gallery[start:stop]),
                    metric=self.metric,
                )
                ind += start
                if best is not None:
                    dist = np.concatenate([best[0], dist], axis=1)
                    ind = np.concatenate([best[1], ind], axis=1)
                    dist, ind = _sorted_by_distance(dist, ind, width)
                best = dist, ind
            dist, ind = best
            if own is not None:
                dist, ind = _drop_self(dist, ind, own[q_start:q_stop])
            out_dist[q_start:q_stop], out_ind[q_start:q_stop] = dist, ind
        return out_dist, out_ind

    def _approximate_kneighbors(self, Q, k, own):
        index = self.faiss_index_
        n = self.n_samples_fit_
        width = k + (0 if own is None else 1)
        n_fetch = min(n, width * int(self.refine_factor))
        if self.method == "hnsw":
            index.hnsw.efSearch = max(int(self.ef_search), n_fetch)
        else:
            index.nprobe = min(int(self.n_probe), index.nlist)
        out_dist = np.empty((Q.shape[0], k), dtype=np.float64)
        out_ind = np.empty((Q.shape[0], k), dtype=np.int64)
        for q_start in range(0, Q.shape[0], _APPROX_QUERY_CHUNK):
            q_stop = min(q_start + _APPROX_QUERY_CHUNK, Q.shape[0])
            queries = np.asarray(Q[q_start:q_stop])
            _, ind = index.search(self._faiss_rows(queries), n_fetch)
            ind = ind.astype(np.int64)
            missing = ind < 0
            rows = self.gallery_[np.where(missing, 0, ind).ravel()]
            dist = _pair_distances(queries, rows.reshape(*ind.shape, -1), self.metric)
            dist[missing] = np.inf
            ind[missing] = n
            dist, ind = _sorted_by_distance(dist, ind, width)
            if own is not None:
                dist, ind = _drop_self(dist, ind, own[q_start:q_stop])
            out_dist[q_start:q_stop], out_ind[q_start:q_stop] = dist, ind
        out_ind[out_ind >= n] = -1
        return out_dist, out_ind

    def radius_neighbors(
        self, X=None, radius=None, return_distance=True, sort_results=False
    ):
        """Find the gallery points within a distance of each query (exact).

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; ``None`` queries every gallery point, excluding the
            point itself.
        radius : float, default=None
            Largest distance returned (inclusive); ``None`` uses the
            ``radius`` parameter.
        return_distance : bool, default=True
            Whether to return the distances.
        sort_results : bool, default=False
            Sort each query's neighbours by increasing distance (then
            index); needs ``return_distance=True``.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,), dtype object
            One float64 array of distances per query; only when
            ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries,), dtype object
            One int64 array of gallery indices per query.
        """
        if radius is None:
            radius = self.radius
        validate_params(
            {"radius": [Interval(Real, 0, None, closed="left")]},
            {"radius": radius},
            "EmbeddingIndex.radius_neighbors",
        )
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        Q, own = self._queries(X)
        q_ids, g_ids, dists = self._radius_pairs(Q, float(radius), own)
        order = np.lexsort((g_ids, dists, q_ids) if sort_results else (q_ids,))
        q_ids, g_ids, dists = q_ids[order], g_ids[order], dists[order]
        cuts = np.searchsorted(q_ids, np.arange(1, Q.shape[0]))
        neigh_ind = np.empty(Q.shape[0], dtype=object)
        neigh_dist = np.empty(Q.shape[0], dtype=object)
        neigh_ind[:] = np.split(g_ids, cuts)
        neigh_dist[:] = np.split(dists, cuts)
        return (neigh_dist, neigh_ind) if return_distance else neigh_ind

    def _radius_pairs(self, Q, radius, own):
        """(query, gallery, distance) of every pair within ``radius``."""
        gallery = self.gallery_
        n, d = gallery.shape
        cosine = self.metric == "cosine"
        rows = max(1, int(math.sqrt(_RADIUS_TILE)))
        found = []
        for start, stop in self._blocks(n, d):
            for r_start in range(start, stop, rows):
                r_stop = min(r_start + rows, stop)
                R = np.asarray(gallery[r_start:r_stop], dtype=np.float64)
                R_work = _unit(R) if cosine else R
                r_sq = np.einsum("ij,ij->i", R_work, R_work)
                for q_start in range(0, Q.shape[0], rows):
                    q_stop = min(q_start + rows, Q.shape[0])
                    q = np.asarray(Q[q_start:q_stop], dtype=np.float64)
                    q_work = _unit(q) if cosine else q
                    q_sq = np.einsum("ij,ij->i", q_work, q_work)
                    prod = q_work @ R_work.T
                    # Rounding of the product-based tile is far below this
                    # slack; the survivors are recomputed exactly below.
                    scale = q_sq[:, None] + r_sq[None, :]
                    slack = 1e-9 * scale + 1e-12
                    if cosine:
                        keep = 1.0 - prod <= radius + slack
                    else:
                        keep = scale - 2.0 * prod <= radius * radius + slack * 4
                    qi, ri = np.nonzero(keep)
                    if not qi.size:
                        continue
                    exact = _pair_distances(q[qi], R[ri][:, None, :], self.metric)[:, 0]
                    qi, ri = qi + q_start, ri + r_start
                    inside = exact <= radius
                    if own is not None:
                        inside &= own[qi] != ri
                    found.append((qi[inside], ri[inside], exact[inside]))
        if not found:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float64)
        return tuple(np.concatenate(parts) for parts in zip(*found))

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Sparse graph of the nearest gallery points of each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; ``None`` queries every gallery point, excluding the
            point itself.
        n_neighbors : int, default=None
            Number of neighbours; ``None`` uses the ``n_neighbors``
            parameter.
        mode : {"connectivity", "distance"}, default="connectivity"
            Ones, or the distances, as the matrix's values.

        Returns
        -------
        A : sparse matrix of shape (n_queries, ``n_samples_fit_``)
            CSR matrix; row ``i`` holds query ``i``'s neighbours.
        """
        validate_params(
            {"mode": [StrOptions({"connectivity", "distance"})]},
            {"mode": mode},
            "EmbeddingIndex.kneighbors_graph",
        )
        dist, ind = self.kneighbors(X, n_neighbors, return_distance=True)
        n_queries, k = ind.shape
        values = np.ones(ind.size) if mode == "connectivity" else dist.ravel()
        return sparse.csr_matrix(
            (values, ind.ravel(), np.arange(0, n_queries * k + 1, k)),
            shape=(n_queries, self.n_samples_fit_),
        )

    def recall_at_k(self, X=None, n_neighbors=None):
        """Fraction of the exact nearest neighbours that the index returns.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries; ``None`` queries every gallery point (itself excluded).
        n_neighbors : int, default=None
            ``k``; ``None`` uses the ``n_neighbors`` parameter.

        Returns
        -------
        recall : float
            Mean over queries of ``|approximate k nearest & exact k
            nearest| / k``; 1.0 for ``method="exact"``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_dml.neighbors import EmbeddingIndex
        >>> X = np.random.default_rng(0).normal(size=(50, 4))
        >>> EmbeddingIndex(n_neighbors=3).fit(X).recall_at_k(X[:5])
        1.0
        """
        Q, own = self._queries(X)
        k = self._check_k(n_neighbors, own is not None)
        approx = self.kneighbors(X, k, return_distance=False)
        if self.method == "exact":
            exact = approx
        else:
            exact = self._exact_kneighbors(Q, k, own)[1]
        hits = (approx[:, :, None] == exact[:, None, :]).any(axis=2)
        return float(hits.mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags


# --------------------------------------------------------------- persistence
def _gallery_record(gallery):
    """How to store the gallery: by reference to its file, or as a tensor.

    A gallery that is a whole C-contiguous memory map (``np.load(...,
    mmap_mode="r")``, ``np.memmap``) is stored as its file's path, offset,
    shape and dtype; anything else as a tensor of its values.
    """
    mapped = gallery
    while mapped is not None and not isinstance(mapped, np.memmap):
        mapped = getattr(mapped, "base", None)
    if (
        mapped is not None
        and getattr(mapped, "filename", None)
        and gallery.flags.c_contiguous
        and mapped.flags.c_contiguous
        and gallery.shape == mapped.shape
        and gallery.dtype == mapped.dtype
        and gallery.ctypes.data == mapped.ctypes.data
    ):
        return {
            "memmap": os.fspath(mapped.filename),
            "offset": int(mapped.offset),
            "shape": list(gallery.shape),
            "dtype": gallery.dtype.str,
        }
    return {"array": torch.from_numpy(np.array(gallery))}


def save_index(index, path):
    """Write a fitted :class:`EmbeddingIndex` to ``path`` without pickle.

    The parameters are stored as plain data, the embedder (if any) as
    :func:`sklearn_dml.persistence.save` stores it, the gallery as a tensor
    (a memory-mapped gallery by reference to its file: path, offset, shape
    and dtype, so the file must stay where it is) and a faiss index as the
    bytes of ``faiss.serialize_index``. :func:`load_index` reads it back
    with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    index : EmbeddingIndex
        A fitted index.
    path : str or os.PathLike
        File to write (replaced atomically).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_dml.neighbors import EmbeddingIndex, load_index, save_index
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> index = EmbeddingIndex(n_neighbors=2).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "index.pt")
    >>> save_index(index, path)
    >>> again = load_index(path)
    >>> bool((again.kneighbors(X[:4])[1] == index.kneighbors(X[:4])[1]).all())
    True
    """
    if not isinstance(index, EmbeddingIndex):
        raise ValueError(f"save_index writes an EmbeddingIndex, got {type(index)!r}.")
    check_is_fitted(index, "gallery_")
    params = index.get_params(deep=False)
    embedder = params.pop("embedder")
    if embedder is not None:
        inner = getattr(embedder, "estimator", embedder)  # FrozenEstimator
        embedder = _embedder_payload(inner)
    if not isinstance(params["random_state"], (type(None), Integral)):
        params["random_state"] = None
    fitted = {"n_features_in_": index.n_features_in_}
    if hasattr(index, "feature_names_in_"):
        fitted["feature_names_in_"] = _encode(
            index.feature_names_in_, "feature_names_in_"
        )
    faiss_bytes = None
    if index.faiss_index_ is not None:
        faiss = _import_faiss()
        faiss_bytes = torch.from_numpy(faiss.serialize_index(index.faiss_index_))
    payload = {
        "format": INDEX_FORMAT,
        "params": {k: _encode(v, k) for k, v in params.items()},
        "embedder": embedder,
        "fitted": fitted,
        "gallery": _gallery_record(index.gallery_),
        "faiss": faiss_bytes,
    }
    _write_payload(payload, path)


def load_index(path):
    """Read an index written by :func:`save_index`; no code from the file runs.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save_index`.

    Returns
    -------
    index : EmbeddingIndex
        The fitted index; a gallery saved by reference is memory-mapped
        read-only from its file again.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_dml.neighbors import EmbeddingIndex, load_index, save_index
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "index.pt")
    >>> save_index(EmbeddingIndex().fit(X), path)
    >>> load_index(path).n_samples_fit_
    6
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{os.fspath(path)!r} is not a file written by save_index "
            f"(format {INDEX_FORMAT!r})."
        )
    params = {k: _decode(v) for k, v in payload["params"].items()}
    embedder = payload["embedder"]
    if embedder is not None:
        embedder = _embedder_from_payload(embedder)
    index = EmbeddingIndex(embedder=embedder, **params)
    record = payload["gallery"]
    if "memmap" in record:
        gallery = np.memmap(
            record["memmap"],
            dtype=np.dtype(record["dtype"]),
            mode="r",
            offset=record["offset"],
            shape=tuple(record["shape"]),
        )
    else:
        gallery = record["array"].numpy()
    fitted = payload["fitted"]
    index.n_features_in_ = int(fitted["n_features_in_"])
    if "feature_names_in_" in fitted:
        index.feature_names_in_ = _decode(fitted["feature_names_in_"])
    index.gallery_ = gallery
    index.n_samples_fit_ = gallery.shape[0]
    index.faiss_index_ = None
    if payload["faiss"] is not None:
        faiss = _import_faiss()
        index.faiss_index_ = faiss.deserialize_index(payload["faiss"].numpy())
    return index
