"""Exact, memory-bounded k-nearest-neighbour search in plain torch.

Every retrieval metric of :mod:`sklearn_dml.metrics` asks the same question:
which reference points are closest to each query? This module answers it once,
exactly and deterministically, without ever holding an ``n_queries x
n_references`` matrix: queries are processed in chunks, references in blocks,
and a running top-k per query is merged block after block.
"""

import math
import numbers

import numpy as np
import torch

__all__ = ["chunked_knn"]

_METRICS = ("euclidean", "cosine")

# Number of entries in one (query chunk x reference block) block of the first
# pass: 2**25 float32 entries is 128 MiB.
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


# Unit roundoff of float64, the precision of the exact second pass.
_U64 = 2.0**-53
# A float32 working copy is scaled by a power of two when the largest
# coordinate falls outside [2**-40, 2**40], so squares neither overflow nor
# underflow wholesale.
_SAFE_EXPONENT = 40
# Rows converted at once while preparing the working copy (about 8 MiB).
_PREPARE_ELEMENTS = 2**20


def _ieee_float32_matmul(device):
    """Whether float32 matrix products on ``device`` round like IEEE float32.

    TF32 or bfloat16 products (``torch.set_float32_matmul_precision("high")``
    and the backend switches) carry far larger errors than the bound of the
    first pass assumes; the first pass then runs in float64 instead.
    """
    if torch.get_float32_matmul_precision() != "highest":
        return False
    if device.type == "cuda":
        backend = torch.backends.cuda.matmul
        if getattr(backend, "allow_tf32", False):
            return False
    else:
        backend = getattr(torch.backends.mkldnn, "matmul", None)
    return getattr(backend, "fp32_precision", "ieee") in ("ieee", "none")


