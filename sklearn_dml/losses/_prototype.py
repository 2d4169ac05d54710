"""Losses against class prototypes of the batch (prototypical, ProtoTriplet,
angular prototypical, ICNN)."""

from numbers import Real

import torch

from .._docstrings import fill_doc
from .._param_validation import Interval
from .._tuples import check_embeddings_labels
from ..distances import CosineSimilarity, DistanceConstraint, LpDistance
from ._base import POSITIVE_INT, BaseMetricLoss, not_configured_error, zero_loss


def _anchors_of(indices_tuple, n, device):
    """Boolean mask of the samples used as anchors by a mined tuple."""
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (
        3,
        4,
    ):
        raise ValueError(
            "indices_tuple must be pairs (a1, p, a2, n) or triplets (a, p, n) of "
            f"index tensors; got {type(indices_tuple).__name__} of length "
            f"{len(indices_tuple) if hasattr(indices_tuple, '__len__') else '?'}."
        )
    heads = [indices_tuple[0]] + ([indices_tuple[2]] if len(indices_tuple) == 4 else [])
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    for head in heads:
        mask[torch.as_tensor(head, device=device).long().reshape(-1)] = True
    return mask


def _prototype_comparisons(embeddings, labels, indices_tuple, distance):
    """Anchors compared with every class prototype of the batch.

    Returns ``None`` when no anchor has both a positive prototype (another
    sample of its class) and a negative one (another class); otherwise
    ``(values, own)``: ``values[a, c]`` compares anchor ``a`` with the
    prototype of class ``c`` (its own class's prototype leaving the anchor
    out) and ``own[a]`` is the column of the anchor's class.
    """
    n = embeddings.shape[0]
    if n == 0:
        return None
    classes, codes = torch.unique(labels, return_inverse=True)
    n_classes = classes.shape[0]
    onehot = torch.nn.functional.one_hot(codes, n_classes).to(embeddings.dtype)
    counts = onehot.sum(dim=0)  # (C,)
    sums = onehot.T @ embeddings  # (C, d)
    prototypes = sums / counts[:, None]
    own_count = counts[codes]  # n_{y_i}
    anchors = own_count > 1
    if indices_tuple is not None:
        anchors = anchors & _anchors_of(indices_tuple, n, embeddings.device)
    if n_classes < 2 or not anchors.any():
        return None
    denom = torch.where(anchors, own_count - 1, torch.ones_like(own_count))
    positives = (sums[codes] - embeddings) / denom[:, None]
    x = embeddings[anchors]
    own = codes[anchors]
    d_pos = distance.pairwise(x, positives[anchors])  # (a,)
    values = distance(x, prototypes)  # (a, C)
    values = values.scatter(1, own[:, None], d_pos[:, None])
    return values, own


