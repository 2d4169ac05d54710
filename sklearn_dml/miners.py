"""Miners: choose the informative pairs or triplets of a batch.

A miner maps ``(embeddings, labels)`` to an index tuple (see
:mod:`sklearn_dml._tuples`): pairs ``(a1, p, a2, n)`` or triplets
``(a, p, n)`` of positions in the batch, which a loss then restricts itself
to: ``loss(embeddings, labels, miner(embeddings, labels))``. Mining runs
under :func:`torch.no_grad`; gradients flow through the loss only.
"""

import torch

from ._docstrings import fill_doc, register_doc
from ._params import ParamsMixin
from ._tuples import check_embeddings_labels, label_masks
from .distances import CosineSimilarity, LpDistance

__all__ = [
    "BaseMiner",
    "BatchHardMiner",
    "MultiSimilarityMiner",
    "TripletMarginMiner",
]

# Anchors per chunk when scanning all triplets: about this many cells each.
_TRIPLET_CHUNK_CELLS = 2**22

register_doc(
    "miner_distance_lp",
    """
    distance : BaseDistance, default=None
        How embeddings are compared. ``None`` means
        :class:`~sklearn_dml.distances.LpDistance` (Euclidean distance of
        L2-normalised embeddings). A similarity works too: "closer" then
        means a larger similarity.
    """,
)

register_doc(
    "miner_forward_params",
    """
    embeddings : torch.Tensor of shape (batch_size, n_dims)
        Embeddings of the batch.
    labels : torch.Tensor of shape (batch_size,)
        Class index (``torch.long``) of every embedding.
    """,
)


class BaseMiner(ParamsMixin, torch.nn.Module):
    """Base class of miners.

    A subclass implements ``_mine(embeddings, labels, distance)`` and may
    override ``_default_distance``. ``distance=None`` is resolved at every
    call, so ``set_params`` and ``sklearn.base.clone`` behave as for
    estimators.

    Parameters
    ----------
    distance : BaseDistance, default=None
        How embeddings are compared; ``None`` uses the miner's default.
    """

    def __init__(self, distance=None):
        super().__init__()
        self.distance = distance

    def _default_distance(self):
        return LpDistance()

    def _get_distance(self):
        return self._default_distance() if self.distance is None else self.distance

    @fill_doc
    def forward(self, embeddings, labels):
        """Mine one batch.

        Parameters
        ----------
        {miner_forward_params}

        Returns
        -------
        indices_tuple : tuple of torch.Tensor
            ``torch.long`` index tensors on the device of ``labels``: pairs
            ``(a1, p, a2, n)`` or triplets ``(a, p, n)`` depending on the miner.
        """
        check_embeddings_labels(embeddings, labels)
        self._validate_params()
        with torch.no_grad():
            return self._mine(embeddings.detach(), labels, self._get_distance())

    def _validate_params(self):
        pass

    def _mine(self, embeddings, labels, distance):
        raise NotImplementedError


def _as_distance_like(mat, distance):
    """Orient a matrix so that small means close, whatever the distance."""
    return -mat if distance.is_inverted else mat


@fill_doc
class BatchHardMiner(BaseMiner):
    """Hardest positive and hardest negative of every anchor ("batch hard").

    Parameters
    ----------
    {miner_distance_lp}

    See Also
    --------
    TripletMarginMiner : All triplets violating a margin.
    sklearn_dml.losses.TripletMarginLoss : The loss usually paired with it.

    Notes
    -----
    Every sample :math:`a` of the batch is an anchor, paired with its
    farthest positive and its closest negative:

    .. math::

        p(a) = \\arg\\max_{p:\\, y_p = y_a,\\, p \\ne a} d_{ap}, \\qquad
        n(a) = \\arg\\min_{n:\\, y_n \\ne y_a} d_{an}

    Anchors without a positive or without a negative are dropped. Ties go
    to the lowest index. Returns triplets ``(a, p, n)`` sorted by anchor
    (pytorch-metric-learning returns the same triplets).

    References
    ----------
    .. [1] Hermans, A., Beyer, L. and Leibe, B. "In Defense of the Triplet
       Loss for Person Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import BatchHardMiner
    >>> embeddings = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.5],
    ...                            [0.0, -1.0], [-1.0, 0.0]])
    >>> labels = torch.tensor([0, 0, 0, 1, 1])
    >>> a, p, n = BatchHardMiner()(embeddings, labels)
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1, 2, 3, 4], [1, 0, 0, 4, 3], [4, 3, 3, 1, 0])
    """

    def __init__(self, distance=None):
        super().__init__(distance=distance)

    def _mine(self, embeddings, labels, distance):
        dist = _as_distance_like(distance(embeddings), distance)
        pos_mask, neg_mask = label_masks(labels)
        hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).argmax(dim=1)
        hardest_neg = dist.masked_fill(~neg_mask, float("inf")).argmin(dim=1)
        anchors = torch.nonzero(pos_mask.any(1) & neg_mask.any(1), as_tuple=True)[0]
        return anchors, hardest_pos[anchors], hardest_neg[anchors]


