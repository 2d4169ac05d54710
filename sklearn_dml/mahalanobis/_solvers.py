"""What the iterative linear learners share: the starting matrix, the
parameter table and its documentation, and the optimisation of ``L``.

An iterative learner writes its objective as a sum over anchors,
``f(L) = sum_i loss_i(X L^T)``, where the loss of anchor ``i`` may look at
every embedded sample (its neighbours, its impostors, its kernel weights).
It gives :func:`optimize_components` a function ``anchor_loss(Z, rows)``
returning the summed loss of the anchors ``rows`` from the embedded data
``Z``; the function is only ever called on a block of anchors, so memory
grows with ``block x n_samples`` and never with ``n_samples ** 2``:

- ``solver="lbfgs"``: the exact objective and its gradient, accumulated block
  by block (the gradient flows into ``Z``; ``grad_L = grad_Z^T X``), are
  handed to SciPy's L-BFGS-B.
- ``solver="adam"``: each step draws ``batch_size`` anchors and takes an Adam
  step on their loss against all samples: an unbiased stochastic gradient of
  the same objective, for data too large for full passes.
"""

import sys
import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state

from .._blas import blas_threads
from .._docstrings import register_doc
from .._param_validation import Interval, StrOptions
from .._shared_parameters import DeviceConstraint
from ..training.engine import resolve_device
from ._base import N_COMPONENTS_CONSTRAINT, BaseMahalanobisLearner

__all__ = [
    "ITERATIVE_CONSTRAINTS",
    "IterativeLearner",
    "PairList",
    "PairWeights",
    "anchor_blocks",
    "check_class_sizes",
    "initial_components",
    "lbfgs_components",
    "neighbour_probabilities",
    "optimize_components",
    "pair_list_gradient",
    "pair_weights_gradient",
    "weighted_pair_sum",
    "with_gradient_of",
]

#: Anchors whose ``(block, n_samples)`` tiles are evaluated at once hold about
#: this many elements (32 MiB in float64), whatever ``n_samples``.
_BLOCK_ELEMENTS = 2**22

#: Softmax terms below exp(_LOG_FLOOR) times a row's largest are raised to it
#: (see neighbour_probabilities).
_LOG_FLOOR = -60.0

#: Adam stops after this many epochs without progress.
_PATIENCE = 3

#: ``solver="auto"`` takes full L-BFGS passes up to this many samples.
_LBFGS_MAX_SAMPLES = 50_000

ITERATIVE_CONSTRAINTS = {
    "n_components": N_COMPONENTS_CONSTRAINT,
    "init": [StrOptions({"auto", "pca", "lda", "identity", "random"}), "array-like"],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "solver": [StrOptions({"auto", "lbfgs", "adam"})],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "device": [DeviceConstraint(), torch.device],
    "precision": [StrOptions({"float32", "float64"})],
    "verbose": ["boolean", Interval(Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
}

register_doc(
    "linear_solver_params",
    """
    max_iter : int, default=200
        Maximum number of L-BFGS iterations, or of epochs (passes over the
        anchors) with ``solver="adam"``.
    solver : {"auto", "lbfgs", "adam"}, default="auto"
        ``"lbfgs"``: full-batch L-BFGS on the exact objective, evaluated in
        blocks of anchors so that memory stays bounded. ``"adam"``: Adam
        steps on mini-batches of ``batch_size`` anchors, each compared with
        all samples (an unbiased gradient of the same objective), for data
        too large for full passes. ``"auto"`` uses L-BFGS up to 50,000
        samples and Adam beyond.
    batch_size : int, default=256
        Anchors per Adam step (``solver="adam"`` only); a step holds a few
        ``(batch_size, n_samples)`` arrays.
    learning_rate : float, default=0.003
        Adam's step size (``solver="adam"`` only).
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Torch device for the optimisation: ``"auto"`` (CUDA when
        available), ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``. The fitted
        ``components_`` is a NumPy array either way.
    precision : {"float32", "float64"}, default="float32"
        Floating-point precision of the optimisation's arithmetic (the
        ``(anchors x samples)`` tiles dominate the cost, and float32 halves
        their time and memory). ``components_`` is float64 either way, and
        ``objective_`` is evaluated once more in float64 at the solution.
        Choose ``"float64"`` for badly scaled features or very tight ``tol``.
    verbose : int, default=0
        ``0`` silent; ``1`` or more prints the objective at each iteration
        (epoch for Adam).
    random_state : int, RandomState instance or None, default=None
        Seeds ``init="random"``, the PCA of ``init="pca"`` and the order of
        Adam's mini-batches.""",
)

register_doc(
    "linear_tol_text",
    """
        Convergence tolerance: L-BFGS stops when the relative decrease of
        the objective or the largest gradient entry falls below it; Adam
        when three epochs in a row do not lower the best epoch's objective
        by ``tol`` (relative).""",
)

register_doc(
    "linear_init_param",
    """
    init : {"auto", "pca", "lda", "identity", "random"} or array-like of \
shape (n_components, n_features), default="auto"
        Starting matrix ``L``: ``"pca"`` the leading principal axes of ``X``;
        ``"lda"`` the discriminant axes of scikit-learn's
        :class:`~sklearn.discriminant_analysis.LinearDiscriminantAnalysis`
        (classification only; at most ``n_classes - 1`` components);
        ``"identity"`` the first ``n_components`` rows of the identity (the
        Euclidean metric); ``"random"`` standard normal entries; or the
        given array (copied, never modified), whose row count sets
        ``n_components`` when that is None.""",
)


def check_class_sizes(labels, minimum, what):
    """Raise when a class has fewer than ``minimum`` samples or only one class."""
    counts = np.bincount(labels)
    if len(counts) < 2:
        raise ValueError(
            "The labels hold a single class; a supervised metric needs samples "
            "of at least two classes."
        )
    if counts.min() < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} samples in every class; the smallest "
            f"class has {counts.min()}. Drop the small classes or lower the setting."
        )


