"""Miners: choose the informative pairs or triplets of a batch.

A miner maps ``(embeddings, labels)`` to an index tuple (see
:mod:`sklearn_dml._tuples`): pairs ``(a1, p, a2, n)`` or triplets
``(a, p, n)`` of positions in the batch, which a loss then restricts itself
to: ``loss(embeddings, labels, miner(embeddings, labels))``. Mining runs
under :func:`torch.no_grad`; gradients flow through the loss only.
"""

import math
from numbers import Real

import torch

from ._docstrings import fill_doc, register_doc
from ._param_validation import Interval, InvalidParameterError, StrOptions
from ._params import ParamsMixin
from ._tuples import check_embeddings_labels, label_masks, restrict_to_queries
from .distances import (
    BaseDistance,
    CosineSimilarity,
    DistanceConstraint,
    DistanceUserMixin,
    LpDistance,
)

__all__ = [
    "BaseMiner",
    "BatchEasyHardMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "TripletMarginMiner",
]

# Positive pairs per chunk when scanning all triplets: a chunk holds about
# this many (positive pair, sample) cells.
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


class BaseMiner(DistanceUserMixin, ParamsMixin, torch.nn.Module):
    """Base class of miners.

    A subclass implements ``_mine(embeddings, labels, distance)`` and may
    override ``_default_distance``. ``distance=None`` is resolved at every
    call, so ``set_params`` and ``sklearn.base.clone`` behave as for
    estimators.

    Parameters
    ----------
    distance : BaseDistance, default=None
        How embeddings are compared; ``None`` uses the miner's default.

    Notes
    -----
    The parameters are checked against the class's ``_parameter_constraints``
    once the miner is built and by ``set_params``, never at every call. A
    subclass with parameters of its own declares them there too
    (``{**BaseMiner._parameter_constraints, "threshold": [Interval(Real,
    None, None, closed="neither")]}``).

    Examples
    --------
    A miner that keeps every negative pair closer than 0.5:

    >>> import torch
    >>> from sklearn_dml.miners import BaseMiner
    >>> class CloseNegativePairs(BaseMiner):
    ...     def _mine(self, embeddings, labels, distance):
    ...         close = distance(embeddings) < 0.5
    ...         differ = labels[:, None] != labels[None, :]
    ...         a, n = torch.nonzero(close & differ, as_tuple=True)
    ...         empty = torch.empty(0, dtype=torch.long)
    ...         return empty, empty, a, n
    >>> emb = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    >>> CloseNegativePairs()(emb, torch.tensor([0, 1, 1]))[2:]
    (tensor([0, 1]), tensor([1, 0]))
    """

    _parameter_constraints = {"distance": [None, BaseDistance]}

    def __init__(self, distance=None):
        super().__init__()
        self.distance = distance

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
        with torch.no_grad():
            return self._mine(embeddings.detach(), labels, self._get_distance())

    def _mine(self, embeddings, labels, distance):
        raise NotImplementedError

    @fill_doc
    def mine_queries(self, embeddings, labels, n_queries):
        """Mine the batch, keeping the tuples anchored on its first rows.

        The tuples of ``self(embeddings, labels)`` whose anchor is one of
        the first ``n_queries`` rows (the query rows; cross-batch memory
        mines its batch stacked on the memory this way). The default mines
        the whole batch and keeps those tuples;
        :class:`MultiSimilarityMiner`, which decides anchor by anchor,
        computes only the query rows of the distance matrix.

        Parameters
        ----------
        {miner_forward_params}
        n_queries : int
            Number of leading rows that may be anchors.

        Returns
        -------
        indices_tuple : tuple of torch.Tensor
            Pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)``, anchors
            below ``n_queries``.
        """
        check_embeddings_labels(embeddings, labels)
        with torch.no_grad():
            return self._mine_queries(
                embeddings.detach(), labels, int(n_queries), self._get_distance()
            )

    def _mine_queries(self, embeddings, labels, n_queries, distance):
        return restrict_to_queries(self._mine(embeddings, labels, distance), n_queries)


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

    These are pytorch-metric-learning's definitions. The candidates are
    scanned as a (positive pairs x n) matrix in chunks of positive pairs
    (:math:`n^2 (m - 1)` cells for :math:`m` samples per class, not
    :math:`n^3`), so temporary memory stays bounded; the output itself can
    hold up to :math:`O(n^3)` triplets. Triplets are sorted by anchor, positive, negative.

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

    _parameter_constraints = {
        **BaseMiner._parameter_constraints,
        "margin": [Interval(Real, None, None, closed="neither")],
        "type_of_triplets": [StrOptions(_TYPES)],
    }

    def __init__(self, margin=0.2, type_of_triplets="all", distance=None):
        super().__init__(distance=distance)
        self.margin = margin
        self.type_of_triplets = type_of_triplets

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
        a1, p1 = torch.nonzero(pos_mask, as_tuple=True)
        # One row per positive pair (row-major), one column per sample: the
        # candidates are (positive pairs x n) cells, not the (n, n, n) cube.
        size = labels.shape[0]
        chunk = max(1, _TRIPLET_CHUNK_CELLS // max(1, size))
        found = []
        for start in range(0, a1.shape[0], chunk):
            a, q = a1[start : start + chunk], p1[start : start + chunk]
            t = distance.margin(mat[a, q][:, None], mat[a])
            rows, n = torch.nonzero(neg_mask[a] & self._select(t), as_tuple=True)
            found.append((a[rows], q[rows], n))
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

    _parameter_constraints = {
        **BaseMiner._parameter_constraints,
        "epsilon": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, epsilon=0.1, distance=None):
        super().__init__(distance=distance)
        self.epsilon = epsilon

    def _default_distance(self):
        return CosineSimilarity()

    def _mine(self, embeddings, labels, distance):
        dist = _as_distance_like(distance(embeddings), distance)
        pos_mask, neg_mask = label_masks(labels)
        return self._mine_rows(dist, pos_mask, neg_mask)

    def _mine_queries(self, embeddings, labels, n_queries, distance):
        # Each anchor's pairs depend on its own row only: the (queries, batch)
        # block of the matrix gives the same pairs as the whole.
        queries = embeddings[:n_queries]
        dist = _as_distance_like(distance(queries, embeddings), distance)
        return self._mine_rows(dist, *label_masks(labels, n_queries))

    def _mine_rows(self, dist, pos_mask, neg_mask):
        hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
        hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)
        keep_pos = pos_mask & (dist + self.epsilon > hardest_neg[:, None])
        keep_neg = neg_mask & (dist - self.epsilon < hardest_pos[:, None])
        a1, p = torch.nonzero(keep_pos, as_tuple=True)
        a2, n = torch.nonzero(keep_neg, as_tuple=True)
        return a1, p, a2, n