@fill_doc
class TripletMarginMiner(BaseMiner):
    """Triplets selected by how much the positive is closer than the negative.

    Parameters
    ----------
    margin : float, default=0.2
        Margin separating "violating" from "easy" triplets.

    type_of_triplets : {"all", "hard", "semihard", "easy"}, default="all"
        Which triplets to return; see Notes.

    {miner_distance_lp}

    See Also
    --------
    BatchHardMiner : One hardest triplet per anchor.

    Notes
    -----
    For every valid triplet let
    :math:`t = \\mathrm{distance.margin}(d_{ap}, d_{an}) = d_{an} - d_{ap}`
    (:math:`s_{ap} - s_{an}` for a similarity): how much the positive is
    closer to the anchor than the negative. The miner keeps

    - ``"all"``: :math:`t \\le \\mathrm{margin}` (the triplets a
      :class:`~sklearn_dml.losses.TripletMarginLoss` with this margin
      penalises, plus the ties at the margin);
    - ``"hard"``: :math:`t \\le \\min(0, \\mathrm{margin})`, the negative is
      at least as close as the positive;
    - ``"semihard"``: :math:`0 < t \\le \\mathrm{margin}`;
    - ``"easy"``: :math:`t > \\mathrm{margin}`.

    These are pytorch-metric-learning's definitions. All
    :math:`n^3` candidates are scanned in chunks of anchors, so temporary
    memory stays bounded; the output itself can hold up to
    :math:`O(n^3)` triplets. Triplets are sorted by anchor, positive, negative.

    References
    ----------
    .. [1] Schroff, F., Kalenichenko, D. and Philbin, J. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering", CVPR 2015.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import TripletMarginMiner
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> a, p, n = TripletMarginMiner(margin=0.1, type_of_triplets="hard")(
    ...     embeddings, labels)
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1], [1, 0], [2, 2])
    """

    _TYPES = ("all", "hard", "semihard", "easy")

    def __init__(self, margin=0.2, type_of_triplets="all", distance=None):
        super().__init__(distance=distance)
        self.margin = margin
        self.type_of_triplets = type_of_triplets

    def _validate_params(self):
        if self.type_of_triplets not in self._TYPES:
            raise ValueError(
                f"type_of_triplets must be one of {self._TYPES}; "
                f"got {self.type_of_triplets!r}."
            )

    def _select(self, t):
        if self.type_of_triplets == "easy":
            return t > self.margin
        keep = t <= self.margin
        if self.type_of_triplets == "hard":
            keep &= t <= 0
        elif self.type_of_triplets == "semihard":
            keep &= t > 0
        return keep

    def _mine(self, embeddings, labels, distance):
        mat = distance(embeddings)
        pos_mask, neg_mask = label_masks(labels)
        size = labels.shape[0]
        chunk = max(1, _TRIPLET_CHUNK_CELLS // max(1, size * size))
        found = []
        for start in range(0, size, chunk):
            rows = slice(start, start + chunk)
            t = distance.margin(mat[rows, :, None], mat[rows, None, :])
            keep = pos_mask[rows, :, None] & neg_mask[rows, None, :] & self._select(t)
            a, p, n = torch.nonzero(keep, as_tuple=True)
            found.append((a + start, p, n))
        if not found:
            empty = torch.zeros(0, dtype=torch.long, device=labels.device)
            return empty, empty.clone(), empty.clone()
        return tuple(torch.cat(parts) for parts in zip(*found))


@fill_doc
class MultiSimilarityMiner(BaseMiner):
    """Pairs that are hard relative to the anchor's other pairs (MS mining).

    Parameters
    ----------
    epsilon : float, default=0.1
        Slack of the comparison with the hardest pair of the other kind.

    distance : BaseDistance, default=None
        How embeddings are compared. ``None`` means
        :class:`~sklearn_dml.distances.CosineSimilarity`, as in the paper.

    See Also
    --------
    sklearn_dml.losses.MultiSimilarityLoss : The loss of the same paper.

    Notes
    -----
    With similarities :math:`S`, for every anchor :math:`a` a negative pair is
    kept when it is more similar than the least similar positive, up to
    :math:`\\epsilon`, and a positive pair when it is less similar than the
    most similar negative, up to :math:`\\epsilon`:

    .. math::

        S_{an} + \\epsilon > \\min_{p} S_{ap}, \\qquad
        S_{ap} - \\epsilon < \\max_{n} S_{an}

    For a distance the inequalities read :math:`d_{an} - \\epsilon <
    \\max_p d_{ap}` and :math:`d_{ap} + \\epsilon > \\min_n d_{an}`. An
    anchor without positives keeps no negatives and vice versa. Returns
    pairs ``(a1, p, a2, n)`` sorted by anchor then partner (the same set as
    pytorch-metric-learning, which orders partners by similarity).

    References
    ----------
    .. [1] Wang, X., Han, X., Huang, W., Dong, D. and Scott, M. R.
       "Multi-Similarity Loss with General Pair Weighting for Deep Metric
       Learning", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import MultiSimilarityMiner
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> a1, p, a2, n = MultiSimilarityMiner()(embeddings, labels)
    >>> a1.tolist(), p.tolist(), a2.tolist(), n.tolist()
    ([0, 1], [1, 0], [0, 1], [2, 2])
    """

    def __init__(self, epsilon=0.1, distance=None):
        super().__init__(distance=distance)
        self.epsilon = epsilon

    def _default_distance(self):
        return CosineSimilarity()

    def _mine(self, embeddings, labels, distance):
        dist = _as_distance_like(distance(embeddings), distance)
        pos_mask, neg_mask = label_masks(labels)
        hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
        hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)
        keep_pos = pos_mask & (dist + self.epsilon > hardest_neg[:, None])
        keep_neg = neg_mask & (dist - self.epsilon < hardest_pos[:, None])
        a1, p = torch.nonzero(keep_pos, as_tuple=True)
        a2, n = torch.nonzero(keep_neg, as_tuple=True)
        return a1, p, a2, n
