"""Losses against learned class proxies (Proxy-NCA, Proxy-Anchor, SoftTriple, mean-
field losses).
"""

import math
from numbers import Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from ..distances import CosineSimilarity, LpDistance, _safe_sqrt
from ._base import (
    POSITIVE_INT,
    SIZE_CONSTRAINT,
    BaseMetricLoss,
    _cosine_to_proxies,
    _sample_weights,
    _soft_cross_entropy,
    _softmax_logits,
    _weighted_mean,
    resolve_size,
    zero_loss,
)

_ANY_REAL = Interval(Real, None, None, closed="neither")
_POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE_REAL = Interval(Real, 0, None, closed="left")

register_doc(
    "mean_field_notes",
    """
    **Mean fields.** The parameter ``proxies`` holds the mean fields
    :math:`\\Psi_c`, one per class, created by :meth:`configure` (standard
    normal initialisation, as the authors' code). Embeddings and mean fields
    are compared by their cosine :math:`s_{ic} = \\cos(x_i, \\Psi_c)`, the
    paper's distance being :math:`d_{ic} = 1 - s_{ic}`; the loss takes no
    ``distance``. A forward call before :meth:`configure` raises
    ``RuntimeError``; estimators call it before building the optimizer.

    **Mined tuples.** ``indices_tuple`` weights samples: sample :math:`i`
    gets :math:`w_i = c_i / \\max_j c_j`, where :math:`c_i` counts its
    occurrences in the tuple (``1`` for every sample without a tuple). An
    empty tuple gives a zero loss, regulariser included.
    """,
)


def _masked_power(x, power):
    """``max(x, 0) ** power`` with a zero (never NaN) gradient where ``x <= 0``."""
    active = x > 0
    safe = torch.where(active, x, torch.ones_like(x))
    return torch.where(active, safe**power, torch.zeros_like(x))


def _off_diagonal(square):
    n = square.shape[0]
    return ~torch.eye(n, dtype=torch.bool, device=square.device)


def _class_log_mean_exp(z, rows, weights, membership, counts):
    """``log((1 / n_c) * sum_{i in c} w_i * exp(z[i, k]))`` for every class row.

    ``z`` is ``(n, K)``; ``rows`` ``(n,)`` gives every sample's row of the
    output (any row for a sample of weight 0), ``membership`` is the
    ``(B, n)`` 0/1 matrix of the rows' samples and ``counts`` their numbers
    ``n_c``. Every entry is shifted by the maximum of its own class and
    column over the samples of non-zero weight, so one term of each sum is
    ``w_i * 1``: no overflow, and no row is lost to underflow.
    """
    active = (weights > 0)[:, None]
    masked = torch.where(active, z.detach(), torch.full_like(z, float("-inf")))
    index = rows[:, None].expand_as(z)
    shift = torch.full(
        (membership.shape[0], z.shape[1]), float("-inf"), dtype=z.dtype, device=z.device
    ).scatter_reduce(0, index, masked, reduce="amax")
    own_shift = shift[rows]
    safe = torch.where(active, z, own_shift)
    terms = torch.exp(safe - own_shift) * weights[:, None]
    sums = (membership @ terms).clamp_min(torch.finfo(z.dtype).tiny)
    return torch.log(sums) + shift - torch.log(counts)[:, None]


def _log1p_sum_exp_columns(x, mask):
    """Column-wise ``log(1 + sum_i exp(x[i, c]))`` over the entries of ``mask``.

    A column without any entry gives exactly 0 and a zero gradient.
    """
    x = x.masked_fill(~mask, float("-inf"))
    x = torch.cat([x, x.new_zeros(1, x.shape[1])], dim=0)
    return torch.logsumexp(x, dim=0)


