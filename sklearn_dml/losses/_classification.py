"""Classification losses with normalised class weights (normalised softmax, large-
margin softmax, SphereFace, CosFace, ArcFace, equiangular basis).
"""

import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc
from .._param_validation import Interval
from ..distances import CosineSimilarity, _safe_sqrt
from ._base import (
    POSITIVE_INT,
    SIZE_CONSTRAINT,
    BaseMetricLoss,
    _cosine_to_proxies,
    _logits_from,
    _sample_weights,
    _soft_cross_entropy,
    _weighted_mean,
    resolve_size,
    zero_loss,
)
from ._proxy import _ProxyLoss

_ANY_REAL = Interval(Real, None, None, closed="neither")
_POSITIVE_REAL = Interval(Real, 0, None, closed="neither")


class _IntegerValuedFloat:
    """Parameter constraint: a float holding an integer ``>= low`` (``4.0``)."""

    def __init__(self, low):
        self.low = low

    def is_satisfied_by(self, value):
        return isinstance(value, float) and value.is_integer() and value >= self.low

    def __str__(self):
        return f"a float with an integer value >= {self.low}"


_GRAM_CHUNK_CELLS = 2**22


# Step t of the EBV generation is learning_rate / (1 + t / _EBV_STEP_DECAY).
_EBV_STEP_DECAY = 20.0


def _chebyshev(cosine, order):
    """``cos(order * theta)`` from ``cos(theta)``: the Chebyshev polynomial.

    The recurrence ``T_{k+1} = 2 c T_k - T_{k-1}`` has a finite gradient
    everywhere (``cos(m * acos(c))`` does not at ``c = +-1``).
    """
    previous, current = torch.ones_like(cosine), cosine
    if order == 0:
        return previous
    for _ in range(order - 1):
        previous, current = current, 2.0 * cosine * current - previous
    return current


# ------------------------------------------------------ NormalizedSoftmax
@fill_doc
class NormalizedSoftmaxLoss(_ProxyLoss):
    """Normalized softmax: cross-entropy on cosine logits with a temperature.

    Parameters
    ----------
    {proxy_size_params}

    temperature : float, default=0.05
        Divides the logits.

    {loss_distance_cosine}

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class weights (one row per class), created by :meth:`configure`
        (standard normal initialisation) and L2-normalised at every call.

    See Also
    --------
    CosFaceLoss : The same logits with an additive margin.
    ProxyNCALoss : A softmax over distances to proxies.

    Notes
    -----
    With :math:`\\hat W_c` the L2-normalised weight of class :math:`c` and
    :math:`T` the ``temperature``:

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i
            \\log \\frac{e^{S(x_i, \\hat W_{y_i}) / T}}
                        {\\sum_c e^{S(x_i, \\hat W_c) / T}}

    For a distance the logits are :math:`-d(x_i, \\hat W_c) / T`. The default
    cosine similarity is pytorch-metric-learning's default
    ``DotProductSimilarity()`` (which normalises embeddings by default;
    ours does not).

    Soft labels (:meth:`soft_forward`, Metrix mixup [2]_): a mixed sample
    with soft label :math:`t` has the cross-entropy
    :math:`-\\sum_c t_c \\log \\mathrm{softmax}_c`, averaged over the mixed
    samples; a one-hot :math:`t` gives the term above.

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Zhai, A. and Wu, H.-Y. "Classification is a Strong Baseline for
       Deep Metric Learning", BMVC 2019.
    .. [2] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import NormalizedSoftmaxLoss
    >>> loss = NormalizedSoftmaxLoss(temperature=0.5).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.32
    """

    _parameter_constraints = {
        **_ProxyLoss._parameter_constraints,
        "temperature": [_POSITIVE_REAL],
    }

    def __init__(
        self, num_classes=None, embedding_size=None, temperature=0.05, distance=None
    ):
        super().__init__(
            num_classes=num_classes, embedding_size=embedding_size, distance=distance
        )
        self.temperature = temperature

    def _default_distance(self):
        return CosineSimilarity()

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        mat = distance(embeddings, F.normalize(proxies, dim=1))
        logits = _logits_from(distance, mat, 1.0 / self.temperature)
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)

    supports_soft_labels = True

    def _soft_proxy_compute(self, mixed, targets, proxies, distance):
        mat = distance(mixed, F.normalize(proxies, dim=1))
        logits = _logits_from(distance, mat, 1.0 / self.temperature)
        return _soft_cross_entropy(logits, targets)


