"""Large margin nearest neighbour (LMNN) metric learning."""

from numbers import Integral, Real

import numpy as np
import torch

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..metrics import chunked_knn
from ..metrics._knn import _collect_below
from ..training.engine import resolve_device
from ._solvers import (
    IterativeLearner,
    PairList,
    check_class_sizes,
    consecutive,
    pairwise_products,
)

__all__ = ["LMNN"]


def _lmnn_auto_init(n_components, n_features):
    # The paper starts from the Euclidean metric, in which the target
    # neighbours were chosen; a reduced output starts from PCA.
    return "identity" if n_components == n_features else "pca"


def same_class_neighbors(X, labels, n_neighbors, device):
    """Indices of the ``n_neighbors`` nearest same-class samples of each sample.

    Exact Euclidean search class by class, without an ``n x n`` matrix.
    """
    neighbors = np.empty((len(X), n_neighbors), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        _, found = chunked_knn(
            X[members], n_neighbors, exclude_self=True, device=device
        )
        neighbors[members] = members[found]
    return neighbors


def _impostors_by_class_blocks(tile, rows, reach, class_ranges):
    """Entries below the reach outside the anchors' own class, samples sorted by class.

    ``rows`` are consecutive samples and ``class_ranges`` the ``(start,
    stop)`` of each class: the same-class entries are rectangles of the
    tile, set to infinity, and the rest is searched by the selection of
    :func:`~sklearn_dml.metrics.chunked_knn` (minima of column groups, only
    the groups below the reach read again) instead of comparing every
    entry. Returns ``(anchor, other, value)``.
    """
    first, last = int(rows[0]), int(rows[-1]) + 1
    for start, stop in class_ranges:
        low, high = max(start, first), min(stop, last)
        if low < high:
            tile[low - first : high - first, start:stop] = torch.inf
    parts = []
    _collect_below(tile, reach[:, None], 0, parts)
    if not parts:
        empty = torch.empty(0, dtype=torch.int64, device=tile.device)
        return empty, empty, tile.new_empty(0)
    anchor, other, value = (torch.cat(part) for part in zip(*parts))
    return anchor, other, value


def lmnn_anchor_loss(Z, rows, targets, labels, push_weight, class_ranges=None):
    """LMNN's objective summed over the anchors ``rows`` (see :class:`LMNN`).

    ``targets`` (n, k) holds the target neighbours, ``labels`` (n,) the
    class codes, both as tensors on ``Z``'s device. On the active triples
    the hinge is linear, ``1 + d_ij - d_il``: with ``c_ij`` the number of
    impostors active for target ``j`` and ``C_il`` the number of targets for
    which ``l`` is an active impostor (both constant between the kinks), the
    objective's gradient is that of ``sum W_ab d_ab`` with ``W_ij = 1 - mu +
    mu c_ij`` on the target pairs and ``W_il = -mu C_il`` on the impostor
    pairs: the block's loss is returned as these weighted pairs
    (:class:`~sklearn_dml.mahalanobis._solvers.PairList`), whose gradient
    costs ``O(pairs x n_components)``. The ``(anchors x samples)`` tile of
    distances only screens the impostors (the samples inside an anchor's
    widest target radius plus the margin); no autograd graph.
    ``class_ranges``, the ``(start, stop)`` of each class when the samples
    are sorted by class and ``rows`` are consecutive, lets the screening
    skip the same-class entries (most of those inside a radius).
    """
    mu = push_weight
    with torch.no_grad():
        anchors = Z[rows]
        gap = anchors[:, None, :] - Z[targets[rows]]
        d_target = (gap * gap).sum(-1)
        # The candidates l: |z_l|^2 - 2 z_i.z_l < radius_i - |z_i|^2, read
        # from one tile of products.
        sq_norms = (Z * Z).sum(1)
        reach = 1.0 + d_target.max(1).values - sq_norms[rows]
        tile = pairwise_products(anchors, Z, sq_norms, -2.0)
        if class_ranges is not None:
            anchor, other, d_other = _impostors_by_class_blocks(
                tile, rows, reach, class_ranges
            )
        else:
            anchor, other = (tile < reach[:, None]).nonzero(as_tuple=True)
            keep = labels[rows[anchor]] != labels[other]
            anchor, other = anchor[keep], other[keep]
            d_other = tile[anchor, other]
        d_other = d_other + sq_norms[rows[anchor]]
        margin = (1.0 + d_target[anchor]).sub_(d_other[:, None])
        active = (margin > 0).to(Z.dtype)
        value = (1.0 - mu) * d_target.sum(dtype=torch.float64) + mu * margin.mul_(
            active
        ).sum(dtype=torch.float64)
        per_target = torch.zeros_like(d_target).index_add_(0, anchor, active)
        per_pair = active.sum(1)  # C_il
        live = per_pair > 0
        n_neighbors = targets.shape[1]
        return PairList(
            value,
            torch.cat([rows.repeat_interleave(n_neighbors), rows[anchor[live]]]),
            torch.cat([targets[rows].reshape(-1), other[live]]),
            torch.cat(
                [
                    per_target.reshape(-1).mul_(mu).add_(1.0 - mu),  # c_ij
                    per_pair[live].mul_(-mu),
                ]
            ),
        )


@fill_doc
class LMNN(IterativeLearner):
    r"""Large margin nearest neighbour metric learning (Weinberger and Saul).

    Learns a linear map ``L`` under which each sample's ``n_neighbors``
    *target neighbours* (its nearest same-class samples in the input space)
    are close, and differently labelled samples (*impostors*) stay at least
    a unit margin farther away than the targets. The objective is a sum
    over anchors evaluated in blocks, so memory grows with
    ``block x n_samples`` and never with ``n_samples ** 2``: tens of
    thousands of samples fit in bounded memory.

    Parameters
    ----------
    n_neighbors : int, default=3
        Number of target neighbours per sample. Every class needs at least
        ``n_neighbors + 1`` samples.
    push_weight : float, default=0.5
        The weight :math:`\mu` in [0, 1] of the impostor (push) term; the
        target (pull) term gets :math:`1 - \mu`.
    n_components : int, default=None
        Dimension of the learned space; None keeps ``n_features``.
    {linear_init_param}
        ``"auto"`` is ``"identity"`` (the Euclidean metric in which the
        target neighbours were chosen, as in the paper) when
        ``n_components`` is ``n_features``, ``"pca"`` otherwise.
    tol : float, default=1e-5
        {linear_tol_text}
    {linear_solver_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``L``.
    n_iter_ : int
        Number of L-BFGS iterations (Adam epochs) run.
    objective_ : float
        The objective below at ``components_``.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    LinearNCA : A smooth neighbourhood objective on all pairs.
    LFDA : A closed-form local discriminant.

    Notes
    -----
    With target neighbours :math:`j \rightsquigarrow i`, :math:`y_{il} = 1`
    when :math:`x_i` and :math:`x_l` share a label and
    :math:`d_{ij} = \lVert L(x_i - x_j) \rVert^2`, the minimised objective is
    equation (13) of the paper:

    .. math::

        \varepsilon(L) = (1 - \mu) \sum_{i, j \rightsquigarrow i} d_{ij}
        + \mu \sum_{i, j \rightsquigarrow i} \sum_l (1 - y_{il})
          \left[1 + d_{ij} - d_{il}\right]_+ .

    It is minimised over ``L`` with L-BFGS (the exact objective and its
    gradient, accumulated over blocks of anchors) or with Adam on
    mini-batches of anchors, each against all samples. The paper's own
    solver is a projected sub-gradient descent on :math:`M = L^\top L`; the
    parametrisation by ``L`` (discussed in the paper) also reduces the
    dimension. Where metric-learn 0.7's ``LMNN`` differs from the paper,
    this class follows the paper: the weight ``push_weight`` is the paper's
    :math:`\mu` on the impostor term (metric-learn's ``regularization``
    weighs the pull term, so ``regularization=r`` is ``push_weight=1 - r``);
    the default start is the Euclidean metric (metric-learn's ``"auto"``
    may start from LDA), and a class with no more samples than
    ``n_neighbors`` is an error rather than a target set holding the
    sample itself. The objective value is the same as metric-learn's at the
    same matrix and target neighbours.

    References
    ----------
    .. [1] K. Q. Weinberger and L. K. Saul, "Distance Metric Learning for
       Large Margin Nearest Neighbor Classification", Journal of Machine
       Learning Research 10, 207-244, 2009.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_dml.mahalanobis import LMNN
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> lmnn = LMNN(n_neighbors=3, device="cpu", random_state=0).fit(X, y)
    >>> lmnn.transform(X).shape
    (150, 4)
    >>> lmnn.score(X, y) > 0.7
    True
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "push_weight": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        n_neighbors=3,
        push_weight=0.5,
        *,
        n_components=None,
        init="auto",
        tol=1e-5,
        max_iter=200,
        solver="auto",
        batch_size=256,
        learning_rate=0.003,
        device="auto",
        precision="float32",
        verbose=0,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.push_weight = push_weight
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
        check_class_sizes(
            labels, self.n_neighbors + 1, f"n_neighbors={self.n_neighbors}"
        )
        device = resolve_device(self.device)
        L0 = self._initial_components(X, labels, _lmnn_auto_init)
        # The objective does not depend on the order of the samples: sorted
        # by class, the same-class pairs of a block of anchors are
        # rectangles of its tile, which the impostor screening skips.
        order = np.argsort(labels, kind="stable")
        X, labels = X[order], labels[order]
        starts = np.flatnonzero(np.diff(labels, prepend=-1))
        class_ranges = list(zip(starts.tolist(), [*starts[1:].tolist(), len(X)]))
        targets = same_class_neighbors(X, labels, self.n_neighbors, device)
        targets_t = torch.as_tensor(targets, device=device)
        labels_t = torch.as_tensor(labels, device=device)

        def anchor_loss(Z, rows):
            blocks = class_ranges if consecutive(rows) else None
            return lmnn_anchor_loss(
                Z, rows, targets_t, labels_t, self.push_weight, blocks
            )

        return self._minimize(anchor_loss, X, L0, device)
