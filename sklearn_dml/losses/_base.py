"""Base class of the metric losses."""

import numbers

import torch

from .._docstrings import fill_doc, register_doc
from .._params import ParamsMixin
from .._tuples import check_embeddings_labels
from ..distances import LpDistance

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


class BaseMetricLoss(ParamsMixin, torch.nn.Module):
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

    def __init__(self, distance=None):
        super().__init__()
        self.distance = distance

    def _default_distance(self):
        return LpDistance()

    def _get_distance(self):
        return self._default_distance() if self.distance is None else self.distance

    def configure(self, num_classes, embedding_size):
        """Create the loss's learnable parameters, if it has any.

        Losses with proxies, class weights or centres override this; the base
        version does nothing. Estimators call it once before training so that
        the optimizer sees every parameter; it draws from the caller's torch
        random state.

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


def check_real(owner, name, low=None, strict=False):
    """The number ``owner.<name>`` as a float; ``ValueError`` unless it is a
    real number (not a bool) above ``low`` (or at it, unless ``strict``)."""
    value = getattr(owner, name)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else (f" > {low}" if strict else f" >= {low}")
        raise ValueError(
            f"{type(owner).__name__}: {name} must be a real number{bound}; "
            f"got {value!r}."
        )
    return float(value)


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