# ------------------------------------------------- angular margin losses
class _AngularMarginLoss(_ProxyLoss):
    """Cross-entropy on scaled cosine logits whose target entry is modified.

    Subclasses implement ``_target_logit(cos_target)`` (the modified cosine of
    the target class) and may override ``_cosine`` and ``_scale_logits``.
    These losses are defined on the cosine: they take no ``distance``.
    """

    def _default_distance(self):
        return CosineSimilarity()

    def _cosine(self, embeddings, proxies):
        return _cosine_to_proxies(embeddings, proxies)

    def _scale_logits(self, logits, embeddings, proxies):
        return logits * self.scale

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        cosine = self._cosine(embeddings, proxies)
        rows = torch.arange(labels.shape[0], device=labels.device)
        target = self._target_logit(cosine[rows, labels])
        logits = cosine.scatter(1, labels[:, None], target[:, None])
        logits = self._scale_logits(logits, embeddings, proxies)
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)


@fill_doc
class LargeMarginSoftmaxLoss(_AngularMarginLoss):
    """Large-margin softmax (L-Softmax): a multiplicative angular margin.

    Parameters
    ----------
    {proxy_size_params}

    margin : int, default=4
        The integer angle multiplier :math:`m` (``1`` gives the plain softmax
        without bias).

    scale : float, default=1
        Extra factor on every logit.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class weights :math:`W_c` (not normalised), created by
        :meth:`configure` (standard normal initialisation).

    See Also
    --------
    SphereFaceLoss : The same margin with normalised class weights.
    ArcFaceLoss : An additive angular margin.

    Notes
    -----
    With :math:`\\theta_{ic}` the angle between :math:`x_i` and :math:`W_c`,
    the logits are :math:`f_{ic} = s\\, \\|W_c\\| \\|x_i\\| \\cos\\theta_{ic}`
    for :math:`c \\neq y_i` and
    :math:`f_{iy_i} = s\\, \\|W_{y_i}\\| \\|x_i\\| \\psi(\\theta_{iy_i})` with

    .. math::

        \\psi(\\theta) = (-1)^k \\cos(m\\theta) - 2k, \\qquad
        \\theta \\in \\Big[\\frac{k\\pi}{m}, \\frac{(k+1)\\pi}{m}\\Big],

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i
            \\log \\frac{e^{f_{iy_i}}}{\\sum_c e^{f_{ic}}}

    :math:`\\cos(m\\theta)` is the Chebyshev polynomial :math:`T_m(\\cos\\theta)`
    (exact gradient everywhere); :math:`k` is not differentiated. The
    embeddings are compared by cosine: the loss takes no ``distance``.

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Liu, W., Wen, Y., Yu, Z. and Yang, M. "Large-Margin Softmax Loss
       for Convolutional Neural Networks", ICML 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import LargeMarginSoftmaxLoss
    >>> loss = LargeMarginSoftmaxLoss(margin=2).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[2.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.4964
    """

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "margin": [POSITIVE_INT, _IntegerValuedFloat(1)],
        "scale": [_POSITIVE_REAL],
    }

    def __init__(self, num_classes=None, embedding_size=None, margin=4, scale=1):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.margin = margin
        self.scale = scale

    def _target_logit(self, cos_target):
        m = int(self.margin)
        with torch.no_grad():
            angle = torch.acos(cos_target.clamp(-1.0, 1.0))
            k = torch.floor(angle * (m / math.pi))
            sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
        return sign * _chebyshev(cos_target, m) - 2.0 * k

    def _class_weights(self, proxies):
        return proxies

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        # Logits are ||x|| ||W_c|| cos = x . W_c: one matrix product; only the
        # target entry needs the cosine itself.
        class_weights = self._class_weights(proxies)
        raw = embeddings @ class_weights.T
        rows = torch.arange(labels.shape[0], device=labels.device)
        magnitude = (
            torch.linalg.vector_norm(embeddings, dim=1)
            * (torch.linalg.vector_norm(class_weights, dim=1)[labels])
        )
        magnitude = magnitude.clamp_min(torch.finfo(raw.dtype).tiny)
        target = self._target_logit(raw[rows, labels] / magnitude) * magnitude
        logits = raw.scatter(1, labels[:, None], target[:, None]) * self.scale
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)