def _row_steps(n_rows, n_features):
    step = max(1, _PREPARE_ELEMENTS // n_features)
    return ((start, min(start + step, n_rows)) for start in range(0, n_rows, step))


class _Prepared:
    """References in the working precision of the first pass, and their norms.

    ``work`` holds the references the matrix product sees: for
    ``"euclidean"`` shifted by ``shift`` and multiplied by ``scale`` (a power
    of two), for ``"cosine"`` as they are, or normalised when their norms are
    too large or too small for the working dtype. Only when that changes
    something, or the dtype differs, is ``work`` a copy of the references
    (built a few rows at a time, so no float64 copy ever exists).
    """

    def __init__(self, reference, metric, dtype):
        n_rows, n_features = reference.shape
        device = reference.device
        self.metric, self.dtype = metric, dtype
        sq_norms = torch.empty(n_rows, dtype=torch.float64, device=device)
        total = torch.zeros(n_features, dtype=torch.float64, device=device)
        for start, stop in _row_steps(n_rows, n_features):
            rows = reference[start:stop].to(torch.float64)
            sq_norms[start:stop] = rows.square().sum(dim=1)
            total += rows.sum(dim=0)
        self.shift, self.scale, self.column = None, 1.0, None
        if metric == "euclidean":
            mean = total / n_rows
            mean_sq = float(mean.square().sum())
            # Centring pays when the mean dominates the spread around it:
            # the rounding bound grows with the squared norms.
            if mean_sq > float(sq_norms.mean()) - mean_sq:
                self.shift = mean
            largest = self._largest(reference)
            if largest > 0 and abs(math.log2(largest)) > _SAFE_EXPONENT:
                self.scale = 2.0 ** -math.floor(math.log2(largest))
            transform = self.shift is not None or self.scale != 1.0
        else:
            # Reciprocal norms in float64; a zero vector keeps a zero scale.
            norms = sq_norms.sqrt()
            self.reciprocal = torch.where(norms > 0, norms.reciprocal(), norms)
            positive = norms[norms > 0]
            transform = positive.numel() > 0 and any(
                abs(math.log2(float(value))) > _SAFE_EXPONENT
                for value in (positive.max(), positive.min())
            )
            if not transform:
                self.column = self.reciprocal.to(dtype)
        if transform or reference.dtype != dtype:
            work = torch.empty((n_rows, n_features), dtype=dtype, device=device)
            for start, stop in _row_steps(n_rows, n_features):
                work[start:stop] = self.transform(
                    reference[start:stop],
                    self.reciprocal[start:stop, None]
                    if metric == "cosine" and transform
                    else None,
                )
        else:
            work = reference
        self.work = work
        if metric == "euclidean":
            if work is reference and dtype == torch.float64:
                self.work_sq = sq_norms
            else:
                self.work_sq = torch.empty_like(sq_norms)
                for start, stop in _row_steps(n_rows, n_features):
                    rows = work[start:stop].to(torch.float64)
                    self.work_sq[start:stop] = rows.square().sum(dim=1)
            self.column = self.work_sq.to(dtype)
            self.largest_norm = float(self.work_sq.max()) ** 0.5

    def _largest(self, reference):
        largest = 0.0
        for start, stop in _row_steps(*reference.shape):
            rows = reference[start:stop].to(torch.float64)
            if self.shift is not None:
                rows = rows - self.shift
            largest = max(largest, float(rows.abs().max()))
        return largest

    def transform(self, rows, reciprocal=None):
        """Map float rows (queries or references) to the working dtype."""
        rows = rows.to(torch.float64)
        if self.metric == "euclidean":
            if self.shift is not None:
                rows = rows - self.shift
            if self.scale != 1.0:
                rows = rows * self.scale
        elif reciprocal is not None:
            rows = rows * reciprocal
        return rows.to(self.dtype)


def _unit_rows(rows):
    """Rows divided by their float64 norm (zero rows stay zero)."""
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return rows * torch.where(norms > 0, norms.reciprocal(), norms)


def _approximate_block(query_work, query_sq, prepared, start, stop):
    """First-pass values of a query chunk against references ``start:stop``.

    Returns an ``(n_queries, stop - start)`` tensor in the working dtype:
    squared distances of the working points minus the query's squared norm
    for ``"euclidean"``, cosine distances for ``"cosine"``.
    """
    block = prepared.work[start:stop]
    if prepared.metric == "euclidean":
        dist = torch.addmm(
            prepared.column[start:stop].unsqueeze(0), query_work, block.T, alpha=-2.0
        )
        # The query's own squared norm is left out: it does not change the
        # order within a row and the threshold adds it back in float64.
        return dist
    dist = torch.mm(query_work, block.T)
    if prepared.column is not None:
        dist.mul_(prepared.column[start:stop].unsqueeze(0))
    return dist.neg_().add_(1.0)


def _threshold_function(query_sq, prepared, n_features):
    """Map the ``k``-th smallest first-pass value of each row to a safe cut.

    Every reference among the ``k`` nearest by the exact (float64) distance
    has a first-pass value at most the returned cut; see the Notes of
    :func:`chunked_knn` for the derivation. The bound holds for every
    reference, so cuts of successive blocks are comparable.
    """
    finfo = torch.finfo(prepared.dtype)
    unit = finfo.eps / 2
    tiny = finfo.tiny * finfo.eps  # the smallest subnormal number
    terms = n_features + 16
    gamma = terms * unit / (1.0 - terms * unit)
    # Relative error of the exact pass (float64 differences or products).
    exact = 2.0 * terms * _U64
    if prepared.metric == "cosine":
        margin = 1.1 * gamma + 8.0 * terms * tiny + exact

        def threshold(kth):
            return (kth + 2.0 * margin) * (1.0 + 64.0 * _U64) + tiny

        return threshold

    reach = query_sq.sqrt() + prepared.largest_norm
    # Rounding of the product expansion, and of the coordinates when they
    # were shifted, scaled or cast to the working dtype.
    product = 1.01 * gamma * reach.square() + 4.0 * terms * tiny
    coordinates = 1.05 * unit * reach + 2.0 * math.sqrt(n_features) * tiny

    def threshold(kth):
        # ``kth`` lacks the query's squared norm (see _approximate_block).
        full = kth + query_sq
        largest = full.add(product).clamp_(min=0.0).sqrt_().add_(coordinates)
        largest = largest.mul_(1.0 + 3.0 * exact).add_(coordinates)
        cut = largest.square_().add_(product).mul_(1.0 + 64.0 * _U64)
        # Rounding of the float64 additions and subtraction of the norm.
        slack = (query_sq + kth.abs() + cut).mul_(8.0 * _U64)
        return cut.sub_(query_sq).add_(slack)

    return threshold


def _round_up(cut, dtype):
    """``cut`` in ``dtype``, never below its float64 value."""
    low = cut.to(dtype)
    return torch.where(
        low.to(torch.float64) < cut,
        torch.nextafter(low, torch.full_like(low, math.inf)),
        low,
    )


def _exact_pairs(query, candidates, reference, reciprocal, metric):
    """Distances from each query row to its candidate references, pair by pair.

    Computed in float64 from coordinate differences (no cancellation: a
    duplicate is at distance exactly 0) with the same reduction for every
    pair, so identical points get bit-identical distances wherever they sit
    in the data. Rows are processed in steps that keep the gathered
    neighbours near 64 MiB.
    """
    n_rows, n_candidates = candidates.shape
    n_features = reference.shape[1]
    step = max(1, 2**23 // max(1, n_candidates * n_features))
    parts = []
    for start in range(0, n_rows, step):
        ind = candidates[start : start + step]
        neighbours = reference.index_select(0, ind.reshape(-1))
        neighbours = neighbours.view(*ind.shape, n_features).to(torch.float64)
        q = query[start : start + step].unsqueeze(1)
        if metric == "euclidean":
            parts.append(neighbours.sub_(q).square_().sum(dim=2).sqrt_())
        else:
            neighbours.mul_(reciprocal[ind].unsqueeze(2)).mul_(q)
            parts.append(neighbours.sum(dim=2).neg_().add_(1.0).clamp_(0.0, 2.0))
    return torch.cat(parts)


def _survivors(dist, cut, limit):
    """Entries of each row at most ``cut``, packed left and padded.

    Returns ``(values, columns)`` of shape ``(n_rows, width)`` with padding
    value ``inf`` and column ``-1``, or None when a row has more than
    ``limit`` survivors (the caller then uses :func:`torch.topk`).
    """
    mask = dist <= _round_up(cut, dist.dtype).unsqueeze(1)
    counts = mask.sum(dim=1)
    width = int(counts.max())
    if width > limit:
        return None
    rows, cols = torch.nonzero(mask, as_tuple=True)
    offsets = torch.cumsum(counts, dim=0) - counts
    position = torch.arange(rows.numel(), device=dist.device) - offsets[rows]
    shape = (dist.shape[0], width)
    values = torch.full(shape, torch.inf, dtype=dist.dtype, device=dist.device)
    values[rows, position] = dist[rows, cols]
    columns = torch.full(shape, -1, dtype=torch.int64, device=dist.device)
    columns[rows, position] = cols
    return values, columns


def _merge(best_values, best_cols, values, cols, k, threshold):
    """Merge a block's candidates into the running shortlist of each row.

    Keeps, in increasing first-pass value, at least every entry at most the
    cut derived from the ``k``-th smallest value; returns the shortlist and
    the cut.
    """
    values, order = torch.sort(torch.cat([best_values, values], dim=1), dim=1)
    cols = torch.gather(torch.cat([best_cols, cols], dim=1), 1, order)
    if values.shape[1] >= k:
        kth = values[:, k - 1].to(torch.float64)
    else:
        kth = torch.full_like(values[:, 0], torch.inf, dtype=torch.float64)
    cut = threshold(kth)
    below = values <= _round_up(cut, values.dtype).unsqueeze(1)
    n_keep = max(1, int(below.sum(dim=1).max()))
    return values[:, :n_keep], cols[:, :n_keep], cut


def _scan_block(dist, offset, best_values, best_cols, cut, k, threshold):
    """Fold one block of first-pass values into the running shortlist.

    Rows whose running cut already excludes most of the block keep only the
    entries under it; otherwise the smallest ``k + extra`` entries are taken
    with :func:`torch.topk`, ``extra`` growing until every entry under the
    new cut is among them, whatever order :func:`torch.topk` gives to ties.
    """
    n_rows, width = dist.shape
    extra = max(8, k // 4)
    limit = 2 * (k + extra)
    if width <= limit:
        cols = torch.arange(offset, offset + width, device=dist.device)
        return _merge(
            best_values, best_cols, dist, cols.expand(n_rows, width), k, threshold
        )
    found = _survivors(dist, cut, limit)
    if found is not None:
        values, cols = found
        cols = torch.where(cols >= 0, cols + offset, cols)
        return _merge(best_values, best_cols, values, cols, k, threshold)
    while True:
        n_take = k + extra
        if n_take >= width:
            cols = torch.arange(offset, offset + width, device=dist.device)
            return _merge(
                best_values, best_cols, dist, cols.expand(n_rows, width), k, threshold
            )
        values, cols = torch.topk(dist, n_take, dim=1, largest=False, sorted=False)
        merged = _merge(best_values, best_cols, values, cols + offset, k, threshold)
        if bool((values.amax(dim=1).to(torch.float64) > merged[2]).all()):
            return merged
        extra *= 4


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
    n_queries, n_features = query.shape
    n_references = reference.shape[0]
    if block_size is None:
        if chunk_size is None:
            block_size = min(n_references, _DEFAULT_BLOCK)
        else:
            block_size = max(1, _BLOCK_BUDGET // chunk_size)
    block_size = min(block_size, n_references)
    if chunk_size is None:
        chunk_size = max(1, _BLOCK_BUDGET // (block_size + 2 * k))

    dtype = torch.float32 if _ieee_float32_matmul(device) else torch.float64
    reference = reference.to(device)
    prepared = _Prepared(reference, metric, dtype)
    reciprocal = prepared.reciprocal if metric == "cosine" else None
    if self_index is not None:
        self_index = self_index.to(device)

    out_dist = torch.empty((n_queries, k), dtype=torch.float64)
    out_ind = torch.empty((n_queries, k), dtype=torch.int64)
    for q_start in range(0, n_queries, chunk_size):
        q_stop = min(q_start + chunk_size, n_queries)
        q = query[q_start:q_stop].to(device=device, dtype=torch.float64)
        if metric == "cosine":
            q = _unit_rows(q)
        q_work = prepared.transform(q)
        q_sq = q_work.to(torch.float64).square().sum(dim=1)
        threshold = _threshold_function(q_sq, prepared, n_features)
        own = None if self_index is None else self_index[q_start:q_stop]
        rows = q_stop - q_start
        best_values = torch.empty((rows, 0), dtype=dtype, device=device)
        best_cols = torch.empty((rows, 0), dtype=torch.int64, device=device)
        cut = torch.full((rows,), torch.inf, dtype=torch.float64, device=device)
        for r_start in range(0, n_references, block_size):
            r_stop = min(r_start + block_size, n_references)
            dist = _approximate_block(q_work, q_sq, prepared, r_start, r_stop)
            if own is not None:
                local = own - r_start
                inside = torch.nonzero((local >= 0) & (local < r_stop - r_start))
                inside = inside.squeeze(1)
                dist[inside, local[inside]] = torch.inf
            best_values, best_cols, cut = _scan_block(
                dist, r_start, best_values, best_cols, cut, k, threshold
            )
            del dist
        # The shortlist holds every reference that can be among the exact k
        # nearest: recompute its distances exactly and order them by
        # (distance, index), a stable sort on the distance of the entries
        # sorted by index.
        cols = torch.sort(best_cols, dim=1).values
        exact = _exact_pairs(q, cols.clamp(min=0), reference, reciprocal, metric)
        exact.masked_fill_(cols < 0, torch.inf)
        if own is not None:
            exact.masked_fill_(cols == own.unsqueeze(1), torch.inf)
        exact, order = torch.sort(exact, dim=1, stable=True)
        out_dist[q_start:q_stop] = exact[:, :k].cpu()
        out_ind[q_start:q_stop] = torch.gather(cols, 1, order[:, :k]).cpu()
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
