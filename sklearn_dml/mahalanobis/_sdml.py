"""Sparse determinant metric learning (SDML) of Qi et al. (2009)."""

from numbers import Integral, Real

import numpy as np

from .._constraint_classifiers import PairsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ._weak import (
    N_CONSTRAINTS,
    PRIOR_CONSTRAINT,
    PRIOR_DOC,
    BaseWeakMahalanobisLearner,
    SolverParamsMixin,
    SupervisedFromConstraints,
    log_det_positive_definite,
    prior_matrix,
)

__all__ = ["SDML", "SDMLSupervised"]

_PARAMS = {
    "balance_param": [Interval(Real, 0, None, closed="left")],
    "sparsity_param": [Interval(Real, 0, None, closed="left")],
    "prior": PRIOR_CONSTRAINT,
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
}

register_doc(
    "sdml_params",
    """
    balance_param : float, default=0.5
        Weight :math:`\\eta` of the pair term against the prior.

    sparsity_param : float, default=0.01
        Weight :math:`\\lambda` of the l1 penalty on the off-diagonal
        entries of :math:`M`.
"""
    + PRIOR_DOC
    + """
    max_iter : int, default=1000
        Maximum number of proximal gradient steps.

    tol : float, default=1e-6
        Stop when a step changes :math:`M` by less than this, relative to
        its norm.
    """,
)

register_doc(
    "sdml_notes",
    """
    With :math:`K = \\sum_{(i,j)} y_{ij} (x_i - x_j)(x_i - x_j)^\\top`
    (:math:`y_{ij} = 1` for same-class pairs, :math:`-1` otherwise), SDML
    [1]_ solves

    .. math::

        \\min_{M \\succ 0} \\operatorname{tr}(P M) - \\log\\det M
            + \\lambda \\sum_{i \\ne j} |M_{ij}|, \\qquad
        P = M_0^{-1} + \\eta K,

    a graphical lasso with "covariance" :math:`P`. :math:`P` is indefinite
    whenever the different-class pairs outweigh the rest in some direction;
    the problem is then unbounded below, which is why graphical lasso
    solvers fail on it (metric-learn's SDML stops with an error on iris).
    Here :math:`P` is first repaired: its eigenvalues are raised to at
    least :math:`10^{-3}` times the largest in absolute value (the directions that
    separate the classes keep the largest weights of :math:`M`). The
    repaired problem is solved by proximal gradient descent (G-ISTA [2]_):
    a gradient step on the smooth part, soft-thresholding of the
    off-diagonal entries, a backtracking step size that keeps :math:`M`
    positive definite (a Cholesky check) and decreases the objective.
    """,
)

_EIGENVALUE_FLOOR = 1e-3


def sdml_objective(M, P, sparsity):
    """``tr(P M) - logdet(M) + sparsity * sum_{i != j} |M_ij|``."""
    logdet = log_det_positive_definite(M)
    if logdet is None:
        return np.inf
    off = np.abs(M).sum() - np.abs(np.diag(M)).sum()
    return float((P * M).sum() - logdet + sparsity * off)


def sdml_matrix(features, same, balance_param, prior):
    """The repaired "covariance" ``P`` of SDML's graphical lasso."""
    _, M0_inv = prior_matrix(prior, features)
    V = features[:, 0] - features[:, 1]
    K = (V * np.where(same, 1.0, -1.0)[:, None]).T @ V
    P = M0_inv + balance_param * K
    w, U = np.linalg.eigh((P + P.T) / 2)
    floor = _EIGENVALUE_FLOOR * max(np.abs(w).max(), np.finfo(np.float64).tiny)
    return (U * np.maximum(w, floor)) @ U.T


def graphical_lasso_ista(P, sparsity, *, max_iter=1000, tol=1e-6):
    """Minimise ``tr(P M) - logdet M + sparsity * ||offdiag(M)||_1`` (G-ISTA).

    ``P`` must be symmetric positive definite. Returns ``(M, n_iter)``.
    """
    d = P.shape[0]
    off = ~np.eye(d, dtype=bool)

    def smooth(M):
        return float((P * M).sum() - np.linalg.slogdet(M)[1])

    M = np.diag(1.0 / np.diag(P))
    value = smooth(M)
    step = np.diag(M).min() ** 2  # lambda_min(M)^2: a safe first step
    n_iter = max_iter
    for it in range(max_iter):
        G = P - np.linalg.inv(M)
        while True:
            B = M - step * G
            new = np.where(
                off, np.sign(B) * np.maximum(np.abs(B) - step * sparsity, 0.0), B
            )
            new = (new + new.T) / 2
            try:
                np.linalg.cholesky(new)
            except np.linalg.LinAlgError:
                step /= 2
                continue
            new_value = smooth(new)
            D = new - M
            if new_value <= value + (G * D).sum() + (D * D).sum() / (2 * step):
                break
            step /= 2
        change = np.linalg.norm(D) / max(np.linalg.norm(M), 1e-300)
        M, value = new, new_value
        if change < tol:
            n_iter = it + 1
            break
        # Barzilai-Borwein guess for the next step, kept by the backtracking.
        G_new = P - np.linalg.inv(M)
        dG = G_new - G
        denom = (D * dG).sum()
        step = (D * D).sum() / denom if denom > 0 else step * 2
    return M, n_iter


