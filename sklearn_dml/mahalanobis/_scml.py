"""Sparse compositional metric learning (SCML) of Shi et al. (2014), global version."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array, check_random_state

from .._constraint_classifiers import TripletsClassifierMixin
from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval, StrOptions
from ..constraints import knn_triplets
from ._weak import (
    BaseWeakMahalanobisLearner,
    SolverParamsMixin,
    SupervisedFromConstraints,
    components_from_metric,
)

__all__ = ["SCML", "SCMLSupervised"]

_PARAMS = {
    "beta": [Interval(Real, 0, None, closed="left")],
    "n_basis": [None, Interval(Integral, 1, None, closed="left")],
    "gamma": [Interval(Real, 0, None, closed="neither")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "output_iter": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}

_SOLVER_DOC = """
    beta : float, default=1e-5
        Weight :math:`\\beta` of the l1 penalty on the basis weights (the
        sparsity of the combination).

    n_basis : int, default=None
        Number of rank-one bases; ``None`` takes {n_basis_default}.

    gamma : float, default=5e-3
        Step parameter :math:`\\gamma` of the dual averaging (larger is
        more cautious).

    max_iter : int, default=10000
        Number of stochastic steps.

    output_iter : int, default=500
        Every ``output_iter`` steps the objective on all triplets is
        evaluated and the best weights so far are kept.

    batch_size : int, default=10
        Triplets per stochastic step.

    random_state : int, RandomState instance or None, default=None
        Seed of the bases and of the stochastic steps.
"""

register_doc(
    "scml_params",
    """
    basis : "triplet_diffs" or array-like of shape (n_basis, n_features), \
default="triplet_diffs"
        The rank-one bases :math:`b_k`: directions that separate the
        negatives from the positives of random groups of triplets (see
        Notes), or given ones.
"""
    + _SOLVER_DOC.format(n_basis_default="``80 * n_features``"),
)

register_doc(
    "scml_supervised_params",
    """
    k_genuine : int, default=3
        Same-class nearest neighbours per sample in the triplets.

    k_impostor : int, default=10
        Other-class nearest neighbours per sample in the triplets.

    basis : {"lda", "triplet_diffs"} or array-like of shape \
(n_basis, n_features), default="lda"
        The rank-one bases: local discriminant directions (LDA on the
        neighbourhoods of k-means centres, as in the paper), the
        triplet-difference bases of :class:`SCML`, or given ones.