class _RangeConstraint:
    """A ``(low, high)`` pair of real numbers, ``low <= high`` (infinities allowed)."""

    def is_satisfied_by(self, value):
        if isinstance(value, str):
            return False
        try:
            low, high = value
        except (TypeError, ValueError):
            return False
        ok = all(
            isinstance(v, Real) and not isinstance(v, bool) and not math.isnan(v)
            for v in (low, high)
        )
        return ok and low <= high

    def __str__(self):
        return "a (low, high) pair of real numbers with low <= high"


def _pick_per_row(dist, mask, largest):
    """Per row, the index of the largest/smallest ``dist`` inside ``mask``.

    Returns ``(index, value, found)``; ties go to the lowest index.
    """
    fill = float("-inf") if largest else float("inf")
    masked = dist.masked_fill(~mask, fill)
    value, index = masked.max(dim=1) if largest else masked.min(dim=1)
    return index, value, mask.any(dim=1)


@fill_doc
class BatchEasyHardMiner(BaseMiner):
    r"""One positive and one negative per anchor, each chosen easy, hard or semihard.

    Parameters
    ----------
    pos_strategy : {"easy", "hard", "semihard", "all"}, default="easy"
        Which positive each anchor gets: the closest (``"easy"``), the
        farthest (``"hard"``), the farthest that is still closer than the
        anchor's chosen negative (``"semihard"``), or every positive
        (``"all"``).

    neg_strategy : {"easy", "hard", "semihard", "all"}, default="semihard"
        Which negative each anchor gets: the farthest (``"easy"``), the
        closest (``"hard"``), the closest that is farther than the anchor's
        chosen positive (``"semihard"``), or every negative (``"all"``).

    allowed_pos_range : tuple of float, default=None
        ``(low, high)``: only positives whose distance (or similarity) lies in
        this closed range are candidates.

    allowed_neg_range : tuple of float, default=None
        Same for negatives.

    {miner_distance_lp}

    See Also
    --------
    BatchHardMiner : Hardest positive and hardest negative (as triplets).

    Notes
    -----
    In distance terms (small = close; for a similarity read "most similar"
    for "closest"), with :math:`P_a, N_a` the candidates of anchor :math:`a`:

    .. math::

        p_{easy}(a) = \arg\min_{p \in P_a} d_{ap}, \quad
        p_{hard}(a) = \arg\max_{p \in P_a} d_{ap}, \quad
        n_{easy}(a) = \arg\max_{n \in N_a} d_{an}, \quad
        n_{hard}(a) = \arg\min_{n \in N_a} d_{an}

    ``"semihard"`` negatives are :math:`\arg\min \{d_{an} : d_{an} >
    d_{a p(a)}\}` and ``"semihard"`` positives :math:`\arg\max \{d_{ap} :
    d_{ap} < d_{a n(a)}\}`. Returns pairs ``(a, p, a, n)``: anchors that lack
    either choice are dropped. With ``"all"`` on one side that side is every
    pair of the batch (row-major), and the other side keeps its own anchors.
    ``"semihard"`` cannot be combined with ``"semihard"`` or ``"all"``.
    Ties go to the lowest index. These are pytorch-metric-learning's
    definitions.

    References
    ----------
    .. [1] Xuan, H., Stylianou, A. and Pless, R. "Improved Embeddings with
       Easy Positive Triplet Mining", WACV 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import BatchEasyHardMiner
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.0, 1.0],
    ...                            [0.5, 0.8], [-1.0, 0.1]])
    >>> labels = torch.tensor([0, 0, 0, 1, 1])
    >>> a1, p, a2, n = BatchEasyHardMiner("easy", "hard")(embeddings, labels)
    >>> a1.tolist(), p.tolist(), n.tolist()
    ([0, 1, 2, 3, 4], [1, 0, 1, 4, 3], [3, 3, 3, 2, 2])
    """

    _STRATEGIES = ("easy", "hard", "semihard", "all")

    _parameter_constraints = {
        **BaseMiner._parameter_constraints,
        "pos_strategy": [StrOptions(_STRATEGIES)],
        "neg_strategy": [StrOptions(_STRATEGIES)],
        "allowed_pos_range": [None, _RangeConstraint()],
        "allowed_neg_range": [None, _RangeConstraint()],
    }

    def __init__(
        self,
        pos_strategy="easy",
        neg_strategy="semihard",
        allowed_pos_range=None,
        allowed_neg_range=None,
        distance=None,
    ):
        super().__init__(distance=distance)
        self.pos_strategy = pos_strategy
        self.neg_strategy = neg_strategy
        self.allowed_pos_range = allowed_pos_range
        self.allowed_neg_range = allowed_neg_range

    def _check_param_relations(self, params):
        pos, neg = params["pos_strategy"], params["neg_strategy"]
        if pos == neg == "semihard":
            raise InvalidParameterError(
                "The 'pos_strategy' and 'neg_strategy' parameters of "
                'BatchEasyHardMiner cannot both be "semihard": each is defined '
                "relative to the other side's choice."
            )
        if {pos, neg} == {"semihard", "all"}:
            name = "pos_strategy" if pos == "semihard" else "neg_strategy"
            raise InvalidParameterError(
                f"The {name!r} parameter of BatchEasyHardMiner cannot be "
                '"semihard" when the other side is "all": it needs one chosen '
                "pair on the other side."
            )

    @staticmethod
    def _in_range(mat, value_range):
        if value_range is None:
            return torch.ones_like(mat, dtype=torch.bool)
        return (mat >= value_range[0]) & (mat <= value_range[1])

    def _choose(self, dist, mask, strategy, positive, other=None):
        """Chosen partner per anchor; ``other`` is the other side's distance."""
        if strategy == "semihard":
            bound = other[:, None]
            mask = mask & ((dist < bound) if positive else (dist > bound))
        # A hard positive and an easy negative are the farthest partners.
        largest = (strategy == "hard") if positive else (strategy == "easy")
        if strategy == "semihard":
            largest = positive
        return _pick_per_row(dist, mask, largest)

    def _mine(self, embeddings, labels, distance):
        mat = distance(embeddings)
        dist = _as_distance_like(mat, distance)
        pos_mask, neg_mask = label_masks(labels)
        pos_mask = pos_mask & self._in_range(mat, self.allowed_pos_range)
        neg_mask = neg_mask & self._in_range(mat, self.allowed_neg_range)
        pos_s, neg_s = self.pos_strategy, self.neg_strategy
        if pos_s == "semihard":
            n_idx, n_val, n_ok = self._choose(dist, neg_mask, neg_s, False)
            p_idx, _, p_ok = self._choose(dist, pos_mask, pos_s, True, n_val)
        elif neg_s == "semihard":
            p_idx, p_val, p_ok = self._choose(dist, pos_mask, pos_s, True)
            n_idx, _, n_ok = self._choose(dist, neg_mask, neg_s, False, p_val)
        else:
            if pos_s != "all":
                p_idx, _, p_ok = self._choose(dist, pos_mask, pos_s, True)
            if neg_s != "all":
                n_idx, _, n_ok = self._choose(dist, neg_mask, neg_s, False)
        if pos_s == "all":
            a1, p = torch.nonzero(pos_mask, as_tuple=True)
        if neg_s == "all":
            a2, n = torch.nonzero(neg_mask, as_tuple=True)
        if pos_s != "all" and neg_s != "all":
            anchors = torch.nonzero(p_ok & n_ok, as_tuple=True)[0]
            return anchors, p_idx[anchors], anchors.clone(), n_idx[anchors]
        if pos_s != "all":
            a1 = torch.nonzero(p_ok, as_tuple=True)[0]
            p = p_idx[a1]
        if neg_s != "all":
            a2 = torch.nonzero(n_ok, as_tuple=True)[0]
            n = n_idx[a2]
        return a1, p, a2, n


