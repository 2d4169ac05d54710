"""Label-free measures of an embedding from the spectrum of its second moments.

:func:`rankme_score` (Garrido et al.) is the effective rank of the embedding
matrix; :func:`wasserstein_uniformity_loss` (Fang et al.) the quadratic
Wasserstein distance between the normalised embeddings, seen as a Gaussian,
and the uniform distribution on the hypersphere. Both read the data once, a
chunk of rows at a time, into running float64 sums of size ``n_features`` and
``n_features x n_features``: memory never grows with ``n_samples``.
"""

import math
from numbers import Real

import torch

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ._geometry import _unit_rows
from ._knn import _as_2d_float, _check_positive_int

__all__ = ["rankme_score", "wasserstein_uniformity_loss"]

# Entries of one chunk of rows converted to float64 at once: 32 MiB.
_CHUNK_ENTRIES = 2**22

register_doc(
    "moment_chunk_size",
    """
    chunk_size : int, default=None
        Number of rows added to the running sums at once. ``None`` keeps one
        chunk near 32 MiB of float64. It bounds memory and does not change
        the result beyond rounding.
    """,
)


def _second_moments(points, chunk_size, normalize):
    """Sum of the rows and their Gram matrix ``X^T X``, in float64, by chunks."""
    n_samples, n_features = points.shape
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ENTRIES // n_features)
    total = torch.zeros(n_features, dtype=torch.float64)
    gram = torch.zeros((n_features, n_features), dtype=torch.float64)
    for start in range(0, n_samples, chunk_size):
        rows = points[start : start + chunk_size].to(torch.float64)
        if normalize:
            rows = _unit_rows(rows)
        total += rows.sum(dim=0)
        gram.addmm_(rows.T, rows)
    return total, gram


def _eigenvalues(matrix):
    """Eigenvalues of a symmetric positive semi-definite matrix, rounding clipped."""
    return torch.linalg.eigvalsh(matrix).clamp_(min=0.0)


@fill_doc
def rankme_score(embeddings, *, epsilon=1e-7, chunk_size=None):
    """RankMe of Garrido et al.: the effective rank of the embedding matrix.

    A label-free measure of dimensional collapse: the exponential of the
    entropy of the normalised singular values of the matrix of embeddings.
    It is close to 1 when every embedding lies on one line and reaches
    ``min(n_samples, n_features)`` when the singular values are all equal.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points (not centred: the matrix as given, as in the paper).
    epsilon : float, default=1e-7
        The :math:`\\varepsilon` added to each normalised singular value
        before the logarithm (the paper's numerical guard).
    {moment_chunk_size}

    Returns
    -------
    score : float
        The effective rank, between about 1 and ``min(n_samples,
        n_features)``. Higher means that more dimensions are used.

    See Also
    --------
    wasserstein_uniformity_loss : How uniformly the directions spread.

    Notes
    -----
    With :math:`\\sigma_1, \\dots, \\sigma_K` the singular values of the
    :math:`n \\times K` matrix :math:`Z` of embeddings
    (:math:`K` = ``n_features``),

    .. math::

        p_k = \\frac{\\sigma_k}{\\lVert \\sigma \\rVert_1} + \\varepsilon,
        \\qquad
        \\mathrm{RankMe}(Z) = \\exp\\Bigl(-\\sum_{k=1}^{K} p_k \\log p_k\\Bigr).

    The singular values are the square roots of the eigenvalues of
    :math:`Z^\\top Z`, accumulated chunk by chunk in float64, so the whole
    matrix is never held. Singular values below about :math:`10^{-8}`
    times the largest lose their precision this way, which changes the
    entropy by less than :math:`10^{-6}`. The paper uses the score to rank
    pretrained self-supervised models without labels: among models trained
    alike, a higher RankMe went with better downstream accuracy.

    References
    ----------
    .. [1] Q. Garrido, R. Balestriero, L. Najman and Y. LeCun, "RankMe:
       Assessing the Downstream Performance of Pretrained Self-Supervised
       Representations by Their Rank", ICML 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.metrics import rankme_score
    >>> round(rankme_score(np.eye(4)), 3)
    4.0
    >>> round(rankme_score([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]), 3)
    1.0
    """
    if not Interval(Real, 0, None, closed="left").is_satisfied_by(epsilon):
        raise ValueError(f"epsilon must be a non-negative number, got {epsilon!r}.")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    points = _as_2d_float(embeddings, "embeddings")
    _, gram = _second_moments(points, chunk_size, normalize=False)
    singular = _eigenvalues(gram).sqrt_()
    norm = singular.sum()
    if norm == 0:
        raise ValueError("rankme_score is undefined for embeddings that are all 0.")
    p = singular / norm + float(epsilon)
    return float(torch.exp(-torch.special.xlogy(p, p).sum()))