"""
    + _SOLVER_DOC.format(
        n_basis_default="``min(20 * n_features, 2 * n_samples * n_dirs - 1)``, "
        "``n_dirs = min(n_classes - 1, n_features)``, with ``basis='lda'`` "
        "(``80 * n_features`` otherwise)"
    ),
)

register_doc(
    "scml_notes",
    """
    SCML [1]_ learns :math:`M = \\sum_k w_k b_k b_k^\\top` with
    :math:`w \\ge 0`, a sparse combination of rank-one bases, from triplets
    :math:`(a, p, n)`:

    .. math::

        \\min_{w \\ge 0} \\frac{1}{|C|} \\sum_{(a, p, n) \\in C}
        \\big[1 + d_w(x_a, x_p) - d_w(x_a, x_n)\\big]_+ + \\beta \\lVert w
        \\rVert_1, \\qquad d_w(x, x') = \\sum_k w_k \\big(b_k^\\top (x -
        x')\\big)^2,

    convex in :math:`w`, by regularised dual averaging with AdaGrad step
    sizes on mini-batches of triplets (as in the paper): with
    :math:`\\bar g_t` the mean of the subgradients so far and :math:`H_t =
    \\delta + \\sqrt{\\sum_{s \\le t} g_s^2}`, :math:`w_{t+1} = \\frac{t}{\\gamma
    H_t} \\max(0, -\\bar g_t - \\beta)` entrywise. This is the global
    version; the local (multi-metric) one of the paper is not implemented.

    Triplet-difference bases: for each of a few random groups of triplets
    (``n_features`` triplets each), the eigenvectors with a positive
    eigenvalue of :math:`\\sum (x_a - x_n)(x_a - x_n)^\\top - \\sum (x_a -
    x_p)(x_a - x_p)^\\top`, the directions where the group's negatives lie
    farther than its positives. LDA bases (supervised only): k-means
    centres, at two scales the nearest samples of each class to each
    centre, and the discriminant directions of that neighbourhood.
    """,
)


def scml_objective(M, features, beta, w):
    """Mean hinge ``[1 + d(a, p) - d(a, n)]_+`` at ``M`` plus ``beta * sum(w)``."""
    return _mean_hinge(*_hinge_directions(features), M) + beta * float(np.sum(w))


def _hinge_directions(features):
    """``u = n - p`` and ``v = 2a - p - n`` of each triplet ``(a, p, n)``.

    For a symmetric ``M``, ``d_M(a, p) - d_M(a, n) = (a - p)^T M (a - p) -
    (a - n)^T M (a - n) = u^T M v``: one product with ``M`` per triplet
    instead of two, and along a rank-one basis ``b b^T`` the product ``(u .
    b)(v . b)`` instead of a difference of squares.
    """
    a, p, n = features[:, 0], features[:, 1], features[:, 2]
    return n - p, 2 * a - p - n


def _mean_hinge(u, v, M):
    """Mean of ``[1 + d(a, p) - d(a, n)]_+`` from :func:`_hinge_directions`."""
    return float(np.maximum(1 + np.einsum("ij,ij->i", u @ M, v), 0).mean())


def _unit_rows(B):
    norms = np.linalg.norm(B, axis=1, keepdims=True)
    return B[norms[:, 0] > 0] / norms[norms[:, 0] > 0]


def triplet_diff_basis(features, n_basis, rng):
    """Directions separating negatives from positives in random groups of triplets."""
    n, _, d = features.shape
    ap = features[:, 0] - features[:, 1]
    an = features[:, 0] - features[:, 2]
    found, total = [], 0
    for _ in range(100):  # rounds of groups; one round nearly always suffices
        n_groups = max(1, -(-2 * (n_basis - total) // d))
        pick = rng.randint(n, size=(n_groups, min(d, n)))
        C = np.einsum("gij,gik->gjk", an[pick], an[pick]) - np.einsum(
            "gij,gik->gjk", ap[pick], ap[pick]
        )
        w, V = np.linalg.eigh(C)
        directions = np.swapaxes(V, 1, 2)[w > 1e-12 * np.abs(w).max()]
        found.append(_unit_rows(directions))
        total += found[-1].shape[0]
        if total >= n_basis:
            break
    B = np.concatenate(found)
    if B.shape[0] < n_basis:
        raise ValueError(
            f"Only {B.shape[0]} triplet-difference bases could be built, fewer than "
            f"n_basis={n_basis}: in no direction do the negatives of the triplets lie "
            "farther than the positives often enough. Lower n_basis."
        )
    return B[:n_basis]


def lda_basis(X, y, n_basis, rng):
    """Local discriminant directions around k-means centres (two scales)."""
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    labels, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_classes, d = labels.shape[0], X.shape[1]
    n_dirs = min(n_classes - 1, d)
    if n_dirs < 1:
        raise ValueError("LDA bases need at least two classes.")
    n_clusters = int(np.ceil(n_basis / (2 * n_dirs)))
    if n_clusters > X.shape[0]:
        raise ValueError(
            f"n_basis={n_basis} LDA bases need {n_clusters} k-means centres, more "
            f"than the {X.shape[0]} samples; lower n_basis."
        )
    centres = (
        KMeans(n_clusters=n_clusters, n_init=3, random_state=rng.randint(2**31 - 1))
        .fit(X)
        .cluster_centers_
    )
    scales = (20, 50) if d > 50 else (10, 20)
    found = []
    for scale in scales:
        # The `scale` nearest samples of each class to each centre.
        idx, cls = [], []
        for c in range(n_classes):  # one neighbour search per class
            members = np.flatnonzero(codes == c)
            k = min(scale, counts[c])
            nn = NearestNeighbors(n_neighbors=k).fit(X[members])
            idx.append(members[nn.kneighbors(centres, return_distance=False)])
            cls.append(np.full(k, c))
        idx, cls = np.concatenate(idx, axis=1), np.concatenate(cls)
        Xn = X[idx]  # (n_clusters, K, d)
        onehot = np.eye(n_classes)[cls]  # (K, n_classes)
        size = onehot.sum(0)
        # Batched matrix products (BLAS), not einsum: tens of times faster.
        means = (onehot.T @ Xn) / size[None, :, None]
        centred = Xn - means[:, cls]
        Sw = np.swapaxes(centred, 1, 2) @ centred
        mean_all = Xn.mean(axis=1)
        between = (means - mean_all[:, None]) * np.sqrt(size)[None, :, None]
        Sb = np.swapaxes(between, 1, 2) @ between
        ridge = 1e-6 * np.trace(Sw, axis1=1, axis2=2)[:, None, None] + 1e-12
        Lw = np.linalg.cholesky(Sw + ridge * np.eye(d))
        # Generalised eigenproblem Sb v = l Sw v, whitened by Sw = Lw Lw^T.
        A = np.linalg.solve(Lw, np.swapaxes(np.linalg.solve(Lw, Sb), 1, 2))
        _, U = np.linalg.eigh((A + np.swapaxes(A, 1, 2)) / 2)
        V = np.linalg.solve(np.swapaxes(Lw, 1, 2), U[:, :, ::-1][:, :, :n_dirs])
        found.append(_unit_rows(np.swapaxes(V, 1, 2).reshape(-1, d)))
    B = np.concatenate(found)
    return B[rng.permutation(B.shape[0])[:n_basis]]


#: Entries of the block of per-basis distance differences computed at once.
_SCML_BLOCK_ROWS = 1 << 18


def scml_solve(
    features,
    same,
    *,
    basis,
    beta,
    n_basis,
    gamma,
    max_iter,
    output_iter,
    batch_size,
    random_state,
):
    """Run global SCML on triplets of features ``(n, 3, d)``.

    ``basis`` is an array of bases or ``"triplet_diffs"``. Returns ``(M,
    extra)``: the learned Mahalanobis matrix and ``basis_``, ``weights_``,
    ``n_iter_``.
    """
    rng = check_random_state(random_state)
    d = features.shape[2]
    if isinstance(basis, str):
        B = triplet_diff_basis(features, 80 * d if n_basis is None else n_basis, rng)
    else:
        B = check_array(basis, dtype=np.float64, input_name="basis")
        if B.shape[1] != d:
            raise ValueError(
                f"basis has {B.shape[1]} features per row, the data {d}; give an "
                "array of shape (n_basis, n_features)."
            )
    u, v = _hinge_directions(features)
    n, k = u.shape[0], B.shape[0]
    # The stochastic steps run in float32 (the batches' distance differences
    # and the weights they see); the sums of the dual averaging, the
    # weights and the objective that picks the best of them in float64.
    u32, v32, B32 = (np.asarray(x, dtype=np.float32) for x in (u, v, B))
    w, w32 = np.zeros(k), np.zeros(k, dtype=np.float32)
    grad_sum, sq_grad, step = np.zeros(k), np.zeros(k), np.empty(k)
    best_w, best_value = w, np.inf
    batches = rng.randint(n, size=(max_iter, batch_size))
    # The batches' distance differences along each basis do not depend on the
    # weights: computed for a block of steps at once, (steps, batch, k).
    block = max(1, _SCML_BLOCK_ROWS // (batch_size * k))
    for t in range(max_iter):
        if t % block == 0:
            idx = batches[t : t + block].ravel()
            diffs = u32[idx] @ B32.T
            diffs *= v32[idx] @ B32.T
            diffs = diffs.reshape(-1, batch_size, k)
        diff = diffs[t % block]
        # The gradient times batch_size: the sum over the active triplets.
        grad = (diff @ w32 > -1).astype(np.float32) @ diff
        grad_sum += grad
        sq_grad += np.square(grad)
        # Dual averaging with AdaGrad scaling and the l1 prox (the paper's
        # update), w = (t + 1) / (gamma (1e-3 + sqrt(G))) * [-mean - beta]_+
        # with G the summed squared gradients and mean their mean, written
        # with the sums of the unscaled gradients.
        np.sqrt(sq_grad, out=step)
        step += 1e-3 * batch_size
        step *= gamma
        w = np.maximum(-grad_sum - (t + 1) * beta * batch_size, 0.0)
        w /= step
        w32[:] = w
        if (t + 1) % output_iter == 0 or t + 1 == max_iter:
            value = _mean_hinge(u, v, (B.T * w) @ B) + beta * float(np.sum(w))
            if value < best_value:
                best_w, best_value = w, value
    M = (B.T * best_w) @ B
    return M, {"basis_": B, "weights_": best_w, "n_iter_": max_iter}


register_doc(
    "scml_references",
    """
    .. [1] Y. Shi, A. Bellet and F. Sha, "Sparse Compositional Metric
       Learning", AAAI 2014.
    """,
)


class _SCMLSolver(SolverParamsMixin):
    _solver = staticmethod(scml_solve)
    _solver_params = ("basis", *_PARAMS)


@fill_doc
class SCML(_SCMLSolver, TripletsClassifierMixin, BaseWeakMahalanobisLearner):
    """Sparse compositional metric learning on triplets (Shi et al., 2014).

    Learns a Mahalanobis matrix as a sparse non-negative combination of
    rank-one bases, such that in each triplet ``(a, p, n)`` the anchor is
    closer to ``p`` than to ``n`` by a margin. Fitted on triplets; for
    labelled samples use :class:`SCMLSupervised`.

    Parameters
    ----------
    {scml_params}

    {preprocessor_param}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    basis_ : ndarray of shape (n_basis, n_features)
        The bases :math:`b_k`.
    weights_ : ndarray of shape (n_basis,)
        Their learned non-negative weights (sparse).
    n_iter_ : int
        Stochastic steps run.
    n_features_in_ : int
        Number of features of the samples.

    See Also
    --------
    SCMLSupervised : The same, with nearest-neighbour triplets from labels.

    Notes
    -----
    {scml_notes}

    References
    ----------
    {scml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.constraints import triplets_from_labels
    >>> from sklearn_dml.mahalanobis import SCML
    >>> X, y = load_iris(return_X_y=True)
    >>> triplets = triplets_from_labels(y, 200, random_state=0)
    >>> scml = SCML(n_basis=40, max_iter=2000, random_state=0, preprocessor=X)
    >>> scml.fit(triplets).score(triplets) > 0.9
    True
    """

    _parameter_constraints = {
        **_PARAMS,
        "basis": [StrOptions({"triplet_diffs"}), "array-like"],
    }

    def __init__(
        self,
        basis="triplet_diffs",
        beta=1e-5,
        n_basis=None,
        gamma=5e-3,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        random_state=None,
        preprocessor=None,
    ):
        self.basis = basis
        self.beta = beta
        self.n_basis = n_basis
        self.gamma = gamma
        self.max_iter = max_iter
        self.output_iter = output_iter
        self.batch_size = batch_size
        self.random_state = random_state
        self.preprocessor = preprocessor


@fill_doc
class SCMLSupervised(_SCMLSolver, SupervisedFromConstraints):
    """Sparse compositional metric learning from class labels (Shi et al., 2014).

    Builds the nearest-neighbour triplets of the labelled samples
    (:func:`~sklearn_dml.constraints.knn_triplets`) and local discriminant
    bases, and runs :class:`SCML` on them.

    Parameters
    ----------
    {scml_supervised_params}

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        ``L`` with ``L.T @ L`` the learned Mahalanobis matrix.
    basis_ : ndarray of shape (n_basis, n_features)
        The bases :math:`b_k`.
    weights_ : ndarray of shape (n_basis,)
        Their learned non-negative weights (sparse).
    n_iter_ : int
        Stochastic steps run.
    n_features_in_ : int
        Number of features seen during ``fit``.

    See Also
    --------
    SCML : The same on given triplets.

    Notes
    -----
    {scml_notes}

    References
    ----------
    {scml_references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml.mahalanobis import SCMLSupervised
    >>> X, y = load_iris(return_X_y=True)
    >>> scml = SCMLSupervised(max_iter=2000, random_state=0).fit(X, y)
    >>> from sklearn_dml.metrics import map_at_r_score
    >>> bool(scml.score(X, y) > map_at_r_score(X, y))  # MAP@R, above Euclidean
    True
    """

    _parameter_constraints = {
        **_PARAMS,
        "k_genuine": [Interval(Integral, 1, None, closed="left")],
        "k_impostor": [Interval(Integral, 1, None, closed="left")],
        "basis": [StrOptions({"lda", "triplet_diffs"}), "array-like"],
    }

    def __init__(
        self,
        k_genuine=3,
        k_impostor=10,
        basis="lda",
        beta=1e-5,
        n_basis=None,
        gamma=5e-3,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        random_state=None,
    ):
        self.k_genuine = k_genuine
        self.k_impostor = k_impostor
        self.basis = basis
        self.beta = beta
        self.n_basis = n_basis
        self.gamma = gamma
        self.max_iter = max_iter
        self.output_iter = output_iter
        self.batch_size = batch_size
        self.random_state = random_state

    def _draw_constraints(self, X, y):
        triplets = knn_triplets(
            X, y, k_genuine=self.k_genuine, k_impostor=self.k_impostor
        )
        return X[triplets], None

    def _fit_components(self, X, y):
        features, _ = self._draw_constraints(X, y)
        params = {name: getattr(self, name) for name in self._solver_params}
        if isinstance(self.basis, str) and self.basis == "lda":
            rng = check_random_state(self.random_state)
            n_basis = self.n_basis
            if n_basis is None:
                n_dirs = min(np.unique(y).shape[0] - 1, X.shape[1])
                n_basis = min(20 * X.shape[1], 2 * X.shape[0] * n_dirs - 1)
            params["basis"] = lda_basis(X, y, n_basis, rng)
            params["random_state"] = rng  # the solver draws on after the bases
        M, extra = self._solver(features, None, **params)
        return components_from_metric(M), extra
