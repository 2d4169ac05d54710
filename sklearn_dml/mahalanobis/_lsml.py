"""Least-squared-residual metric learning (LSML) of Liu et al. (2012)."""

from numbers import Integral, Real

import numpy as np

from .._constraint_classifiers import QuadrupletsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ..constraints import quadruplets_from_labels
from ._weak import (
    N_CONSTRAINTS,
    PRIOR_CONSTRAINT,
    PRIOR_DOC,
    BaseWeakMahalanobisLearner,
    SolverParamsMixin,
    SupervisedFromConstraints,
    log_det_positive_definite,
    prior_matrix,
    quadratic_forms,
)

__all__ = ["LSML", "LSMLSupervised"]

_PARAMS = {
    "regularization": [Interval(Real, 0, None, closed="neither")],
    "prior": PRIOR_CONSTRAINT,
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
}

register_doc(
    "lsml_params",
    """
    regularization : float, default=1.0
        Weight :math:`\\lambda` of the LogDet divergence to the prior.
"""
    + PRIOR_DOC
    + """
    max_iter : int, default=1000
        Maximum number of gradient steps.

    tol : float, default=1e-3
        Stop when the norm of the gradient falls below this.
    """,
)

register_doc(
    "lsml_notes",
    """
    With :math:`d_M` the (not squared) learned distance, LSML [1]_
    minimises the squared residuals of the violated comparisons plus a
    LogDet divergence to the prior,

    .. math::

        \\min_{M \\succ 0} \\frac{1}{|C|} \\sum_{(a, b, c, d) \\in C}
        \\big[d_M(x_a, x_b) - d_M(x_c, x_d)\\big]_+^2
        + \\lambda \\big(\\operatorname{tr}(M M_0^{-1}) - \\log\\det M\\big),

    a convex problem (the constant terms of the divergence left out), by
    gradient descent whose trial step is the Barzilai-Borwein step (the
    secant estimate of the curvature from the last two iterates), shortened
    by backtracking until the Armijo condition holds; a step leaving the
    positive definite cone is rejected (the log-determinant is a barrier),
    so no projection is needed. The comparisons weigh equally, summing to
    1, as in metric-learn (whose gradient, however, leaves the weights out).
    """,
)


def lsml_objective(M, features, M0_inv, regularization):
    """The LSML objective at ``M`` (``inf`` outside the positive definite cone)."""
    logdet = log_det_positive_definite(M)
    if logdet is None:
        return np.inf
    ab = features[:, 0] - features[:, 1]
    cd = features[:, 2] - features[:, 3]
    residual = _residual_value(quadratic_forms(ab, M), quadratic_forms(cd, M), len(ab))
    return residual + regularization * (float((M * M0_inv).sum()) - logdet)


def _residual_value(q_ab, q_cd, n):
    """Mean squared residual of the violated comparisons, from the squared distances."""
    residual = np.sqrt(np.clip(q_ab, 0, None)) - np.sqrt(np.clip(q_cd, 0, None))
    return float(np.square(residual[residual > 0]).sum() / n)


def _lsml_gradient(M, ab, cd, q_ab, q_cd, M0_inv, regularization):
    """The objective's gradient at ``M``, given the squared distances ``q_ab``,
    ``q_cd`` of the pairs under ``M``; only violated comparisons contribute."""
    s_ab = np.sqrt(np.clip(q_ab, 1e-300, None))
    s_cd = np.sqrt(np.clip(q_cd, 1e-300, None))
    active = np.flatnonzero(s_ab > s_cd)
    ab, cd, s_ab, s_cd = ab[active], cd[active], s_ab[active], s_cd[active]
    # d/dM (s_ab - s_cd)^2 = (1 - s_cd/s_ab) ab ab^T + (1 - s_ab/s_cd) cd cd^T
    n = q_ab.shape[0]
    coef_ab = (1 - s_cd / s_ab) / n
    coef_cd = (1 - s_ab / s_cd) / n
    G = (ab * coef_ab[:, None]).T @ ab + (cd * coef_cd[:, None]).T @ cd
    return G + regularization * (M0_inv - np.linalg.inv(M))