@fill_doc
def wasserstein_uniformity_loss(embeddings, *, chunk_size=None):
    """Wasserstein uniformity of Fang et al.: distance to the uniform sphere.

    The normalised embeddings are summarised by a Gaussian with their mean
    and covariance, the uniform distribution on the unit hypersphere of
    dimension ``m`` by :math:`\\mathcal{N}(0, I/m)`, and the loss is the
    quadratic Wasserstein distance between the two Gaussians: 0 for
    perfectly uniform directions, :math:`\\sqrt{2}` for a collapse onto one
    point. Labels are not used.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, n_features)
        Embedded points; each row is scaled to unit L2 norm first (a zero
        row stays at the origin).
    {moment_chunk_size}

    Returns
    -------
    loss : float
        The distance, in :math:`[0, \\sqrt{2}]`. Lower is better (more
        uniform).

    See Also
    --------
    uniformity_loss : The Gaussian-potential uniformity of Wang & Isola.
    rankme_score : The effective rank of the embedding.

    Notes
    -----
    With :math:`\\hat z_i = z_i / \\lVert z_i \\rVert_2`, their mean
    :math:`\\mu` and covariance :math:`\\Sigma` (maximum likelihood,
    divided by :math:`n`) and :math:`m` = ``n_features``,

    .. math::

        \\mathcal{W}_2 = \\sqrt{\\lVert \\mu \\rVert_2^2 + 1
            + \\operatorname{tr}(\\Sigma)
            - \\frac{2}{\\sqrt{m}} \\operatorname{tr}\\bigl(\\Sigma^{1/2}\\bigr)},

    the closed form of the quadratic Wasserstein distance between
    :math:`\\mathcal{N}(\\mu, \\Sigma)` and :math:`\\mathcal{N}(0, I/m)`
    (the paper's uniformity loss; its uniformity metric is
    :math:`-\\mathcal{W}_2`). As :math:`\\lVert \\mu \\rVert^2 +
    \\operatorname{tr}\\Sigma = 1` for unit rows, the value lies between 0
    (:math:`\\Sigma = I/m`) and :math:`\\sqrt{2}` (:math:`\\Sigma = 0`, every
    point equal). The paper shows that, unlike the measure of Wang & Isola,
    it decreases when dimensional collapse is reduced, and is not fooled by
    duplicating the embedding's coordinates. The mean and covariance are
    accumulated chunk by chunk in float64.

    References
    ----------
    .. [1] X. Fang, J. Li, Q. Sun and B. Wang, "Rethinking the Uniformity
       Metric in Self-Supervised Learning", ICLR 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.metrics import wasserstein_uniformity_loss
    >>> round(wasserstein_uniformity_loss(np.vstack([np.eye(3), -np.eye(3)])), 6)
    0.0
    >>> round(wasserstein_uniformity_loss([[1.0, 0.0], [2.0, 0.0]]), 4)
    1.4142
    """
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    points = _as_2d_float(embeddings, "embeddings")
    n_samples, n_features = points.shape
    total, gram = _second_moments(points, chunk_size, normalize=True)
    mean = total / n_samples
    covariance = gram / n_samples - torch.outer(mean, mean)
    covariance = (covariance + covariance.T) / 2
    root_trace = _eigenvalues(covariance).sqrt_().sum()
    squared = (
        mean.square().sum()
        + 1.0
        + torch.trace(covariance)
        - 2.0 / math.sqrt(n_features) * root_trace
    )
    return float(squared.clamp(min=0.0).sqrt())
