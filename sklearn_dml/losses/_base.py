"""Base class of the metric losses and the helpers the loss families share."""

from numbers import Integral

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval, validate_params
from .._params import ParamsMixin
from .._tuples import (
    _check_tuple,
    check_embeddings_labels,
    convert_to_pairs,
    label_masks,
)
from ..distances import BaseDistance, DistanceConstraint, DistanceUserMixin, LpDistance

#: Constraint of a positive integer (sizes, counts).
POSITIVE_INT = Interval(Integral, 1, None, closed="left")

#: Constraint of ``num_classes`` / ``embedding_size``: ``None`` leaves the
#: value to :meth:`BaseMetricLoss.configure` (see :func:`resolve_size`).
SIZE_CONSTRAINT = [None, POSITIVE_INT]

#: ``distance`` of the losses defined on the Euclidean distance of unit-norm
#: embeddings (any power) and on that distance itself.
UNIT_EUCLIDEAN = DistanceConstraint(LpDistance, p=2, normalize_embeddings=True)
UNIT_EUCLIDEAN_POWER_1 = DistanceConstraint(
    LpDistance, p=2, power=1, normalize_embeddings=True
)

register_doc(
    "loss_forward_params",
    """
    embeddings : torch.Tensor of shape (batch_size, n_dims)
        Embeddings of the batch (floating point).
    labels : torch.Tensor of shape (batch_size,)
        Class index (``torch.long``) of every embedding.
    indices_tuple : tuple of torch.Tensor, default=None
        Restrict the loss to these pairs ``(a1, p, a2, n)`` or triplets
        ``(a, p, n)`` (positions in the batch), typically the output of a
        miner; the loss converts to the form it needs. ``None`` uses every
        valid pair or triplet of the batch.
    """,
)


register_doc(
    "loss_distance_lp",
    """
    distance : BaseDistance, default=None
        How embeddings are compared. ``None`` means
        :class:`~sklearn_dml.distances.LpDistance` (Euclidean distance of
        L2-normalised embeddings). A similarity such as
        :class:`~sklearn_dml.distances.CosineSimilarity` works too: every
        comparison goes through ``distance.margin``, so "closer" keeps its
        meaning (see Notes for the similarity form of the formula).
    """,
)


register_doc(
    "loss_distance_cosine",
    """
    distance : BaseDistance, default=None
        How embeddings are compared. ``None`` means
        :class:`~sklearn_dml.distances.CosineSimilarity`. With a distance
        (``is_inverted=False``) the roles of large and small values swap:
        ``S - base`` becomes ``base - d``.
    """,
)


def _check_soft_targets(mixed, targets, embeddings, labels):
    if not (torch.is_tensor(mixed) and mixed.ndim == 2):
        raise ValueError("mixed_embeddings must be a 2-D tensor (n_mixed, n_dims).")
    if mixed.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"mixed_embeddings have {mixed.shape[1]} columns but the embeddings "
            f"have {embeddings.shape[1]}."
        )
    if not (torch.is_tensor(targets) and targets.ndim == 2):
        raise ValueError(
            "mixed_targets must be a 2-D tensor (n_mixed, n_classes) of soft labels."
        )
    if targets.shape[0] != mixed.shape[0]:
        raise ValueError(
            f"mixed_targets has {targets.shape[0]} rows for {mixed.shape[0]} "
            "mixed embeddings."
        )
    if labels.numel() and int(labels.max()) >= targets.shape[1]:
        raise ValueError(
            f"labels go up to {int(labels.max())} but mixed_targets has only "
            f"{targets.shape[1]} class columns."
        )


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


def resolve_size(owner, name, given):
    """The size ``name`` to configure with: ``given`` or the constructor's value.

    The one resolution of ``num_classes`` / ``embedding_size`` for every
    component that creates parameters in ``configure``. The constructor's
    value was validated with the component (``None`` or a positive int);
    ``given``, the argument of ``configure``, is checked here.

    Raises
    ------
    InvalidParameterError
        When ``given`` is not ``None`` and not a positive integer.
    ValueError
        When neither value is known, or both are and they differ.
    """
    owner_name = type(owner).__name__
    stored = getattr(owner, name)
    if given is None:
        if stored is None:
            raise ValueError(
                f"{owner_name}.configure needs {name}: pass it to configure or "
                "to the constructor."
            )
        return int(stored)
    validate_params({name: [POSITIVE_INT]}, {name: given}, f"{owner_name}.configure")
    if stored is not None and stored != given:
        raise ValueError(
            f"{owner_name} was built with {name}={stored} but configure got "
            f"{name}={given}; pass the same value or leave {name}=None in the "
            "constructor to let configure decide."
        )
    return int(given)


