"""The base of the weakly supervised Mahalanobis learners, and their helpers.

A weakly supervised learner derives from :class:`BaseWeakMahalanobisLearner`
and one of the constraint classifier mixins of
:mod:`sklearn_dml._constraint_classifiers` (pairs, triplets, quadruplets),
and implements ``_fit_tuples(features, labels)`` on the validated float64
tuples of shape ``(n_tuples, k, n_features)``; like
``BaseMahalanobisLearner._fit_components`` it returns ``components_`` or
``(components_, extra)``. ``fit`` is atomic: a failed fit leaves a fitted
learner as it was.

Its supervised counterpart (``<Name>Supervised``) is a
:class:`~sklearn_dml.mahalanobis.BaseMahalanobisLearner` that draws the
constraints from the labels (:mod:`sklearn_dml.constraints`) and calls the
same solver.
"""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from .._docstrings import register_doc
from .._param_validation import Interval, StrOptions
from ..constraints import positive_negative_pairs
from ._base import BaseMahalanobisLearner, ConstrainedParametersMixin, MahalanobisMixin

__all__ = ["BaseWeakMahalanobisLearner"]

PREPROCESSOR_CONSTRAINT = [None, "array-like", "callable"]
#: The ``n_constraints`` parameter of the supervised learners drawing constraints.
N_CONSTRAINTS = {"n_constraints": [None, Interval(Integral, 1, None, closed="left")]}
PRIOR_CONSTRAINT = [StrOptions({"identity", "covariance"}), "array-like"]

#: The numpydoc entry of ``prior``, inserted in the learners' parameter blocks.
PRIOR_DOC = """
    prior : {"identity", "covariance"} or array-like of shape \
(n_features, n_features), default="identity"
        The prior Mahalanobis matrix :math:`M_0`: the identity, the inverse
        covariance of the distinct samples of the constraints (regularised by
        ``1e-10`` times its trace to be strictly positive definite), or a
        symmetric positive definite matrix.
"""


register_doc(
    "pairs_learner_attributes",
    """
    classes_ : ndarray of shape (2,)
        The two pair labels seen in ``fit`` (different, same).
    threshold_ : float
        Distance threshold of :meth:`predict`, calibrated for accuracy on
        the training pairs.
    n_features_in_ : int
        Number of features of the samples.
    """,
)

register_doc(
    "drawn_pairs_params",
    """
    n_constraints : int, default=None
        Pairs of each kind drawn from the labels; ``None`` draws
        ``20 * n_classes**2``.

    random_state : int, RandomState instance or None, default=None
        Seed of the drawn pairs.
    """,
)


class BaseWeakMahalanobisLearner(
    ConstrainedParametersMixin, MahalanobisMixin, BaseEstimator
):
    """Base class of the Mahalanobis learners fitted on tuples (weak supervision).

    Subclasses put a constraint classifier mixin first in their bases,
    declare ``_parameter_constraints`` (merged with the base's, which holds
    ``preprocessor``) and implement ``_fit_tuples(features, labels)``.

    Examples
    --------
    >>> from sklearn_dml.mahalanobis import ITML, BaseWeakMahalanobisLearner
    >>> issubclass(ITML, BaseWeakMahalanobisLearner)
    True
    """

    _parameter_constraints = {"preprocessor": PREPROCESSOR_CONSTRAINT}

    def fit(self, tuples, y=None):
        """Learn the metric from constraints.

        Parameters
        ----------
        tuples : array-like of shape (n_tuples, k, n_features) or (n_tuples, k)
            Pairs (``k = 2``), triplets (``k = 3``) or quadruplets
            (``k = 4``) as the learner takes them, as features or as indices
            resolved through ``preprocessor``.
        y : array-like of shape (n_tuples,) or None
            For pairs, each pair's label (``1``/``True`` same,
            ``-1``/``0``/``False`` different); ``None`` for triplets and
            quadruplets.

        Returns
        -------
        self : object
            The fitted learner.
        """
        self._validate_params()
        saved = dict(self.__dict__)
        try:
            features = self._tuples(tuples, reset=True, name="tuples")
            labels = self._constraint_labels(features.shape[0], y)
            result = self._fit_tuples(features, labels)
            components, extra = result if isinstance(result, tuple) else (result, {})
            components = np.asarray(components, dtype=np.float64)
            if not np.isfinite(components).all():
                raise FloatingPointError(
                    f"{type(self).__name__} diverged: the learned components are not "
                    "finite. Scale the features (e.g. StandardScaler)."
                )
            self.__dict__.pop("threshold_", None)
            self.components_ = components
            for name, value in extra.items():
                setattr(self, name, value)
            self._finish_constraint_fit(features, labels)
        except BaseException:
            # A failed fit leaves the estimator exactly as it was.
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _fit_tuples(self, features, labels):
        same = None if labels is None else labels[0]
        M, extra = self._solve(features, same)
        return components_from_metric(M), extra


