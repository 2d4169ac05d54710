"""Neighbourhood components analysis with a linear map (LinearNCA)."""

import numpy as np
import torch

from .._docstrings import fill_doc
from ..training.engine import resolve_device
from ._solvers import (
    IterativeLearner,
    PairWeights,
    consecutive,
    neighbour_probabilities,
)

__all__ = ["LinearNCA"]


def nca_anchor_loss(Z, rows, labels, same=None):
    """Minus the probability that each anchor of ``rows`` picks a same-class
    neighbour, summed (see :class:`LinearNCA`).

    With ``p_i`` that probability, ``d(-p_i)/d d_ik = p_ik (same_ik - p_i)``
    (Goldberger et al., eq. (5)); the block's loss is returned as
    :class:`~sklearn_dml.mahalanobis._solvers.PairWeights` with those weights.
    ``same`` is the ``(len(rows), n)`` indicator of same-class pairs in
    ``Z``'s dtype when the caller has it; otherwise it is formed here.
    """
    with torch.no_grad():
        p = neighbour_probabilities(Z, rows)
        if same is None:
            same = (labels[rows, None] == labels[None, :]).to(p.dtype)
        p_same = torch.linalg.vecdot(p, same, dim=1)
        weights = (same - p_same[:, None]).mul_(p)
        return PairWeights(-p_same.sum(dtype=torch.float64), weights)


#: Largest ``n_samples ** 2`` for which LinearNCA keeps the same-class
#: indicator of all pairs between evaluations (16 MiB in float32).
_SAME_PAIRS_KEPT = 2**22


@fill_doc
class LinearNCA(IterativeLearner):
    r"""Neighbourhood components analysis: a linear map for stochastic 1-NN.

    Learns ``L`` maximising the expected number of samples that a
    stochastic nearest-neighbour rule classifies correctly, each sample
    picking a neighbour with a probability that decays with the learned
    squared distance. The linear, NumPy-in/NumPy-out counterpart of the deep
    :class:`~sklearn_dml.NCAEmbedder`. Full-batch L-BFGS on small data, Adam
    on mini-batches of anchors (each against all samples) on large data;
    either way memory grows with ``block x n_samples``, never with
    ``n_samples ** 2``.

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None keeps ``n_features``.
    {linear_init_param}
        ``"auto"`` is ``"lda"`` when ``n_components`` is at most
        ``min(n_features, n_classes - 1)``, ``"pca"`` when it is below
        ``min(n_features, n_samples)``, ``"identity"`` otherwise (the rule of
        scikit-learn's ``NeighborhoodComponentsAnalysis``).
    tol : float, default=1e-7
        {linear_tol_text}
        The objective flattens out long before the metric stops improving,
        hence a tolerance tighter than the other learners'.
    {linear_solver_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``.
    n_iter_ : int
        Number of L-BFGS iterations (Adam epochs) run.
    objective_ : float
        The minimised objective at ``components_``: minus the expected
        number of correctly classified training samples.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    sklearn.neighbors.NeighborhoodComponentsAnalysis : The same objective,
        NumPy and L-BFGS only.
    LMNN : A margin on a few target neighbours instead of a soft choice.

    Notes
    -----
    With :math:`p_{ij} = \exp(-\lVert Lx_i - Lx_j \rVert^2) / \sum_{k \neq i}
    \exp(-\lVert Lx_i - Lx_k \rVert^2)` for :math:`j \neq i` (and
    :math:`p_{ii} = 0`), the minimised objective is

    .. math::

        f(L) = -\sum_i \sum_{j : y_j = y_i} p_{ij},

    minus equation (1) of the paper, whose gradient is its equation (5).

    References
    ----------
    .. [1] J. Goldberger, S. Roweis, G. Hinton and R. Salakhutdinov,
       "Neighbourhood Components Analysis", Advances in Neural Information
       Processing Systems 17, 2004.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.mahalanobis import LinearNCA
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> nca = LinearNCA(n_components=2, device="cpu", random_state=0).fit(X, y)
    >>> nca.transform(X).shape
    (150, 2)
    >>> nca.score(X, y) > 0.8
    True
    """

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

    def _fit_components(self, X, y):
        _, labels = np.unique(y, return_inverse=True)
        device = resolve_device(self.device)
        n_samples = X.shape[0]
        n_classes = labels.max() + 1

        def auto(n_components, n_features):
            if n_components <= min(n_features, n_classes - 1):
                return "lda"
            if n_components < min(n_features, n_samples):
                return "pca"
            return "identity"

        L0 = self._initial_components(X, labels, auto)
        labels_t = torch.as_tensor(labels, device=device)
        kept = {}

        def anchor_loss(Z, rows):
            # The full-batch solver evaluates every anchor at once, with the
            # same labels each time: their indicator is formed once.
            whole = len(rows) == n_samples and consecutive(rows)
            if n_samples**2 > _SAME_PAIRS_KEPT or not whole:
                return nca_anchor_loss(Z, rows, labels_t)
            if Z.dtype not in kept:
                same = labels_t[:, None] == labels_t[None, :]
                kept[Z.dtype] = same.to(Z.dtype)
            return nca_anchor_loss(Z, rows, labels_t, kept[Z.dtype])

        return self._minimize(anchor_loss, X, L0, device)
