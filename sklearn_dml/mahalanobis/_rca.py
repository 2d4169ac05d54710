"""Relevant components analysis (RCA) from class labels."""

from numbers import Integral, Real

import numpy as np
import scipy.linalg
from sklearn.utils import check_random_state

from .._param_validation import Interval
from ._base import N_COMPONENTS_CONSTRAINT, BaseMahalanobisLearner

__all__ = ["RCA"]


def chunklets_from_labels(labels, chunk_size, n_chunks, random_state):
    """Chunklet index of each sample (``-1``: in none), built from labels.

    ``chunk_size=None`` makes each class with two or more samples one
    chunklet. Otherwise every class is shuffled and cut into disjoint
    groups of ``chunk_size`` samples, and ``n_chunks`` of them (all when
    None) are drawn at random.
    """
    classes, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes)
    chunks = np.full(len(labels), -1, dtype=np.int64)
    if chunk_size is None:
        kept = np.flatnonzero(counts >= 2)
        if len(kept) == 0:
            raise ValueError(
                "No class has two or more samples, so no chunklet can be formed; "
                "RCA needs samples known to share a label."
            )
        mapping = np.full(len(classes), -1)
        mapping[kept] = np.arange(len(kept))
        return mapping[codes]
    capacity = counts // chunk_size
    if capacity.sum() == 0:
        raise ValueError(
            f"No class has chunk_size={chunk_size} samples (the largest has "
            f"{counts.max()}), so no chunklet can be formed; lower chunk_size."
        )
    if n_chunks is not None and n_chunks > capacity.sum():
        raise ValueError(
            f"Cannot form n_chunks={n_chunks} disjoint chunklets of "
            f"chunk_size={chunk_size} samples: the classes hold at most "
            f"{capacity.sum()}. Lower n_chunks or chunk_size (or n_chunks=None "
            "for all of them)."
        )
    rng = check_random_state(random_state)
    groups = []
    for code in np.flatnonzero(capacity):
        members = rng.permutation(np.flatnonzero(codes == code))
        usable = capacity[code] * chunk_size
        groups.extend(members[:usable].reshape(-1, chunk_size))
    groups = np.asarray(groups)
    if n_chunks is not None:
        groups = groups[rng.permutation(len(groups))[:n_chunks]]
    chunks[groups.ravel()] = np.repeat(np.arange(len(groups)), chunk_size)
    return chunks


def within_chunklet_covariance(X, chunks):
    """Covariance of the samples around their chunklet means (ML estimate)."""
    inside = chunks >= 0
    Xi, ci = X[inside], chunks[inside]
    n_chunks = ci.max() + 1
    counts = np.bincount(ci, minlength=n_chunks)
    sums = np.zeros((n_chunks, X.shape[1]))
    np.add.at(sums, ci, Xi)
    centred = Xi - (sums / counts[:, None])[ci]
    return centred.T @ centred / len(Xi)


class RCA(BaseMahalanobisLearner):
    r"""Relevant components analysis (Bar-Hillel et al.), from class labels.

    RCA whitens the data by the covariance of samples around the means of
    their *chunklets*, small groups known to share a label: directions in
    which samples of one chunklet vary are irrelevant and are shrunk, the
    others are kept. This supervised version forms the chunklets from the
    labels, either each class as one chunklet (the default, which uses every
    labelled pair) or random disjoint groups of ``chunk_size`` same-class
    samples, as when only a few equivalence constraints are known. Closed
    form.

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None keeps ``n_features``. A lower
        dimension first keeps the directions of largest total variance
        relative to the within-chunklet variance (the paper's
        constraints-based Fisher step), then whitens.
    chunk_size : int, default=None
        Samples per chunklet; None makes each class one chunklet.
    n_chunks : int, default=None
        Number of chunklets drawn when ``chunk_size`` is set; None uses all
        the disjoint chunklets the classes hold. Must be None when
        ``chunk_size`` is None.
    regularization : float, default=1e-3
        Ridge added to the within-chunklet covariance, relative to its mean
        eigenvalue, so that too few chunklets (or constant features) still
        give a finite metric; ``0`` is the paper's estimate exactly.
    random_state : int, RandomState instance or None, default=None
        Seeds the drawing of chunklets (``chunk_size`` set).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``; ``L C L^T = I`` for the (ridged)
        within-chunklet covariance ``C``.
    chunks_ : ndarray of shape (n_samples,)
        The chunklet of each training sample, ``-1`` for none.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    Covariance : Whitening by the total covariance (no labels).
    LFDA : A discriminant that also pushes the classes apart.

    Notes
    -----
    With chunklets :math:`H_1, \dots, H_K` of means :math:`m_k` holding
    :math:`p` samples in all, RCA's metric is the inverse of the
    within-chunklet covariance (the paper's step 2 and 3):

    .. math::

        \hat C = \frac{1}{p} \sum_{k=1}^{K} \sum_{x \in H_k}
        (x - m_k)(x - m_k)^\top, \qquad M = \hat C^{-1},

    the maximum-likelihood estimate of a Mahalanobis metric under Gaussian
    classes. With ``n_components`` below ``n_features``, ``L`` holds the
    leading generalised eigenvectors of the total covariance against
    :math:`\hat C`, normalised to :math:`L \hat C L^\top = I`. metric-learn
    0.7's ``RCA_Supervised`` draws 100 chunklets of 2 samples by default;
    with the same chunklets and ``regularization=0`` the two metrics are
    the same.

    References
    ----------
    .. [1] A. Bar-Hillel, T. Hertz, N. Shental and D. Weinshall, "Learning a
       Mahalanobis Metric from Equivalence Constraints", Journal of Machine
       Learning Research 6, 937-965, 2005.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.mahalanobis import RCA
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> rca = RCA().fit(X, y)
    >>> rca.transform(X).shape
    (150, 4)
    >>> rca.score(X, y) > 0.8
    True
    """

    _parameter_constraints = {
        "n_components": N_COMPONENTS_CONSTRAINT,
        "chunk_size": [None, Interval(Integral, 2, None, closed="left")],
        "n_chunks": [None, Interval(Integral, 1, None, closed="left")],
        "regularization": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        chunk_size=None,
        n_chunks=None,
        regularization=1e-3,
        random_state=None,
    ):
        self.n_components = n_components
        self.chunk_size = chunk_size
        self.n_chunks = n_chunks
        self.regularization = regularization
        self.random_state = random_state

    def _fit_components(self, X, y):
        if self.chunk_size is None and self.n_chunks is not None:
            raise ValueError(
                f"n_chunks={self.n_chunks} needs chunk_size: with chunk_size=None "
                "each class is one chunklet. Set chunk_size or n_chunks=None."
            )
        n_features = X.shape[1]
        n_components = self._check_n_components(n_features)
        chunks = chunklets_from_labels(
            y, self.chunk_size, self.n_chunks, self.random_state
        )
        inner = within_chunklet_covariance(X, chunks)
        inner += self.regularization * np.trace(inner) / n_features * np.eye(n_features)
        centred = X - X.mean(0)
        total = centred.T @ centred / len(X)
        try:
            _, vectors = scipy.linalg.eigh(
                total,
                inner,
                subset_by_index=[n_features - n_components, n_features - 1],
            )
        except np.linalg.LinAlgError:
            raise ValueError(
                "The within-chunklet covariance is singular (too few chunklets for "
                "the number of features, or constant features); set "
                "regularization > 0 or form more chunklets."
            ) from None
        return vectors[:, ::-1].T, {"chunks_": chunks}