class _ProxyLoss(BaseMetricLoss):
    """Shared machinery of the losses with a learnable ``proxies`` parameter.

    Subclasses set ``_extra_dims`` (the names of constructor parameters giving
    the number of proxies per class), may override ``_init_proxies`` and
    implement ``_proxy_compute(embeddings, labels, proxies, weights,
    distance)``.
    """

    _extra_dims = ()

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
    }

    def __init__(self, num_classes=None, embedding_size=None, distance=None):
        super().__init__(distance=distance)
        self.num_classes = num_classes
        self.embedding_size = embedding_size

    def _init_proxies(self, proxies):
        torch.nn.init.normal_(proxies)

    def _proxy_shape(self, num_classes, embedding_size):
        extra = tuple(int(getattr(self, name)) for name in self._extra_dims)
        return (num_classes, *extra, embedding_size)

    def configure(self, num_classes=None, embedding_size=None):
        """Create (or re-create) the learnable ``proxies`` parameter.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes. ``None`` uses the constructor's value; a value
            different from a constructor value that is not ``None`` raises
            ``ValueError``.
        embedding_size : int, default=None
            Dimension of the embeddings, resolved the same way.

        Returns
        -------
        self : object
            This loss, with a freshly initialised ``proxies`` parameter drawn
            from the caller's torch random state.
        """
        self._validate_params()
        num_classes = resolve_size(self, "num_classes", num_classes)
        embedding_size = resolve_size(self, "embedding_size", embedding_size)
        shape = self._proxy_shape(num_classes, embedding_size)
        proxies = torch.empty(shape)
        with torch.no_grad():
            self._init_proxies(proxies)
        self.proxies = torch.nn.Parameter(proxies)
        return self

    def _checked_proxies(self, embeddings, labels):
        proxies = getattr(self, "proxies", None)
        name = type(self).__name__
        if proxies is None:
            raise RuntimeError(
                f"{name} has no proxies yet: call "
                "loss.configure(num_classes, embedding_size) before the first "
                "forward and before building the optimizer (estimators do this "
                "in fit)."
            )
        shape = self._proxy_shape(proxies.shape[0], proxies.shape[-1])
        if tuple(proxies.shape) != shape:
            raise RuntimeError(
                f"{name}.proxies has shape {tuple(proxies.shape)} but the "
                f"current parameters need {shape}; call configure again."
            )
        if embeddings.shape[1] != proxies.shape[-1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} columns but {name} was "
                f"configured for embedding_size={proxies.shape[-1]}."
            )
        if proxies.device != embeddings.device:
            raise ValueError(
                f"{name}.proxies are on {proxies.device} but the embeddings are "
                f"on {embeddings.device}; move the loss with .to(device)."
            )
        if labels.numel() > 0:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= proxies.shape[0]:
                raise ValueError(
                    f"labels must be class indices in 0 .. {proxies.shape[0] - 1} "
                    f"for {name} configured with num_classes={proxies.shape[0]}; "
                    f"got values from {low} to {high}. Encode the labels (for "
                    "example with sklearn.preprocessing.LabelEncoder) or "
                    "configure more classes."
                )
        return proxies.to(embeddings.dtype)

    def _compute(self, embeddings, labels, indices_tuple, distance):
        proxies = self._checked_proxies(embeddings, labels)
        weights = _sample_weights(indices_tuple, labels, embeddings.dtype)
        if labels.shape[0] == 0 or (weights is not None and not weights.any()):
            return zero_loss(embeddings) + 0.0 * proxies.sum()
        return self._proxy_compute(embeddings, labels, proxies, weights, distance)

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        raise NotImplementedError

    def _soft_compute(self, embeddings, labels, mixed, targets, distance):
        # The proxies are the anchors: the clean batch only checks the labels.
        proxies = self._checked_proxies(mixed, labels)
        if targets.shape[1] != proxies.shape[0]:
            raise ValueError(
                f"mixed_targets has {targets.shape[1]} class columns but "
                f"{type(self).__name__} has {proxies.shape[0]} proxies."
            )
        if mixed.shape[0] == 0:
            return zero_loss(mixed) + 0.0 * proxies.sum()
        targets = targets.to(mixed.dtype)
        return self._soft_proxy_compute(mixed, targets, proxies, distance)