def not_configured_error(obj, names):
    """The ``RuntimeError`` of a forward call before ``configure``."""
    return RuntimeError(
        f"{type(obj).__name__} has no {names} yet: call "
        "configure(num_classes, embedding_size) before the first forward "
        "(estimators do this before building the optimizer)."
    )


def _cosine_to_proxies(embeddings, proxies):
    """Cosine similarity of every embedding with every (flattened) proxy."""
    flat = proxies.reshape(-1, proxies.shape[-1])
    return F.normalize(embeddings, dim=1) @ F.normalize(flat, dim=1).T


def _logits_from(distance, mat, factor):
    """``factor * similarity``: a distance enters with its sign flipped."""
    return factor * mat if distance.is_inverted else -factor * mat


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


def _soft_cross_entropy(logits, targets):
    """Mean over rows of ``-sum_c t_c log softmax(logits)_c`` (0 * -inf is 0)."""
    log_p = F.log_softmax(logits, dim=1)
    terms = torch.where(targets > 0, targets * log_p, torch.zeros_like(log_p))
    return -terms.sum(dim=1).mean()


register_doc(
    "pml_single_pair_note",
    """
    Unlike pytorch-metric-learning, a batch whose index tensors hold a single
    pair is scored (pml returns zero when every index tensor has at most one
    element), and triplets given as ``indices_tuple`` become *distinct* pairs.
    """,
)


register_doc(
    "loss_distance_cosine_only",
    """
    distance : CosineSimilarity, default=None
        ``None`` means :class:`~sklearn_dml.distances.CosineSimilarity`, the
        only comparison this loss is defined for (another one raises
        ``InvalidParameterError``, a ``ValueError``, when the loss is built).
    """,
)


# --------------------------------------------------------------- helpers
def _pair_masks(indices_tuple, labels):
    """Dense ``(n, n)`` boolean masks of the positive and negative pairs."""
    if indices_tuple is None:
        return label_masks(labels)
    a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
    size = labels.shape[0]
    pos = torch.zeros(size, size, dtype=torch.bool, device=labels.device)
    neg = torch.zeros_like(pos)
    pos[a1, p] = True
    neg[a2, n] = True
    return pos, neg


def _pos_pairs_and_neg_mask(indices_tuple, labels):
    """Positive pairs as index vectors (duplicates kept) and the negative mask."""
    if indices_tuple is None:
        pos, neg = label_masks(labels)
        a1, p = torch.nonzero(pos, as_tuple=True)
        return a1, p, neg
    a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
    size = labels.shape[0]
    neg = torch.zeros(size, size, dtype=torch.bool, device=labels.device)
    neg[a2, n] = True
    return a1, p, neg


def _masked_logsumexp(x, mask):
    """Row-wise log-sum-exp of ``x`` over ``mask``; ``-inf`` for empty rows.

    Empty rows are computed on zeros and then replaced, so the backward pass
    never meets ``exp(-inf - -inf)`` (NaN).
    """
    has = mask.any(dim=1, keepdim=True)
    filled = x.masked_fill(~mask, float("-inf"))
    filled = torch.where(has, filled, torch.zeros_like(filled))
    out = torch.logsumexp(filled, dim=1)
    return torch.where(has[:, 0], out, torch.full_like(out, float("-inf")))


def _log1p_exp(x):
    """``log(1 + exp(x))``: exact for large ``x``, 0 (zero gradient) at -inf."""
    return torch.logaddexp(x, torch.zeros_like(x))


