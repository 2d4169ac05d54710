"""Information-theoretic metric learning (ITML), by Bregman projections."""

from numbers import Integral, Real

import numpy as np
from scipy.linalg.blas import dger as ger
from scipy.linalg.blas import dsymv as symv

from .._constraint_classifiers import PairsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval, TupleOf
from ._weak import (
    N_CONSTRAINTS,
    PRIOR_CONSTRAINT,
    PRIOR_DOC,
    BaseWeakMahalanobisLearner,
    SolverParamsMixin,
    SupervisedFromConstraints,
    components_from_metric,
    distinct_samples,
    prior_matrix,
)

__all__ = ["ITML", "ITMLSupervised"]

_PARAMS = {
    "gamma": [Interval(Real, 0, None, closed="neither")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "prior": PRIOR_CONSTRAINT,
    "bounds": [None, TupleOf(Interval(Real, 0, None, closed="neither"))],
}

register_doc(
    "itml_params",
    """
    gamma : float, default=1.0
        Weight of the slack variables :math:`\\gamma`: small values let
        constraints be violated, large ones enforce them.

    max_iter : int, default=1000
        Maximum number of sweeps over the constraints.

    tol : float, default=1e-3
        Stop when a sweep changes the dual variables by less than this,
        relative to their norm.
"""
    + PRIOR_DOC
    + """
    bounds : tuple (lower, upper) or None, default=None
        Targets of the *squared* learned distances: at most ``lower`` for
        same-class pairs, at least ``upper`` for different-class pairs.
        ``None`` takes the 5th and 95th percentiles of the squared prior
        distances between the distinct samples of the constraints (at most
        2,000 of them, evenly spaced), as the paper does.
    """,
)

register_doc(
    "itml_notes",
    """
    ITML solves

    .. math::

        \\min_{M \\succeq 0, \\xi} D_{\\ell d}(M, M_0)
            + \\gamma D_{\\ell d}(\\operatorname{diag}\\xi,
                                 \\operatorname{diag}\\xi_0)
        \\quad \\text{s.t.} \\quad
        d_M(x_i, x_j) \\le \\xi_{ij} \\ (\\text{same}), \\quad
        d_M(x_i, x_j) \\ge \\xi_{ij} \\ (\\text{different}),

    with :math:`D_{\\ell d}(M, M_0) = \\operatorname{tr}(M M_0^{-1}) - \\log\\det(M
    M_0^{-1}) - d` and :math:`d_M` the squared Mahalanobis distance, by the
    cyclic Bregman projections of Algorithm 1 of [1]_: each constraint in
    turn, with :math:`v = x_i - x_j`, :math:`p = v^\\top M v`,
    :math:`\\delta = \\pm 1`,

    .. math::

        \\alpha = \\min\\Big(\\lambda_{ij}, \\delta \\frac{\\gamma}{\\gamma + 1}
                  \\big(\\tfrac{1}{p} - \\tfrac{1}{\\xi_{ij}}\\big)\\Big), \\quad
        M \\leftarrow M + \\frac{\\delta\\alpha}{1 - \\delta\\alpha p} M v v^\\top M,
        \\quad \\xi_{ij} \\leftarrow \\frac{\\gamma \\xi_{ij}}{\\gamma + \\delta
        \\alpha \\xi_{ij}}, \\quad \\lambda_{ij} \\leftarrow \\lambda_{ij} - \\alpha.

    The step :math:`\\alpha` is the exact projection with slack (the
    authors' code and metric-learn use it too); the paper's Algorithm 1
    prints :math:`\\frac{\\delta}{2}(\\frac{1}{p} - \\frac{\\gamma}{\\xi})`.
    Each projection depends on the previous one, so the sweep is
    sequential: a loop of rank-one updates, :math:`O(d^2)` each. The bounds
    are percentiles of *squared* distances, as the constraints are on
    squared distances (metric-learn takes them on distances).
    """,
)


def _default_bounds(features, M0):
    samples = distinct_samples(features)
    if samples.shape[0] > 2000:
        samples = samples[np.linspace(0, samples.shape[0] - 1, 2000).astype(int)]
    L0 = components_from_metric(M0)
    Z = samples @ L0.T
    sq = np.einsum("ij,ij->i", Z, Z)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0, None)
    upper_triangle = d2[np.triu_indices(samples.shape[0], k=1)]
    if upper_triangle.size == 0:
        raise ValueError("ITML needs at least two distinct samples in the pairs.")
    return np.percentile(upper_triangle, (5, 95))