@fill_doc
class DistanceWeightedMiner(BaseMiner):
    r"""Negatives drawn with weights that undo the density of distances on a sphere.

    Parameters
    ----------
    cutoff : float, default=0.5
        Distances below this are raised to it before weighting (bounds the
        weight of very close negatives).

    nonzero_loss_cutoff : float, default=1.4
        Negatives at this distance or farther get weight 0 (they would not
        contribute to a margin loss).

    distance : LpDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.LpDistance`; only the
        Euclidean distance of unit-norm embeddings (``p=2, power=1,
        normalize_embeddings=True``) fits the weighting
        (``InvalidParameterError``, a ``ValueError``, otherwise).

    See Also
    --------
    sklearn_dml.losses.MarginLoss : The loss of the same paper.

    Notes
    -----
    On the unit sphere in :math:`\mathbb{R}^k` pairwise distances have the
    density :math:`q(d) \propto d^{k-2} (1 - d^2/4)^{(k-3)/2}`. Every
    positive pair :math:`(a, p)` (all of them, row-major) gets one negative
    drawn with probability

    .. math::

        \Pr(n \mid a) \propto \frac{1}{q(\max(d_{an}, c))}
            \, [d_{an} < c_{nz}], \qquad y_n \ne y_a

    computed in log space, with non-finite weights set to 0. Anchors whose
    negatives all have weight 0 are dropped. Returns triplets ``(a, p, n)``.
    Draws use torch's global random generator (seeded by the estimators).

    Difference from pytorch-metric-learning: pml draws as many positives per
    anchor as the class has samples, at random with replacement; here every
    positive pair is used once, as in the paper.

    References
    ----------
    .. [1] Wu, C.-Y., Manmatha, R., Smola, A. J. and Krähenbühl, P. "Sampling
       Matters in Deep Embedding Learning", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import DistanceWeightedMiner
    >>> embeddings = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.3, 0.1],
    ...                            [0.0, 1.0, 0.0], [0.2, 0.9, 0.3]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> a, p, n = DistanceWeightedMiner()(embeddings, labels)
    >>> a.tolist(), p.tolist()
    ([0, 1, 2, 3], [1, 0, 3, 2])
    >>> bool((labels[n] != labels[a]).all())
    True
    """

    _parameter_constraints = {
        "cutoff": [Interval(Real, 0, None, closed="left")],
        "nonzero_loss_cutoff": [Interval(Real, 0, None, closed="left")],
        "distance": [
            None,
            DistanceConstraint(LpDistance, p=2, power=1, normalize_embeddings=True),
        ],
    }

    def __init__(self, cutoff=0.5, nonzero_loss_cutoff=1.4, distance=None):
        super().__init__(distance=distance)
        self.cutoff = cutoff
        self.nonzero_loss_cutoff = nonzero_loss_cutoff

    def _mine(self, embeddings, labels, distance):
        weights = self.weights(embeddings, labels, distance)
        pos_mask, _ = label_masks(labels)
        usable = weights.sum(dim=1) > 0
        a, p = torch.nonzero(pos_mask & usable[:, None], as_tuple=True)
        if a.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=labels.device)
            return empty, empty.clone(), empty.clone()
        # One draw per positive pair: anchor a draws as many negatives as it
        # has positives, and its k-th positive takes the k-th draw.
        rows = torch.nonzero(usable, as_tuple=True)[0]
        n_draws = int(pos_mask[rows].sum(dim=1).max())
        draws = torch.full(
            (labels.shape[0], n_draws), -1, dtype=torch.long, device=labels.device
        )
        draws[rows] = torch.multinomial(weights[rows], n_draws, replacement=True)
        rank = torch.cumsum(pos_mask.long(), dim=1) - 1
        return a, p, draws[a, rank[a, p]]

    def weights(self, embeddings, labels, distance=None):
        """Sampling probabilities of the negatives of every anchor.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        distance : BaseDistance, default=None
            ``None`` uses the miner's distance.

        Returns
        -------
        weights : torch.Tensor of shape (batch_size, batch_size)
            Row ``a`` holds the probability of drawing each sample as the
            negative of anchor ``a`` (sums to 1, or 0 when nothing can be
            drawn).
        """
        distance = self._get_distance() if distance is None else distance
        with torch.no_grad():
            dim = embeddings.shape[1]
            dist = distance(embeddings.detach()).clamp_min(self.cutoff)
            log_w = (2.0 - dim) * torch.log(dist) - ((dim - 3.0) / 2.0) * torch.log1p(
                -0.25 * dist * dist
            )
            _, neg_mask = label_masks(labels)
            keep = neg_mask & (dist < self.nonzero_loss_cutoff) & torch.isfinite(log_w)
            log_w = log_w.masked_fill(~keep, float("-inf"))
            row_max = log_w.amax(dim=1, keepdim=True)
            row_max = torch.where(torch.isfinite(row_max), row_max, 0.0)
            w = torch.exp(log_w - row_max)
            total = w.sum(dim=1, keepdim=True)
            return torch.where(total > 0, w / torch.where(total > 0, total, 1.0), 0.0)