# -------------------------------------------------------------- ProxyNCA
@fill_doc
class ProxyNCALoss(_ProxyLoss):
    """Proxy-NCA loss: NCA with one learnable proxy per class.

    Parameters
    ----------
    {proxy_size_params}

    softmax_scale : float, default=1
        Multiplies the distances inside the softmax (an inverse temperature;
        Proxy-NCA++ [2]_ uses 9, a temperature of 1/9).

    distance : BaseDistance, default=None
        How embeddings and proxies are compared. ``None`` means
        ``LpDistance(power=2)``: squared Euclidean distance of L2-normalised
        embeddings and proxies.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class proxies, created by :meth:`configure` (standard normal
        initialisation, as pytorch-metric-learning).

    See Also
    --------
    NCALoss : The same softmax over the samples of the batch.
    ProxyAnchorLoss : Proxies as anchors.

    Notes
    -----
    With :math:`p_c` the proxy of class :math:`c` and :math:`s` the
    ``softmax_scale``:

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i
            \\log \\frac{e^{-s\\, d(x_i, p_{y_i})}}
                        {\\sum_{c} e^{-s\\, d(x_i, p_c)}}

    The denominator includes the sample's own proxy (a softmax
    cross-entropy over proxies, as pytorch-metric-learning and
    Proxy-NCA++); the original paper [1]_ leaves it out. For a similarity
    the exponents are :math:`s\\, S(x_i, p_c)`.

    Soft labels (:meth:`soft_forward`, Metrix mixup [3]_): a mixed sample
    with soft label :math:`t` has the cross-entropy
    :math:`-\\sum_c t_c \\log \\mathrm{softmax}_c`, averaged over the mixed
    samples; a one-hot :math:`t` gives the term above.

    {proxy_loss_notes}

    pytorch-metric-learning weights only the *anchors* of a tuple for this
    loss (all positions for the others) and drops samples whose
    probability underflows to 0; here every position counts and no sample
    is dropped.

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Movshovitz-Attias, Y., Toshev, A., Leung, T. K., Ioffe, S. and
       Singh, S. "No Fuss Distance Metric Learning using Proxies", ICCV 2017.
    .. [2] Teh, E. W., DeVries, T. and Taylor, G. W. "ProxyNCA++: Revisiting
       and Revitalizing Proxy Neighborhood Component Analysis", ECCV 2020.
    .. [3] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ProxyNCALoss
    >>> loss = ProxyNCALoss().configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.1269
    """

    _parameter_constraints = {
        **_ProxyLoss._parameter_constraints,
        "softmax_scale": [_POSITIVE_REAL],
    }

    def __init__(
        self, num_classes=None, embedding_size=None, softmax_scale=1, distance=None
    ):
        super().__init__(
            num_classes=num_classes, embedding_size=embedding_size, distance=distance
        )
        self.softmax_scale = softmax_scale

    def _default_distance(self):
        return LpDistance(power=2)

    supports_soft_labels = True

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        logits = _softmax_logits(distance, embeddings, proxies, self.softmax_scale)
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)

    def _soft_proxy_compute(self, mixed, targets, proxies, distance):
        logits = _softmax_logits(distance, mixed, proxies, self.softmax_scale)
        return _soft_cross_entropy(logits, targets)