@fill_doc
class ProtoTripletLoss(BaseMetricLoss):
    """Proto-Triplet loss: a sample closer to its class prototype than to others.

    A triplet loss in which every sample of the batch is an anchor, its
    positive is the prototype (mean embedding) of the other samples of its
    class, and its negatives are the prototypes of the other classes of the
    batch, as a query is compared with the prototypes of the support set in
    prototypical few-shot learning.

    Parameters
    ----------
    margin : float, default=0.05
        Required gap :math:`m \\ge 0` between the distance to a negative
        prototype and the distance to the positive prototype (the default of
        :class:`~sklearn_dml.losses.TripletMarginLoss`, so both compare at
        the same margin).

    {loss_distance_lp}

    See Also
    --------
    sklearn_dml.losses.TripletMarginLoss : The same hinge on sample triplets.
    ICNNLoss : The other loss of the same paper.

    Notes
    -----
    With :math:`S_c` the samples of class :math:`c` in the batch,
    :math:`n_c = |S_c|`, the prototypes

    .. math::

        \\mu_c = \\frac{1}{n_c} \\sum_{j \\in S_c} x_j, \\qquad
        \\mu_i^{+} = \\frac{1}{n_{y_i} - 1} \\sum_{j \\in S_{y_i}, j \\neq i} x_j

    (the positive prototype leaves the anchor out, as a query is not part of
    the support set it is compared with) and :math:`A` the anchors whose
    class has another sample in the batch,

    .. math::

        L = \\frac{1}{|T|} \\sum_{i \\in A} \\sum_{c \\neq y_i}
            [d(x_i, \\mu_i^{+}) - d(x_i, \\mu_c) + m]_+

    where :math:`T` is the set of (anchor, negative class) pairs of the sum
    (the mean over every such triplet, zero terms included). The prototypes
    are means of the embeddings as given; a distance that L2-normalises its
    inputs (the default) compares the sample with the prototype's
    direction. For a similarity the term is :math:`[s(x_i, \\mu_c) - s(x_i, \\mu_i^+) + m]_+`.
    The paper trains on few-shot episodes (queries against the prototypes
    of a support set); in a batch, every sample acts once as the query of
    the others. Only the paper's abstract was at hand when this was
    written: the leave-one-out positive, the mean over every negative class
    (rather than the nearest) and the default margin are choices of this
    package, stated here. A batch with no class of at least two samples, or
    of one class, gives 0. With a mined ``indices_tuple``, only the samples appearing as
    anchors in it (the first index of each triplet or pair) are anchors;
    the prototypes still use the whole batch.

    References
    ----------
    .. [1] Mendez-Ruiz, M., Gonzalez-Zapata, J., Reyes-Amezcua, I.,
       Flores-Araiza, D., Lopez-Tiro, F., Mendez-Vazquez, A. and Ochoa-Ruiz,
       G. "SuSana Distancia is all you need: Enforcing class separability in
       metric learning via two novel distance-based loss functions for
       few-shot image classification", 2023, arXiv:2305.09062.
    .. [2] Snell, J., Swersky, K. and Zemel, R. "Prototypical Networks for
       Few-shot Learning", NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ProtoTripletLoss
    >>> from sklearn_dml.distances import LpDistance
    >>> x = torch.tensor([[0.0, 0.0], [0.0, 2.0], [3.0, 0.0], [3.0, 2.0]])
    >>> loss = ProtoTripletLoss(margin=1.0, distance=LpDistance(normalize_embeddings=False))
    >>> round(loss(x, torch.tensor([0, 0, 1, 1])).item(), 4)
    0.0
    >>> round(loss(x, torch.tensor([0, 1, 0, 1])).item(), 4)
    1.5
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, margin=0.05, distance=None):
        super().__init__(distance=distance)
        self.margin = margin

    def _compute(self, embeddings, labels, indices_tuple, distance):
        margin = float(self.margin)
        found = _prototype_comparisons(embeddings, labels, indices_tuple, distance)
        if found is None:
            return zero_loss(embeddings)
        values, own = found
        d_pos = values.gather(1, own[:, None])
        terms = torch.relu(margin - distance.margin(d_pos, values))
        negative = own[:, None] != torch.arange(values.shape[1], device=own.device)
        return (terms * negative).sum() / negative.sum()


@fill_doc
class PrototypicalLoss(BaseMetricLoss):
    """Prototypical-network loss: a softmax over the class prototypes of the batch.

    Every sample is classified among the classes of its batch by its
    distance to their prototypes (mean embeddings), its own class's
    prototype leaving it out, and the loss is the cross-entropy of that
    classification: the training objective of prototypical networks, with
    each sample acting once as the query of the others.

    Parameters
    ----------
    temperature : float, default=0.1
        Temperature :math:`T > 0` dividing the distances (or similarities)
        before the softmax. Needed on L2-normalised embeddings, whose
        squared distances lie in [0, 4].

    distance : BaseDistance, default=None
        How samples and prototypes are compared. ``None`` means
        ``LpDistance(power=2)``, the squared Euclidean distance of
        L2-normalised inputs (prototypical networks use the squared
        Euclidean distance). A similarity is used with the opposite sign.

    See Also
    --------
    ProtoTripletLoss : A hinge on the same comparisons.
    ICNNLoss : Trained with this loss by :class:`~sklearn_dml.ICNNEmbedder`.

    Notes
    -----
    With the prototypes :math:`\\mu_c` and :math:`\\mu_i^+` of
    :class:`ProtoTripletLoss` (written :math:`\\mu_{y_i}` below for the
    anchor's own class) and :math:`A` the anchors (samples whose class has
    another sample in a batch of at least two classes),

    .. math::

        L = -\\frac{1}{|A|} \\sum_{i \\in A} \\log
            \\frac{e^{-d(x_i, \\mu_{y_i}) / T}}{\\sum_{c} e^{-d(x_i, \\mu_c) / T}}

    over the classes :math:`c` of the batch (:math:`+s / T` for a
    similarity). A batch without anchor gives 0. A mined ``indices_tuple``
    restricts the anchors as for :class:`ProtoTripletLoss`.

    References
    ----------
    .. [1] Snell, J., Swersky, K. and Zemel, R. "Prototypical Networks for
       Few-shot Learning", NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import PrototypicalLoss
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> PrototypicalLoss()(x, torch.tensor([0, 0, 1, 1])).item() < 1e-6
    True
    >>> PrototypicalLoss()(x, torch.tensor([0, 1, 0, 1])).item() > 10
    True
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=0.1, distance=None):
        super().__init__(distance=distance)
        self.temperature = temperature

    def _default_distance(self):
        return LpDistance(power=2)

    def _compute(self, embeddings, labels, indices_tuple, distance):
        temperature = float(self.temperature)
        found = _prototype_comparisons(embeddings, labels, indices_tuple, distance)
        if found is None:
            return zero_loss(embeddings)
        values, own = found
        logits = (values if distance.is_inverted else -values) / temperature
        return torch.nn.functional.cross_entropy(logits, own)


