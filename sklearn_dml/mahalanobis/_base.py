"""The interface shared by the linear (Mahalanobis) metric learners.

A Mahalanobis learner fits a matrix ``L`` (``components_``, of shape
``(n_components, n_features_in_)``); the learned distance is

.. math::

    d(x, x') = \\lVert L x - L x' \\rVert_2
             = \\sqrt{(x - x')^\\top M (x - x')}, \\qquad M = L^\\top L,

so ``transform`` is the linear map ``x -> L x`` and every Euclidean tool
(kNN, clustering, retrieval metrics) applied after it uses the learned
metric. The pair API (``pair_distance``, ``pair_score``, ``get_metric``,
``calibrate_threshold``) comes from
:class:`~sklearn_dml._verification.PairVerificationMixin`, shared with the
deep embedders.

A learner derives from :class:`BaseMahalanobisLearner` and implements
``_fit_components(X, y)``, which returns ``components_`` (and may return a
dict of further fitted attributes); the base class validates the input,
runs it and sets the fitted state only once it has succeeded, so a failed
``fit`` leaves a previously fitted estimator as it was.
"""

import functools
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._param_validation import Interval, validate_params
from .._verification import PairVerificationMixin, RetrievalScoreMixin

__all__ = ["BaseMahalanobisLearner", "MahalanobisMixin", "N_COMPONENTS_CONSTRAINT"]

N_COMPONENTS_CONSTRAINT = [None, Interval(Integral, 1, None, closed="left")]


def _linear_embed(components, X):
    """``X @ components.T`` in the precision of ``X`` (float32 or float64)."""
    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    return np.asarray(X, dtype=dtype) @ components.astype(dtype, copy=False).T


class MahalanobisMixin(RetrievalScoreMixin, PairVerificationMixin):
    """The Mahalanobis-matrix interface of a fitted linear metric.

    A class using the mixin sets ``components_`` (array of shape
    ``(n_components, n_features_in_)``) and ``n_features_in_`` when fitted.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import Covariance, MahalanobisMixin
    >>> X, y = load_iris(return_X_y=True)
    >>> cov = Covariance().fit(X)
    >>> isinstance(cov, MahalanobisMixin), cov.get_mahalanobis_matrix().shape
    (True, (4, 4))
    """

    def get_mahalanobis_matrix(self):
        """Return the learned Mahalanobis matrix ``M = components_.T @ components_``.

        Returns
        -------
        M : ndarray of shape (n_features, n_features)
            Symmetric positive semi-definite; the squared learned distance of
            ``x`` and ``x'`` is ``(x - x') @ M @ (x - x')``.
        """
        check_is_fitted(self, "components_")
        L = np.asarray(self.components_, dtype=np.float64)
        return L.T @ L

    def _embed(self, X):
        check_is_fitted(self, "components_")
        return _linear_embed(self.components_, X)

    def _frozen_embed(self):
        check_is_fitted(self, "components_")
        return functools.partial(_linear_embed, np.array(self.components_, copy=True))

    def transform(self, X):
        """Map samples into the learned space: ``X @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The transformed samples, float32 for float32 input and float64
            otherwise. Euclidean distances between them are the learned
            Mahalanobis distances.
        """
        check_is_fitted(self, "components_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _linear_embed(self.components_, X)


class ConstrainedParametersMixin:
    """``_parameter_constraints`` merged along the class hierarchy, checked at fit.

    Each class declares the constraints of its own parameters; a subclass's
    table is the union of those of its bases and its own, and
    ``_validate_params`` checks every parameter against it.
    """

    _parameter_constraints = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        merged = {}
        for base in reversed(cls.__mro__):
            merged.update(base.__dict__.get("_parameter_constraints", {}))
        cls._parameter_constraints = merged

    def _validate_params(self):
        validate_params(
            self._parameter_constraints,
            self.get_params(deep=False),
            type(self).__name__,
        )


class BaseMahalanobisLearner(
    ConstrainedParametersMixin, MahalanobisMixin, TransformerMixin, BaseEstimator
):
    """Base class of the supervised linear metric learners.

    Subclasses declare ``_parameter_constraints`` (merged with the base's)
    and implement ``_fit_components(X, y)`` on validated float64 ``X`` and
    the labels or targets ``y`` (after ``_check_targets``); it returns
    ``components_`` or ``(components_, extra)``, where ``extra`` is a dict
    of further fitted attributes (``n_iter_``, ``objective_``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dml.mahalanobis import BaseMahalanobisLearner
    >>> class Scaling(BaseMahalanobisLearner):
    ...     # Divide each feature by its standard deviation.
    ...     def _fit_components(self, X, y):
    ...         return np.diag(1.0 / X.std(axis=0))
    >>> X = np.array([[0.0, 0.0], [2.0, 20.0], [4.0, 40.0]])
    >>> Scaling().fit(X, [0, 0, 1]).transform(X).std(axis=0)
    array([1., 1.])
    """

    #: Subclasses with an ``n_components`` parameter add
    #: ``"n_components": N_COMPONENTS_CONSTRAINT`` to their table.
    _parameter_constraints = {}

    #: Whether ``y`` holds class labels (True) or regression targets (False).
    _classification_targets = True

    def _check_n_components(self, n_features):
        """The output size: ``n_components``, or ``n_features`` when None."""
        n_components = getattr(self, "n_components", None)
        if n_components is None:
            return n_features
        if n_components > n_features:
            raise ValueError(
                f"n_components={n_components} exceeds the number of features "
                f"({n_features}) of X; choose n_components <= {n_features} or None."
            )
        return n_components

    def _check_targets(self, y):
        """Validate ``y`` (class labels or regression targets); return it."""
        if self._classification_targets:
            from sklearn.utils.multiclass import check_classification_targets

            check_classification_targets(y)
        return y

    def fit(self, X, y=None):
        """Learn the metric from samples and their labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Their class labels (regression targets for MLKR).

        Returns
        -------
        self : object
            The fitted learner.
        """
        self._validate_params()
        saved = dict(self.__dict__)
        try:
            if y is None and not self.__sklearn_tags__().target_tags.required:
                X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
            else:
                X, y = validate_data(
                    self,
                    X,
                    y,
                    dtype=np.float64,
                    ensure_min_samples=2,
                    y_numeric=not self._classification_targets,
                )
                y = self._check_targets(y)
            result = self._fit_components(X, y)
            components, extra = result if isinstance(result, tuple) else (result, {})
            components = np.asarray(components, dtype=np.float64)
            if not np.isfinite(components).all():
                raise FloatingPointError(
                    f"{type(self).__name__} diverged: the learned components are not "
                    "finite. Scale the features (e.g. StandardScaler) or lower the "
                    "learning rate."
                )
        except BaseException:
            # A failed fit leaves the estimator exactly as it was.
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        self.__dict__.pop("threshold_", None)  # calibrated for the previous metric
        self.components_ = components
        for name, value in extra.items():
            setattr(self, name, value)
        return self

    def _fit_components(self, X, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