def consecutive(rows):
    """Whether the anchors ``rows`` are consecutive samples (a block of the
    full-batch objective, as :func:`exact_objective` makes them; the
    mini-batches of the Adam solver are drawn at random)."""
    first = int(rows[0])
    return torch.equal(rows, torch.arange(first, first + len(rows), device=rows.device))


#: Columns of a row of products are padded to a multiple of this (64 bytes
#: in float32).
_ROW_ALIGNMENT = 16


def pairwise_products(anchors, Z, bias, alpha):
    """``bias[None, :] + alpha * anchors @ Z.T``, shape ``(len(anchors), len(Z))``.

    The product is written into rows padded to a multiple of
    ``_ROW_ALIGNMENT`` columns (zero rows appended to ``Z``) and the first
    ``len(Z)`` columns are returned, a view: MKL writes rows of an odd
    length several times slower (a 1,257 x 1,257 product of 64 features
    took 2.5 times as long as the padded one on the benchmark machine).
    """
    n = Z.shape[0]
    width = -(-n // _ROW_ALIGNMENT) * _ROW_ALIGNMENT
    if width != n:
        Z = torch.cat([Z, Z.new_zeros(width - n, Z.shape[1])])
        bias = torch.cat([bias, bias.new_zeros(width - n)])
    return torch.addmm(bias[None, :], anchors, Z.T, alpha=alpha)[:, :n]


def neighbour_probabilities(Z, rows):
    """``p_ij``, the softmax over ``j != i`` of ``-|z_i - z_j|^2`` (no gradient).

    For the anchors ``rows`` against all samples: shape ``(len(rows), n)``,
    zero on each anchor's own column. The anchor's own squared norm is
    constant along its row and drops out of the softmax, so the logits are
    ``2 z_i.z_j - |z_j|^2``, one ``(anchors x samples)`` product.
    """
    with torch.no_grad():
        logits = pairwise_products(Z[rows], Z, -(Z * Z).sum(1), 2.0)
        own = torch.arange(len(rows), device=Z.device)
        logits[own, rows] = -torch.inf
        # exp() of large negative arguments (most of a row once the metric is
        # learned) takes a slow path and returns subnormal numbers that slow
        # every later product: a floor of e^-60 relative to the row's largest
        # term changes a row's sum by less than n * 1e-26, far below the
        # precision of float32 and float64 alike. The own column stays 0.
        logits.sub_(logits.amax(1, keepdim=True)).clamp_min_(_LOG_FLOOR)
        logits[own, rows] = -torch.inf
        logits.exp_()
        return logits.div_(logits.sum(1, keepdim=True))


def flush_subnormals_(W):
    """Set the subnormal entries of ``W`` to zero, in place; returns ``W``.

    Pair weights that multiply a small probability by a small residual
    (MLKR's) fall below the smallest normal float (about 1e-38 in
    float32), and a matrix product with a few percent of such entries runs
    several times slower on x86 processors (the gradient products of MLKR
    on digits: 23 to 38 ms instead of 3.5 to 4 ms). Their contribution is
    far below the precision of every sum they enter. The pass costs about
    a matrix product of the same rows, so only weights that produce
    subnormals go through it (LinearNCA's, whose probabilities are
    floored, do not).
    """
    return W.masked_fill_(W.abs() < torch.finfo(W.dtype).tiny, 0.0)


def weighted_pair_sum(Z, rows, W):
    """``sum_ij W_ij |z_i - z_j|^2`` over the anchors ``rows`` and all ``j``.

    Differentiable in ``Z`` for a constant ``W`` of shape ``(len(rows), n)``
    through two products with ``Z`` only: no ``(anchors x samples)`` tensor
    enters the autograd graph, which keeps the memory of a block at the
    size of ``W``.
    """
    anchors = Z[rows]
    sq_norms = (Z * Z).sum(1)
    return (
        (W.sum(1) * sq_norms[rows]).sum()
        + (W.sum(0) * sq_norms).sum()
        - 2.0 * (anchors * (W @ Z)).sum()
    )


def with_gradient_of(value, surrogate):
    """``value`` (a constant tensor) whose gradient is that of ``surrogate``."""
    return surrogate + (value - surrogate).detach()


class PairWeights(NamedTuple):
    """An anchor block's loss given with the weights of its gradient.

    ``value`` is the block's summed loss (a scalar tensor, no graph) and
    ``weights`` the ``(len(rows), n)`` matrix ``W`` such that the loss's
    gradient in ``Z`` is that of ``sum_ij W_ij |z_i - z_j|^2`` (``i`` over
    the anchors). :func:`exact_objective` turns it into ``grad_Z`` with one
    or two matrix products and no autograd graph; the Adam solver through
    :func:`weighted_pair_sum`.
    """

    value: torch.Tensor
    weights: torch.Tensor


def pair_weights_gradient(Z, block, W):
    """``grad_Z`` of ``sum_ij W_ij |z_i - z_j|^2`` for the anchors ``block``.

    ``2 (r_i z_i - (W Z)_i)`` on the anchors' rows plus ``2 (c_j z_j -
    (W^T Z_R)_j)`` on every row, with ``r`` and ``c`` the row and column
    sums of ``W``; when the block holds every sample, both land on every
    row: ``2 ((r + c) z - W Z - W^T Z)``.
    """
    r, c = W.sum(1), W.sum(0)
    if block.start == 0 and block.stop == len(Z):
        grad = torch.addmm((r + c)[:, None] * Z, W, Z, alpha=-1.0)
        return grad.addmm_(W.T, Z, alpha=-1.0).mul_(2.0)
    Z_R = Z[block]
    grad = torch.addmm(c[:, None] * Z, W.T, Z_R, alpha=-1.0)
    grad[block] += torch.addmm(r[:, None] * Z_R, W, Z, alpha=-1.0)
    return grad.mul_(2.0)


class PairList(NamedTuple):
    """An anchor block's loss given with a few weighted pairs.

    The sparse counterpart of :class:`PairWeights`: the loss's gradient in
    ``Z`` is that of ``sum_p weights_p |z_first_p - z_second_p|^2``
    (global sample indices), formed in ``O(pairs x n_components)``.
    """

    value: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    weights: torch.Tensor


def pair_list_gradient(Z, pairs):
    """``grad_Z`` of ``sum_p w_p |z_a - z_b|^2`` over the pairs of a PairList."""
    diff = Z[pairs.first] - Z[pairs.second]
    diff.mul_(2.0 * pairs.weights[:, None])
    grad = torch.zeros_like(Z).index_add_(0, pairs.first, diff)
    return grad.index_add_(0, pairs.second, diff, alpha=-1.0)


def differentiable(out, Z, rows):
    """An anchor loss's result as a scalar tensor with a gradient in ``Z``."""
    if isinstance(out, PairWeights):
        return with_gradient_of(out.value, weighted_pair_sum(Z, rows, out.weights))
    if isinstance(out, PairList):
        gap = Z[out.first] - Z[out.second]
        return with_gradient_of(out.value, (out.weights * (gap * gap).sum(1)).sum())
    return out


def initial_components(init, X, y, n_components, random_state, *, auto):
    """The starting ``L``, float64 of shape ``(n_components, n_features)``.

    Parameters
    ----------
    init : str or array-like
        The ``init`` parameter.
    X : ndarray of shape (n_samples, n_features)
        Validated float64 training data.
    y : ndarray or None
        Class labels (``"lda"`` needs them) or None for regression targets.
    n_components : int or None
        The ``n_components`` parameter (None: ``n_features``, or the rows of
        an array ``init``).
    random_state : int, RandomState or None
        Seeds ``"random"`` and ``"pca"``.
    auto : callable
        ``auto(n_components, n_features)`` -> the method's choice for
        ``init="auto"``.
    """
    n_features = X.shape[1]
    if not isinstance(init, str):
        L = check_array(init, dtype=np.float64, copy=True, input_name="init")
        if L.shape[1] != n_features:
            raise ValueError(
                f"init has {L.shape[1]} columns but X has {n_features} features; "
                f"pass an array of shape (n_components, {n_features})."
            )
        if L.shape[0] > n_features:
            raise ValueError(
                f"init has {L.shape[0]} rows, more than the {n_features} features "
                "of X; a linear metric has at most n_features components."
            )
        if n_components is not None and L.shape[0] != n_components:
            raise ValueError(
                f"init has {L.shape[0]} rows but n_components={n_components}; "
                "make them agree (or leave n_components=None)."
            )
        return L
    n_out = n_features if n_components is None else n_components
    if n_out > n_features:
        raise ValueError(
            f"n_components={n_out} exceeds the number of features ({n_features}) "
            f"of X; choose n_components <= {n_features} or None."
        )
    if init == "auto":
        init = auto(n_out, n_features)
    if init == "identity":
        return np.eye(n_out, n_features)
    if init == "random":
        return check_random_state(random_state).standard_normal((n_out, n_features))
    if init == "pca":
        if n_out > min(X.shape):
            raise ValueError(
                f"init='pca' gives at most min(n_samples, n_features) = "
                f"{min(X.shape)} components, but {n_out} are asked for; use "
                "init='identity' or fewer components."
            )
        pca = PCA(n_components=n_out, svd_solver="full", random_state=random_state)
        return pca.fit(X).components_.astype(np.float64)
    # init == "lda"
    if y is None:
        raise ValueError(
            "init='lda' needs class labels; this learner fits regression targets."
        )
    n_classes = len(np.unique(y))
    if n_out > min(n_features, n_classes - 1):
        raise ValueError(
            f"init='lda' gives at most min(n_features, n_classes - 1) = "
            f"{min(n_features, n_classes - 1)} components, but {n_out} are asked "
            "for; use init='pca' or fewer components."
        )
    lda = LinearDiscriminantAnalysis(n_components=n_out).fit(X, y)
    return np.asarray(lda.scalings_[:, :n_out].T, dtype=np.float64)


def anchor_blocks(n, width):
    """Anchor blocks whose ``(block, width)`` tiles hold about _BLOCK_ELEMENTS."""
    step = max(1, _BLOCK_ELEMENTS // max(1, width))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def exact_objective(anchor_loss, X_t, L, *, width, gradient=True):
    """The full objective ``sum_i loss_i`` at ``L`` (and its gradient in L).

    Evaluated block of anchors by block of anchors. A block whose loss
    comes as :class:`PairWeights` adds its gradient in closed form; any
    other is a scalar tensor whose graph is freed after its backward pass,
    the gradients accumulating in ``Z``. The value is accumulated in
    float64, the gradient returned in float64.
    """
    n = X_t.shape[0]
    with torch.no_grad():
        Z = X_t @ L.to(X_t.dtype).T
    Z_graph = Z.detach().requires_grad_(gradient)
    grad_Z = torch.zeros_like(Z) if gradient else None
    total = 0.0
    for block in anchor_blocks(n, width):
        rows = torch.arange(block.start, block.stop, device=X_t.device)
        with torch.set_grad_enabled(gradient):
            out = anchor_loss(Z_graph, rows)
        if isinstance(out, PairWeights):
            total += float(out.value)
            if gradient:
                grad_Z += pair_weights_gradient(Z, block, out.weights)
        elif isinstance(out, PairList):
            total += float(out.value)
            if gradient:
                grad_Z += pair_list_gradient(Z, out)
        else:
            total += float(out.detach())
            if gradient:
                out.backward()
    if not gradient:
        return total
    if Z_graph.grad is not None:
        grad_Z += Z_graph.grad
    return total, (grad_Z.T @ X_t).to(torch.float64)


def _progress(verbose, name, iteration, value):
    if verbose:
        print(f"[{name}] iteration {iteration:4d}  objective {value:.6e}")
        sys.stdout.flush()


def optimize_components(
    anchor_loss,
    X,
    L0,
    *,
    width,
    solver,
    max_iter,
    tol,
    batch_size,
    learning_rate,
    device,
    random_state,
    verbose,
    name,
    precision="float64",
):
    """Minimise ``sum_i anchor_loss_i(X L^T)`` over ``L`` from ``L0``.

    Parameters
    ----------
    anchor_loss : callable
        ``anchor_loss(Z, rows)`` -> the summed loss of the anchors ``rows``
        (a LongTensor) given all embedded samples ``Z``: a scalar tensor
        with a graph, or a :class:`PairWeights` or :class:`PairList` (the
        value and the weighted pairs whose squared distances have the same
        gradient), whose gradient is formed without autograd.
    X : ndarray of shape (n_samples, n_features)
        Float64 training data.
    L0 : ndarray of shape (n_components, n_features)
        Starting matrix.
    width : int
        Elements of one anchor's work (``n_samples`` for a row of
        distances), which sets the block size.
    solver, max_iter, tol, batch_size, learning_rate, device, random_state, \
verbose
        The learner's parameters.
    name : str
        The learner's name in progress lines and warnings.
    precision : {"float32", "float64"}
        The arithmetic of the optimisation.

    Returns
    -------
    L : ndarray of shape (n_components, n_features)
    n_iter : int
    objective : float
        The exact objective at ``L``, evaluated in float64.
    """
    device = resolve_device(device)
    X_t = torch.tensor(X, dtype=getattr(torch, precision), device=device)
    n = X.shape[0]
    if solver == "auto":
        solver = "lbfgs" if n <= _LBFGS_MAX_SAMPLES else "adam"
    if solver == "lbfgs":
        L, n_iter, objective = _lbfgs(
            anchor_loss, X_t, L0, width, max_iter, tol, verbose, name
        )
    else:
        L, n_iter, objective = _adam(
            anchor_loss,
            X_t,
            L0,
            width,
            max_iter,
            tol,
            batch_size,
            learning_rate,
            random_state,
            verbose,
            name,
        )
    if X_t.dtype != torch.float64:
        # The reported objective is exact: one float64 pass at the solution.
        X_64 = torch.tensor(X, dtype=torch.float64, device=device)
        L_64 = torch.as_tensor(L, dtype=torch.float64, device=device)
        objective = exact_objective(
            anchor_loss, X_64, L_64, width=width, gradient=False
        )
    return L, n_iter, objective


def _warn_unconverged(name, max_iter, steps):
    warnings.warn(
        f"{name} did not converge in max_iter={max_iter} {steps}; increase "
        "max_iter or tol.",
        ConvergenceWarning,
        stacklevel=7,
    )


def _lbfgs(anchor_loss, X_t, L0, width, max_iter, tol, verbose, name):
    def objective(L):
        return exact_objective(anchor_loss, X_t, L, width=width)

    return lbfgs_components(
        objective,
        L0,
        device=X_t.device,
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
        name=name,
    )


def lbfgs_components(objective, L0, *, device, max_iter, tol, verbose, name):
    """Minimise ``objective(L) -> (value, grad)`` with SciPy's L-BFGS-B.

    ``L`` is handed over as a float64 tensor on ``device`` and the gradient
    taken back in float64. Returns ``(L, n_iter, value)``; warns when
    ``max_iter`` stopped it.
    """
    shape = L0.shape
    state = {"iteration": 0}

    def value_and_grad(flat):
        L = torch.as_tensor(flat.reshape(shape), dtype=torch.float64, device=device)
        value, grad = objective(L)
        return value, grad.cpu().numpy().astype(np.float64).ravel()

    def callback(intermediate_result):
        state["iteration"] += 1
        _progress(verbose, name, state["iteration"], intermediate_result.fun)

    # SciPy's L-BFGS-B works on vectors of n_components x n_features values
    # through its BLAS: extra BLAS threads gain nothing there and spin
    # between calls, doubling the fit's CPU time on two cores (the
    # objective's products run in torch's own thread pool, not limited here).
    with blas_threads(1):
        result = minimize(
            value_and_grad,
            np.asarray(L0, dtype=np.float64).ravel(),
            jac=True,
            method="L-BFGS-B",
            tol=tol,
            callback=callback,
            options={"maxiter": max_iter},
        )
    if result.status == 1:
        _warn_unconverged(name, max_iter, "L-BFGS iterations")
    return result.x.reshape(shape), int(result.nit), float(result.fun)


class _Adam:
    """Adam's update (Kingma and Ba, 2015) of one tensor, in place.

    Written out rather than taken from ``torch.optim``, whose first use
    imports the compiler stack (seconds) for a few lines of arithmetic.
    """

    def __init__(self, param, learning_rate, betas=(0.9, 0.999), eps=1e-8):
        self.param, self.learning_rate = param, learning_rate
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, grad):
        beta1, beta2 = self.betas
        self.t += 1
        self.m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        self.v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        m_hat = self.m / (1.0 - beta1**self.t)
        v_hat = self.v / (1.0 - beta2**self.t)
        self.param.sub_(self.learning_rate * m_hat / (v_hat.sqrt() + self.eps))


def _adam(
    anchor_loss,
    X_t,
    L0,
    width,
    max_iter,
    tol,
    batch_size,
    learning_rate,
    random_state,
    verbose,
    name,
):
    n = X_t.shape[0]
    rng = check_random_state(random_state)
    L = torch.tensor(L0, dtype=X_t.dtype, device=X_t.device, requires_grad=True)
    adam = _Adam(L, learning_rate)
    best, stalled, converged = np.inf, 0, False
    for epoch in range(1, max_iter + 1):
        order = torch.as_tensor(rng.permutation(n), device=X_t.device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            Z = X_t @ L.T
            loss = differentiable(anchor_loss(Z, rows), Z, rows)
            (grad,) = torch.autograd.grad(loss / len(rows), L)
            adam.step(grad)
            total += float(loss.detach())
        _progress(verbose, name, epoch, total)
        # Stochastic epochs fluctuate: stop once _PATIENCE epochs in a row
        # have not bettered the best one by tol (relative).
        stalled = 0 if total < best - tol * abs(best) else stalled + 1
        best = min(best, total)
        if stalled >= _PATIENCE:
            converged = True
            break
    if not converged:
        _warn_unconverged(name, max_iter, "Adam epochs")
    L = L.detach()
    objective = exact_objective(anchor_loss, X_t, L, width=width, gradient=False)
    return L.cpu().numpy().astype(np.float64), epoch, objective


class IterativeLearner(BaseMahalanobisLearner):
    """Base of the learners whose ``L`` is found by :func:`optimize_components`.

    It holds the constraints of their shared parameters (the subclasses
    list them in their ``__init__``) and the two steps that read them.
    """

    _parameter_constraints = ITERATIVE_CONSTRAINTS

    def _initial_components(self, X, labels, auto):
        return initial_components(
            self.init, X, labels, self.n_components, self.random_state, auto=auto
        )

    def _minimize(self, anchor_loss, X, L0, device):
        """``(components_, {"n_iter_": ..., "objective_": ...})``."""
        L, n_iter, objective = optimize_components(
            anchor_loss,
            X,
            L0,
            width=X.shape[0],
            solver=self.solver,
            max_iter=self.max_iter,
            tol=self.tol,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            device=device,
            random_state=self.random_state,
            verbose=self.verbose,
            name=type(self).__name__,
            precision=self.precision,
        )
        return L, {"n_iter_": n_iter, "objective_": objective}
