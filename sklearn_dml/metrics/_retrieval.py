"""Retrieval scores of an embedding.

Precision at k, recall at k, R-precision, MAP@R, mean average precision and
mean reciprocal rank. All rank, for each query, the reference points by
distance to it (exact chunked kNN, ties broken by reference index) and check
whether the retrieved points share the query's label. Higher is better.
"""

import numpy as np
import torch

from .._docstrings import fill_doc, register_doc
from ._knn import _METRICS, _as_2d_float, _check_positive_int, _knn, _Prepared

__all__ = [
    "map_at_r_score",
    "mean_average_precision_score",
    "mean_reciprocal_rank_score",
    "precision_at_k_score",
    "r_precision_score",
    "recall_at_k_score",
]

# At most this many (query, neighbour) pairs are materialised at once when the
# number of neighbours differs per query (R-precision, MAP@R).
_PAIR_BUDGET = 2**22
# First search depth of the scores that need the full ranking (mean average
# precision, mean reciprocal rank); it grows fourfold for unfinished queries.
_MIN_DEPTH = 16

register_doc(
    "retrieval_query_params",
    """
    embeddings : array-like of shape (n_samples, n_features)
        Embedded query points.
    labels : array-like of shape (n_samples,)
        Class of each query (integers or strings).
    """,
)

register_doc(
    "retrieval_reference_params",
    """
    reference_embeddings : array-like of shape (n_references, n_features), default=None
        Points retrieved for the queries. ``None`` evaluates leave-one-out
        retrieval inside ``embeddings``: every sample queries all the others.
    reference_labels : array-like of shape (n_references,), default=None
        Classes of ``reference_embeddings``; given together with them.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance used to rank the references, see :func:`chunked_knn`.
    chunk_size : int, default=None
        Number of queries searched at once, see :func:`chunked_knn`; it bounds
        memory and does not change the result.
    device : str or torch.device, default="cpu"
        Device on which distances are computed.
    """,
)

register_doc(
    "retrieval_notes",
    """
    Ranking is that of :func:`chunked_knn`: by distance, then by reference
    index among exactly equal distances, so the score is deterministic. For a
    query, :math:`R` is the number of references sharing its label (itself
    excluded in leave-one-out mode). Queries with :math:`R = 0` (a class of
    one sample in leave-one-out mode, or a label absent from the references)
    cannot be scored and are skipped; a ``ValueError`` is raised when every
    query is skipped.
    """,
)


def _check_labels(labels, n_samples, name, embeddings_name):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,), got an array with "
            f"{labels.ndim} dimension(s)."
        )
    if labels.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {labels.shape[0]} entries but {embeddings_name} has "
            f"{n_samples} rows; they must match."
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return labels


