"""Clustering quality of an embedding: k-means clusters against the labels.

The embedding is clustered by :class:`~sklearn.cluster.KMeans` with as many
clusters as there are classes, and the clusters are compared with the labels
by (adjusted) mutual information. Higher is better.
"""

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_mutual_info_score,
    normalized_mutual_info_score,
)

from .._docstrings import fill_doc, register_doc
from ._knn import _as_2d_float, _check_positive_int
from ._retrieval import _check_labels

__all__ = ["ami_score", "nmi_score"]

_AVERAGE_METHODS = ("min", "geometric", "arithmetic", "max")

register_doc(
    "clustering_params",
    """
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points.
    labels : array-like of shape (n_samples,)
        Class of each point (integers or strings).
    n_init : int, default=10
        Number of k-means runs with different centroid seeds; the run with
        the lowest inertia is kept.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means initialisation. Pass an int for a reproducible
        score.
    average_method : {"min", "geometric", "arithmetic", "max"}, \
default="arithmetic"
        How the two entropies are averaged in the normaliser, see
        :func:`sklearn.metrics.normalized_mutual_info_score`.
    """,
)


def _cluster(embeddings, labels, n_init, random_state, average_method):
    """Validate inputs, run k-means and return ``(labels, cluster ids)``."""
    if average_method not in _AVERAGE_METHODS:
        raise ValueError(
            f"average_method must be one of {_AVERAGE_METHODS}, got {average_method!r}."
        )
    n_init = _check_positive_int(n_init, "n_init", allow_none=False)
    points = _as_2d_float(embeddings, "embeddings").numpy()
    labels = _check_labels(labels, points.shape[0], "labels", "embeddings")
    n_classes = np.unique(labels).size
    if n_classes < 2:
        raise ValueError(
            "Clustering scores need at least 2 classes in labels, got "
            f"{n_classes}: with one class every partition scores the same."
        )
    kmeans = KMeans(n_clusters=n_classes, n_init=n_init, random_state=random_state)
    return labels, kmeans.fit_predict(np.asarray(points, dtype=np.float64))


@fill_doc
def nmi_score(
    embeddings,
    labels,
    *,
    n_init=10,
    random_state=None,
    average_method="arithmetic",
):
    """Normalised mutual information between k-means clusters and the labels.

    Parameters
    ----------
    {clustering_params}

    Returns
    -------
    score : float
        NMI in [0, 1]; 1 when the clusters are exactly the classes.

    See Also
    --------
    ami_score : The chance-adjusted variant.

    Notes
    -----
    With :math:`C` the k-means partition of the embeddings into as many
    clusters as classes, :math:`Y` the classes, :math:`I` the mutual
    information and :math:`H` the entropy,

    .. math::

        \\mathrm{NMI}(Y, C) = \\frac{I(Y; C)}{\\operatorname{mean}(H(Y), H(C))}.

    The score is not adjusted for chance: random clusters of many small
    classes score above 0, see :func:`ami_score`.

    References
    ----------
    .. [1] A. Strehl and J. Ghosh, "Cluster Ensembles - A Knowledge Reuse
       Framework for Combining Multiple Partitions", JMLR, 2002.
    .. [2] H. O. Song, Y. Xiang, S. Jegelka and S. Savarese, "Deep Metric
       Learning via Lifted Structured Feature Embedding", CVPR 2016.

    Examples
    --------
    >>> from sklearn_dml.metrics import nmi_score
    >>> X = [[0.0], [0.1], [5.0], [5.1], [9.0], [9.2]]
    >>> y = [0, 0, 1, 1, 2, 2]
    >>> nmi_score(X, y, random_state=0)
    1.0
    """
    labels, clusters = _cluster(
        embeddings, labels, n_init, random_state, average_method
    )
    return float(
        normalized_mutual_info_score(labels, clusters, average_method=average_method)
    )


@fill_doc
def ami_score(
    embeddings,
    labels,
    *,
    n_init=10,
    random_state=None,
    average_method="arithmetic",
):
    """Adjusted mutual information between k-means clusters and the labels.

    Parameters
    ----------
    {clustering_params}

    Returns
    -------
    score : float
        AMI, at most 1 (clusters are the classes), near 0 for clusters
        unrelated to the classes (it can be slightly negative).

    See Also
    --------
    nmi_score : The unadjusted variant.

    Notes
    -----
    With :math:`\\mathbb{E}[I]` the expected mutual information of two random
    partitions with the same cluster sizes,

    .. math::

        \\mathrm{AMI}(Y, C) = \\frac{I(Y; C) - \\mathbb{E}[I]}
        {\\operatorname{mean}(H(Y), H(C)) - \\mathbb{E}[I]}.

    References
    ----------
    .. [1] N. X. Vinh, J. Epps and J. Bailey, "Information Theoretic Measures
       for Clusterings Comparison", JMLR, 2010.

    Examples
    --------
    >>> from sklearn_dml.metrics import ami_score
    >>> X = [[0.0], [0.1], [5.0], [5.1], [9.0], [9.2]]
    >>> y = [0, 0, 1, 1, 2, 2]
    >>> ami_score(X, y, random_state=0)
    1.0
    """
    labels, clusters = _cluster(
        embeddings, labels, n_init, random_state, average_method
    )
    return float(
        adjusted_mutual_info_score(labels, clusters, average_method=average_method)
    )