# ------------------------------------------------------------ ProxyAnchor
@fill_doc
class ProxyAnchorLoss(_ProxyLoss):
    """Proxy-Anchor loss: every proxy pulls its class and pushes the others.

    Parameters
    ----------
    {proxy_size_params}

    margin : float, default=0.1
        Margin :math:`\\delta` on the similarity.

    alpha : float, default=32
        Scale :math:`\\alpha` of the exponents.

    {loss_distance_cosine}

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class proxies, created by :meth:`configure` (Kaiming normal
        initialisation with ``mode="fan_out"``, as the authors' code).

    See Also
    --------
    ProxyNCALoss : Softmax of each sample over the proxies.
    sklearn_dml.losses.MultiSimilarityLoss : The pair-based loss it mimics.

    Notes
    -----
    With :math:`P` all proxies, :math:`P^+` the proxies with at least one
    (non-zero weight) sample of their class in the batch, :math:`X_p^+` and
    :math:`X_p^-` the samples of and not of :math:`p`'s class:

    .. math::

        L = \\frac{1}{|P^+|} \\sum_{p \\in P^+}
            \\log\\Big(1 + \\sum_{x \\in X_p^+} w_x e^{-\\alpha (S(x, p) - \\delta)}\\Big)
          + \\frac{1}{|P|} \\sum_{p \\in P}
            \\log\\Big(1 + \\sum_{x \\in X_p^-} w_x e^{\\alpha (S(x, p) + \\delta)}\\Big)

    computed as log-sum-exp with :math:`\\log w_x` added to the exponent (a
    sample of weight 0 leaves both sums). For a distance :math:`d` the
    exponents are :math:`\\alpha (d - \\delta)` and
    :math:`-\\alpha (d + \\delta)`.

    Soft labels (:meth:`soft_forward`, Metrix mixup [2]_): the proxies stay
    the anchors and a mixed sample :math:`x` with soft label :math:`t_x`
    counts as a positive of proxy :math:`p` (class :math:`c`) with weight
    :math:`t_{x,c}` and as a negative with weight :math:`1 - t_{x,c}`:

    .. math::

        \\tilde L = \\frac{1}{|P^+|} \\sum_{p \\in P^+}
            \\log\\Big(1 + \\sum_{x} t_{x,c} e^{-\\alpha (S(x, p) - \\delta)}\\Big)
          + \\frac{1}{|P|} \\sum_{p \\in P}
            \\log\\Big(1 + \\sum_{x} (1 - t_{x,c}) e^{\\alpha (S(x, p) + \\delta)}\\Big)

    with :math:`P^+` the proxies of a class with some weight; one-hot
    labels give the formula above.

    {proxy_loss_notes}

    pytorch-metric-learning 2.x multiplies each exponential by
    :math:`e^{w_x - 1}` instead of :math:`w_x` (an unmined sample stays in
    with factor :math:`e^{-1}`); without ``indices_tuple`` both agree.

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Kim, S., Kim, D., Cho, M. and Kwak, S. "Proxy Anchor Loss for Deep
       Metric Learning", CVPR 2020.
    .. [2] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ProxyAnchorLoss
    >>> loss = ProxyAnchorLoss(margin=0.1, alpha=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    1.929
    """

    _parameter_constraints = {
        **_ProxyLoss._parameter_constraints,
        "margin": [_ANY_REAL],
        "alpha": [_POSITIVE_REAL],
    }

    def __init__(
        self, num_classes=None, embedding_size=None, margin=0.1, alpha=32, distance=None
    ):
        super().__init__(
            num_classes=num_classes, embedding_size=embedding_size, distance=distance
        )
        self.margin = margin
        self.alpha = alpha

    def _default_distance(self):
        return CosineSimilarity()

    def _init_proxies(self, proxies):
        torch.nn.init.kaiming_normal_(proxies, mode="fan_out")

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        mat = distance(embeddings, proxies)
        pos_mask = F.one_hot(labels, proxies.shape[0]).bool()
        neg_mask = ~pos_mask
        pos_exp = self.alpha * distance.margin(self.margin, mat)
        neg_exp = self.alpha * distance.margin(mat, -self.margin)
        if weights is not None:
            active = (weights > 0)[:, None]
            log_w = torch.log(torch.where(weights > 0, weights, 1.0))[:, None]
            pos_mask, neg_mask = pos_mask & active, neg_mask & active
            pos_exp, neg_exp = pos_exp + log_w, neg_exp + log_w
        pos_term = _log1p_sum_exp_columns(pos_exp, pos_mask)
        neg_term = _log1p_sum_exp_columns(neg_exp, neg_mask)
        n_with_pos = pos_mask.any(dim=0).sum()
        return pos_term.sum() / n_with_pos + neg_term.sum() / proxies.shape[0]

    supports_soft_labels = True

    def _soft_proxy_compute(self, mixed, targets, proxies, distance):
        mat = distance(mixed, proxies)
        pos_exp = self.alpha * distance.margin(self.margin, mat)
        neg_exp = self.alpha * distance.margin(mat, -self.margin)
        pos_w, neg_w = targets, 1.0 - targets
        pos_mask, neg_mask = pos_w > 0, neg_w > 0
        pos_exp = pos_exp + torch.log(torch.where(pos_mask, pos_w, 1.0))
        neg_exp = neg_exp + torch.log(torch.where(neg_mask, neg_w, 1.0))
        pos_term = _log1p_sum_exp_columns(pos_exp, pos_mask)
        neg_term = _log1p_sum_exp_columns(neg_exp, neg_mask)
        n_with_pos = pos_mask.any(dim=0).sum().clamp_min(1)
        return pos_term.sum() / n_with_pos + neg_term.sum() / proxies.shape[0]