# The smallest scale of the angular prototypical loss (the authors' clamp).
_MIN_SCALE = 1e-6


@fill_doc
class AngularPrototypicalLoss(BaseMetricLoss):
    """Angular prototypical loss: a query against the prototypes of the others.

    In every class of the batch with at least two samples, one sample is the
    query and the mean of the others the class's prototype. Each query is
    classified among the prototypes of the batch by a softmax over their
    scaled cosine similarities, the scale being learned; the loss
    is the cross-entropy of that classification. A loss for open-set
    problems with many classes and few samples each.

    Parameters
    ----------
    init_scale : float, default=10.0
        Initial value of the learnable scale :math:`w > 0` (the authors'
        implementation's).

    init_bias : float, default=-5.0
        Value of the bias :math:`b` (the authors'
        implementation's).

    {loss_distance_cosine_only}

    Attributes
    ----------
    scale : torch.nn.Parameter of shape ()
        The learned :math:`w`, created by :meth:`configure` from
        ``init_scale``; clamped to at least 1e-6 when used.
    bias : torch.nn.Parameter of shape ()
        The :math:`b`, created by :meth:`configure` from ``init_bias``; it
        receives no gradient (see Notes).

    See Also
    --------
    PrototypicalLoss : Every sample a query, squared Euclidean distances.
    sklearn_dml.losses.NormalizedSoftmaxLoss : Scaled cosines to learned
        class weights instead of batch prototypes.

    Notes
    -----
    Let :math:`1, \\dots, N` be the classes of the batch with at least two
    samples. For class :math:`j`, the query :math:`q_j` is its last sample
    in batch order (the batch order is random) and the prototype
    :math:`c_j` the mean of its other samples. With
    :math:`S_{jk} = w \\cos(q_j, c_k) + b`,

    .. math::

        L = -\\frac{1}{N} \\sum_{j=1}^{N}
            \\log \\frac{e^{S_{jj}}}{\\sum_{k=1}^{N} e^{S_{jk}}}.

    As in the paper, the prototypes of every class leave out that class's
    query, so each query is compared with prototypes built from the same
    number of samples. The bias shifts every logit of a row alike, which a
    softmax ignores (its exact gradient is 0): it is kept so that the logits
    are the paper's, but enters them as a constant, so it stays at
    ``init_bias`` (an adaptive optimizer would otherwise turn the rounding
    noise of its gradient into a drift). A batch with fewer than
    two such classes gives 0. Each sample plays one role (query or support),
    so the loss uses no mined tuples and raises an error when given one.
    The scale is learned with the network (an estimator puts it in the
    optimizer through :meth:`configure`).

    {loss_configure_note}

    References
    ----------
    .. [1] J. S. Chung, J. Huh, S. Mun, M. Lee, H. S. Heo, S. Choe, C. Ham,
       S. Jung, B.-J. Lee and I. Han, "In defence of metric learning for
       speaker recognition", Interspeech 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import AngularPrototypicalLoss
    >>> loss = AngularPrototypicalLoss().configure()
    >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> loss(x, torch.tensor([0, 0, 1, 1])).item() < 1e-3
    True
    >>> loss(x, torch.tensor([0, 1, 0, 1])).item() > 0.5
    True
    """

    _parameter_constraints = {
        "init_scale": [Interval(Real, 0, None, closed="neither")],
        "init_bias": [Interval(Real, None, None, closed="neither")],
        "distance": [None, DistanceConstraint(CosineSimilarity)],
    }

    def __init__(self, init_scale=10.0, init_bias=-5.0, distance=None):
        super().__init__(distance=distance)
        self.init_scale = init_scale
        self.init_bias = init_bias

    def _default_distance(self):
        return CosineSimilarity()

    def configure(self, num_classes=None, embedding_size=None):
        """Create the learnable scale and bias.

        Parameters
        ----------
        num_classes : int, default=None
            Unused; accepted so that every loss configures alike.
        embedding_size : int, default=None
            Unused; accepted so that every loss configures alike.

        Returns
        -------
        self : AngularPrototypicalLoss
            This loss, with ``scale`` and ``bias``.
        """
        self._validate_params()
        self.scale = torch.nn.Parameter(torch.tensor(float(self.init_scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(self.init_bias)))
        return self

    def forward(self, embeddings, labels, indices_tuple=None):
        check_embeddings_labels(embeddings, labels)
        if indices_tuple is not None:
            raise ValueError(
                "AngularPrototypicalLoss splits each class of the batch into a "
                "query and a support set and does not use mined tuples; train it "
                "without a miner (miner=None)."
            )
        return self._compute(embeddings, labels, None, self._get_distance())

    def _compute(self, embeddings, labels, indices_tuple, distance):
        scale, bias = getattr(self, "scale", None), getattr(self, "bias", None)
        if scale is None or bias is None:
            raise not_configured_error(self, "scale and bias")
        n = embeddings.shape[0]
        _, codes = torch.unique(labels, return_inverse=True)
        counts = torch.bincount(codes)
        positions = torch.arange(n, device=embeddings.device)
        last = torch.full_like(counts, -1).scatter_reduce(
            0, codes, positions, reduce="amax"
        )
        episode = counts >= 2
        if int(episode.sum()) < 2:
            zero = zero_loss(embeddings)
            return zero + 0.0 * scale
        support = torch.ones(n, dtype=torch.bool, device=embeddings.device)
        support[last] = False
        onehot = torch.nn.functional.one_hot(codes, counts.shape[0])
        onehot = onehot.to(embeddings.dtype) * support[:, None]
        sums = onehot.T @ embeddings
        prototypes = sums[episode] / (counts[episode] - 1)[:, None].to(sums.dtype)
        queries = embeddings[last[episode]]
        cosines = distance(queries, prototypes)
        logits = scale.to(cosines.dtype).clamp(min=_MIN_SCALE) * cosines
        # b cancels in the softmax (exact gradient 0): added as a constant, so
        # that Adam never turns the rounding noise of its gradient into a drift.
        logits = logits + bias.detach().to(cosines.dtype)
        target = torch.arange(logits.shape[0], device=logits.device)
        return torch.nn.functional.cross_entropy(logits, target)


def icnn_terms(dist, same, k):
    """The ICNN score from sorted neighbour distances (torch, differentiable).

    Parameters
    ----------
    dist : torch.Tensor of shape (n, m)
        Distances from every sample to its ``m`` nearest neighbours (itself
        excluded), non-decreasing per row; ``m`` is ``k + 1`` or less when
        there are not enough neighbours.
    same : torch.Tensor of shape (n, m), dtype bool
        Whether each neighbour has the sample's class.
    k : int
        Number of neighbours scored (``k <= m``).

    Returns
    -------
    score : torch.Tensor of shape ()
        ``(lambda + gamma) / 2`` of :class:`ICNNLoss`, in [0, 1].
    """
    dtype = dist.dtype
    zero = torch.zeros((), dtype=dtype, device=dist.device)
    one = torch.ones((), dtype=dtype, device=dist.device)
    inf = torch.full((), float("inf"), dtype=dtype, device=dist.device)
    # Distance to the nearest different-class neighbour among the m found.
    d_other = torch.where(same, inf, dist).min(dim=1).values  # (n,)
    near, near_same = dist[:, :k], same[:, :k]
    scale = torch.maximum(d_other, near.max(dim=1).values)
    finite = torch.isfinite(scale) & (scale > 0)
    safe_scale = torch.where(finite, scale, one)
    rel = torch.where(finite[:, None], near / safe_scale[:, None], zero)
    n_same = near_same.sum(dim=1)
    has_same = n_same > 0
    rel_same = torch.where(near_same, rel, zero).sum(dim=1) / n_same.clamp_min(1)
    # No same-class neighbour anywhere: the worst intra-class value, 0.
    intra = one - rel_same[has_same].mean() if has_same.any() else zero
    near_other = ~near_same
    n_other = near_other.sum(dim=1)
    has_other = n_other > 0
    if has_other.any():
        other = torch.where(near_other, near, zero)
        top = other.max()
        spread = other / torch.where(top > 0, top, one)
        inter = (spread.sum(dim=1)[has_other] / n_other[has_other]).mean()
    else:
        inter = one  # no different-class neighbour at all: perfect separation
    lam = (intra + inter) / 2
    gamma = n_same.to(dtype).mean() / k
    return (lam + gamma) / 2


@fill_doc
class ICNNLoss(BaseMetricLoss):
    """ICNN loss: minus the log of the inter/intra-class nearest-neighbour score.

    The ICNN score of a batch (in [0, 1], higher is better) rewards
    neighbourhoods made of the sample's own class, same-class neighbours
    close compared with the nearest sample of another class, and
    other-class neighbours far away; the loss is :math:`-\\log` of it.

    Parameters
    ----------
    n_neighbors : int, default=4
        Number :math:`k` of nearest neighbours scored for every sample (the
        authors' default). Batches of at most :math:`k` samples use
        :math:`n - 1`.

    {loss_distance_lp}
        A similarity is not accepted: the score divides distances.

    See Also
    --------
    sklearn_dml.metrics.icnn_score : The score on a whole dataset.
    ProtoTripletLoss : The other loss of the same paper.

    Notes
    -----
    For sample :math:`i` let :math:`N_i` be its :math:`k` nearest neighbours
    (itself excluded, ties by index), :math:`N_i^+` and :math:`N_i^-` those
    of its class and of other classes, :math:`d^-_i` the distance to the
    nearest sample of another class among its :math:`k + 1` nearest
    (:math:`+\\infty` if none) and :math:`\\rho_i = \\max(d^-_i, \\max_{j \\in
    N_i} d_{ij})`. With :math:`I^+` (:math:`I^-`) the samples with a
    non-empty :math:`N_i^+` (:math:`N_i^-`) and :math:`D` the largest
    :math:`d_{ij}` over :math:`j \\in N_i^-`, all :math:`i`:

    .. math::

        \\Lambda^+ = 1 - \\frac{1}{|I^+|} \\sum_{i \\in I^+}
            \\frac{1}{|N_i^+|} \\sum_{j \\in N_i^+} \\frac{d_{ij}}{\\rho_i},
        \\qquad
        \\Lambda^- = \\frac{1}{|I^-|} \\sum_{i \\in I^-}
            \\frac{1}{|N_i^-|} \\sum_{j \\in N_i^-} \\frac{d_{ij}}{D},

    .. math::

        \\gamma = \\frac{1}{n} \\sum_i \\frac{|N_i^+|}{k}, \\qquad
        \\mathrm{ICNN} = \\frac{1}{2}\\Big(\\frac{\\Lambda^+ + \\Lambda^-}{2}
            + \\gamma\\Big), \\qquad L = -\\log \\mathrm{ICNN}.

    :math:`\\Lambda^+ = 0` when :math:`I^+` is empty (no point has a
    neighbour of its class), :math:`\\Lambda^- = 1` when :math:`I^-` is
    empty (a one-class batch scores 1, loss 0), a ratio
    with an infinite or zero denominator is 0, and the score is clamped to
    the smallest positive float before the logarithm. :math:`\\gamma`
    (the purity of the neighbourhoods) is piecewise constant: the gradient
    flows through :math:`\\Lambda^\\pm`.

    Only the paper's abstract (a loss "based on an inter and intra class
    nearest neighbors score") was at hand when this was written; the
    definition above, the :math:`-\\log` included, follows the authors'
    public implementation of the loss (its "modified score"), read for the
    formulas only, with one change: that implementation sets
    :math:`\\Lambda^+ = 1` when :math:`I^+` is empty, which gives a set whose
    every neighbour is of another class the score 0.5; 0 is chosen here, so
    such a set scores at most 0.25. The loss is computed on every sample of the
    batch; it does not use mined tuples and raises an error when given one.

    References
    ----------
    .. [1] Mendez-Ruiz, M., Gonzalez-Zapata, J., Reyes-Amezcua, I.,
       Flores-Araiza, D., Lopez-Tiro, F., Mendez-Vazquez, A. and Ochoa-Ruiz,
       G. "SuSana Distancia is all you need: Enforcing class separability in
       metric learning via two novel distance-based loss functions for
       few-shot image classification", 2023, arXiv:2305.09062.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ICNNLoss
    >>> x = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
    >>> ICNNLoss(n_neighbors=1)(x, torch.tensor([0, 0, 1, 1])).item() < 0.05
    True
    >>> ICNNLoss(n_neighbors=1)(x, torch.tensor([0, 1, 0, 1])).item() > 0.5
    True
    """

    _parameter_constraints = {
        "n_neighbors": [POSITIVE_INT],
        "distance": [None, DistanceConstraint(is_inverted=False)],
    }

    def __init__(self, n_neighbors=4, distance=None):
        super().__init__(distance=distance)
        self.n_neighbors = n_neighbors

    def forward(self, embeddings, labels, indices_tuple=None):
        check_embeddings_labels(embeddings, labels)
        if indices_tuple is not None:
            raise ValueError(
                "ICNNLoss scores the neighbourhoods of the whole batch and does "
                "not use mined tuples; train it without a miner (miner=None)."
            )
        return self._compute(embeddings, labels, None, self._get_distance())

    def _compute(self, embeddings, labels, indices_tuple, distance):
        n = embeddings.shape[0]
        if n < 2:
            return zero_loss(embeddings)
        k = min(int(self.n_neighbors), n - 1)
        m = min(k + 1, n - 1)
        mat = distance(embeddings)
        eye = torch.eye(n, dtype=torch.bool, device=embeddings.device)
        # Stable sort: among equal distances, the smaller index comes first.
        masked = mat.masked_fill(eye, float("inf"))
        order = torch.sort(masked.detach(), dim=1, stable=True).indices[:, :m]
        dist = torch.gather(mat, 1, order)
        same = labels[order] == labels[:, None]
        score = icnn_terms(dist, same, k)
        tiny = torch.finfo(embeddings.dtype).tiny
        return -torch.log(score.clamp_min(tiny))
