"""The inter- and intra-class nearest neighbours (ICNN) score."""

import numpy as np
import torch

from ..losses._prototype import icnn_terms
from ._knn import _as_2d_float, _check_positive_int, chunked_knn
from ._retrieval import _check_labels

__all__ = ["icnn_score"]

_METRICS = ("euclidean", "cosine")


def icnn_score(
    embeddings, labels, *, n_neighbors=4, metric="euclidean", chunk_size=None
):
    """Inter- and intra-class nearest neighbours (ICNN) score; higher is better.

    Scores how well each point's nearest neighbours separate the classes:
    the share of neighbours of the point's own class, how close those are
    compared with the nearest point of another class, and how far the
    neighbours of other classes are. 1 is perfect separation.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points.
    labels : array-like of shape (n_samples,)
        Class of each point (integers or strings).
    n_neighbors : int, default=4
        Number :math:`k` of nearest neighbours scored per point (the
        authors' default); at most ``n_samples - 1`` are used.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance between points (``"cosine"`` is one minus the cosine
        similarity).
    chunk_size : int, default=None
        Queries searched at once by :func:`chunked_knn`; bounds memory, does
        not change the result.

    Returns
    -------
    score : float
        The ICNN score, in [0, 1].

    See Also
    --------
    sklearn_dml.losses.ICNNLoss : Minus the log of this score on a batch,
        the training loss.
    precision_at_k_score : The share of same-class neighbours alone.

    Notes
    -----
    The score is the one of :class:`~sklearn_dml.losses.ICNNLoss` (see its
    Notes for the formula), computed on the whole set: each point's
    :math:`k + 1` nearest neighbours are found, itself excluded, by the
    exact chunked search of :func:`chunked_knn` (ties broken by index), so
    memory grows with ``n_samples x k``, never with ``n_samples ** 2``.

    References
    ----------
    .. [1] Mendez-Ruiz, M. et al. "SuSana Distancia is all you need:
       Enforcing class separability in metric learning via two novel
       distance-based loss functions for few-shot image classification",
       2023, arXiv:2305.09062.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.metrics import icnn_score
    >>> X = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 0.0], [5.0, 0.1]])
    >>> round(icnn_score(X, [0, 0, 1, 1], n_neighbors=1), 3)
    0.995
    >>> icnn_score(X, [0, 1, 0, 1], n_neighbors=1) < 0.5
    True
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    points = _as_2d_float(embeddings, "embeddings")
    labels = _check_labels(labels, points.shape[0], "labels", "embeddings")
    k = _check_positive_int(n_neighbors, "n_neighbors", allow_none=False)
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    n = points.shape[0]
    if n < 2:
        raise ValueError(f"icnn_score needs at least 2 samples, got {n}.")
    k = min(k, n - 1)
    m = min(k + 1, n - 1)
    distances, indices = chunked_knn(
        points, m, metric=metric, exclude_self=True, chunk_size=chunk_size
    )
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    same = codes[indices] == codes[:, None]
    score = icnn_terms(torch.from_numpy(distances), torch.from_numpy(same), k)
    return float(score)
