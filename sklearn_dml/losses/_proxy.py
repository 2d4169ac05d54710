"""Proxy and classification losses, and the (proxy-free) NCA loss.

Proxy losses compare every embedding with learnable class representatives
("proxies", class weights, centres) instead of with the other embeddings of
the batch, so their cost is linear in the batch size. Those parameters only
exist once :meth:`configure` has been called with the number of classes and
the embedding size: estimators do this before building the optimizer, so that
the optimizer sees them.
"""

import math
import numbers

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._tuples import _check_tuple, label_masks
from ..distances import CosineSimilarity, LpDistance, _safe_sqrt
from ._base import BaseMetricLoss, zero_loss

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "LargeMarginSoftmaxLoss",
    "NCALoss",
    "NormalizedSoftmaxLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SoftTripleLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
]

register_doc(
    "proxy_size_params",
    """
    num_classes : int, default=None
        Number of classes; labels must be integers in
        ``0 .. num_classes - 1``. ``None`` leaves it to :meth:`configure`
        (estimators pass the number of classes of ``y``).

    embedding_size : int, default=None
        Dimension of the embeddings. ``None`` leaves it to :meth:`configure`
        (estimators pass the output size of the backbone).
    """,
)

register_doc(
    "proxy_loss_notes",
    """
    **Learnable parameters.** The loss owns a :class:`torch.nn.Parameter`
    ``proxies`` that exists only after :meth:`configure` (a forward call
    before it raises ``RuntimeError``). Estimators call ``configure`` before
    training; a hand-written training loop must call it itself, *before*
    building the optimizer and before ``.to(device)``. The parameter is
    created in the default dtype and cast to the embeddings' dtype at every
    call, so float64 embeddings also work (the gradient still reaches the
    parameter).

    **Mined tuples.** ``indices_tuple`` weights samples rather than pairs:
    sample :math:`i` gets :math:`w_i = c_i / \\max_j c_j`, where :math:`c_i`
    counts its occurrences in the tuple (pytorch-metric-learning's
    ``convert_to_weights``); without a tuple every :math:`w_i = 1`. An empty
    tuple gives a zero loss (pytorch-metric-learning treats it as "no
    tuple").
    """,
)

register_doc(
    "proxy_learning_rate_note",
    """
    **Learning rate of the loss parameters.** Proxy and classification
    losses are usually trained with a separate, larger learning rate for
    their parameters: Proxy-Anchor uses 100 times the backbone's (1e-2 for
    proxies with 1e-4 for the network), and SoftTriple 1e-2 for the centres
    with 1e-4 for the network. "A Metric Learning Reality Check" (Musgrave,
    Belongie and Lim, ECCV 2020) trains every loss's parameters with their own
    RMSprop optimizer (benchmark configuration ``with_metric_loss_optimizer``:
    learning rate 1e-6, weight decay 5e-5, momentum 0.9, the same settings as
    the network). The training engine puts these parameters in their own
    optimizer group for this purpose.
    """,
)


# ----------------------------------------------------------------- helpers
def _sample_weights(indices_tuple, labels, dtype):
    """Per-sample weights of a mined tuple, or ``None`` without a tuple."""
    if indices_tuple is None:
        return None
    _check_tuple(indices_tuple)
    flat = torch.cat([t.reshape(-1) for t in indices_tuple]).to(labels.device)
    if flat.numel() == 0:
        return torch.zeros(labels.shape[0], dtype=dtype, device=labels.device)
    counts = torch.bincount(flat, minlength=labels.shape[0]).to(dtype)
    return counts / counts.max()


def _weighted_mean(terms, weights):
    """``mean(w_i * terms_i)`` over every sample (pml's ``MeanReducer``)."""
    if weights is None:
        return terms.mean()
    return (terms * weights).sum() / terms.shape[0]


def _check_positive_int(value, name, owner):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < 1
    ):
        raise ValueError(
            f"{type(owner).__name__}: {name} must be a positive integer; got {value!r}."
        )
    return int(value)