def lsml_solve(features, same, *, regularization, prior, max_iter, tol):
    """Run LSML on quadruplets of features ``(n, 4, d)`` (``same`` is unused).

    Gradient descent with a backtracking step. Along ``M - t G`` the squared
    distances are ``q - t g`` (``q``, ``g``: the quadratic forms of the
    pairs under ``M`` and ``G``), so each trial step costs a Cholesky
    factorisation and vector operations, not products with the data.

    Returns ``(M, extra)``: the learned Mahalanobis matrix and ``n_iter_``.
    """
    M0, M0_inv = prior_matrix(prior, features)
    ab = features[:, 0] - features[:, 1]
    cd = features[:, 2] - features[:, 3]
    n = ab.shape[0]
    M = M0.copy()
    q_ab, q_cd = quadratic_forms(ab, M), quadratic_forms(cd, M)
    trace = float((M * M0_inv).sum())
    value = lsml_objective(M, features, M0_inv, regularization)
    step, n_iter = 1.0, max_iter
    previous = None
    for it in range(max_iter):
        G = _lsml_gradient(M, ab, cd, q_ab, q_cd, M0_inv, regularization)
        G = (G + G.T) / 2
        norm2 = float((G * G).sum())
        if np.sqrt(norm2) < tol:
            n_iter = it + 1  # gradient evaluations
            break
        if previous is not None:
            # Barzilai-Borwein: the step of a secant model of the curvature.
            s_k, y_k = M - previous[0], G - previous[1]
            sy = float((s_k * y_k).sum())
            if sy > 0:
                step = float((s_k * s_k).sum()) / sy
        previous = (M, G)
        g_ab, g_cd = quadratic_forms(ab, G), quadratic_forms(cd, G)
        g_trace = float((G * M0_inv).sum())
        while True:
            candidate = M - step * G
            logdet = log_det_positive_definite(candidate)
            if logdet is not None:  # inside the positive definite cone
                new_value = _residual_value(
                    q_ab - step * g_ab, q_cd - step * g_cd, n
                ) + regularization * (trace - step * g_trace - logdet)
                if new_value <= value - 1e-4 * step * norm2:
                    break
            step /= 2
            if step < 1e-20:
                return M, {"n_iter_": it + 1}
        M, value = candidate, new_value
        q_ab, q_cd = q_ab - step * g_ab, q_cd - step * g_cd
        trace -= step * g_trace
    return M, {"n_iter_": n_iter}


register_doc(
    "lsml_references",
    """
    .. [1] E. Y. Liu, Z. Guo, X. Zhang, V. Jojic and W. Wang, "Metric
       Learning from Relative Comparisons by Minimizing Squared Residual",
       ICDM 2012.
    """,
)


class _LSMLSolver(SolverParamsMixin):
    _solver = staticmethod(lsml_solve)
    _solver_params = tuple(_PARAMS)


@fill_doc
class LSML(_LSMLSolver, QuadrupletsClassifierMixin, BaseWeakMahalanobisLearner):
    """Least-squared-residual metric learning on quadruplets (Liu et al., 2012).

    Learns a Mahalanobis matrix from relative comparisons ``(a, b, c, d)``,
    each stating that ``a`` and ``b`` are closer than ``c`` and ``d``, by
    minimising the squared residuals of the violated ones, regularised
    towards a prior. Fitted on quadruplets; for labelled samples use
    :class:`LSMLSupervised`.

    Parameters
    ----------
    {lsml_params}

    {preprocessor_param}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    n_iter_ : int
        Gradient steps run.
    n_features_in_ : int
        Number of features of the samples.

    See Also
    --------
    LSMLSupervised : The same, with quadruplets drawn from class labels.

    Notes
    -----
    {lsml_notes}

    References
    ----------
    {lsml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.constraints import quadruplets_from_labels
    >>> from sklearn_dml.mahalanobis import LSML
    >>> X, y = load_iris(return_X_y=True)
    >>> quadruplets = quadruplets_from_labels(y, 100, random_state=0)
    >>> lsml = LSML(preprocessor=X).fit(quadruplets)
    >>> lsml.score(quadruplets) > 0.9
    True
    """

    _parameter_constraints = dict(_PARAMS)

    def __init__(
        self,
        regularization=1.0,
        prior="identity",
        max_iter=1000,
        tol=1e-3,
        preprocessor=None,
    ):
        self.regularization = regularization
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol
        self.preprocessor = preprocessor


@fill_doc
class LSMLSupervised(_LSMLSolver, SupervisedFromConstraints):
    """Least-squared-residual metric learning from class labels (Liu et al., 2012).

    Draws quadruplets (a same-class pair, then a different-class pair) from
    the labels (:func:`~sklearn_dml.constraints.quadruplets_from_labels`)
    and runs :class:`LSML` on them.

    Parameters
    ----------
    {lsml_params}

    n_constraints : int, default=None
        Quadruplets drawn from the labels; ``None`` draws
        ``20 * n_classes**2``.

    random_state : int, RandomState instance or None, default=None
        Seed of the drawn quadruplets.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    n_iter_ : int
        Gradient steps run.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    LSML : The same on given quadruplets.

    Notes
    -----
    {lsml_notes}

    References
    ----------
    {lsml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import LSMLSupervised
    >>> X, y = load_iris(return_X_y=True)
    >>> lsml = LSMLSupervised(random_state=0).fit(X, y)
    >>> from sklearn_dml.metrics import map_at_r_score
    >>> bool(lsml.score(X, y) > map_at_r_score(X, y))  # MAP@R, above Euclidean
    True
    """

    _parameter_constraints = {**_PARAMS, **N_CONSTRAINTS}

    def __init__(
        self,
        regularization=1.0,
        prior="identity",
        max_iter=1000,
        tol=1e-3,
        n_constraints=None,
        random_state=None,
    ):
        self.regularization = regularization
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol
        self.n_constraints = n_constraints
        self.random_state = random_state

    def _draw_constraints(self, X, y):
        quadruplets = quadruplets_from_labels(
            y, self.n_constraints, random_state=self.random_state
        )
        return X[quadruplets], None