@fill_doc
class SphereFaceLoss(LargeMarginSoftmaxLoss):
    """SphereFace (A-Softmax): L-Softmax with normalised class weights.

    Parameters
    ----------
    {proxy_size_params}

    margin : int, default=4
        The integer angle multiplier :math:`m`.

    scale : float, default=1
        Extra factor on every logit.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class weights, created by :meth:`configure` (standard normal
        initialisation); only their direction matters.

    See Also
    --------
    LargeMarginSoftmaxLoss : The same margin with weight norms in the logits.

    Notes
    -----
    As :class:`LargeMarginSoftmaxLoss` with :math:`\\|W_c\\| = 1`: the logits
    are :math:`s\\, \\|x_i\\| \\cos\\theta_{ic}`, with
    :math:`\\psi(\\theta_{iy_i})` in place of the target cosine:

    .. math::

        L = -\\frac{1}{n} \\sum_{i} w_i \\log
            \\frac{e^{s \\|x_i\\| \\psi(\\theta_{iy_i})}}
                 {e^{s \\|x_i\\| \\psi(\\theta_{iy_i})}
                  + \\sum_{c \\neq y_i} e^{s \\|x_i\\| \\cos\\theta_{ic}}}

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Liu, W., Wen, Y., Yu, Z., Li, M., Raj, B. and Song, L.
       "SphereFace: Deep Hypersphere Embedding for Face Recognition",
       CVPR 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import SphereFaceLoss
    >>> loss = SphereFaceLoss(margin=2).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(3 * torch.eye(2))
    >>> embeddings = torch.tensor([[2.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.4964
    """

    def _class_weights(self, proxies):
        return F.normalize(proxies, dim=1)


@fill_doc
class CosFaceLoss(_AngularMarginLoss):
    """CosFace (large margin cosine loss, AM-Softmax): an additive cosine margin.

    Parameters
    ----------
    {proxy_size_params}

    margin : float, default=0.35
        Subtracted from the cosine of the target class.

    scale : float, default=64
        Multiplies every logit (the radius of the hypersphere).

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class weights, created by :meth:`configure` (standard normal
        initialisation) and L2-normalised at every call.

    See Also
    --------
    ArcFaceLoss : The margin on the angle instead of the cosine.
    NormalizedSoftmaxLoss : The same logits without margin.

    Notes
    -----
    With :math:`\\cos\\theta_{ic}` the cosine between :math:`x_i` and
    :math:`W_c`, :math:`s` the ``scale`` and :math:`m` the ``margin``:

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{s (\\cos\\theta_{iy_i} - m)}}
                 {e^{s (\\cos\\theta_{iy_i} - m)}
                  + \\sum_{c \\neq y_i} e^{s \\cos\\theta_{ic}}}

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Wang, H., Wang, Y., Zhou, Z., Ji, X., Gong, D., Zhou, J., Li, Z.
       and Liu, W. "CosFace: Large Margin Cosine Loss for Deep Face
       Recognition", CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import CosFaceLoss
    >>> loss = CosFaceLoss(margin=0.2, scale=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.3666
    """

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "margin": [_ANY_REAL],
        "scale": [_POSITIVE_REAL],
    }

    def __init__(self, num_classes=None, embedding_size=None, margin=0.35, scale=64):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.margin = margin
        self.scale = scale

    def _target_logit(self, cos_target):
        return cos_target - self.margin