def itml_solve(features, same, *, gamma, max_iter, tol, prior, bounds):
    """Run ITML on pairs of features ``(n, 2, d)`` with a boolean "same" mask.

    Returns ``(M, extra)`` with the learned Mahalanobis matrix and the fitted
    attributes ``bounds_`` and ``n_iter_``.
    """
    M0, _ = prior_matrix(prior, features)
    if bounds is None:
        lower, upper = _default_bounds(features, M0)
    else:
        if len(bounds) != 2 or not bounds[0] <= bounds[1]:
            raise ValueError(
                f"bounds must be a pair (lower, upper) with lower <= upper; got {bounds}."
            )
        lower, upper = float(bounds[0]), float(bounds[1])
    lower, upper = max(lower, 1e-12), max(upper, 1e-12)
    V = features[:, 0] - features[:, 1]
    rows = list(V)
    delta = np.where(same, 1.0, -1.0).tolist()
    xi = np.where(same, lower, upper).tolist()
    lam = [0.0] * V.shape[0]
    factor = gamma / (gamma + 1.0)
    M = np.asfortranarray(M0, dtype=np.float64)
    n_iter = max_iter
    for sweep in range(max_iter):
        previous = np.array(lam)
        # Cyclic projections: each uses the matrix left by the previous one,
        # a rank-one update through BLAS (symv, ger) on the Fortran-ordered M.
        for c, v in enumerate(rows):
            Mv = symv(1.0, M, v)
            p = float(v @ Mv)
            if p <= 0.0:  # a pair of identical points carries no constraint
                continue
            sign = delta[c]
            alpha = min(lam[c], sign * factor * (1.0 / p - 1.0 / xi[c]))
            beta = sign * alpha / (1.0 - sign * alpha * p)
            xi[c] = gamma * xi[c] / (gamma + sign * alpha * xi[c])
            lam[c] -= alpha
            M = ger(beta, Mv, Mv, a=M, overwrite_a=1)
        current = np.array(lam)
        norm = np.linalg.norm(current) + np.linalg.norm(previous)
        if norm == 0 or np.abs(current - previous).sum() / norm < tol:
            n_iter = sweep + 1
            break
    M = np.ascontiguousarray(M)
    return M, {"bounds_": np.array([lower, upper]), "n_iter_": n_iter}


register_doc(
    "itml_references",
    """
    .. [1] J. V. Davis, B. Kulis, P. Jain, S. Sra and I. S. Dhillon,
       "Information-Theoretic Metric Learning", ICML 2007.
    """,
)


class _ITMLSolver(SolverParamsMixin):
    _solver = staticmethod(itml_solve)
    _solver_params = tuple(_PARAMS)


@fill_doc
class ITML(_ITMLSolver, PairsClassifierMixin, BaseWeakMahalanobisLearner):
    """Information-theoretic metric learning on labelled pairs (Davis et al., 2007).

    Learns the Mahalanobis matrix closest to a prior :math:`M_0` in LogDet
    divergence (the relative entropy of the two Gaussians) such that
    same-class pairs are closer than a bound and different-class pairs
    farther than another, with slack. Fitted on pairs; for labelled samples
    use :class:`ITMLSupervised`.

    Parameters
    ----------
    {itml_params}

    {preprocessor_param}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    bounds_ : ndarray of shape (2,)
        The bounds ``(lower, upper)`` used.
    n_iter_ : int
        Sweeps over the constraints run.
    {pairs_learner_attributes}

    See Also
    --------
    ITMLSupervised : The same, with pairs drawn from class labels.

    Notes
    -----
    {itml_notes}

    References
    ----------
    {itml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.constraints import positive_negative_pairs
    >>> from sklearn_dml.mahalanobis import ITML
    >>> X, y = load_iris(return_X_y=True)
    >>> pairs, y_pairs = positive_negative_pairs(y, 50, random_state=0)
    >>> itml = ITML(preprocessor=X).fit(pairs, y_pairs)
    >>> itml.predict(pairs[:3]).tolist()
    [1, 1, 1]
    >>> itml.score(pairs, y_pairs) > 0.9
    True
    """

    _parameter_constraints = dict(_PARAMS)

    def __init__(
        self,
        gamma=1.0,
        max_iter=1000,
        tol=1e-3,
        prior="identity",
        bounds=None,
        preprocessor=None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.bounds = bounds
        self.preprocessor = preprocessor


@fill_doc
class ITMLSupervised(_ITMLSolver, SupervisedFromConstraints):
    """Information-theoretic metric learning from class labels (Davis et al., 2007).

    Draws same-class and different-class pairs from the labels
    (:func:`~sklearn_dml.constraints.positive_negative_pairs`) and runs
    :class:`ITML` on them.

    Parameters
    ----------
    {itml_params}

    {drawn_pairs_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    bounds_ : ndarray of shape (2,)
        The bounds ``(lower, upper)`` used.
    n_iter_ : int
        Sweeps over the constraints run.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    ITML : The same on given pairs.

    Notes
    -----
    {itml_notes}

    References
    ----------
    {itml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import ITMLSupervised
    >>> X, y = load_iris(return_X_y=True)
    >>> itml = ITMLSupervised(max_iter=50, random_state=0).fit(X, y)
    >>> itml.transform(X).shape
    (150, 4)
    >>> itml.score(X, y) > 0.8
    True
    """

    _parameter_constraints = {**_PARAMS, **N_CONSTRAINTS}

    def __init__(
        self,
        gamma=1.0,
        max_iter=1000,
        tol=1e-3,
        prior="identity",
        bounds=None,
        n_constraints=None,
        random_state=None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.bounds = bounds
        self.n_constraints = n_constraints
        self.random_state = random_state