class SupervisedFromConstraints(BaseMahalanobisLearner):
    """Base of the ``<Name>Supervised`` learners: constraints drawn from labels.

    A subclass derives from the learner's solver mixin (which gives
    ``_solve(features, same)``, the one shared with the weak learner) and
    from this class; ``_draw_constraints(X, y)`` returns the tuples of
    features and the "same" mask (``None`` for triplets and quadruplets),
    by default same-class and different-class pairs.
    """

    _parameter_constraints = {"random_state": ["random_state"]}

    def _draw_constraints(self, X, y):
        pairs, y_pairs = positive_negative_pairs(
            y, self.n_constraints, random_state=self.random_state
        )
        return X[pairs], y_pairs == 1

    def _fit_components(self, X, y):
        features, same = self._draw_constraints(X, y)
        M, extra = self._solve(features, same)
        return components_from_metric(M), extra


class SolverParamsMixin:
    """``_solve(features, same)``: the learner's solver with its parameters.

    A learner's solver mixin sets ``_solver`` (a ``staticmethod``
    ``solver(features, same, **params)``) and ``_solver_params`` (the
    names of the parameters forwarded to it).
    """

    _solver_params = ()

    def _solve(self, features, same):
        params = {name: getattr(self, name) for name in self._solver_params}
        return self._solver(features, same, **params)


def log_det_positive_definite(M):
    """``log det M`` for a symmetric positive definite ``M``, else None.

    Decided by a Cholesky factorisation: the sign of the determinant alone
    would take a matrix with an even number of negative eigenvalues for a
    positive definite one.
    """
    try:
        factor = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    return float(2.0 * np.log(np.diag(factor)).sum())


def quadratic_forms(V, M):
    """``v_i^T M v_i`` for every row ``v_i`` of ``V``, by one matrix product.

    (A three-operand ``np.einsum`` computes the same sums without BLAS, tens
    of times slower.)
    """
    return np.einsum("ij,ij->i", V @ M, V)


def distinct_samples(features):
    """The distinct rows of the samples of tuples ``(n, k, d)``."""
    return np.unique(features.reshape(-1, features.shape[2]), axis=0)


def prior_matrix(prior, features):
    """The prior ``M0`` (symmetric positive definite) and its inverse.

    ``features`` holds the tuples ``(n, k, d)``; ``"covariance"`` is the
    inverse covariance of their distinct samples.
    """
    d = features.shape[2]
    if isinstance(prior, str) and prior == "identity":
        return np.eye(d), np.eye(d)
    if isinstance(prior, str):  # "covariance"
        cov = np.atleast_2d(np.cov(distinct_samples(features), rowvar=False))
        cov = cov + 1e-10 * max(np.trace(cov), 1e-300) * np.eye(d)
        return np.linalg.inv(cov), cov
    M0 = check_array(prior, dtype=np.float64, input_name="prior")
    if M0.shape != (d, d):
        raise ValueError(
            f"prior must be a matrix of shape (n_features, n_features) = ({d}, {d}); "
            f"got shape {M0.shape}."
        )
    if not np.allclose(M0, M0.T, rtol=1e-7, atol=1e-12):
        raise ValueError("prior must be a symmetric matrix.")
    try:
        np.linalg.cholesky(M0)
    except np.linalg.LinAlgError:
        raise ValueError(
            "prior must be positive definite (its Cholesky factorisation failed)."
        ) from None
    return M0.copy(), np.linalg.inv(M0)


def components_from_metric(M, tol=None):
    """``L`` with ``L.T @ L = M`` for a symmetric PSD ``M`` (negative parts clipped).

    The symmetric square root ``V diag(sqrt(w)) V.T``, of shape ``(d, d)``.
    """
    M = (M + M.T) / 2
    w, V = np.linalg.eigh(M)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def psd_projection(M, floor=0.0):
    """The nearest symmetric matrix (Frobenius) with eigenvalues at least ``floor``."""
    w, V = np.linalg.eigh((M + M.T) / 2)
    return (V * np.maximum(w, floor)) @ V.T