class BaseMetricLoss(DistanceUserMixin, ParamsMixin, torch.nn.Module):
    """Base class of losses on a batch of labelled embeddings.

    A subclass implements ``_compute(embeddings, labels, indices_tuple,
    distance)`` returning a 0-d tensor, and may override
    ``_default_distance``. Constructor arguments are stored unchanged; a
    ``distance`` of ``None`` is resolved at every call, so ``set_params`` and
    ``sklearn.base.clone`` behave as for estimators.

    Parameters
    ----------
    distance : BaseDistance, default=None
        How embeddings are compared; ``None`` uses the loss's default.

    Notes
    -----
    The parameters are checked against the class's ``_parameter_constraints``
    once the loss is built, by ``set_params`` (before anything changes) and
    by :meth:`configure`; never by :meth:`forward`, so a training step pays
    nothing for them. A subclass with parameters of its own declares them
    there too: ``_parameter_constraints = {**BaseMetricLoss._parameter_constraints,
    "margin": [Interval(Real, 0, None, closed="left")]}`` (``Interval`` from
    ``sklearn_dml._param_validation``).

    Examples
    --------
    A loss pulling every positive pair together (no negatives, so not a
    useful loss on its own, but the whole contract):

    >>> import torch
    >>> from sklearn_dml.losses import BaseMetricLoss
    >>> class PositivePairLoss(BaseMetricLoss):
    ...     def _compute(self, embeddings, labels, indices_tuple, distance):
    ...         same = labels[:, None] == labels[None, :]
    ...         same.fill_diagonal_(False)
    ...         return distance(embeddings)[same].mean()
    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    >>> loss = PositivePairLoss()(emb, torch.tensor([0, 0, 1]))
    >>> round(loss.item(), 4)
    1.4142
    >>> loss.backward()
    >>> emb.grad.shape
    torch.Size([3, 2])
    """

    #: Whether :meth:`forward` accepts ``sample_weight`` (the loss's
    #: ``_compute`` then takes a ``sample_weight`` keyword).
    supports_sample_weight = False

    #: Whether the loss is a mean over every row of the batch (rows without a
    #: pair count as zero), not over its pairs or triplets: a wrapper that
    #: adds rows which are never anchors (:class:`CrossBatchMemoryLoss`)
    #: rescales it to the mean over the anchor rows.
    mean_over_anchors = False

    #: Whether ``_compute`` also accepts, with pairs ``(a1, p, a2, n)`` as
    #: ``indices_tuple``, a distance whose matrix is rectangular (the batch
    #: rows against other reference rows, which ``p`` and ``n`` index): the
    #: loss then reads the matrix only at the given pairs and reduces over
    #: the pairs or the batch rows. :class:`CrossBatchMemoryLoss` then
    #: computes the (batch, batch + memory) block instead of the square
    #: matrix of the batch stacked on the memory.
    supports_reference_block = False

    _parameter_constraints = {"distance": [None, BaseDistance]}

    def __init__(self, distance=None):
        super().__init__()
        self.distance = distance

    def configure(self, num_classes, embedding_size):
        """Create the loss's learnable parameters, if it has any.

        Losses with proxies, class weights or centres override this; the base
        version only re-validates the hyper-parameters. Estimators call it
        once before training so that the optimizer sees every parameter; it
        draws from the caller's torch random state.

        Parameters
        ----------
        num_classes : int
            Number of classes of the training labels (``0 .. num_classes-1``).
        embedding_size : int
            Dimension of the embeddings the loss receives.

        Returns
        -------
        self : BaseMetricLoss
            This loss.
        """
        self._validate_params()
        return self

    @fill_doc
    def forward(self, embeddings, labels, indices_tuple=None, sample_weight=None):
        """Loss of one batch.

        Parameters
        ----------
        {loss_forward_params}
        sample_weight : torch.Tensor of shape (batch_size,), default=None
            Non-negative weight of every sample, treated as a constant (no
            gradient flows into it); each loss documents how the weights of
            the samples of a pair or triplet combine. Only losses with
            ``supports_sample_weight = True`` accept it (``TypeError``
            otherwise); ``None`` is the unweighted loss.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The reduced loss, differentiable with respect to ``embeddings``
            (and to the loss's own parameters, if any). When the batch holds
            no valid pair or triplet it is a zero still attached to the graph,
            so ``backward`` gives zero gradients, never NaN.
        """
        check_embeddings_labels(embeddings, labels)
        distance = self._get_distance()
        if sample_weight is None:
            return self._compute(embeddings, labels, indices_tuple, distance)
        if not self.supports_sample_weight:
            raise TypeError(
                f"{type(self).__name__} does not accept sample_weight; the losses "
                "with a sample-weight hook are ContrastiveLoss, MultiSimilarityLoss "
                "and TripletMarginLoss."
            )
        weight = check_sample_weight(sample_weight, embeddings)
        return self._compute(
            embeddings, labels, indices_tuple, distance, sample_weight=weight
        )

    def _compute(self, embeddings, labels, indices_tuple, distance):
        raise NotImplementedError

    #: Whether :meth:`soft_forward` is implemented (mixup with soft labels).
    supports_soft_labels = False

    def soft_forward(self, embeddings, labels, mixed_embeddings, mixed_targets):
        """Loss of soft-labelled (mixed) samples against a clean batch (Metrix).

        The "mixed loss" of Metrix [1]_: every clean sample of the batch is
        an anchor, and each mixed sample is, for that anchor, positive with
        weight :math:`w^+_{am} = t_{m, y_a}` (its soft label at the anchor's
        class) and negative with weight :math:`w^-_{am} = 1 - w^+_{am}`.
        Proxy losses use the proxies as anchors and the soft labels as class
        targets. Each supporting loss documents its formula in its Notes;
        with one-hot targets it is the plain loss on those pairs.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Clean embeddings (the anchors of pair-based losses; unused by
            proxy-based losses).
        labels : torch.Tensor of shape (batch_size,)
            Class index of every clean embedding.
        mixed_embeddings : torch.Tensor of shape (n_mixed, n_dims)
            Embeddings of the mixed samples.
        mixed_targets : torch.Tensor of shape (n_mixed, n_classes)
            Soft label of every mixed sample: non-negative, rows summing
            to 1 (for instance :math:`\\lambda e_{y_i} + (1 - \\lambda)
            e_{y_j}`). Column ``c`` is the weight of class ``c``.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The reduced mixed loss.

        References
        ----------
        .. [1] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
           Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup
           for Deep Metric Learning", ICLR 2022.
        """
        if not self.supports_soft_labels:
            raise TypeError(
                f"{type(self).__name__} does not support soft labels (mixup); "
                f"losses that do: {', '.join(soft_label_losses())}."
            )
        check_embeddings_labels(embeddings, labels)
        _check_soft_targets(mixed_embeddings, mixed_targets, embeddings, labels)
        return self._soft_compute(
            embeddings, labels, mixed_embeddings, mixed_targets, self._get_distance()
        )

    def _soft_compute(self, embeddings, labels, mixed, targets, distance):
        raise NotImplementedError