def _prepare(embeddings, labels, reference_embeddings, reference_labels, metric):
    """Validate inputs and return tensors, integer codes and R per query.

    Returns ``(query, reference, query_codes, reference_codes, n_relevant,
    self_index)`` where ``self_index`` is None in query-vs-reference mode and
    the identity in leave-one-out mode.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    query = _as_2d_float(embeddings, "embeddings")
    labels = _check_labels(labels, query.shape[0], "labels", "embeddings")
    if (reference_embeddings is None) != (reference_labels is None):
        raise ValueError(
            "reference_embeddings and reference_labels must be given together "
            "(or both left to None for leave-one-out retrieval)."
        )
    if reference_embeddings is None:
        if query.shape[0] < 2:
            raise ValueError(
                "Leave-one-out retrieval needs at least 2 samples, got "
                f"{query.shape[0]}."
            )
        classes, codes = np.unique(labels, return_inverse=True)
        codes = codes.ravel()
        n_relevant = np.bincount(codes, minlength=classes.size)[codes] - 1
        return query, query, codes, codes, n_relevant, np.arange(query.shape[0])

    reference = _as_2d_float(reference_embeddings, "reference_embeddings")
    if reference.shape[1] != query.shape[1]:
        raise ValueError(
            f"embeddings has {query.shape[1]} features but reference_embeddings "
            f"has {reference.shape[1]}; they must match."
        )
    reference_labels = _check_labels(
        reference_labels, reference.shape[0], "reference_labels", "reference_embeddings"
    )
    try:
        classes, codes = np.unique(
            np.concatenate([labels, reference_labels]), return_inverse=True
        )
    except TypeError as exc:
        raise ValueError(
            "labels and reference_labels must be of comparable types "
            "(all numbers or all strings)."
        ) from exc
    codes = codes.ravel()
    query_codes, reference_codes = codes[: labels.size], codes[labels.size :]
    n_relevant = np.bincount(reference_codes, minlength=classes.size)[query_codes]
    return query, reference, query_codes, reference_codes, n_relevant, None


def _scored_queries(n_relevant):
    scored = np.flatnonzero(n_relevant > 0)
    if scored.size == 0:
        raise ValueError(
            "No query has a relevant reference point: every class has a single "
            "sample (leave-one-out) or no query label occurs among the reference "
            "labels, so the retrieval score is undefined."
        )
    return scored


def _relevance(
    query,
    reference,
    query_codes,
    reference_codes,
    self_index,
    rows,
    k,
    metric,
    chunk_size,
    device,
):
    """Boolean relevance of the ``k`` nearest references of queries ``rows``.

    ``reference`` is a ``(tensor, prepared)`` pair: the working copy of the
    references is built once per score, not once per group of queries.
    """
    reference, prepared = reference
    _, neighbours = _knn(
        query[torch.from_numpy(rows)],
        reference,
        k,
        metric=metric,
        self_index=None if self_index is None else torch.from_numpy(self_index[rows]),
        chunk_size=chunk_size,
        device=device,
        prepared=prepared,
    )
    return reference_codes[neighbours.numpy()] == query_codes[rows, None]


def _per_query_scores(
    embeddings,
    labels,
    reference_embeddings,
    reference_labels,
    metric,
    chunk_size,
    device,
    score_rows,
):
    """Score every query whose neighbours to depth R are needed.

    Queries are sorted by R and processed in groups whose size times largest R
    stays within ``_PAIR_BUDGET``, so the number of neighbours fetched adapts
    to each group instead of being the largest R overall.
    ``score_rows(relevant, n_relevant)`` maps a group's relevance matrix
    ``(n_group, max R of the group)`` to one score per query.
    """
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query, reference, query_codes, reference_codes, n_relevant, self_index = _prepare(
        embeddings, labels, reference_embeddings, reference_labels, metric
    )
    reference = (reference, _Prepared(reference.to(device), metric))
    scored = _scored_queries(n_relevant)
    scored = scored[np.argsort(n_relevant[scored], kind="stable")]
    depth = n_relevant[scored]
    scores = np.empty(scored.size, dtype=np.float64)
    start = 0
    while start < scored.size:
        stop = min(scored.size, start + max(1, _PAIR_BUDGET // int(depth[start])))
        k = int(depth[stop - 1])
        stop = min(stop, start + max(1, _PAIR_BUDGET // k))
        rows = scored[start:stop]
        relevant = _relevance(
            query,
            reference,
            query_codes,
            reference_codes,
            self_index,
            rows,
            k,
            metric,
            chunk_size,
            device,
        )
        scores[start:stop] = score_rows(relevant, depth[start:stop])
        start = stop
    return float(np.mean(scores))


def _top_k_relevance(
    embeddings,
    labels,
    k,
    reference_embeddings,
    reference_labels,
    metric,
    chunk_size,
    device,
):
    """Relevance ``(n_scored, k)`` of the ``k`` nearest references of each scored query."""
    k = _check_positive_int(k, "k", allow_none=False)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query, reference, query_codes, reference_codes, n_relevant, self_index = _prepare(
        embeddings, labels, reference_embeddings, reference_labels, metric
    )
    reference = (reference, _Prepared(reference.to(device), metric))
    available = reference[0].shape[0] - (0 if self_index is None else 1)
    if k > available:
        raise ValueError(
            f"k={k} neighbours requested but only {available} reference points "
            "are available to each query."
        )
    rows = _scored_queries(n_relevant)
    return _relevance(
        query,
        reference,
        query_codes,
        reference_codes,
        self_index,
        rows,
        k,
        metric,
        chunk_size,
        device,
    )


def _full_ranking_scores(
    embeddings,
    labels,
    reference_embeddings,
    reference_labels,
    metric,
    chunk_size,
    device,
    first_only,
):
    """Per-query scores needing the ranks of the first (or of every) relevant reference.

    Each query is searched to a depth (``2 R`` for every relevant reference,
    ``_MIN_DEPTH`` for the first one); queries whose relevant references are
    not all inside are searched again four times deeper, up to the full
    ranking. Groups of queries keep ``rows x depth`` within ``_PAIR_BUDGET``,
    so memory never grows with ``n_queries x n_references``. Returns, per
    scored query, the average precision over all relevant references, or the
    reciprocal rank of the first one when ``first_only``.
    """
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    query, reference, query_codes, reference_codes, n_relevant, self_index = _prepare(
        embeddings, labels, reference_embeddings, reference_labels, metric
    )
    reference = (reference, _Prepared(reference.to(device), metric))
    available = reference[0].shape[0] - (0 if self_index is None else 1)
    scored = _scored_queries(n_relevant)
    wanted = np.ones(scored.size, dtype=np.int64) if first_only else n_relevant[scored]
    depth = np.minimum(np.maximum(2 * wanted, _MIN_DEPTH), available)
    scores = np.empty(scored.size, dtype=np.float64)
    pending = np.arange(scored.size)
    while pending.size:
        pending = pending[np.argsort(depth[pending], kind="stable")]
        unfinished = []
        start = 0
        while start < pending.size:
            stop = min(
                pending.size, start + max(1, _PAIR_BUDGET // int(depth[pending[start]]))
            )
            k = int(depth[pending[stop - 1]])
            stop = min(stop, start + max(1, _PAIR_BUDGET // k))
            group = pending[start:stop]
            relevant = _relevance(
                query,
                reference,
                query_codes,
                reference_codes,
                self_index,
                scored[group],
                k,
                metric,
                chunk_size,
                device,
            )
            done = relevant.sum(axis=1) >= wanted[group]
            found = relevant[done]
            ranks = np.arange(1, k + 1)
            if first_only:
                scores[group[done]] = 1.0 / (np.argmax(found, axis=1) + 1)
            else:
                precision = np.cumsum(found, axis=1) / ranks
                scores[group[done]] = (
                    np.where(found, precision, 0.0).sum(axis=1) / wanted[group[done]]
                )
            # At full depth every relevant reference is found, so this ends.
            depth[group[~done]] = min(4 * k, available)
            unfinished.append(group[~done])
            start = stop
        pending = np.concatenate(unfinished)
    return scores


@fill_doc
def precision_at_k_score(
    embeddings,
    labels,
    *,
    k=1,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """Precision at k: fraction of the k nearest neighbours of the query's class.

    Parameters
    ----------
    {retrieval_query_params}
    k : int, default=1
        Number of retrieved neighbours per query. At most the number of
        reference points (minus one in leave-one-out mode).
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Mean over scored queries of the precision at ``k``, in [0, 1].

    See Also
    --------
    r_precision_score : Precision at a per-query depth R.
    map_at_r_score : Rank-aware variant of the R-precision.

    Notes
    -----
    For a query with neighbours :math:`n_1, \\dots, n_k` and
    :math:`\\mathrm{rel}(i) = 1` when :math:`n_i` has the query's label,

    .. math::

        P@k = \\frac{1}{k} \\sum_{i=1}^{k} \\mathrm{rel}(i).

    With ``k=1`` this is the leave-one-out accuracy of a 1-NN classifier
    (ties broken by index).

    {retrieval_notes}

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import precision_at_k_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> precision_at_k_score(X, y, k=1)
    0.8

    Sample 1 is at distance 3 from samples 0 and 4; the tie goes to the smaller
    index, 0, which shares its label.
    """
    relevant = _top_k_relevance(
        embeddings,
        labels,
        k,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
    )
    return float(np.mean(relevant.sum(axis=1) / relevant.shape[1]))


def _r_precision_rows(relevant, n_relevant):
    within = np.arange(1, relevant.shape[1] + 1) <= n_relevant[:, None]
    return (relevant & within).sum(axis=1) / n_relevant


def _average_precision_rows(relevant, n_relevant):
    ranks = np.arange(1, relevant.shape[1] + 1)
    within = ranks <= n_relevant[:, None]
    precision = np.cumsum(relevant, axis=1) / ranks
    return np.where(relevant & within, precision, 0.0).sum(axis=1) / n_relevant


@fill_doc
def r_precision_score(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """R-precision: precision at depth R, the size of the query's class.

    Parameters
    ----------
    {retrieval_query_params}
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Mean over scored queries of the R-precision, in [0, 1].

    See Also
    --------
    map_at_r_score : Also rewards relevant neighbours ranked first.
    precision_at_k_score : Precision at a fixed depth.

    Notes
    -----
    With :math:`R` relevant references for a query,

    .. math::

        \\mathrm{R\\text{-}precision} = \\frac{1}{R}
        \\sum_{i=1}^{R} \\mathrm{rel}(i).

    {retrieval_notes}

    Queries are grouped by :math:`R` so that each group only fetches its own
    largest :math:`R` neighbours; a very large class still needs that many
    neighbours per query of it.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import r_precision_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> round(r_precision_score(X, y), 4)
    0.9
    """
    return _per_query_scores(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
        _r_precision_rows,
    )


@fill_doc
def map_at_r_score(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """Mean average precision at R (MAP@R) of Musgrave et al.

    Parameters
    ----------
    {retrieval_query_params}
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Mean over scored queries of the average precision at R, in [0, 1].

    See Also
    --------
    r_precision_score : The rank-unaware counterpart.
    precision_at_k_score : Precision at a fixed depth.

    Notes
    -----
    With :math:`R` relevant references for a query, :math:`\\mathrm{rel}(i)`
    the relevance of its :math:`i`-th neighbour and :math:`P(i)` the precision
    of its first :math:`i` neighbours,

    .. math::

        \\mathrm{MAP@R} = \\frac{1}{|Q|} \\sum_{q \\in Q} \\frac{1}{R_q}
        \\sum_{i=1}^{R_q} P_q(i)\\, \\mathrm{rel}_q(i).

    It never exceeds the R-precision and equals it when the relevant
    neighbours among the first :math:`R` are ranked before the others, so it
    rewards a well-ordered neighbourhood.

    {retrieval_notes}

    Queries are grouped by :math:`R` so that each group only fetches its own
    largest :math:`R` neighbours; a very large class still needs that many
    neighbours per query of it.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import map_at_r_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> round(map_at_r_score(X, y), 4)
    0.85
    """
    return _per_query_scores(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
        _average_precision_rows,
    )


@fill_doc
def recall_at_k_score(
    embeddings,
    labels,
    *,
    k=1,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """Recall at k: fraction of queries with a same-class item among the k nearest.

    This is the "Recall@k" of the deep metric learning literature (a hit
    rate), not the information-retrieval recall that divides by the number
    of relevant items.

    Parameters
    ----------
    {retrieval_query_params}
    k : int, default=1
        Number of retrieved neighbours per query. At most the number of
        reference points (minus one in leave-one-out mode).
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Fraction of scored queries with at least one relevant neighbour among
        their ``k`` nearest, in [0, 1].

    See Also
    --------
    precision_at_k_score : Fraction of the k neighbours that are relevant.
    mean_reciprocal_rank_score : Where the first relevant neighbour sits.

    Notes
    -----
    With :math:`\\mathrm{rel}_q(i) = 1` when the :math:`i`-th neighbour of
    query :math:`q` has its label,

    .. math::

        \\mathrm{Recall@}k = \\frac{1}{|Q|} \\sum_{q \\in Q}
        \\max_{1 \\le i \\le k} \\mathrm{rel}_q(i).

    It equals the precision at 1 for ``k=1`` and never decreases with ``k``.

    {retrieval_notes}

    References
    ----------
    .. [1] H. Jégou, M. Douze and C. Schmid, "Product Quantization for
       Nearest Neighbor Search", IEEE TPAMI, 2011.
    .. [2] H. O. Song, Y. Xiang, S. Jegelka and S. Savarese, "Deep Metric
       Learning via Lifted Structured Feature Embedding", CVPR 2016.

    Examples
    --------
    >>> from sklearn_dml.metrics import recall_at_k_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> recall_at_k_score(X, y, k=1), recall_at_k_score(X, y, k=2)
    (0.8, 1.0)
    """
    relevant = _top_k_relevance(
        embeddings,
        labels,
        k,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
    )
    return float(np.mean(relevant.any(axis=1)))


@fill_doc
def mean_average_precision_score(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """Mean average precision over the full ranking (every relevant reference).

    Unlike :func:`map_at_r_score`, the average precision is not truncated at
    depth R: a relevant reference ranked last still counts, by the precision
    at its rank.

    Parameters
    ----------
    {retrieval_query_params}
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Mean over scored queries of the average precision, in (0, 1].

    See Also
    --------
    map_at_r_score : The variant truncated at depth R.
    mean_reciprocal_rank_score : Only the first relevant reference counts.

    Notes
    -----
    With :math:`R_q` relevant references for query :math:`q`, ranked at
    positions :math:`r_{q,1} < \\dots < r_{q,R_q}` of the full ranking,

    .. math::

        \\mathrm{mAP} = \\frac{1}{|Q|} \\sum_{q \\in Q} \\frac{1}{R_q}
        \\sum_{m=1}^{R_q} \\frac{m}{r_{q,m}}.

    {retrieval_notes}

    Each query is searched to depth :math:`2R` first, and four times deeper
    until all its relevant references are found, in groups of queries whose
    size times depth stays bounded (about four million pairs). A good
    embedding needs a depth near :math:`R`; a poor one may need the full
    ranking, i.e. ``n_references`` neighbours for those queries (memory stays
    bounded, time grows).

    References
    ----------
    .. [1] C. D. Manning, P. Raghavan and H. Schütze, "Introduction to
       Information Retrieval", Cambridge University Press, 2008, section 8.4.

    Examples
    --------
    >>> from sklearn_dml.metrics import mean_average_precision_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> round(mean_average_precision_score(X, y), 4)
    0.9

    Sample 4 ranks its two relevant references 2nd and 4th: average
    precision :math:`(1/2 + 2/4) / 2 = 0.5`; every other query is perfect.
    """
    scores = _full_ranking_scores(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
        first_only=False,
    )
    return float(np.mean(scores))


@fill_doc
def mean_reciprocal_rank_score(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    metric="euclidean",
    chunk_size=None,
    device="cpu",
):
    """Mean reciprocal rank of the first reference sharing the query's label.

    Parameters
    ----------
    {retrieval_query_params}
    {retrieval_reference_params}

    Returns
    -------
    score : float
        Mean over scored queries of one over the rank of their first relevant
        reference, in (0, 1].

    See Also
    --------
    recall_at_k_score : Whether the first relevant reference is in the top k.
    mean_average_precision_score : Every relevant reference counts.

    Notes
    -----
    With :math:`r_q` the rank (from 1) of the nearest reference of query
    :math:`q` having its label,

    .. math::

        \\mathrm{MRR} = \\frac{1}{|Q|} \\sum_{q \\in Q} \\frac{1}{r_q}.

    {retrieval_notes}

    Queries are searched to depth 16 first, and four times deeper while their
    first relevant reference is not found.

    References
    ----------
    .. [1] E. M. Voorhees, "The TREC-8 Question Answering Track Report",
       TREC 1999.

    Examples
    --------
    >>> from sklearn_dml.metrics import mean_reciprocal_rank_score
    >>> X = [[0], [3], [10], [13], [6]]
    >>> y = [0, 0, 1, 1, 1]
    >>> round(mean_reciprocal_rank_score(X, y), 4)
    0.9
    """
    scores = _full_ranking_scores(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        metric,
        chunk_size,
        device,
        first_only=True,
    )
    return float(np.mean(scores))