# ------------------------------------------------------------- SoftTriple
@fill_doc
class SoftTripleLoss(_ProxyLoss):
    """SoftTriple loss: a softmax over classes, each with several centres.

    Parameters
    ----------
    {proxy_size_params}

    centers_per_class : int, default=10
        Number of centres :math:`K` per class.

    la : float, default=20
        Scale :math:`\\lambda` of the class logits.

    gamma : float, default=0.1
        Temperature :math:`\\gamma` of the softmax that combines a class's
        centres (pytorch-metric-learning stores ``1 / gamma`` in its
        ``gamma`` attribute; here the parameter keeps the value given).

    margin : float, default=0.01
        Margin :math:`\\delta` subtracted from the target class's similarity.

    tau : float, default=0.0
        Weight of the paper's regulariser that merges similar centres of a
        class. ``0`` leaves it out, as pytorch-metric-learning; the paper
        uses 0.2.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, centers_per_class, embedding_size)
        The centres, created by :meth:`configure` (uniform on
        :math:`\\pm 1/\\sqrt{CK}`, the ``kaiming_uniform_(a=sqrt(5))`` of the
        authors' code) and L2-normalised at every call.

    See Also
    --------
    SubCenterArcFaceLoss : Several centres per class, hard maximum.
    NormalizedSoftmaxLoss : One centre per class.

    Notes
    -----
    With :math:`S_{ick}` the cosine between :math:`x_i` and centre
    :math:`k` of class :math:`c`, the relaxed similarity to a class and the
    loss are

    .. math::

        \\mathcal{S}_{ic} = \\sum_{k} \\frac{e^{S_{ick} / \\gamma}}
                                           {\\sum_{k'} e^{S_{ick'} / \\gamma}}
                            S_{ick},
        \\qquad
        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{\\lambda (\\mathcal{S}_{iy_i} - \\delta)}}
                 {e^{\\lambda (\\mathcal{S}_{iy_i} - \\delta)}
                  + \\sum_{c \\neq y_i} e^{\\lambda \\mathcal{S}_{ic}}}
          + \\frac{\\tau}{C K (K - 1)} \\sum_{c} \\sum_{k < k'}
            \\sqrt{\\max(0, 2 - 2 \\hat w_{ck}^\\top \\hat w_{ck'})}

    (the last term, :math:`\\tau \\|\\hat w_{ck} - \\hat w_{ck'}\\|` summed over
    pairs of normalised centres of a class, is present only when
    ``tau > 0`` and :math:`K > 1`; its square root has a zero gradient where
    two centres coincide). The loss is defined on the cosine and takes no
    ``distance``.

    {proxy_loss_notes}

    {proxy_learning_rate_note}

    References
    ----------
    .. [1] Qian, Q., Shang, L., Sun, B., Hu, J., Li, H. and Jin, R.
       "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling",
       ICCV 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import SoftTripleLoss
    >>> loss = SoftTripleLoss(centers_per_class=1, la=4.0, margin=0.1)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2)[:, None, :])
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.27
    """

    _extra_dims = ("centers_per_class",)

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "centers_per_class": [POSITIVE_INT],
        "la": [_POSITIVE_REAL],
        "gamma": [_POSITIVE_REAL],
        "margin": [_ANY_REAL],
        "tau": [_NON_NEGATIVE_REAL],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        centers_per_class=10,
        la=20,
        gamma=0.1,
        margin=0.01,
        tau=0.0,
    ):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.centers_per_class = centers_per_class
        self.la = la
        self.gamma = gamma
        self.margin = margin
        self.tau = tau

    def _default_distance(self):
        return CosineSimilarity()

    def _init_proxies(self, proxies):
        bound = 1.0 / math.sqrt(proxies.shape[0] * proxies.shape[1])
        torch.nn.init.uniform_(proxies, -bound, bound)

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        n_classes, n_centers = proxies.shape[0], proxies.shape[1]
        sim = _cosine_to_proxies(embeddings, proxies)
        sim = sim.reshape(-1, n_classes, n_centers)
        prob = torch.softmax(sim / self.gamma, dim=2)
        class_sim = (prob * sim).sum(dim=2)
        target = F.one_hot(labels, n_classes).to(class_sim.dtype)
        logits = self.la * (class_sim - self.margin * target)
        terms = F.cross_entropy(logits, labels, reduction="none")
        loss = _weighted_mean(terms, weights)
        if self.tau > 0 and n_centers > 1:
            unit = F.normalize(proxies, dim=2)
            gram = unit @ unit.transpose(1, 2)
            upper = torch.triu(
                torch.ones(n_centers, n_centers, dtype=torch.bool, device=gram.device),
                diagonal=1,
            )
            dist = _safe_sqrt((2.0 - 2.0 * gram[:, upper]).clamp_min(0.0))
            denom = n_classes * n_centers * (n_centers - 1)
            loss = loss + self.tau * dist.sum() / denom
        return loss


