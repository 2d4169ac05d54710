"""The covariance metric: whitening by the inverse covariance of the data."""

import numpy as np

from ._base import BaseMahalanobisLearner

__all__ = ["Covariance"]


class Covariance(BaseMahalanobisLearner):
    """Mahalanobis distance of the training data's covariance (no labels used).

    The learned matrix is the inverse of the sample covariance,
    ``M = Sigma^{-1}``, so ``transform`` whitens the data: the transformed
    training samples have identity covariance. It is the classical baseline
    of every Mahalanobis learner: what a metric gains over it comes from the
    labels. A singular covariance is inverted on its range (pseudo-inverse).

    It has no parameters.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L = pinv(Sigma)`` (symmetric inverse square root).
    n_features_in_ : int
        Number of features seen during ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import Covariance
    >>> X, y = load_iris(return_X_y=True)
    >>> Z = Covariance().fit(X).transform(X)
    >>> bool(np.allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-8))
    True
    """

    _parameter_constraints = {}
    _classification_targets = False

    def fit(self, X, y=None):
        """Learn the inverse covariance of ``X`` (``y`` is ignored)."""
        return super().fit(X, y)

    def _fit_components(self, X, y):
        n_features = X.shape[1]
        cov = np.atleast_2d(np.cov(X, rowvar=False))
        w, V = np.linalg.eigh(cov)
        tol = w.max(initial=0.0) * n_features * np.finfo(np.float64).eps
        inv_sqrt = np.where(w > tol, 1.0 / np.sqrt(np.clip(w, tol, None)), 0.0)
        return (V * inv_sqrt) @ V.T

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