def sdml_solve(features, same, *, balance_param, sparsity_param, prior, max_iter, tol):
    """Run SDML on pairs of features ``(n, 2, d)`` with a boolean "same" mask.

    Returns ``(M, extra)``: the learned Mahalanobis matrix and ``n_iter_``.
    """
    P = sdml_matrix(features, same, balance_param, prior)
    M, n_iter = graphical_lasso_ista(P, sparsity_param, max_iter=max_iter, tol=tol)
    return M, {"n_iter_": n_iter}


register_doc(
    "sdml_references",
    """
    .. [1] G.-J. Qi, J. Tang, Z.-J. Zha, T.-S. Chua and H.-J. Zhang, "An
       Efficient Sparse Metric Learning in High-Dimensional Space via
       l1-Penalized Log-Determinant Regularization", ICML 2009.
    .. [2] D. Guillot, B. Rajaratnam, B. T. Rolfs, A. Maleki and I. Wong,
       "Iterative Thresholding Algorithm for Sparse Inverse Covariance
       Estimation", NIPS 2012.
    """,
)


class _SDMLSolver(SolverParamsMixin):
    _solver = staticmethod(sdml_solve)
    _solver_params = tuple(_PARAMS)


@fill_doc
class SDML(_SDMLSolver, PairsClassifierMixin, BaseWeakMahalanobisLearner):
    """Sparse determinant metric learning on labelled pairs (Qi et al., 2009).

    Learns a sparse Mahalanobis matrix close to a prior in LogDet
    divergence that shrinks same-class pair distances and stretches
    different-class ones, as an l1-penalised graphical lasso. Fitted on
    pairs; for labelled samples use :class:`SDMLSupervised`.

    Parameters
    ----------
    {sdml_params}

    {preprocessor_param}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    n_iter_ : int
        Proximal gradient steps run.
    {pairs_learner_attributes}

    See Also
    --------
    SDMLSupervised : The same, with pairs drawn from class labels.

    Notes
    -----
    {sdml_notes}

    References
    ----------
    {sdml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.constraints import positive_negative_pairs
    >>> from sklearn_dml.mahalanobis import SDML
    >>> X, y = load_iris(return_X_y=True)
    >>> pairs, y_pairs = positive_negative_pairs(y, 50, random_state=0)
    >>> sdml = SDML(preprocessor=X).fit(pairs, y_pairs)
    >>> sdml.score(pairs, y_pairs) > 0.9
    True
    """

    _parameter_constraints = dict(_PARAMS)

    def __init__(
        self,
        balance_param=0.5,
        sparsity_param=0.01,
        prior="identity",
        max_iter=1000,
        tol=1e-6,
        preprocessor=None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol
        self.preprocessor = preprocessor


@fill_doc
class SDMLSupervised(_SDMLSolver, SupervisedFromConstraints):
    """Sparse determinant metric learning from class labels (Qi et al., 2009).

    Draws same-class and different-class pairs from the labels
    (:func:`~sklearn_dml.constraints.positive_negative_pairs`) and runs
    :class:`SDML` on them.

    Parameters
    ----------
    {sdml_params}

    {drawn_pairs_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    n_iter_ : int
        Proximal gradient steps run.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    SDML : The same on given pairs.

    Notes
    -----
    {sdml_notes}

    References
    ----------
    {sdml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import SDMLSupervised
    >>> X, y = load_iris(return_X_y=True)
    >>> sdml = SDMLSupervised(random_state=0).fit(X, y)
    >>> from sklearn_dml.metrics import map_at_r_score
    >>> bool(sdml.score(X, y) > map_at_r_score(X, y))  # MAP@R, above Euclidean
    True
    """

    _parameter_constraints = {**_PARAMS, **N_CONSTRAINTS}

    def __init__(
        self,
        balance_param=0.5,
        sparsity_param=0.01,
        prior="identity",
        max_iter=1000,
        tol=1e-6,
        n_constraints=None,
        random_state=None,
    ):
        self.balance_param = balance_param
        self.sparsity_param = sparsity_param
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol
        self.n_constraints = n_constraints
        self.random_state = random_state