def soft_label_losses():
    """Names of the public losses implementing :meth:`BaseMetricLoss.soft_forward`."""
    import importlib

    package = importlib.import_module(__package__)
    return sorted(
        name
        for name in package.__all__
        if isinstance(getattr(package, name), type)
        and issubclass(getattr(package, name), BaseMetricLoss)
        and getattr(package, name).supports_soft_labels
    )


class SoftPairLossMixin:
    """Soft labels for a pair-based loss: anchors x mixed samples.

    A loss using it implements ``_weighted_pairs(mat, pos_w, neg_w,
    distance)``, its reduction of an (anchors x references) matrix of
    distances or similarities with pair weights in [0, 1] (0: not a pair of
    that kind). The plain loss of a batch is the special case of 0/1 weights
    from the labels with the diagonal excluded.
    """

    supports_soft_labels = True

    def _soft_compute(self, embeddings, labels, mixed, targets, distance):
        mat = distance(embeddings, mixed)
        pos_w = targets[:, labels].T.to(mat.dtype)
        return self._weighted_pairs(mat, pos_w, 1.0 - pos_w, distance)


def check_sample_weight(sample_weight, embeddings):
    """Validate per-sample weights; returns them detached, in the embeddings' dtype."""
    if not isinstance(sample_weight, torch.Tensor):
        sample_weight = torch.as_tensor(sample_weight)
    if sample_weight.shape != (embeddings.shape[0],):
        raise ValueError(
            f"sample_weight must have shape ({embeddings.shape[0]},), one weight "
            f"per embedding; got {tuple(sample_weight.shape)}."
        )
    weight = sample_weight.detach().to(dtype=embeddings.dtype, device=embeddings.device)
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError("sample_weight must hold finite, non-negative values.")
    return weight


def weighted_mean_of_positive(terms, mask, weights, embeddings):
    """``sum(w * t) / sum(w)`` over the entries of ``mask`` whose term is > 0.

    The weighted form of :func:`masked_mean_of_positive` (equal to it when
    every weight is 1). Returns ``zero_loss(embeddings)`` when the active
    entries have zero total weight.
    """
    active = mask & (terms > 0)
    total = torch.where(active, weights, torch.zeros_like(weights)).sum()
    if not bool(total > 0):
        return zero_loss(embeddings)
    return torch.where(active, weights * terms, torch.zeros_like(terms)).sum() / total


def zero_loss(embeddings):
    """A zero attached to the graph of ``embeddings`` (zero gradient, not NaN)."""
    return embeddings.sum() * 0.0


def masked_mean_of_positive(terms, mask, embeddings):
    """Mean of ``terms[mask]`` over the entries that are > 0.

    The terms outside the mask or equal to zero contribute neither to the
    sum nor to the count (pytorch-metric-learning's ``AvgNonZeroReducer``).
    Returns ``zero_loss(embeddings)`` when no entry counts.
    """
    active = mask & (terms > 0)
    count = active.sum()
    if count == 0:
        return zero_loss(embeddings)
    return torch.where(active, terms, torch.zeros_like(terms)).sum() / count