@fill_doc
class ArcFaceLoss(_AngularMarginLoss):
    """ArcFace (additive angular margin loss).

    Parameters
    ----------
    {proxy_size_params}

    margin : float, default=28.6
        Angular margin in **degrees** (as pytorch-metric-learning; 28.6
        degrees is the paper's 0.5 radian).

    scale : float, default=64
        Multiplies every logit (the radius of the hypersphere).

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class weights, created by :meth:`configure` (standard normal
        initialisation) and L2-normalised at every call.

    See Also
    --------
    SubCenterArcFaceLoss : Several weights per class.
    CosFaceLoss : The margin on the cosine.

    Notes
    -----
    With :math:`\\theta_{ic}` the angle between :math:`x_i` and :math:`W_c`,
    :math:`m` the margin in radians and :math:`s` the ``scale``:

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{s\\, \\phi(\\theta_{iy_i})}}
                 {e^{s\\, \\phi(\\theta_{iy_i})}
                  + \\sum_{c \\neq y_i} e^{s \\cos\\theta_{ic}}},
        \\qquad
        \\phi(\\theta) = \\begin{cases}
            \\cos(\\theta + m) & \\theta \\le \\pi - m \\\\
            \\cos\\theta - m \\sin m & \\text{otherwise}
        \\end{cases}

    (the second branch keeps the target logit decreasing in
    :math:`\\theta`, as in the authors' code). :math:`\\cos(\\theta + m)` is
    computed as :math:`\\cos\\theta \\cos m - \\sqrt{1 - \\cos^2\\theta}\\,
    \\sin m`, whose gradient is finite (zero through the root) at
    :math:`\\cos\\theta = \\pm 1`, where the ``acos`` of pytorch-metric-learning
    gives an infinite one.

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Deng, J., Guo, J., Xue, N. and Zafeiriou, S. "ArcFace: Additive
       Angular Margin Loss for Deep Face Recognition", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ArcFaceLoss
    >>> loss = ArcFaceLoss(margin=30.0, scale=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.6109
    """

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "margin": [Interval(Real, 0, 180, closed="left")],
        "scale": [_POSITIVE_REAL],
    }

    def __init__(self, num_classes=None, embedding_size=None, margin=28.6, scale=64):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.margin = margin
        self.scale = scale

    def _target_logit(self, cos_target):
        m = math.radians(self.margin)
        cos_m, sin_m = math.cos(m), math.sin(m)
        sine = _safe_sqrt((1.0 - cos_target * cos_target).clamp_min(0.0))
        shifted = cos_target * cos_m - sine * sin_m
        # theta <= pi - m  <=>  cos(theta) >= cos(pi - m) = -cos(m)
        return torch.where(cos_target >= -cos_m, shifted, cos_target - m * sin_m)


@fill_doc
class SubCenterArcFaceLoss(ArcFaceLoss):
    """Sub-center ArcFace: ArcFace with several weight vectors per class.

    Parameters
    ----------
    {proxy_size_params}

    margin : float, default=28.6
        Angular margin in degrees.

    scale : float, default=64
        Multiplies every logit.

    sub_centers : int, default=3
        Number of weight vectors (sub-centres) :math:`K` per class.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, sub_centers, embedding_size)
        The sub-centres, created by :meth:`configure` (standard normal
        initialisation) and L2-normalised at every call.

    See Also
    --------
    ArcFaceLoss : One weight vector per class.
    SoftTripleLoss : Several centres per class, softly combined.

    Notes
    -----
    The cosine of a sample to a class is its largest cosine to the class's
    sub-centres, :math:`\\cos\\theta_{ic} = \\max_k \\cos(x_i, W_{ck})`; the
    loss is then :class:`ArcFaceLoss`:

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{s\\, \\phi(\\theta_{iy_i})}}
                 {e^{s\\, \\phi(\\theta_{iy_i})}
                  + \\sum_{c \\neq y_i} e^{s \\cos\\theta_{ic}}}

    pytorch-metric-learning stores the sub-centres as the columns of a
    ``(embedding_size, num_classes * sub_centers)`` matrix, class-major;
    ``proxies.reshape(-1, embedding_size).T`` is that matrix. Its
    ``get_outliers`` helper is not provided.

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Deng, J., Guo, J., Liu, T., Gong, M. and Zafeiriou, S. "Sub-center
       ArcFace: Boosting Face Recognition by Large-Scale Noisy Web Faces",
       ECCV 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import SubCenterArcFaceLoss
    >>> loss = SubCenterArcFaceLoss(margin=30.0, scale=4.0, sub_centers=2)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.tensor([[[1.0, 0.0], [-1.0, 0.0]],
    ...                                          [[0.0, 1.0], [0.0, -1.0]]]))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.6109
    """

    _extra_dims = ("sub_centers",)

    _parameter_constraints = {
        **ArcFaceLoss._parameter_constraints,
        "sub_centers": [POSITIVE_INT],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        margin=28.6,
        scale=64,
        sub_centers=3,
    ):
        super().__init__(
            num_classes=num_classes,
            embedding_size=embedding_size,
            margin=margin,
            scale=scale,
        )
        self.sub_centers = sub_centers

    def _cosine(self, embeddings, proxies):
        cosine = _cosine_to_proxies(embeddings, proxies)
        return cosine.reshape(-1, proxies.shape[0], proxies.shape[1]).amax(dim=2)


