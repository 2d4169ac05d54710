"""Information-theoretic metric learning (ITML), by Bregman projections."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.linalg.blas import dger as ger
from scipy.linalg.blas import dsymv as symv
from sklearn.exceptions import ConvergenceWarning

from .._constraint_classifiers import PairsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval, StrOptions, TupleOf
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
    "solver": [StrOptions({"dual", "bregman"})],
}

register_doc(
    "itml_params",
    """
    gamma : float, default=1.0
        Weight of the slack variables :math:`\\gamma`: small values let
        constraints be violated, large ones enforce them.

    max_iter : int, default=1000
        Maximum number of iterations of the dual solver (``"dual"``) or of
        sweeps over the constraints (``"bregman"``).

    tol : float, default=1e-8
        Stop when the duality gap (the objective at the current matrix
        minus the dual bound, both computed exactly) is at most ``tol``
        times the objective: a certificate that the objective is within
        that fraction of its minimum.
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
    Each projection depends on the previous one, so a sweep is sequential:
    a loop of rank-one updates, :math:`O(d^2)` each (``solver="bregman"``).

    The default solver works on the dual instead. With the prior whitened
    to the identity, the multipliers :math:`\\mu_{ij} = \\lambda_{ij}
    \\xi^0_{ij}` (with :math:`\\xi^0` the pair's bound),
    :math:`A = I + \\sum \\delta \\mu_{ij} v v^\\top / \\xi^0_{ij}` and
    :math:`r_{ij} = \\gamma / (\\gamma - \\delta \\mu_{ij})`, the dual
    function is

    .. math::

        g(\\mu) = \\log\\det A + \\sum \\big(\\gamma (r_{ij} - \\log r_{ij} - 1)
                  - \\delta \\mu_{ij} r_{ij}\\big),

    concave, maximised over :math:`\\mu \\ge 0`; the solution is :math:`M =
    A^{-1}`, slack :math:`\\xi_{ij} = \\xi^0_{ij} r_{ij}` (the fixed point of
    the projections above). Its gradient, :math:`\\delta (v^\\top M v /
    \\xi^0_{ij} - r_{ij})`, costs two products of the pairs with a
    :math:`d \\times d` matrix, so an iteration over every pair is a few
    vectorised operations. Both solvers stop when the objective at
    :math:`M` (with the best slack for it) exceeds :math:`g(\\mu)` by at most
    ``tol`` times itself; since :math:`g(\\mu)` is a lower bound on the
    minimum (weak duality), the returned matrix is then optimal to that
    precision (attribute ``duality_gap_``).

    The bounds are percentiles of *squared* distances, as the constraints
    are on squared distances (metric-learn takes them on distances).
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


class _Dual:
    """ITML's Lagrange dual, the prior whitened to the identity.

    ``W`` holds the nonzero differences ``w = x_i - x_j`` of the pairs (in
    the whitened space), ``delta`` is +1 for a same-class pair and -1
    otherwise, ``xi0`` the bound of each pair. The dual variables are
    ``mu = lambda * xi0`` (dimensionless, so that one scale fits every
    pair): with ``A = I + sum_c (mu_c delta_c / xi0_c) w_c w_c^T`` and ``r_c
    = gamma / (gamma - mu_c delta_c)``, the dual function is

        g(mu) = log det A + gamma sum_c (r_c - log r_c - 1) - sum_c mu_c delta_c r_c,

    maximised over ``mu >= 0`` (``mu < gamma`` for same-class pairs, ``A``
    positive definite); the primal solution is ``M = A^{-1}`` with slack
    ``xi_c = xi0_c r_c``.
    """

    def __init__(self, W, same, lower, upper, gamma):
        self.W = W
        self.delta = np.where(same, 1.0, -1.0)
        self.xi0 = np.where(same, lower, upper)
        self.gamma = gamma
        # Same-class multipliers stay below gamma, where r_c is infinite.
        self.upper = np.where(same, gamma * (1.0 - 1e-12), np.inf)

    def factor(self, mu):
        """The Cholesky factor of ``A(mu)`` (``None`` outside the domain)."""
        d = self.W.shape[1]
        A = np.eye(d) + (self.W.T * (mu * self.delta / self.xi0)) @ self.W
        try:
            return np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return None

    def _slack(self, ratio):
        return self.gamma * float(np.sum(ratio - np.log(ratio) - 1.0))

    def evaluate(self, mu):
        """``(-g, -grad g, primal, curvature)`` at ``mu``; ``None`` outside the domain.

        ``primal`` is ITML's objective at ``M = A^{-1}`` with the best slack
        for that ``M`` (an upper bound on the optimum, as ``g`` is a lower
        bound), ``curvature`` the diagonal of the Hessian of ``-g``.
        """
        factor = self.factor(mu)
        if factor is None:
            return None
        d = self.W.shape[1]
        log_det = 2.0 * float(np.log(np.diag(factor)).sum())
        ratio = self.gamma / (self.gamma - mu * self.delta)
        half = solve_triangular(factor, self.W.T, lower=True, check_finite=False)
        # p_c = w_c^T A^{-1} w_c, the squared distance of pair c under M.
        p = np.einsum("ij,ij->j", half, half) / self.xi0
        dual = log_det + self._slack(ratio) - float(np.sum(mu * self.delta * ratio))
        inverse = solve_triangular(factor, np.eye(d), lower=True, check_finite=False)
        best = np.where(self.delta > 0, np.maximum(p, 1.0), np.minimum(p, 1.0))
        primal = float(np.sum(inverse * inverse)) + log_det - d + self._slack(best)
        gradient = -self.delta * (p - ratio)
        return -dual, gradient, primal, p * p + ratio * ratio / self.gamma


def _relative_gap(value, primal):
    """The duality gap ``primal - dual`` relative to the primal (``value = -dual``)."""
    return (primal + value) / max(abs(primal), 1e-300)


def _dual_ascent(problem, max_iter, tol, memory=10):
    """Maximise the dual by projected, diagonally scaled L-BFGS.

    The box ``0 <= mu <= upper`` is kept by projection; variables at a
    bound whose gradient pushes outwards are held fixed for the step. The
    two-loop recursion starts from the exact diagonal of the Hessian (the
    slack terms make the dual ill-conditioned near ``mu = gamma``, which
    this scaling absorbs), scaled by the latest curvature pair. A step is
    accepted on sufficient decrease of ``-g`` along the projected path,
    halving from 1, and only inside the domain. Stops when the duality gap
    is within ``tol`` of the primal objective. Returns ``(mu, n_iter,
    gap)``, ``gap`` relative to the primal objective.
    """
    upper = problem.upper
    mu = np.zeros(problem.W.shape[0])
    value, grad, primal, curvature = problem.evaluate(mu)
    pairs = []
    n_iter = 0
    while n_iter < max_iter and not _relative_gap(value, primal) <= tol:
        n_iter += 1
        held = ((mu <= 0.0) & (grad > 0.0)) | ((mu >= upper) & (grad < 0.0))
        q = np.where(held, 0.0, grad)
        coefficients = []
        for s, y, rho in reversed(pairs):
            a = rho * (s @ q)
            coefficients.append(a)
            q -= a * y
        q /= curvature
        if pairs:
            s, y, _ = pairs[-1]
            q *= (s @ y) / (y @ (y / curvature))
        for (s, y, rho), a in zip(pairs, reversed(coefficients)):
            q += (a - rho * (y @ q)) * s
        direction = -np.where(held, 0.0, q)
        if grad @ direction >= 0.0:  # not a descent direction: restart
            pairs = []
            direction = -np.where(held, 0.0, grad / curvature)
        step = 1.0
        while True:
            trial = np.clip(mu + step * direction, 0.0, upper)
            out = problem.evaluate(trial)
            if out is not None and out[0] <= value + 1e-4 * (grad @ (trial - mu)):
                break
            step *= 0.5
            if step < 1e-20:  # no progress left in floating point
                return mu, n_iter, _relative_gap(value, primal)
        s, y = trial - mu, out[1] - grad
        if s @ y > 1e-12 * (y @ y):
            pairs.append((s, y, 1.0 / (s @ y)))
            del pairs[:-memory]
        mu, (value, grad, primal, curvature) = trial, out
    return mu, n_iter, _relative_gap(value, primal)


def _bregman_sweeps(problem, max_iter, tol):
    """Algorithm 1 of the paper: cyclic Bregman projections, one pair at a time.

    Works on ``M`` itself (rank-one updates through BLAS, ``symv`` and
    ``ger`` on a Fortran-ordered matrix) and keeps the dual variables, so
    that the duality gap is checked after every sweep. Returns ``(M,
    n_iter, gap)``.
    """
    W, gamma = problem.W, problem.gamma
    delta, xi = problem.delta.tolist(), problem.xi0.tolist()
    lam = [0.0] * W.shape[0]
    factor = gamma / (gamma + 1.0)
    M = np.asfortranarray(np.eye(W.shape[1]))
    n_iter, gap = 0, np.inf
    while n_iter < max_iter:
        n_iter += 1
        for c, v in enumerate(W):
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
        mu = np.minimum(np.array(lam) * problem.xi0, problem.upper)
        out = problem.evaluate(mu)
        if out is not None:
            gap = _relative_gap(out[0], out[2])
            if gap <= tol:
                break
    return np.ascontiguousarray(M), n_iter, gap


def itml_solve(features, same, *, gamma, max_iter, tol, prior, bounds, solver):
    """Run ITML on pairs of features ``(n, 2, d)`` with a boolean "same" mask.

    Returns ``(M, extra)`` with the learned Mahalanobis matrix and the fitted
    attributes ``bounds_``, ``n_iter_`` and ``duality_gap_``.
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
    # With M0 = R^T R, d_M(x, y) = d_{M'}(Rx, Ry) for M = R^T M' R and
    # D_ld(M, M0) = D_ld(M', I): the problem is solved for M' with the
    # identity prior.
    root = None
    if not (isinstance(prior, str) and prior == "identity"):
        root = components_from_metric(M0)
        V = V @ root.T
    nonzero = np.einsum("ij,ij->i", V, V) > 0.0
    problem = _Dual(
        np.ascontiguousarray(V[nonzero]), same[nonzero], lower, upper, gamma
    )
    if solver == "bregman":
        M, n_iter, gap = _bregman_sweeps(problem, max_iter, tol)
    else:
        mu, n_iter, gap = _dual_ascent(problem, max_iter, tol)
        M = cho_solve(
            (problem.factor(mu), True), np.eye(problem.W.shape[1]), check_finite=False
        )
        M = (M + M.T) / 2.0
    if not gap <= tol:
        warnings.warn(
            f"ITML did not reach the duality gap tol={tol} in max_iter={max_iter} "
            f"{'sweeps' if solver == 'bregman' else 'iterations'} (relative gap "
            f"{gap:.2e}); increase max_iter or tol.",
            ConvergenceWarning,
            stacklevel=5,
        )
    if root is not None:
        M = root.T @ M @ root
    extra = {"bounds_": np.array([lower, upper]), "n_iter_": n_iter}
    extra["duality_gap_"] = float(gap)
    return M, extra


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
        Iterations of the dual solver (or sweeps over the constraints) run.
    duality_gap_ : float
        The duality gap at the returned matrix, relative to the objective:
        the objective is within this fraction of its minimum.
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
        tol=1e-8,
        prior="identity",
        bounds=None,
        solver="dual",
        preprocessor=None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.bounds = bounds
        self.solver = solver
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
        Iterations of the dual solver (or sweeps over the constraints) run.
    duality_gap_ : float
        The duality gap at the returned matrix, relative to the objective:
        the objective is within this fraction of its minimum.
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
        tol=1e-8,
        prior="identity",
        bounds=None,
        solver="dual",
        n_constraints=None,
        random_state=None,
    ):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.prior = prior
        self.bounds = bounds
        self.solver = solver
        self.n_constraints = n_constraints
        self.random_state = random_state