class _MeanFieldLoss(_ProxyLoss):
    """Mean-field losses: a ``_ProxyLoss`` plus a mean-field regulariser."""

    _parameter_constraints = {
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
        "mf_reg": [_NON_NEGATIVE_REAL],
        "mf_power": [_POSITIVE_REAL],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.mf_reg = mf_reg
        self.mf_power = mf_power

    def _default_distance(self):
        return CosineSimilarity()

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        mf_reg, mf_power = float(self.mf_reg), float(self.mf_power)
        cosine = _cosine_to_proxies(embeddings, proxies)
        loss = self._data_term(cosine, labels, weights)
        if mf_reg > 0 and proxies.shape[0] > 1:
            unit = F.normalize(proxies, dim=1)
            gram = unit @ unit.T
            terms = _masked_power(self._field_penalty(gram), mf_power)
            terms = terms * _off_diagonal(gram)
            loss = loss + mf_reg * terms.sum() / proxies.shape[0]
        return loss

    def _data_term(self, cosine, labels, weights):
        raise NotImplementedError

    def _field_penalty(self, gram):
        raise NotImplementedError


@fill_doc
class MeanFieldContrastiveLoss(_MeanFieldLoss):
    """Mean-field contrastive loss: the contrastive loss against class mean fields.

    Mean field theory replaces the pairs of a contrastive loss by the
    interaction of every sample with a learnable mean field per class, so the
    cost is linear in the batch size, as for proxy losses.

    Parameters
    ----------
    {proxy_size_params}

    pos_margin : float, default=0.02
        Margin :math:`m_+` on the distance :math:`1 - \\cos` to the sample's
        own mean field (the default of the authors' training script).

    neg_margin : float, default=0.3
        Margin :math:`m_-` on the distance to the other mean fields, and
        between mean fields in the regulariser.

    mf_reg : float, default=0.0
        Weight :math:`\\lambda_{MF}` of the mean-field regulariser (``0``
        leaves it out; it costs a ``num_classes x num_classes`` matrix).

    mf_power : float, default=2
        Power :math:`p` of the regulariser's hinge (the authors' code uses 2).

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The mean fields :math:`\\Psi_c`, created by :meth:`configure`.

    See Also
    --------
    sklearn_dml.losses.ContrastiveLoss : The pair loss it is derived from.
    MeanFieldClassWiseMultiSimilarityLoss : The multi-similarity analogue.

    Notes
    -----
    With :math:`d_{ic} = 1 - \\cos(x_i, \\Psi_c)`,
    :math:`D_{cc'} = 1 - \\cos(\\Psi_c, \\Psi_{c'})` and :math:`C` the
    number of classes (every configured class, present in the batch or not):

    .. math::

        L = \\frac{1}{n} \\sum_{i=1}^{n} w_i \\Big( [d_{iy_i} - m_+]_+
              + \\sum_{c \\neq y_i} [m_- - d_{ic}]_+ \\Big)
          + \\frac{\\lambda_{MF}}{C} \\sum_{c} \\sum_{c' \\neq c}
              [m_- - D_{cc'}]_+^{p}

    The first term is the contrastive loss with every partner of a pair
    replaced by its class's mean field; the second keeps mean fields of
    different classes apart. The reductions (mean over samples, sum over
    classes, mean over mean fields of the regulariser) follow the authors'
    code, since the paper leaves them implicit.

    {mean_field_notes}

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MeanFieldContrastiveLoss
    >>> loss = MeanFieldContrastiveLoss(pos_margin=0.0, neg_margin=0.5)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.15
    """

    _parameter_constraints = {
        **_MeanFieldLoss._parameter_constraints,
        "pos_margin": [_ANY_REAL],
        "neg_margin": [_ANY_REAL],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        pos_margin=0.02,
        neg_margin=0.3,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(
            num_classes=num_classes,
            embedding_size=embedding_size,
            mf_reg=mf_reg,
            mf_power=mf_power,
        )
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def _data_term(self, cosine, labels, weights):
        dist = 1.0 - cosine
        target = F.one_hot(labels, cosine.shape[1]).to(torch.bool)
        pos = F.relu(dist - self.pos_margin)
        neg = F.relu(self.neg_margin - dist)
        terms = torch.where(target, pos, neg).sum(dim=1)
        return _weighted_mean(terms, weights)

    def _field_penalty(self, gram):
        return self.neg_margin - (1.0 - gram)


@fill_doc
class MeanFieldClassWiseMultiSimilarityLoss(_MeanFieldLoss):
    """Mean-field class-wise multi-similarity loss.

    The class-wise multi-similarity loss (a multi-similarity loss between
    classes of the batch) with every class's samples replaced, as partners,
    by a learnable mean field: each class's samples are pulled towards their
    mean field and pushed away from the mean fields of the other classes.

    Parameters
    ----------
    {proxy_size_params}

    alpha : float, default=0.01
        Scale :math:`\\alpha > 0` of the positive exponents (the authors'
        setting for every benchmark).

    beta : float, default=80
        Scale :math:`\\beta > 0` of the negative exponents.

    base : float, default=0.8
        Similarity offset :math:`\\lambda` (the authors' ``mrg``).

    mf_reg : float, default=0.0
        Weight :math:`\\lambda_{MF}` of the mean-field regulariser (the
        authors use 0 in every published run).

    mf_power : float, default=2
        Power :math:`p` of the regulariser.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The mean fields :math:`\\Psi_c`, created by :meth:`configure`.

    See Also
    --------
    MeanFieldContrastiveLoss : The contrastive analogue.
    sklearn_dml.losses.MultiSimilarityLoss : The pair loss it descends from.

    Notes
    -----
    With :math:`s_{ic} = \\cos(x_i, \\Psi_c)`, :math:`B` the classes of the
    batch, :math:`n_c` the number of samples of class :math:`c` and

    .. math::

        P_c = \\frac{1}{n_c} \\sum_{y_i = c} w_i e^{-\\alpha (s_{ic} - \\lambda)},
        \\qquad
        N_{cc'} = \\frac{1}{n_c} \\sum_{y_i = c} w_i e^{\\beta (s_{ic'} - \\lambda)}

    (:math:`N_{cc'} = 0` for a class :math:`c` absent from the batch), the
    loss is

    .. math::

        L = \\frac{1}{\\alpha |B|} \\sum_{c \\in B} \\log(1 + P_c)
          + \\frac{1}{\\beta |B|} \\sum_{\\{c, c'\\},\\, c \\neq c'}
              \\log(1 + N_{cc'} + N_{c'c})
          + \\frac{\\lambda_{MF}}{C} \\sum_{c} \\sum_{c' \\neq c}
              \\Big[\\tfrac{1}{\\beta}
              \\log\\big(1 + e^{\\beta (\\cos(\\Psi_c, \\Psi_{c'}) - \\lambda)}\\big)
              \\Big]^{p}

    where the second sum runs over unordered pairs of distinct classes among
    all :math:`C` configured classes (a pair with neither class in the batch
    contributes 0). This follows the authors' code: the paper writes the
    sums over classes without fixing the normalisation. :math:`B` holds the
    classes with a non-zero total weight. Both exponential sums are computed
    in log space (shifted log-sum-exp), so a large ``beta`` does not
    overflow.

    {mean_field_notes}

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.
    .. [2] Wang, X., Han, X., Huang, W., Dong, D. and Scott, M. R.
       "Multi-Similarity Loss with General Pair Weighting for Deep Metric
       Learning", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MeanFieldClassWiseMultiSimilarityLoss
    >>> loss = MeanFieldClassWiseMultiSimilarityLoss(alpha=1.0, beta=1.0, base=0.5)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.8713
    """

    _parameter_constraints = {
        **_MeanFieldLoss._parameter_constraints,
        "alpha": [_POSITIVE_REAL],
        "beta": [_POSITIVE_REAL],
        "base": [_ANY_REAL],
    }

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        alpha=0.01,
        beta=80,
        base=0.8,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(
            num_classes=num_classes,
            embedding_size=embedding_size,
            mf_reg=mf_reg,
            mf_power=mf_power,
        )
        self.alpha = alpha
        self.beta = beta
        self.base = base

    def _data_term(self, cosine, labels, weights):
        n, n_classes = cosine.shape
        if weights is None:
            weights = torch.ones(n, dtype=cosine.dtype, device=cosine.device)
        onehot = F.one_hot(labels, n_classes).to(cosine.dtype)  # (n, C)
        total = (onehot * weights[:, None]).sum(dim=0)
        present = total > 0
        n_present = int(present.sum())
        membership = onehot.T[present]  # (B, n)
        counts = membership.sum(dim=1)
        rows = (torch.cumsum(present, 0) - 1).clamp_min(0)[labels]
        group = (rows, weights, membership, counts)
        # positive part: log(1 + P_c) for the classes of the batch
        own = (cosine * onehot).sum(dim=1, keepdim=True)  # s_{i, y_i}
        log_p = _class_log_mean_exp(-self.alpha * (own - self.base), *group)[:, 0]
        pos = F.softplus(log_p).sum() / (self.alpha * n_present)
        # negative part: log N_{cc'} for c in the batch, every c'
        log_n = _class_log_mean_exp(self.beta * (cosine - self.base), *group)
        idx = torch.nonzero(present, as_tuple=True)[0]
        inside = log_n[:, idx]  # (B, B): both classes in the batch
        upper = torch.triu(torch.ones_like(inside, dtype=torch.bool), diagonal=1)
        both = torch.logsumexp(
            torch.stack([inside, inside.T, torch.zeros_like(inside)]), dim=0
        )
        neg = both[upper].sum() + F.softplus(log_n[:, ~present]).sum()
        return pos + neg / (self.beta * n_present)

    def _field_penalty(self, gram):
        beta = float(self.beta)
        return torch.logaddexp(torch.zeros_like(gram), beta * (gram - self.base)) / beta