# ------------------------------------------------------------------ EBV
def equiangular_basis_vectors(
    n_vectors, n_dims, max_cosine, max_iter, learning_rate, generator=None
):
    """Unit vectors whose pairwise ``|cos|`` is pushed below ``max_cosine``.

    Gradient descent, from standard normal vectors, on
    ``sum_{i != j} max(|cos(w_i, w_j)| - max_cosine, 0)``, renormalising
    after every step, with step ``learning_rate / (1 + t / 20)`` at step
    ``t``; stops once no pair exceeds ``max_cosine`` (with a 1e-4
    tolerance) or after ``max_iter`` steps, and returns the iterate with the
    smallest largest ``|cos|``. The Gram matrix is formed a chunk of rows at
    a time.

    Returns
    -------
    basis : torch.Tensor of shape (n_vectors, n_dims)
        The unit vectors (float32).
    worst : float
        Their largest pairwise ``|cos|``.
    """
    basis = F.normalize(torch.randn(n_vectors, n_dims, generator=generator), dim=1)
    chunk = max(1, _GRAM_CHUNK_CELLS // n_vectors)
    best, best_worst = basis, float("inf")
    for step in range(max_iter + 1):
        grad = torch.zeros_like(basis)
        worst = 0.0
        for start in range(0, n_vectors, chunk):
            rows = basis[start : start + chunk]
            gram = rows @ basis.T
            own = torch.arange(start, start + rows.shape[0])
            gram[torch.arange(rows.shape[0]), own] = 0.0
            if gram.numel():
                worst = max(worst, float(gram.abs().max()))
            active = (gram.abs() > max_cosine).to(basis.dtype)
            # d/dW of the penalty: each pair appears as (i, j) and (j, i)
            grad[start : start + chunk] = 2.0 * (torch.sign(gram) * active) @ basis
        if worst < best_worst:
            best, best_worst = basis, worst
        if worst <= max_cosine + 1e-4 or step == max_iter:
            break
        size = learning_rate / (1.0 + step / _EBV_STEP_DECAY)
        basis = F.normalize(basis - size * grad, dim=1)
    return best, best_worst


@fill_doc
class EquiangularBasisLoss(BaseMetricLoss):
    """Equiangular basis vectors (EBV) loss: a softmax over fixed class vectors.

    Every class gets a predefined unit vector, the class vectors being as
    close to orthogonal as the dimension allows; the loss is the
    cross-entropy of the scaled cosines between an embedding and every class
    vector. The vectors are generated once, by :meth:`configure`, and are
    not trained: the loss has no learnable parameter, so the number of
    trained parameters does not grow with the number of classes.

    Parameters
    ----------
    {proxy_size_params}

    temperature : float, default=0.07
        Temperature :math:`\\tau` dividing the cosines (the authors' 0.07).

    max_cosine : float, default=0.05
        Target :math:`\\alpha` of the generation: the largest allowed
        :math:`|\\cos|` between two class vectors (the authors use 0.002 with
        as many dimensions as classes). It cannot go below the Welch bound
        :math:`\\sqrt{(C - d) / (d (C - 1))}` when :math:`C > d`.

    max_iter : int, default=1000
        Maximum number of gradient steps of the generation.

    learning_rate : float, default=0.01
        Step size of the generation.

    random_state : int or None, default=0
        Seed of the class vectors (a local ``torch.Generator``); ``None``
        draws from the global torch random state.

    Attributes
    ----------
    basis_vectors : torch.Tensor of shape (num_classes, embedding_size)
        The unit class vectors, a buffer created by :meth:`configure`
        (carried by ``state_dict``, ``copy.deepcopy``, pickling and
        ``.to()``, but not a parameter).

    max_cosine_reached_ : float
        Largest :math:`|\\cos|` between two class vectors after generation.

    See Also
    --------
    sklearn_dml.losses.NormalizedSoftmaxLoss : The same softmax with
        learnable class vectors.

    Notes
    -----
    The class vectors :math:`W_c` minimise, by gradient descent from random
    normal vectors with renormalisation after each step,

    .. math::

        \\sum_{i \\neq j} \\max(|\\cos(W_i, W_j)| - \\alpha, 0)

    until every pair is within :math:`\\alpha` (the authors' generation
    script), for at most ``max_iter`` steps. Two choices differ from that
    script: the step shrinks as :math:`\\eta / (1 + t / 20)` at step
    :math:`t` (a fixed step oscillates around a small :math:`\\alpha`), and
    the iterate with the smallest largest :math:`|\\cos|` is kept. When
    :math:`\\alpha` is below what the dimension allows the result is the
    best found: check ``max_cosine_reached_``. With :math:`\\tau` the temperature, the training loss is

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{\\cos(x_i, W_{y_i}) / \\tau}}
                 {\\sum_{c} e^{\\cos(x_i, W_c) / \\tau}}

    and a sample is classified by its most similar class vector. The loss
    works on the cosine and takes no ``distance``. ``indices_tuple`` weights
    samples as the proxy losses do (:math:`w_i = c_i / \\max_j c_j`, an empty
    tuple gives 0).

    References
    ----------
    .. [1] Shen, Y., Sun, X. and Wei, X.-S. "Equiangular Basis Vectors", CVPR
       2023.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import EquiangularBasisLoss
    >>> loss = EquiangularBasisLoss(max_cosine=0.01).configure(3, 3)
    >>> gram = loss.basis_vectors @ loss.basis_vectors.T
    >>> bool((gram - torch.eye(3)).abs().max() <= 0.0101)
    True
    >>> embeddings = loss.basis_vectors[[0, 1, 2]] * 5.0
    >>> loss(embeddings, torch.tensor([0, 1, 2])).item() < 1e-5
    True
    """

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "temperature": [_POSITIVE_REAL],
        "max_cosine": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "learning_rate": [_POSITIVE_REAL],
        "random_state": [None, Interval(Integral, None, None, closed="neither")],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        temperature=0.07,
        max_cosine=0.05,
        max_iter=1000,
        learning_rate=0.01,
        random_state=0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.embedding_size = embedding_size
        self.temperature = temperature
        self.max_cosine = max_cosine
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _default_distance(self):
        return CosineSimilarity()

    def configure(self, num_classes=None, embedding_size=None):
        """Generate the class vectors (a buffer, not a parameter).

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes; ``None`` uses the constructor's value.
        embedding_size : int, default=None
            Dimension of the embeddings; ``None`` uses the constructor's value.

        Returns
        -------
        self : EquiangularBasisLoss
            This loss, with ``basis_vectors`` set.
        """
        self._validate_params()
        num_classes = resolve_size(self, "num_classes", num_classes)
        embedding_size = resolve_size(self, "embedding_size", embedding_size)
        seed = self.random_state
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        basis, worst = equiangular_basis_vectors(
            num_classes,
            embedding_size,
            float(self.max_cosine),
            int(self.max_iter),
            float(self.learning_rate),
            generator,
        )
        self.register_buffer("basis_vectors", basis)
        self.max_cosine_reached_ = worst
        return self

    def _compute(self, embeddings, labels, indices_tuple, distance):
        basis = getattr(self, "basis_vectors", None)
        if basis is None:
            raise RuntimeError(
                "EquiangularBasisLoss has no basis vectors yet: call "
                "loss.configure(num_classes, embedding_size) before the first "
                "forward (estimators do this in fit)."
            )
        if embeddings.shape[1] != basis.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} columns but "
                "EquiangularBasisLoss was configured for "
                f"embedding_size={basis.shape[1]}."
            )
        if labels.numel() > 0 and (
            int(labels.min()) < 0 or int(labels.max()) >= basis.shape[0]
        ):
            raise ValueError(
                f"labels must be class indices in 0 .. {basis.shape[0] - 1} for "
                f"EquiangularBasisLoss configured with num_classes={basis.shape[0]};"
                f" got values from {int(labels.min())} to {int(labels.max())}."
            )
        weights = _sample_weights(indices_tuple, labels, embeddings.dtype)
        if labels.shape[0] == 0 or (weights is not None and not weights.any()):
            return zero_loss(embeddings)
        temperature = float(self.temperature)
        logits = _cosine_to_proxies(embeddings, basis.to(embeddings)) / temperature
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)