@fill_doc
class PairMarginMiner(BaseMiner):
    r"""Positive pairs farther than a margin, negative pairs closer than another.

    Parameters
    ----------
    pos_margin : float, default=0.2
        Positive pairs farther than this (less similar, for a similarity)
        are kept.

    neg_margin : float, default=0.8
        Negative pairs closer than this (more similar, for a similarity) are
        kept.

    {miner_distance_lp}

    See Also
    --------
    sklearn_dml.losses.ContrastiveLoss : Penalises exactly these pairs when
        its margins are the same.

    Notes
    -----
    .. math::

        P = \{(a, p) : d_{ap} > m_{pos}\}, \qquad
        N = \{(a, n) : d_{an} < m_{neg}\}

    (:math:`s_{ap} < m_{pos}` and :math:`s_{an} > m_{neg}` for a
    similarity). Returns pairs ``(a1, p, a2, n)`` in row-major order, as
    pytorch-metric-learning.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.miners import PairMarginMiner
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> a1, p, a2, n = PairMarginMiner(pos_margin=0.5, neg_margin=1.0)(
    ...     embeddings, labels)
    >>> a1.tolist(), p.tolist(), a2.tolist(), n.tolist()
    ([0, 1], [1, 0], [1, 2], [2, 1])
    """

    _parameter_constraints = {
        **BaseMiner._parameter_constraints,
        "pos_margin": [Interval(Real, None, None, closed="neither")],
        "neg_margin": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, pos_margin=0.2, neg_margin=0.8, distance=None):
        super().__init__(distance=distance)
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def _mine(self, embeddings, labels, distance):
        mat = distance(embeddings)
        pos_mask, neg_mask = label_masks(labels)
        keep_pos = pos_mask & (distance.margin(mat, self.pos_margin) < 0)
        keep_neg = neg_mask & (distance.margin(mat, self.neg_margin) > 0)
        a1, p = torch.nonzero(keep_pos, as_tuple=True)
        a2, n = torch.nonzero(keep_neg, as_tuple=True)
        return a1, p, a2, n