def _resolve_size(owner, name, value):
    """The size given to ``configure``, reconciled with the constructor's."""
    stored = getattr(owner, name)
    if value is None:
        value = stored
    if value is None:
        raise ValueError(
            f"{type(owner).__name__}.configure needs {name}: pass it to "
            f"configure or to the constructor."
        )
    value = _check_positive_int(value, name, owner)
    if stored is not None and int(stored) != value:
        raise ValueError(
            f"{type(owner).__name__} was built with {name}={stored} but "
            f"configure got {name}={value}; leave {name}=None in the "
            "constructor to let configure decide."
        )
    return value


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

    def __init__(self, num_classes=None, embedding_size=None, distance=None):
        super().__init__(distance=distance)
        self.num_classes = num_classes
        self.embedding_size = embedding_size

    def _init_proxies(self, proxies):
        torch.nn.init.normal_(proxies)

    def _proxy_shape(self, num_classes, embedding_size):
        extra = tuple(
            _check_positive_int(getattr(self, name), name, self)
            for name in self._extra_dims
        )
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
        num_classes = _resolve_size(self, "num_classes", num_classes)
        embedding_size = _resolve_size(self, "embedding_size", embedding_size)
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


def _cosine_to_proxies(embeddings, proxies):
    """Cosine similarity of every embedding with every (flattened) proxy."""
    flat = proxies.reshape(-1, proxies.shape[-1])
    return F.normalize(embeddings, dim=1) @ F.normalize(flat, dim=1).T


def _logits_from(distance, mat, factor):
    """``factor * similarity``: a distance enters with its sign flipped."""
    return factor * mat if distance.is_inverted else -factor * mat


# -------------------------------------------------------------------- NCA
@fill_doc
class NCALoss(BaseMetricLoss):
    """Neighbourhood components analysis loss within the batch.

    Every sample picks a neighbour among the other samples of the batch with a
    softmax over their (negative, scaled) distances; the loss is the negative
    log-probability that the neighbour has the sample's class. Not a proxy
    loss: it needs no learnable parameter.

    Parameters
    ----------
    softmax_scale : float, default=1
        Multiplies the distances inside the softmax (an inverse temperature).

    distance : BaseDistance, default=None
        How embeddings are compared. ``None`` means
        ``LpDistance(power=2)``: the squared Euclidean distance of
        L2-normalised embeddings, as in NCA. A similarity enters the softmax
        with a positive sign.

    See Also
    --------
    ProxyNCALoss : The same softmax over class proxies instead of samples.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : Linear NCA on the
        full data set.

    Notes
    -----
    With :math:`P_i` the other samples of :math:`i`'s class and
    :math:`s` the ``softmax_scale``:

    .. math::

        L = -\\frac{1}{|V|} \\sum_{i \\in V} w_i
            \\log \\frac{\\sum_{j \\in P_i} e^{-s\\, d_{ij}}}
                        {\\sum_{k \\neq i} e^{-s\\, d_{ik}}}

    where :math:`V` holds the samples with at least one positive (a sample
    alone in its class is skipped; ``0`` if none) and :math:`w_i` are the
    sample weights of a mined ``indices_tuple`` (``1`` without one; see
    :class:`ProxyNCALoss` for the weighting rule). Both sums are computed as
    log-sum-exp, so large scales do not underflow; pytorch-metric-learning
    takes the log of a softmax and drops rows whose probability underflows
    to 0, which otherwise gives the same value. For a similarity :math:`S`
    the exponents are :math:`s\\, S_{ij}`.

    References
    ----------
    .. [1] Goldberger, J., Roweis, S., Hinton, G. and Salakhutdinov, R.
       "Neighbourhood Components Analysis", NIPS 2004.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._proxy import NCALoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = NCALoss(softmax_scale=2.0)(embeddings, labels)
    >>> round(loss.item(), 4)
    0.629
    """

    def __init__(self, softmax_scale=1, distance=None):
        super().__init__(distance=distance)
        self.softmax_scale = softmax_scale

    def _default_distance(self):
        return LpDistance(power=2)

    def _compute(self, embeddings, labels, indices_tuple, distance):
        weights = _sample_weights(indices_tuple, labels, embeddings.dtype)
        if labels.shape[0] < 2 or (weights is not None and not weights.any()):
            return zero_loss(embeddings)
        pos_mask, _ = label_masks(labels)
        has_pos = pos_mask.any(dim=1)
        if not has_pos.any():
            return zero_loss(embeddings)
        logits = _softmax_logits(distance, embeddings, None, self.softmax_scale)
        eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        logits = logits.masked_fill(eye, float("-inf"))
        terms = _neg_log_positive_mass(logits, pos_mask, has_pos)
        if weights is not None:
            terms = terms * weights
        terms = torch.where(has_pos, terms, torch.zeros_like(terms))
        return terms.sum() / has_pos.sum()


