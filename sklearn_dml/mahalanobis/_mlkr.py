"""Metric learning for kernel regression (MLKR)."""

import numpy as np
import torch
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted, validate_data

from .._docstrings import fill_doc
from ..training.engine import resolve_device
from ._solvers import (
    IterativeLearner,
    PairWeights,
    anchor_blocks,
    flush_subnormals_,
    neighbour_probabilities,
)

__all__ = ["MLKR"]


def loo_predictions(Z, rows, targets):
    """Leave-one-out kernel regression predictions of the anchors ``rows``."""
    return neighbour_probabilities(Z, rows) @ targets


def mlkr_anchor_loss(Z, rows, targets):
    """Squared leave-one-out kernel regression errors of the anchors ``rows``
    (see :class:`MLKR`).

    ``d(y_i - yhat_i)^2 / d d_ik = 2 (y_i - yhat_i) p_ik (y_k - yhat_i)``;
    the loss is returned as
    :class:`~sklearn_dml.mahalanobis._solvers.PairWeights` with those weights.
    """
    targets = targets.to(Z.dtype)
    with torch.no_grad():
        p = neighbour_probabilities(Z, rows)
        prediction = p @ targets
        residual = targets[rows] - prediction
        weights = p.mul_(targets[None, :] - prediction[:, None])
        weights.mul_(2.0 * residual[:, None])
        # a small probability times a small residual: subnormal weights,
        # which slow every product they enter (flush_subnormals_)
        flush_subnormals_(weights)
        return PairWeights((residual**2).sum(dtype=torch.float64), weights)


def _mlkr_auto_init(n_components, n_features):
    return "identity" if n_components == n_features else "pca"


@fill_doc
class MLKR(IterativeLearner):
    r"""Metric learning for kernel regression (Weinberger and Tesauro).

    Learns ``L`` for regression targets: each training sample's target is
    predicted by Nadaraya-Watson kernel regression from all the other
    samples, with a Gaussian kernel in the learned distance, and ``L``
    minimises the squared leave-one-out error. The learned space suits
    nearest-neighbour or kernel regression (and retrieval by target value).

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None keeps ``n_features``.
    {linear_init_param}
        ``"auto"`` is ``"identity"`` when ``n_components`` is
        ``n_features``, ``"pca"`` otherwise; ``"lda"`` is refused (the
        targets are not classes).
    tol : float, default=1e-7
        {linear_tol_text}
        The objective flattens out long before the metric stops improving,
        hence a tolerance tighter than LMNN's.
    {linear_solver_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``.
    n_iter_ : int
        Number of L-BFGS iterations (Adam epochs) run.
    objective_ : float
        The leave-one-out squared error below at ``components_``.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    LinearNCA : The classification counterpart (same soft neighbours).

    Notes
    -----
    With the kernel :math:`k_{ij} = \exp(-\lVert L(x_i - x_j) \rVert^2)`
    (its width is absorbed into the scale of ``L``) and the leave-one-out
    prediction :math:`\hat y_i = \sum_{j \neq i} y_j k_{ij} /
    \sum_{j \neq i} k_{ij}`, the minimised objective (equation (3) of the
    paper) is

    .. math::

        \mathcal{L}(L) = \sum_i (y_i - \hat y_i)^2 .

    Scale the targets as well as the features: the objective, and so
    ``tol``, is in squared target units.

    References
    ----------
    .. [1] K. Q. Weinberger and G. Tesauro, "Metric Learning for Kernel
       Regression", Proceedings of the 11th International Conference on
       Artificial Intelligence and Statistics (AISTATS), 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.mahalanobis import MLKR
    >>> X, y = load_diabetes(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> y = (y - y.mean()) / y.std()
    >>> mlkr = MLKR(n_components=3, device="cpu", random_state=0).fit(X, y)
    >>> mlkr.transform(X).shape
    (442, 3)
    """

    _classification_targets = False

    def __init__(
        self,
        n_components=None,
        *,
        init="auto",
        tol=1e-7,
        max_iter=200,
        solver="auto",
        batch_size=256,
        learning_rate=0.003,
        device="auto",
        precision="float32",
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.init = init
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the metric from samples and their regression targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Their real-valued targets.

        Returns
        -------
        self : object
            The fitted learner.
        """
        return super().fit(X, y)

    def _fit_components(self, X, y):
        device = resolve_device(self.device)
        L0 = self._initial_components(X, None, _mlkr_auto_init)
        targets = torch.tensor(y, dtype=torch.float64, device=device)
        return self._minimize(
            lambda Z, rows: mlkr_anchor_loss(Z, rows, targets), X, L0, device
        )

    def score(self, X, y):
        """R^2 of leave-one-out kernel regression in the learned space.

        Each sample's target is predicted from all the others with the
        Gaussian kernel of the learned distance, as in training.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        y : array-like of shape (n_samples,)
            Their targets.

        Returns
        -------
        score : float
            The coefficient of determination of the leave-one-out
            predictions (1 is perfect; higher is better).
        """
        check_is_fitted(self, "components_")
        X, y = validate_data(self, X, y, reset=False, dtype=np.float64, y_numeric=True)
        with torch.no_grad():
            Z = torch.as_tensor(self.transform(X))
            targets = torch.as_tensor(y, dtype=torch.float64)
            predictions = torch.cat(
                [
                    loo_predictions(Z, torch.arange(b.start, b.stop), targets)
                    for b in anchor_blocks(len(Z), len(Z))
                ]
            )
        return float(r2_score(y, predictions.numpy()))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        return tags
