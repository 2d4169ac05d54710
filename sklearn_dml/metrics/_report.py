"""Every retrieval, clustering and geometry metric of an embedding in one call."""

import numbers

import numpy as np

from ._clustering import ami_score, nmi_score
from ._geometry import alignment_loss, opis_loss, uniformity_loss
from ._retrieval import (
    _top_k_relevance,
    map_at_r_score,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    r_precision_score,
)

__all__ = ["retrieval_report"]


def _embed(embedder, X, name="X"):
    """``embedder.transform(X)``, or ``X`` itself when ``embedder`` is None."""
    if embedder is None:
        return X
    if not hasattr(embedder, "transform"):
        raise TypeError(
            f"The first argument must be a fitted embedder with a transform method "
            f"(or None when {name} already holds embeddings), got "
            f"{type(embedder).__name__}."
        )
    return embedder.transform(X)


def _check_ks(k, name="k"):
    """Sorted distinct positive integers from an int or an iterable of ints."""
    values = [k] if isinstance(k, numbers.Integral) else k
    try:
        values = list(values)
    except TypeError:
        raise ValueError(
            f"{name} must be a positive integer or a sequence of them, got {k!r}."
        ) from None
    if not values or any(
        isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
        for value in values
    ):
        raise ValueError(
            f"{name} must be a positive integer or a sequence of them, got {k!r}."
        )
    return sorted({int(value) for value in values})


def retrieval_report(
    embedder,
    X,
    y,
    *,
    reference_X=None,
    reference_y=None,
    k=(1, 5, 10),
    as_frame=False,
    metric="euclidean",
    random_state=0,
):
    """Every metric of :mod:`sklearn_dml.metrics` for one embedding of a dataset.

    Parameters
    ----------
    embedder : estimator or None
        A fitted embedder (anything with ``transform``, a pipeline ending in
        one included): ``X`` (and ``reference_X``) are embedded with its
        ``transform``. ``None`` when ``X`` already holds embeddings.
    X : array-like of shape (n_samples, n_features)
        Query samples (or embeddings).
    y : array-like of shape (n_samples,)
        Their labels.
    reference_X : array-like of shape (n_references, n_features), default=None
        Samples retrieved for the queries (a gallery). ``None`` evaluates
        leave-one-out retrieval inside ``X``.
    reference_y : array-like of shape (n_references,), default=None
        Labels of ``reference_X``; given together with it.
    k : int or sequence of int, default=(1, 5, 10)
        Depths of the precision and recall at k.
    as_frame : bool, default=False
        Return a one-row :class:`pandas.DataFrame` instead of a dict
        (requires pandas).
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance ranking the references and pairing points.
    random_state : int, RandomState instance or None, default=0
        Seed of the k-means runs of the clustering scores.

    Returns
    -------
    report : dict or pandas.DataFrame
        ``precision_at_{k}`` and ``recall_at_{k}`` for each ``k``, then
        ``r_precision``, ``map_at_r``, ``mean_average_precision``, ``mrr``,
        ``nmi`` and ``ami`` (higher is better), then ``opis_loss``,
        ``alignment_loss`` and ``uniformity_loss`` (lower is better), as
        floats.

    See Also
    --------
    get_scorer : One of these metrics as a scorer for model selection.

    Notes
    -----
    Retrieval scores and :func:`opis_loss` pair the queries with the
    references (leave-one-out without them); clustering scores,
    :func:`alignment_loss` and :func:`uniformity_loss` describe the query
    embeddings alone. The precision and recall at every ``k`` come from one
    search of the largest ``k`` neighbours: for a query with relevance
    :math:`\\mathrm{rel}(i)` of its :math:`i`-th neighbour,

    .. math::

        P@k = \\frac{1}{k} \\sum_{i \\le k} \\mathrm{rel}(i), \\qquad
        \\mathrm{Recall@}k = \\max_{i \\le k} \\mathrm{rel}(i).

    Each entry is documented with its function; classes that a metric
    cannot score (a single sample in leave-one-out mode) are skipped as
    there.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie and S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020.

    Examples
    --------
    >>> from sklearn_dml.metrics import retrieval_report
    >>> X = [[0.0], [3.0], [10.0], [13.0], [6.0]]
    >>> y = [0, 0, 1, 1, 1]
    >>> report = retrieval_report(None, X, y, k=(1, 2))
    >>> report["precision_at_1"], report["recall_at_2"], report["map_at_r"]
    (0.8, 1.0, 0.85)
    >>> sorted(report)[:4]
    ['alignment_loss', 'ami', 'map_at_r', 'mean_average_precision']
    """
    if not isinstance(as_frame, (bool, np.bool_)):
        raise ValueError(f"as_frame must be True or False, got {as_frame!r}.")
    ks = _check_ks(k)
    if (reference_X is None) != (reference_y is None):
        raise ValueError(
            "reference_X and reference_y must be given together (or both left "
            "to None for leave-one-out retrieval)."
        )
    if as_frame:
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "retrieval_report(as_frame=True) needs pandas; install it with "
                "`pip install pandas`, or use as_frame=False for a dict."
            ) from exc
    embeddings = _embed(embedder, X, "X")
    reference = None
    if reference_X is not None:
        reference = _embed(embedder, reference_X, "reference_X")
    pairing = dict(
        reference_embeddings=reference, reference_labels=reference_y, metric=metric
    )

    report = {}
    relevant = _top_k_relevance(
        embeddings, y, ks[-1], reference, reference_y, metric, None, "cpu"
    )
    for depth in ks:
        report[f"precision_at_{depth}"] = float(
            np.mean(relevant[:, :depth].mean(axis=1))
        )
    for depth in ks:
        report[f"recall_at_{depth}"] = float(np.mean(relevant[:, :depth].any(axis=1)))
    report["r_precision"] = r_precision_score(embeddings, y, **pairing)
    report["map_at_r"] = map_at_r_score(embeddings, y, **pairing)
    report["mean_average_precision"] = mean_average_precision_score(
        embeddings, y, **pairing
    )
    report["mrr"] = mean_reciprocal_rank_score(embeddings, y, **pairing)
    report["nmi"] = nmi_score(embeddings, y, random_state=random_state)
    report["ami"] = ami_score(embeddings, y, random_state=random_state)
    report["opis_loss"] = opis_loss(embeddings, y, **pairing)
    report["alignment_loss"] = alignment_loss(embeddings, y)
    report["uniformity_loss"] = uniformity_loss(embeddings)
    if as_frame:
        return pd.DataFrame([report])
    return report