def _softmax_logits(distance, query, ref, scale):
    """Logits ``scale * S`` (or ``-scale * d``) of a softmax over ``ref``.

    For the squared Euclidean distance, ``-scale * d_ij`` is replaced by
    ``scale * (2 q_i . r_j - |r_j|^2)``: it differs by the row constant
    ``scale * |q_i|^2``, which a softmax over ``j`` ignores, and costs one
    matrix product instead of a distance matrix, a root and a square.
    """
    if type(distance) is LpDistance and distance.p == 2 and distance.power == 2:
        if distance.normalize_embeddings:
            query = F.normalize(query, dim=1)
            ref = None if ref is None else F.normalize(ref, dim=1)
            other = query if ref is None else ref
            return (2.0 * scale) * (query @ other.T)
        other = query if ref is None else ref
        sq = (other * other).sum(dim=1)
        return scale * (2.0 * (query @ other.T) - sq[None, :])
    mat = distance(query, ref)
    return _logits_from(distance, mat, scale)


def _neg_log_positive_mass(logits, pos_mask, has_pos):
    """Row-wise ``-log(sum_pos softmax(logits))`` with a single exponential.

    Rows without a positive give 0. A row whose positive mass underflows
    (a loss above about 87 in float32) is recomputed with two log-sum-exps,
    so the result is always finite.
    """
    shift = logits.detach().amax(dim=1, keepdim=True)
    expo = torch.exp(logits - shift)
    total = expo.sum(dim=1)
    positive = (expo * pos_mask).sum(dim=1)
    tiny = torch.finfo(logits.dtype).tiny
    terms = torch.log(total) - torch.log(positive.clamp_min(tiny))
    underflow = has_pos & (positive < tiny)
    if underflow.any():
        rows = logits[underflow]
        pos_rows = rows.masked_fill(~pos_mask[underflow], float("-inf"))
        exact = torch.logsumexp(rows, dim=1) - torch.logsumexp(pos_rows, dim=1)
        terms = terms.index_put((torch.nonzero(underflow, as_tuple=True)[0],), exact)
    return torch.where(has_pos, terms, torch.zeros_like(terms))


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
    >>> from sklearn_dml.losses._proxy import ProxyNCALoss
    >>> loss = ProxyNCALoss().configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.1269
    """

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
    >>> from sklearn_dml.losses._proxy import ProxyAnchorLoss
    >>> loss = ProxyAnchorLoss(margin=0.1, alpha=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    1.929
    """

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
    >>> from sklearn_dml.losses._proxy import NormalizedSoftmaxLoss
    >>> loss = NormalizedSoftmaxLoss(temperature=0.5).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.32
    """

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


def _soft_cross_entropy(logits, targets):
    """Mean over rows of ``-sum_c t_c log softmax(logits)_c`` (0 * -inf is 0)."""
    log_p = F.log_softmax(logits, dim=1)
    terms = torch.where(targets > 0, targets * log_p, torch.zeros_like(log_p))
    return -terms.sum(dim=1).mean()


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
    >>> from sklearn_dml.losses._proxy import LargeMarginSoftmaxLoss
    >>> loss = LargeMarginSoftmaxLoss(margin=2).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[2.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.4964
    """

    def __init__(self, num_classes=None, embedding_size=None, margin=4, scale=1):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.margin = margin
        self.scale = scale

    def _target_logit(self, cos_target):
        m = self.margin
        if isinstance(m, float) and m.is_integer():
            m = int(m)
        m = _check_positive_int(m, "margin", self)
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
    >>> from sklearn_dml.losses._proxy import SphereFaceLoss
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
    >>> from sklearn_dml.losses._proxy import CosFaceLoss
    >>> loss = CosFaceLoss(margin=0.2, scale=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.3666
    """

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
    >>> from sklearn_dml.losses._proxy import ArcFaceLoss
    >>> loss = ArcFaceLoss(margin=30.0, scale=4.0).configure(2, 2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.6109
    """

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
    >>> from sklearn_dml.losses._proxy import SubCenterArcFaceLoss
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
    >>> from sklearn_dml.losses._proxy import SoftTripleLoss
    >>> loss = SoftTripleLoss(centers_per_class=1, la=4.0, margin=0.1)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2)[:, None, :])
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.27
    """

    _extra_dims = ("centers_per_class",)

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
