"""Exact, memory-bounded k-nearest-neighbour search in plain torch.

Every retrieval metric of :mod:`sklearn_dml.metrics` asks the same question:
which reference points are closest to each query? This module answers it once,
exactly and deterministically, without ever holding an ``n_queries x
n_references`` matrix: queries are processed in chunks, references in blocks,
and a running top-k per query is merged block after block.
"""

import numbers

import numpy as np
import torch

__all__ = ["chunked_knn"]

_METRICS = ("euclidean", "cosine")

# Number of float64 entries in one (query chunk x reference block) distance
# block: 2**25 entries is 256 MiB.
_BLOCK_BUDGET = 2**25
# Default number of references per block when nothing is given.
_DEFAULT_BLOCK = 2**16


def _as_2d_float(array, name):
    """Return ``array`` as a 2-D floating torch tensor (on the CPU or as given)."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    else:
        values = np.asarray(array)
        if values.dtype == object or not (
            np.issubdtype(values.dtype, np.number) or values.dtype == bool
        ):
            raise ValueError(
                f"{name} must contain numbers, got an array of dtype {values.dtype}."
            )
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), "
            f"got an array with {tensor.ndim} dimension(s)."
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one sample and one feature, "
            f"got shape {tuple(tensor.shape)}."
        )
    if tensor.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}.")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinity.")
    return tensor


def _check_positive_int(value, name, allow_none=True):
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < 1
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


# Unit roundoff of float64.
_EPS = 2.0**-53


def _approximate_block(query, query_scale, reference, reference_scale, metric):
    """Fast (matrix-product) distances between a query chunk and a reference block.

    Returns the approximate values (squared distances for ``"euclidean"``) and
    a per-row bound on their difference with :func:`_exact_pairs`.
    """
    n_features = query.shape[1]
    # Worst-case float64 rounding of a length-n_features dot product, with slack.
    rounding = (3 * n_features + 10) * _EPS
    if metric == "euclidean":
        # ||q||^2 - 2 q.r + ||r||^2 in float64.
        dist = torch.addmm(reference_scale.unsqueeze(0), query, reference.T, alpha=-2.0)
        dist.add_(query_scale.unsqueeze(1))
        error = rounding * (query_scale + reference_scale.max())
    else:
        # Both sides are unit vectors (or zero) already.
        dist = torch.mm(query, reference.T).neg_().add_(1.0)
        error = torch.full_like(dist[:, 0], 2.0 * rounding)
    return dist, error


def _exact_pairs(query, candidates, reference, reference_scale, metric):
    """Distances from each query row to its candidate references, pair by pair.

    Computed from coordinate differences (no cancellation: a duplicate is at
    distance exactly 0) with the same reduction for every pair, so identical
    points get bit-identical distances wherever they sit in the data. Rows
    are processed in steps that keep the gathered neighbours near 64 MiB.
    """
    n_rows, n_candidates = candidates.shape
    step = max(1, 2**23 // max(1, n_candidates * reference.shape[1]))
    parts = []
    for start in range(0, n_rows, step):
        ind = candidates[start : start + step]
        neighbours = reference[ind].to(torch.float64)
        q = query[start : start + step].unsqueeze(1)
        if metric == "euclidean":
            parts.append(neighbours.sub_(q).square_().sum(dim=2).sqrt_())
        else:
            neighbours.mul_(reference_scale[ind].unsqueeze(2)).mul_(q)
            parts.append(neighbours.sum(dim=2).neg_().add_(1.0).clamp_(0.0, 2.0))
    return torch.cat(parts)


def _block_candidates(dist, error, kb):
    """Columns that may hold the ``kb`` exactly-nearest references of each row.

    With ``kth`` the ``kb``-th smallest approximate value of a row, every
    reference among the exact ``kb`` nearest has an approximate value at most
    ``kth`` plus twice the rounding bound (plus slack for the square root).
    The smallest ``kb + extra`` values are taken with :func:`torch.topk`; when
    the largest of them is above that threshold in every row, they hold every
    entry under it, whatever order :func:`torch.topk` gives to ties.
    Otherwise (many exact ties at the boundary) ``extra`` grows and the search
    is repeated. Columns come back ordered by approximate value.
    """
    n_rows, width = dist.shape
    extra = 8
    while kb + extra < width:
        values, cols = torch.topk(dist, kb + extra, dim=1, largest=False, sorted=True)
        kth = values[:, kb - 1]
        threshold = kth + 4.0 * error + 16.0 * _EPS * kth.abs()
        if bool((values[:, -1] > threshold).all()):
            n_keep = int((values <= threshold.unsqueeze(1)).sum(dim=1).max())
            return cols[:, :n_keep]
        extra *= 4
    return torch.arange(width, device=dist.device).expand(n_rows, width)


def _knn(
    query,
    reference,
    k,
    *,
    metric="euclidean",
    self_index=None,
    chunk_size=None,
    block_size=None,
    device="cpu",
):
    """Exact kNN on validated torch tensors; see :func:`chunked_knn`.

    ``self_index`` is an optional int64 tensor of shape ``(n_queries,)`` giving,
    for each query, one reference index that must never be returned (the query
    itself in leave-one-out retrieval).
    """
    device = torch.device(device)
    n_queries = query.shape[0]
    n_references = reference.shape[0]
    if block_size is None:
        if chunk_size is None:
            block_size = min(n_references, _DEFAULT_BLOCK)
        else:
            block_size = max(1, _BLOCK_BUDGET // chunk_size)
    block_size = min(block_size, n_references)
    if chunk_size is None:
        chunk_size = max(1, _BLOCK_BUDGET // (block_size + 2 * k))

    reference = reference.to(device)
    if metric == "euclidean":
        reference_scale = reference.to(torch.float64).square().sum(dim=1)
    else:
        norms = torch.linalg.vector_norm(reference.to(torch.float64), dim=1)
        # A zero vector has no direction: it stays zero, at distance 1 from all.
        reference_scale = torch.where(norms > 0, norms.reciprocal(), norms)
    if self_index is not None:
        self_index = self_index.to(device)

    out_dist = torch.empty((n_queries, k), dtype=torch.float64)
    out_ind = torch.empty((n_queries, k), dtype=torch.int64)
    for q_start in range(0, n_queries, chunk_size):
        q_stop = min(q_start + chunk_size, n_queries)
        q = query[q_start:q_stop].to(device=device, dtype=torch.float64)
        if metric == "euclidean":
            q_scale = q.square().sum(dim=1)
        else:
            q_norm = torch.linalg.vector_norm(q, dim=1)
            q = q * torch.where(q_norm > 0, q_norm.reciprocal(), q_norm).unsqueeze(1)
            q_scale = None
        own = None if self_index is None else self_index[q_start:q_stop]
        rows = q_stop - q_start
        best_dist = torch.empty((rows, 0), dtype=torch.float64, device=device)
        best_ind = torch.empty((rows, 0), dtype=torch.int64, device=device)
        for r_start in range(0, n_references, block_size):
            r_stop = min(r_start + block_size, n_references)
            r = reference[r_start:r_stop].to(torch.float64)
            r_scale = reference_scale[r_start:r_stop]
            if metric == "cosine":
                r = r * r_scale.unsqueeze(1)
            dist, error = _approximate_block(q, q_scale, r, r_scale, metric)
            if own is not None:
                local = own - r_start
                inside = torch.nonzero((local >= 0) & (local < r_stop - r_start))
                inside = inside.squeeze(1)
                dist[inside, local[inside]] = torch.inf
            # Candidates in increasing index order, with exact distances.
            cols = (
                torch.sort(
                    _block_candidates(dist, error, min(k, r_stop - r_start)), dim=1
                ).values
                + r_start
            )
            del dist
            cand_dist = _exact_pairs(q, cols, reference, reference_scale, metric)
            if own is not None:
                cand_dist.masked_fill_(cols == own.unsqueeze(1), torch.inf)
            # Running neighbours (smaller indices, in (distance, index) order)
            # come first, then this block's in index order: a stable sort on
            # the distance alone gives the (distance, index) order.
            cand_dist, order = torch.sort(
                torch.cat([best_dist, cand_dist], dim=1), dim=1, stable=True
            )
            best_dist = cand_dist[:, :k]
            best_ind = torch.gather(torch.cat([best_ind, cols], dim=1), 1, order[:, :k])
        out_dist[q_start:q_stop] = best_dist.cpu()
        out_ind[q_start:q_stop] = best_ind.cpu()
    return out_dist, out_ind


def chunked_knn(
    query,
    k,
    reference=None,
    *,
    metric="euclidean",
    exclude_self=False,
    chunk_size=None,
    block_size=None,
    device="cpu",
):
    r"""Find the exact k nearest neighbours without an n x n distance matrix.

    Queries are processed ``chunk_size`` at a time against blocks of
    ``block_size`` references; each block's nearest references are merged
    into a running top-k, so memory grows with ``chunk_size * block_size`` and never
    with ``n_queries * n_references``. Designed for a million 128-dimensional
    embeddings; run it on a GPU with ``device="cuda"`` for that scale.

    Parameters
    ----------
    query : array-like of shape (n_queries, n_features)
        Points whose neighbours are searched (a torch tensor works too).
    k : int
        Number of neighbours returned per query. At most ``n_references``
        (``n_references - 1`` with ``exclude_self=True``).
    reference : array-like of shape (n_references, n_features), default=None
        Points among which neighbours are searched (a torch tensor works too).
        ``None`` searches the query set itself.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"euclidean"`` is the L2 distance; ``"cosine"`` is one minus the
        cosine similarity (a zero vector is at distance 1 from everything).
    exclude_self : bool, default=False
        Leave-one-out search: never return query ``i`` as a neighbour of
        itself. Requires the query set to be the reference set
        (``reference=None`` or of the same length, row ``i`` being query
        ``i``). Only the query's own index is excluded; duplicates of it are
        ordinary neighbours at distance 0.
    chunk_size : int, default=None
        Number of queries processed at once. ``None`` picks it so that one
        distance block stays near 256 MiB.
    block_size : int, default=None
        Number of references compared with a chunk at once. ``None`` uses
        65536 (capped at ``n_references``), or, when only ``chunk_size`` is
        given, the largest block keeping the distance block near 256 MiB.
    device : str or torch.device, default="cpu"
        Device on which distances are computed. Inputs are moved there;
        results always come back as NumPy arrays.

    Returns
    -------
    distances : ndarray of shape (n_queries, k), dtype float64
        Distance from each query to its neighbours, non-decreasing per row.
    indices : ndarray of shape (n_queries, k), dtype int64
        Row indices into ``reference`` (or into ``query`` when ``reference``
        is None) of the neighbours.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : General neighbour search; ties are
        not broken deterministically.

    Notes
    -----
    For each query :math:`q` the neighbours are the references sorted by the
    key :math:`(d(q, r_j), j)`, i.e. by distance and, among exactly equal
    distances, by increasing reference index :math:`j`. The result therefore
    does not depend on ``chunk_size``, ``block_size`` nor on how
    :func:`torch.topk` orders ties. Distances are computed in float64 whatever
    the input dtype (inputs are kept as given, so float32 keeps memory low):

    .. math::

        d_{\mathrm{euc}}(q, r) = \sqrt{\lVert q\rVert^2 - 2\, q^\top r
        + \lVert r\rVert^2}, \qquad
        d_{\cos}(q, r) = 1 - \frac{q^\top r}{\lVert q\rVert\,\lVert r\rVert}.

    Each block is first ranked with one float64 matrix product (the
    expansion above). Its rounding, bounded by about
    :math:`3 d\, \varepsilon\, (\lVert q\rVert^2 + \lVert r\rVert^2)`, can
    reorder near-ties and makes even identical references differ in the last
    bits, so it is only used to shortlist: every reference whose approximate
    value is within twice that bound of the k-th smallest one is kept. The
    shortlist's distances are then recomputed pair by pair from coordinate
    differences, :math:`\sqrt{\sum_i (q_i - r_i)^2}` and
    :math:`1 - \sum_i \hat q_i \hat r_i`, which gives duplicates
    bit-identical distances (exactly 0 to the query's own duplicates), and
    merged into the running top-k by a stable sort. The shortlist has about
    ``k`` entries per query plus the exact ties at the boundary; data made of
    a few distinct points repeated many times makes it, and the search,
    larger.

    References
    ----------
    .. [1] J. Johnson, M. Douze and H. Jégou, "Billion-scale similarity search
       with GPUs", IEEE Transactions on Big Data, 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.metrics import chunked_knn
    >>> X = np.array([[0.0], [1.0], [1.0], [3.0]])
    >>> distances, indices = chunked_knn(X, k=2, exclude_self=True)
    >>> indices
    array([[1, 2],
           [2, 0],
           [1, 0],
           [1, 2]])
    >>> distances[3]
    array([2., 2.])
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    k = _check_positive_int(k, "k", allow_none=False)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    block_size = _check_positive_int(block_size, "block_size")
    query = _as_2d_float(query, "query")
    if reference is None:
        reference = query
    else:
        reference = _as_2d_float(reference, "reference")
        if reference.shape[1] != query.shape[1]:
            raise ValueError(
                f"query has {query.shape[1]} features but reference has "
                f"{reference.shape[1]}; they must match."
            )
    n_queries, n_references = query.shape[0], reference.shape[0]
    self_index = None
    if exclude_self:
        if n_references != n_queries:
            raise ValueError(
                "exclude_self=True needs the query set to be the reference set, "
                f"got {n_queries} queries and {n_references} references."
            )
        self_index = torch.arange(n_queries)
    available = n_references - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(
            f"k={k} neighbours requested but only {available} reference points "
            "are available"
            + (" (excluding the query itself)." if exclude_self else ".")
        )
    distances, indices = _knn(
        query,
        reference,
        k,
        metric=metric,
        self_index=self_index,
        chunk_size=chunk_size,
        block_size=block_size,
        device=device,
    )
    return distances.numpy(), indices.numpy()
