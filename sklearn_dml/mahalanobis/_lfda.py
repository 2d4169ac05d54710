"""Local Fisher discriminant analysis (LFDA)."""

from numbers import Integral, Real

import numpy as np
import scipy.linalg
import torch

from .._param_validation import Interval, StrOptions
from .._shared_parameters import DeviceConstraint
from ..metrics import chunked_knn
from ..training.engine import resolve_device
from ._base import N_COMPONENTS_CONSTRAINT, BaseMahalanobisLearner
from ._solvers import _BLOCK_ELEMENTS, check_class_sizes

__all__ = ["LFDA"]


def local_scatter_parts(X, labels, n_neighbors, device):
    """The local within-class scatter and the class-wise terms of LFDA.

    Returns ``(S_lw, S_lb)``, the local within-class and local
    between-class scatter matrices of Sugiyama (2007), equations (11) and
    (12), computed class by class and, within a class, by blocks of rows of
    the affinity matrix (never an ``n x n`` matrix).
    """
    n, d = X.shape
    X_t = torch.tensor(X, dtype=torch.float64, device=device)
    centred = X - X.mean(0)
    total = centred.T @ centred
    within = np.zeros((d, d))
    lost = np.zeros((d, d))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_c = len(members)
        if n_c < 2:
            continue
        Xc = X_t[members]
        k = min(n_neighbors, n_c - 1)
        dist, _ = chunked_knn(Xc, k, exclude_self=True, device=device)
        sigma = torch.as_tensor(dist[:, -1], dtype=torch.float64, device=device)
        G = torch.zeros((d, d), dtype=torch.float64, device=device)
        step = max(1, _BLOCK_ELEMENTS // n_c)
        for start in range(0, n_c, step):
            rows = slice(start, min(start + step, n_c))
            sq = torch.cdist(Xc[rows], Xc).square()
            scale = (sigma[rows, None] * sigma[None, :]).clamp_min(
                torch.finfo(torch.float64).tiny
            )
            A = torch.exp(-sq / scale)
            Xr = Xc[rows]
            # sum_j A_ij (x_i - x_j)(x_i - x_j)^T over the block's rows i,
            # halved over the full symmetric sum below.
            G += Xr.T @ (A.sum(1)[:, None] * Xr) - Xr.T @ (A @ Xc)
        G = G.cpu().numpy()
        G = (G + G.T) / 2.0
        class_centred = X[members] - X[members].mean(0)
        within += G / n_c
        lost += n_c * (class_centred.T @ class_centred) - G
    # S_lm = (1/2) sum W^lm_ij (x_i - x_j)(x_i - x_j)^T with W^lm = A / n within
    # a class and 1 / n across: the total scatter minus what the affinity
    # removes inside the classes. S_lb = S_lm - S_lw (Sugiyama, eq. (20)).
    mixture = total - lost / n
    return within, mixture - within


class LFDA(BaseMahalanobisLearner):
    r"""Local Fisher discriminant analysis (Sugiyama), in closed form.

    Fisher's discriminant analysis with pairwise weights that keep only
    nearby same-class pairs in the within-class scatter: classes made of
    several clusters (multimodal classes) are not forced together, and the
    embedding can have more than ``n_classes - 1`` useful dimensions. The
    solution is a symmetric-definite generalised eigenproblem, solved with
    :func:`scipy.linalg.eigh` after a small ridge on the within-class
    scatter, so constant or collinear features give a finite, real result.

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None keeps ``n_features``.
    n_neighbors : int, default=7
        The local scaling of the affinity: :math:`\sigma_i` is the distance
        of :math:`x_i` to its ``n_neighbors``-th nearest same-class sample
        (fewer in a smaller class). The paper's value is 7.
    embedding_type : {"weighted", "orthonormalized", "plain"}, default="weighted"
        ``"plain"``: the generalised eigenvectors :math:`\varphi_k`;
        ``"weighted"``: each scaled by :math:`\sqrt{\lambda_k}`, so the
        metric weighs directions by their discriminability;
        ``"orthonormalized"``: an orthonormal basis of their span.
    regularization : float, default=1e-3
        Ridge added to the local within-class scatter, relative to its mean
        eigenvalue: :math:`S^{(lw)} + r\,\mathrm{tr}(S^{(lw)}) / d \, I`.
        ``0`` solves the paper's problem exactly when :math:`S^{(lw)}` is
        positive definite.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device on which the affinities and scatters are computed.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L`` (the transposed embedding matrix ``T``).
    eigenvalues_ : ndarray of shape (n_components,)
        The generalised eigenvalues :math:`\lambda_k` of the kept
        directions, in decreasing order.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    sklearn.discriminant_analysis.LinearDiscriminantAnalysis : The global
        (non-local) Fisher discriminant.
    LMNN : An iterative local criterion.

    Notes
    -----
    With the local-scaling affinity :math:`A_{ij} = \exp(-\lVert x_i - x_j
    \rVert^2 / (\sigma_i \sigma_j))` and :math:`n_c` samples in class
    :math:`c`, the local within-class and between-class scatters are

    .. math::

        S^{(lw)} = \frac{1}{2} \sum_{i,j} W^{(lw)}_{ij} (x_i - x_j)(x_i - x_j)^\top,
        \qquad W^{(lw)}_{ij} = \begin{cases} A_{ij} / n_c & y_i = y_j = c \\
        0 & y_i \neq y_j \end{cases}

    and :math:`S^{(lb)}` likewise with :math:`W^{(lb)}_{ij} = A_{ij}(1/n -
    1/n_c)` within class :math:`c` and :math:`1/n` across classes. The
    directions are the generalised eigenvectors :math:`S^{(lb)} \varphi =
    \lambda S^{(lw)} \varphi` of the ``n_components`` largest eigenvalues,
    which maximise :math:`\mathrm{tr}((T^\top S^{(lw)} T)^{-1} T^\top
    S^{(lb)} T)`. They are :math:`S^{(lw)}`-normalised
    (:math:`\varphi^\top S^{(lw)} \varphi = 1`): the local within-class
    spread along each direction is one. Where metric-learn 0.7's ``LFDA``
    differs, this class follows the paper: :math:`\sigma_i` is the distance
    of :math:`x_i` to its 7th nearest same-class neighbour (metric-learn
    uses ``min(7, n_features - 1)`` neighbours and reads the distances
    along the wrong axis of a partially sorted matrix, so its
    :math:`\sigma_i` is not a distance from :math:`x_i`), the local
    between-class scatter is that of the definition above (metric-learn's
    differs from it even with the same :math:`\sigma`), and the problem is
    solved as a symmetric-definite one (metric-learn falls back to
    :func:`scipy.linalg.eig`, which returns complex or NaN components when
    :math:`S^{(lw)}` is singular, as on ``load_digits``).

    References
    ----------
    .. [1] M. Sugiyama, "Dimensionality Reduction of Multimodal Labeled Data
       by Local Fisher Discriminant Analysis", Journal of Machine Learning
       Research 8, 1027-1061, 2007.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.mahalanobis import LFDA
    >>> X, y = load_wine(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> lfda = LFDA(n_components=5, device="cpu").fit(X, y)
    >>> lfda.transform(X).shape
    (178, 5)
    >>> lfda.score(X, y) > 0.8
    True
    """

    _parameter_constraints = {
        "n_components": N_COMPONENTS_CONSTRAINT,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "embedding_type": [StrOptions({"weighted", "orthonormalized", "plain"})],
        "regularization": [Interval(Real, 0, None, closed="left")],
        "device": [DeviceConstraint(), torch.device],
    }

    def __init__(
        self,
        n_components=None,
        *,
        n_neighbors=7,
        embedding_type="weighted",
        regularization=1e-3,
        device="auto",
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.embedding_type = embedding_type
        self.regularization = regularization
        self.device = device

    def _fit_components(self, X, y):
        _, labels = np.unique(y, return_inverse=True)
        check_class_sizes(labels, 1, "LFDA")
        n_features = X.shape[1]
        n_components = self._check_n_components(n_features)
        device = resolve_device(self.device)
        within, between = local_scatter_parts(X, labels, self.n_neighbors, device)
        ridge = self.regularization * np.trace(within) / n_features
        try:
            values, vectors = scipy.linalg.eigh(
                between,
                within + ridge * np.eye(n_features),
                subset_by_index=[n_features - n_components, n_features - 1],
            )
        except np.linalg.LinAlgError:
            raise ValueError(
                "The local within-class scatter is singular (constant or collinear "
                "features, or too few samples per class); set regularization > 0."
            ) from None
        values, vectors = values[::-1], vectors[:, ::-1]
        if self.embedding_type == "weighted":
            vectors = vectors * np.sqrt(np.clip(values, 0.0, None))
        elif self.embedding_type == "orthonormalized":
            vectors = np.linalg.qr(vectors)[0]
        return vectors.T, {"eigenvalues_": values.copy()}
