"""Margin losses on the pairs and triplets of a batch."""

import math
from numbers import Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc
from .._param_validation import Interval
from .._tuples import convert_to_pairs, convert_to_triplets, label_masks
from ..distances import CosineSimilarity, DistanceConstraint, SNRDistance
from ._base import (
    SIZE_CONSTRAINT,
    UNIT_EUCLIDEAN_POWER_1,
    BaseMetricLoss,
    SoftPairLossMixin,
    _log1p_exp,
    _masked_logsumexp,
    _pair_masks,
    _pos_pairs_and_neg_mask,
    masked_mean_of_positive,
    not_configured_error,
    resolve_size,
    weighted_mean_of_positive,
    zero_loss,
)

_ANY_REAL = Interval(Real, None, None, closed="neither")
_POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE_REAL = Interval(Real, 0, None, closed="left")

# Positive pairs per chunk of the dense all-triplets computation: a chunk
# holds about this many (positive pair, negative) cells.
_TRIPLET_CHUNK_CELLS = 2**22


def _mean_of_nonzero(terms):
    """Mean of the non-zero entries of non-negative ``terms`` (0 if none)."""
    count = torch.count_nonzero(terms)
    return terms.sum() / count.clamp_min(1)


def _weighted_mean_of_active(terms, weights):
    """``sum(w * t) / #{w > 0 and t > 0}`` for non-negative terms (0 if none)."""
    count = ((weights > 0) & (terms > 0)).sum()
    return (weights * terms).sum() / count.clamp_min(1)


def _log1p_sum_exp_weighted(x, weights):
    """Row-wise ``log(1 + sum_j w[i, j] exp(x[i, j]))`` (entries of weight 0 left out)."""
    active = weights > 0
    x = x + torch.log(torch.where(active, weights, torch.ones_like(weights)))
    return _log1p_sum_exp(x, active)


def _log1p_sum_exp(x, mask):
    """Row-wise ``log(1 + sum_j exp(x[i, j]))`` over the entries of ``mask``."""
    x = x.masked_fill(~mask, float("-inf"))
    x = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    return torch.logsumexp(x, dim=1)


@fill_doc
class ContrastiveLoss(SoftPairLossMixin, BaseMetricLoss):
    """Contrastive loss: pull positive pairs together, push negatives apart.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Positive pairs closer than this cost nothing.

    neg_margin : float, default=1.0
        Negative pairs farther than this cost nothing.

    {loss_distance_lp}

    See Also
    --------
    TripletMarginLoss : Compares a positive and a negative of the same anchor.

    Notes
    -----
    With :math:`P` the positive pairs and :math:`N` the negative pairs (all
    of the batch, or those of ``indices_tuple``):

    .. math::

        L = \\frac{1}{|P_+|} \\sum_{(a,p) \\in P} [d_{ap} - m_{pos}]_+
          + \\frac{1}{|N_+|} \\sum_{(a,n) \\in N} [m_{neg} - d_{an}]_+

    where :math:`|P_+|` and :math:`|N_+|` count the pairs whose term is
    non-zero (a mean over "active" pairs, pytorch-metric-learning's
    ``AvgNonZeroReducer``); a part with no active pair contributes 0. For a
    similarity :math:`s` the terms are :math:`[m_{pos} - s_{ap}]_+` and
    :math:`[s_{an} - m_{neg}]_+`.

    Soft labels (:meth:`soft_forward`, Metrix mixup [2]_): with clean
    anchors :math:`a`, mixed samples :math:`k` and pair weights
    :math:`w^+_{ak}, w^-_{ak} = 1 - w^+_{ak}` from the soft labels,

    .. math::

        \\tilde L = \\frac{1}{|P_+|} \\sum_{a, k} w^+_{ak} [d_{ak} - m_{pos}]_+
          + \\frac{1}{|N_+|} \\sum_{a, k} w^-_{ak} [m_{neg} - d_{ak}]_+

    where :math:`|P_+|` (:math:`|N_+|`) counts the pairs with a non-zero
    weight and a non-zero term, so 0/1 weights give the formula above.

    Differences from pytorch-metric-learning: a batch with a single pair is
    scored (pml returns zero when every index tensor has at most one
    element), and triplets given as ``indices_tuple`` are reduced to
    *distinct* pairs (pml keeps one copy of each pair per triplet).

    With ``sample_weight`` :math:`w` (e.g. ProcSim confidences), pair
    :math:`(i, j)` weighs :math:`w_i w_j` and each part is a weighted mean
    over its active pairs, :math:`\\sum w_i w_j t_{ij} / \\sum w_i w_j`
    (unit weights give the formula above).

    References
    ----------
    .. [1] Hadsell, R., Chopra, S. and LeCun, Y. "Dimensionality Reduction by
       Learning an Invariant Mapping", CVPR 2006.
    .. [2] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import ContrastiveLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = ContrastiveLoss(neg_margin=1.2)(embeddings, labels)
    >>> round(loss.item(), 4)
    1.462
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "pos_margin": [_ANY_REAL],
        "neg_margin": [_ANY_REAL],
    }

    def __init__(self, pos_margin=0.0, neg_margin=1.0, distance=None):
        super().__init__(distance=distance)
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    supports_sample_weight = True
    supports_reference_block = True

    def _compute(self, embeddings, labels, indices_tuple, distance, sample_weight=None):
        mat = distance(embeddings)
        if sample_weight is not None:
            return self._weighted(
                embeddings, labels, indices_tuple, mat, distance, sample_weight
            )
        if indices_tuple is None:
            # Terms of the whole matrix, zeroed outside their pairs: the
            # entries > 0 are then exactly the active pairs.
            pos = labels[:, None] == labels[None, :]
            neg = ~pos
            pos.fill_diagonal_(False)
            pos_terms = F.relu(distance.margin(self.pos_margin, mat))
            neg_terms = F.relu(distance.margin(mat, self.neg_margin))
            pos_terms = torch.where(pos, pos_terms, 0.0)
            neg_terms = torch.where(neg, neg_terms, 0.0)
            return _mean_of_nonzero(pos_terms) + _mean_of_nonzero(neg_terms)
        else:
            a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
            pos_values, neg_values = mat[a1, p], mat[a2, n]
            pos_mask = torch.ones_like(pos_values, dtype=torch.bool)
            neg_mask = torch.ones_like(neg_values, dtype=torch.bool)
        pos_terms = F.relu(distance.margin(self.pos_margin, pos_values))
        neg_terms = F.relu(distance.margin(neg_values, self.neg_margin))
        return masked_mean_of_positive(
            pos_terms, pos_mask, embeddings
        ) + masked_mean_of_positive(neg_terms, neg_mask, embeddings)

    def _weighted(self, embeddings, labels, indices_tuple, mat, distance, w):
        # Pair (i, j) weighs w_i * w_j; each part is a weighted mean over its
        # active pairs.
        a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
        pos_terms = F.relu(distance.margin(self.pos_margin, mat[a1, p]))
        neg_terms = F.relu(distance.margin(mat[a2, n], self.neg_margin))
        pos_mask = torch.ones_like(pos_terms, dtype=torch.bool)
        neg_mask = torch.ones_like(neg_terms, dtype=torch.bool)
        return weighted_mean_of_positive(
            pos_terms, pos_mask, w[a1] * w[p], embeddings
        ) + weighted_mean_of_positive(neg_terms, neg_mask, w[a2] * w[n], embeddings)

    def _weighted_pairs(self, mat, pos_w, neg_w, distance):
        pos_terms = F.relu(distance.margin(self.pos_margin, mat))
        neg_terms = F.relu(distance.margin(mat, self.neg_margin))
        return _weighted_mean_of_active(pos_terms, pos_w) + _weighted_mean_of_active(
            neg_terms, neg_w
        )


@fill_doc
class TripletMarginLoss(BaseMetricLoss):
    """Triplet margin loss: an anchor's positive closer than its negative.

    Parameters
    ----------
    margin : float, default=0.05
        Required gap between the anchor-negative and the anchor-positive
        distance.

    swap : bool, default=False
        Use the positive-negative distance instead of the anchor-negative one
        when it is the closer of the two (the "distance swap" of [3]_).

    smooth_loss : bool, default=False
        Replace the hinge :math:`[x]_+` by the softplus
        :math:`\\log(1 + e^x)`.

    {loss_distance_lp}

    See Also
    --------
    sklearn_dml.miners.BatchHardMiner : Hardest triplet per anchor.
    sklearn_dml.miners.TripletMarginMiner : Triplets violating a margin.

    Notes
    -----
    For the triplets :math:`T` (all valid triplets of the batch, or those of
    ``indices_tuple``; pairs are combined into triplets sharing an anchor):

    .. math::

        L = \\frac{1}{|T_+|} \\sum_{(a,p,n) \\in T}
            [d_{ap} - d_{an} + \\mathrm{margin}]_+

    where :math:`|T_+|` counts the triplets with a non-zero term (``0`` if
    none). With ``swap=True``, :math:`d_{an}` is replaced by
    :math:`\\min(d_{an}, d_{pn})`. For a similarity the term is
    :math:`[s_{an} - s_{ap} + \\mathrm{margin}]_+` (and :math:`\\max` for the
    swap).

    Memory: without ``indices_tuple`` the loss is computed densely on a
    (positive pairs x n) matrix, in chunks of positive pairs (about
    :math:`2^{22}` cells each): for :math:`m` samples per class that is
    :math:`n^2 (m - 1)` cells instead of the :math:`n^3` of a full
    (anchor, positive, negative) cube, 0.46 M cells for 32 classes x 8.
    With mined triplets memory is linear in their number.

    This matches pytorch-metric-learning's ``TripletMarginLoss`` with
    ``triplets_per_anchor="all"``; random subsampling of triplets per anchor
    is left to miners.

    With ``sample_weight`` :math:`w`, triplet :math:`(a, p, n)` weighs
    :math:`w_a w_p w_n` and :math:`L` is the weighted mean of the active
    terms, :math:`\\sum w_a w_p w_n t_{apn} / \\sum w_a w_p w_n`.

    References
    ----------
    .. [1] Weinberger, K. Q. and Saul, L. K. "Distance Metric Learning for
       Large Margin Nearest Neighbor Classification", JMLR 10, 2009.
    .. [2] Schroff, F., Kalenichenko, D. and Philbin, J. "FaceNet: A Unified
       Embedding for Face Recognition and Clustering", CVPR 2015.
    .. [3] Balntas, V., Riba, E., Ponsa, D. and Mikolajczyk, K. "Learning
       local feature descriptors with triplets and shallow convolutional
       neural networks", BMVC 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import TripletMarginLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = TripletMarginLoss(margin=0.1)(embeddings, labels)
    >>> round(loss.item(), 4)
    0.7508
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "margin": [_ANY_REAL],
        "swap": ["boolean"],
        "smooth_loss": ["boolean"],
    }

    def __init__(self, margin=0.05, swap=False, smooth_loss=False, distance=None):
        super().__init__(distance=distance)
        self.margin = margin
        self.swap = swap
        self.smooth_loss = smooth_loss

    def _terms(self, distance, ap, an, pn):
        if self.swap:
            closer = torch.maximum if distance.is_inverted else torch.minimum
            an = closer(an, pn)
        violation = distance.margin(an, ap) + self.margin
        return F.softplus(violation) if self.smooth_loss else F.relu(violation)

    supports_sample_weight = True

    def _compute(self, embeddings, labels, indices_tuple, distance, sample_weight=None):
        mat = distance(embeddings)
        w = sample_weight
        if indices_tuple is not None:
            a, p, n = convert_to_triplets(indices_tuple, labels)
            if a.numel() == 0:
                return zero_loss(embeddings)
            pn = mat[p, n] if self.swap else None
            terms = self._terms(distance, mat[a, p], mat[a, n], pn)
            mask = torch.ones_like(terms, dtype=torch.bool)
            if w is not None:
                return weighted_mean_of_positive(
                    terms, mask, w[a] * w[p] * w[n], embeddings
                )
            return masked_mean_of_positive(terms, mask, embeddings)
        pos_mask, neg_mask = label_masks(labels)
        a1, p = torch.nonzero(pos_mask, as_tuple=True)
        if a1.numel() == 0:
            return zero_loss(embeddings)
        # One row per positive pair (a, p), one column per sample: the valid
        # triplets are the columns that are negatives of a. This is
        # (positive pairs x n) cells, not the (n, n, n) cube.
        size = labels.shape[0]
        chunk = max(1, _TRIPLET_CHUNK_CELLS // max(1, size))
        total = zero_loss(embeddings)
        count = 0
        for start in range(0, a1.shape[0], chunk):
            a, q = a1[start : start + chunk], p[start : start + chunk]
            terms = self._terms(
                distance,
                mat[a, q][:, None],
                mat[a],
                mat[q] if self.swap else None,
            )
            active = neg_mask[a] & (terms > 0)
            if w is None:
                total = total + torch.where(active, terms, 0.0).sum()
                count += int(active.sum())
            else:
                # Triplet (a, p, n) weighs w_a * w_p * w_n.
                cell = (w[a] * w[q])[:, None] * w[None, :]
                total = total + torch.where(active, cell * terms, 0.0).sum()
                count = count + torch.where(active, cell, 0.0).sum()
        if w is not None:
            return total / count if bool(count > 0) else zero_loss(embeddings)
        return total / count if count > 0 else total


@fill_doc
class MultiSimilarityLoss(SoftPairLossMixin, BaseMetricLoss):
    """Multi-similarity loss: soft weighting of all positive and negative pairs.

    Parameters
    ----------
    alpha : float, default=2.0
        Sharpness of the positive-pair term.

    beta : float, default=50.0
        Sharpness of the negative-pair term.

    base : float, default=0.5
        Similarity threshold :math:`\\lambda` that both terms are measured
        against.

    {loss_distance_cosine}

    See Also
    --------
    sklearn_dml.miners.MultiSimilarityMiner : The pair mining of the same
        paper.

    Notes
    -----
    For every sample :math:`i` of the batch, with :math:`P_i` its positive
    partners and :math:`N_i` its negative partners (among ``indices_tuple``
    when given):

    .. math::

        L = \\frac{1}{n} \\sum_{i=1}^{n} \\Big[
            \\frac{1}{\\alpha} \\log\\Big(1 + \\sum_{p \\in P_i}
                e^{-\\alpha (S_{ip} - \\lambda)}\\Big)
          + \\frac{1}{\\beta} \\log\\Big(1 + \\sum_{n \\in N_i}
                e^{\\beta (S_{in} - \\lambda)}\\Big) \\Big]

    computed as a log-sum-exp with a zero appended (stable for large
    :math:`\\beta`). The mean runs over all :math:`n` samples, as in the
    paper and in pytorch-metric-learning; a sample without pairs adds 0.
    Duplicate pairs in ``indices_tuple`` count once. For a distance
    :math:`d` the exponents are :math:`\\alpha (d_{ip} - \\lambda)` and
    :math:`\\beta (\\lambda - d_{in})`.

    With ``sample_weight`` :math:`w`, each partner's exponential is
    multiplied by its weight (:math:`\\sum_{p} w_p e^{\\ldots}`; weight 0
    drops it) and the per-sample terms are averaged with the anchors'
    weights, :math:`L = \\sum_i w_i L_i / \\sum_i w_i`.

    Soft labels (:meth:`soft_forward`, Metrix mixup [2]_): each clean anchor
    :math:`a` meets every mixed sample :math:`k` with pair weights
    :math:`w^+_{ak}` and :math:`w^-_{ak} = 1 - w^+_{ak}` from the soft
    labels, which multiply the exponentials:

    .. math::

        \\tilde L = \\frac{1}{n} \\sum_{a} \\Big[
            \\frac{1}{\\alpha} \\log\\Big(1 + \\sum_{k}
                w^+_{ak} e^{-\\alpha (S_{ak} - \\lambda)}\\Big)
          + \\frac{1}{\\beta} \\log\\Big(1 + \\sum_{k}
                w^-_{ak} e^{\\beta (S_{ak} - \\lambda)}\\Big) \\Big]

    (:math:`\\log w` is added to the exponent; 0/1 weights give the formula
    above).

    References
    ----------
    .. [1] Wang, X., Han, X., Huang, W., Dong, D. and Scott, M. R.
       "Multi-Similarity Loss with General Pair Weighting for Deep Metric
       Learning", CVPR 2019.
    .. [2] Venkataramanan, S., Psomas, B., Kijak, E., Amsaleg, L.,
       Karantzalos, K. and Avrithis, Y. "It Takes Two to Tango: Mixup for
       Deep Metric Learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MultiSimilarityLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = MultiSimilarityLoss(alpha=1.0, beta=1.0, base=0.5)(embeddings, labels)
    >>> round(loss.item(), 4)
    1.2337
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "alpha": [_POSITIVE_REAL],
        "beta": [_POSITIVE_REAL],
        "base": [_ANY_REAL],
    }

    #: The loss is a mean over every row (anchor) of the batch.
    mean_over_anchors = True
    supports_reference_block = True

    def __init__(self, alpha=2.0, beta=50.0, base=0.5, distance=None):
        super().__init__(distance=distance)
        self.alpha = alpha
        self.beta = beta
        self.base = base

    def _default_distance(self):
        return CosineSimilarity()

    supports_sample_weight = True

    def _compute(self, embeddings, labels, indices_tuple, distance, sample_weight=None):
        mat = distance(embeddings)
        if indices_tuple is None:
            pos_mask, neg_mask = label_masks(labels)
        else:
            a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
            pos_mask = torch.zeros_like(mat, dtype=torch.bool)
            neg_mask = torch.zeros_like(mat, dtype=torch.bool)
            pos_mask[a1, p] = True
            neg_mask[a2, n] = True
        pos_x = self.alpha * distance.margin(self.base, mat)
        neg_x = self.beta * distance.margin(mat, self.base)
        if sample_weight is None:
            pos = _log1p_sum_exp(pos_x, pos_mask)
            neg = _log1p_sum_exp(neg_x, neg_mask)
            return (pos / self.alpha + neg / self.beta).mean()
        # A partner j's weight multiplies its exponential (log w_j added to
        # the exponent; weight 0 drops it); the per-sample terms are then
        # averaged with the anchors' weights.
        w = sample_weight
        log_w = torch.log(w)[None, :]
        pos = _log1p_sum_exp(pos_x + log_w, pos_mask & (w > 0)[None, :])
        neg = _log1p_sum_exp(neg_x + log_w, neg_mask & (w > 0)[None, :])
        total = w.sum()
        if not bool(total > 0):
            return zero_loss(embeddings)
        return (w * (pos / self.alpha + neg / self.beta)).sum() / total

    def _weighted_pairs(self, mat, pos_w, neg_w, distance):
        pos = _log1p_sum_exp_weighted(
            self.alpha * distance.margin(self.base, mat), pos_w
        )
        neg = _log1p_sum_exp_weighted(
            self.beta * distance.margin(mat, self.base), neg_w
        )
        return (pos / self.alpha + neg / self.beta).mean()


# ----------------------------------------------------------------- losses
@fill_doc
class CircleLoss(BaseMetricLoss):
    r"""Circle loss: pair similarities re-weighted by how far they are from optimal.

    Parameters
    ----------
    m : float, default=0.4
        Relaxation margin :math:`m`: the optima are :math:`1 + m` for positive
        and :math:`-m` for negative similarities, the decision margins
        :math:`1 - m` and :math:`m`.

    gamma : float, default=80
        Scale factor :math:`\gamma`.

    distance : BaseDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.CosineSimilarity`. Any
        similarity (``is_inverted=True``) with values in about ``[-1, 1]``
        works; a distance raises ``InvalidParameterError`` (a ``ValueError``)
        when the loss is built.

    See Also
    --------
    MultiSimilarityLoss : Another pair-weighting loss.

    Notes
    -----
    For every anchor :math:`i` with positive partners :math:`P_i` and
    negative partners :math:`N_i`:

    .. math::

        L_i = \log\Big(1 + \sum_{p \in P_i} \sum_{n \in N_i}
            e^{\gamma \alpha_n (s_{in} - m) - \gamma \alpha_p (s_{ip} - 1 + m)}
        \Big),
        \quad \alpha_p = [1 + m - s_{ip}]_+,\ \alpha_n = [s_{in} + m]_+

    computed as a softplus of two log-sum-exps (one over :math:`P_i`, one
    over :math:`N_i`). The weights :math:`\alpha` are treated as constants
    in the backward pass, as in the paper. :math:`L` is the mean of the
    :math:`L_i` that are non-zero; an anchor without positives or negatives
    contributes nothing. The paper suggests :math:`(m, \gamma)` =
    (0.25, 256) for faces, (0.25, 128) for person re-identification and
    (0.4, 80) for fine-grained retrieval.

    {pml_single_pair_note}

    References
    ----------
    .. [1] Sun, Y., Cheng, C., Zhang, Y., Zhang, C., Zheng, L., Wang, Z. and
       Wei, Y. "Circle Loss: A Unified Perspective of Pair Similarity
       Optimization", CVPR 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import CircleLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(CircleLoss(m=0.25, gamma=4.0)(embeddings, labels).item(), 4)
    1.7653
    """

    _parameter_constraints = {
        "m": [_ANY_REAL],
        "gamma": [_POSITIVE_REAL],
        "distance": [None, DistanceConstraint(is_inverted=True)],
    }

    def __init__(self, m=0.4, gamma=80, distance=None):
        super().__init__(distance=distance)
        self.m = m
        self.gamma = gamma

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        mat = distance(embeddings)
        pos, neg = _pair_masks(indices_tuple, labels)
        frozen = mat.detach()
        alpha_p = F.relu(1.0 + self.m - frozen)
        alpha_n = F.relu(frozen + self.m)
        lse_p = _masked_logsumexp(-self.gamma * alpha_p * (mat - (1.0 - self.m)), pos)
        lse_n = _masked_logsumexp(self.gamma * alpha_n * (mat - self.m), neg)
        valid = pos.any(1) & neg.any(1)
        inner = torch.where(valid, lse_p + lse_n, torch.zeros_like(lse_p))
        return masked_mean_of_positive(F.softplus(inner), valid, embeddings)


@fill_doc
class GeneralizedLiftedStructureLoss(BaseMetricLoss):
    r"""Generalized lifted structure loss: soft hardest positive and negative.

    Parameters
    ----------
    neg_margin : float, default=1.0
        Margin :math:`m` that negatives should be beyond.

    pos_margin : float, default=0.0
        Offset of the positive distances.

    {loss_distance_lp}

    See Also
    --------
    LiftedStructureLoss : The original, per positive pair, formulation.

    Notes
    -----
    For every anchor :math:`i` with positive partners :math:`P_i` and
    negative partners :math:`N_i`:

    .. math::

        L = \frac{1}{|A|} \sum_{i \in A} \Big[
            \log \sum_{p \in P_i} e^{d_{ip} - m_{pos}}
          + \log \sum_{n \in N_i} e^{m - d_{in}} \Big]_+

    where :math:`A` holds the anchors with at least one positive and one
    negative. For a similarity the exponents are :math:`m_{pos} - s_{ip}`
    and :math:`s_{in} - m`.

    Difference from pytorch-metric-learning: pml scores an anchor without
    positives (or negatives) by the half that exists and averages over all
    anchors; here such an anchor is left out, as the :math:`\log 0 = -\infty`
    of the paper's formula implies. Batches in which every anchor has both
    kinds of partners give the same value. {pml_single_pair_note}

    References
    ----------
    .. [1] Hermans, A., Beyer, L. and Leibe, B. "In Defense of the Triplet
       Loss for Person Re-Identification", arXiv:1703.07737, 2017 (page 4).

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import GeneralizedLiftedStructureLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = GeneralizedLiftedStructureLoss(neg_margin=1.0)
    >>> round(loss(embeddings, labels).item(), 4)
    0.8711
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "neg_margin": [_ANY_REAL],
        "pos_margin": [_ANY_REAL],
    }

    def __init__(self, neg_margin=1.0, pos_margin=0.0, distance=None):
        super().__init__(distance=distance)
        self.neg_margin = neg_margin
        self.pos_margin = pos_margin

    def _compute(self, embeddings, labels, indices_tuple, distance):
        mat = distance(embeddings)
        pos, neg = _pair_masks(indices_tuple, labels)
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return zero_loss(embeddings)
        lse_p = _masked_logsumexp(distance.margin(self.pos_margin, mat), pos)
        lse_n = _masked_logsumexp(distance.margin(mat, self.neg_margin), neg)
        inner = torch.where(valid, lse_p + lse_n, torch.zeros_like(lse_p))
        return F.relu(inner).sum() / valid.sum()


@fill_doc
class LiftedStructureLoss(BaseMetricLoss):
    r"""Lifted structure loss: every positive pair against all negatives of both ends.

    Parameters
    ----------
    neg_margin : float, default=1.0
        Margin :math:`m` that negatives should be beyond.

    pos_margin : float, default=0.0
        Offset of the positive distances.

    {loss_distance_lp}

    See Also
    --------
    GeneralizedLiftedStructureLoss : Per-anchor variant.

    Notes
    -----
    For every positive pair :math:`(i, j) \in P`, with :math:`N_i` the
    negative partners of :math:`i`:

    .. math::

        J_{ij} = \log\Big(\sum_{k \in N_i} e^{m - d_{ik}}
                        + \sum_{l \in N_j} e^{m - d_{jl}}\Big)
                 + d_{ij} - m_{pos},
        \qquad
        L = \frac{1}{2 |P|} \sum_{(i, j) \in P} [J_{ij}]_+^2

    :math:`P` holds ordered pairs (both :math:`(i, j)` and :math:`(j, i)`),
    which with the factor :math:`\frac{1}{2}` equals the paper's mean over
    unordered pairs. The per-sample log-sum-exps are computed once, so the
    cost is :math:`O(n^2)` (pytorch-metric-learning builds a positive pairs
    x negative pairs matrix, :math:`O(n^4)` for all pairs). For a similarity
    the exponents are :math:`s_{ik} - m` and the offset :math:`m_{pos} -
    s_{ij}`. A pair neither of whose ends has a negative contributes 0
    (pml: :math:`[d_{ij} - m_{pos}]_+^2 / 2`). {pml_single_pair_note}

    References
    ----------
    .. [1] Oh Song, H., Xiang, Y., Jegelka, S. and Savarese, S. "Deep Metric
       Learning via Lifted Structured Feature Embedding", CVPR 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import LiftedStructureLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(LiftedStructureLoss()(embeddings, labels).item(), 4)
    1.3428
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "neg_margin": [_ANY_REAL],
        "pos_margin": [_ANY_REAL],
    }

    def __init__(self, neg_margin=1.0, pos_margin=0.0, distance=None):
        super().__init__(distance=distance)
        self.neg_margin = neg_margin
        self.pos_margin = pos_margin

    def _compute(self, embeddings, labels, indices_tuple, distance):
        a1, p, neg = _pos_pairs_and_neg_mask(indices_tuple, labels)
        if a1.numel() == 0 or not neg.any():
            return zero_loss(embeddings)
        mat = distance(embeddings)
        lse = _masked_logsumexp(distance.margin(mat, self.neg_margin), neg)
        has = neg.any(1)
        # lse is -inf where a sample has no negative; logaddexp handles one
        # such end, but both at once would give a NaN gradient.
        both_empty = ~(has[a1] | has[p])
        left = lse[a1].masked_fill(both_empty, 0.0)
        right = lse[p].masked_fill(both_empty, 0.0)
        j = torch.logaddexp(left, right) + distance.margin(self.pos_margin, mat[a1, p])
        terms = torch.where(both_empty, torch.zeros_like(j), F.relu(j) ** 2)
        return terms.mean() / 2


@fill_doc
class SignalToNoiseRatioContrastiveLoss(ContrastiveLoss):
    r"""Contrastive loss on the signal-to-noise ratio distance.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Positive pairs with an SNR distance below this cost nothing.

    neg_margin : float, default=1.0
        Negative pairs with an SNR distance above this cost nothing.

    distance : SNRDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.SNRDistance`, the only
        comparison this loss accepts (``InvalidParameterError``, a
        ``ValueError``, otherwise).

    See Also
    --------
    ContrastiveLoss : The same loss on any distance.

    Notes
    -----
    :class:`ContrastiveLoss` with :math:`d = d_{SNR}`:

    .. math::

        L = \frac{1}{|P_+|} \sum_{(a,p) \in P} [d_{ap} - m_{pos}]_+
          + \frac{1}{|N_+|} \sum_{(a,n) \in N} [m_{neg} - d_{an}]_+,
        \qquad d_{ij} = \frac{\operatorname{var}(x_i - x_j)}
                             {\operatorname{var}(x_i)}

    The paper also penalises the mean of the embeddings (zero-mean
    regularisation, weight 0.001 in its experiments), which is not part of
    this component.

    References
    ----------
    .. [1] Yuan, T., Deng, W., Tang, J., Tang, Y. and Chen, B. "Signal-to-Noise
       Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import SignalToNoiseRatioContrastiveLoss
    >>> embeddings = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0],
    ...                            [0.0, 1.0, 0.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = SignalToNoiseRatioContrastiveLoss(neg_margin=3.5)
    >>> round(loss(embeddings, labels).item(), 4)
    0.6
    """

    _parameter_constraints = {
        **ContrastiveLoss._parameter_constraints,
        "distance": [None, DistanceConstraint(SNRDistance)],
    }

    def __init__(self, pos_margin=0.0, neg_margin=1.0, distance=None):
        super().__init__(
            pos_margin=pos_margin, neg_margin=neg_margin, distance=distance
        )

    def _default_distance(self):
        return SNRDistance()


@fill_doc
class MarginLoss(BaseMetricLoss):
    r"""Margin loss: positives inside, negatives outside a (learnable) boundary.

    Parameters
    ----------
    margin : float, default=0.2
        Half-width :math:`\alpha` of the band around the boundary.

    nu : float, default=0.0
        Weight :math:`\nu` of the penalty on the learned boundary (only with
        ``learn_beta=True``).

    beta : float, default=1.2
        Boundary :math:`\beta` between positive and negative distances, or
        its initial value when learned.

    learn_beta : bool, default=False
        Make :math:`\beta` a learnable parameter (created by
        :meth:`configure`).

    per_class_beta : bool, default=False
        With ``learn_beta=True``, learn one :math:`\beta_c` per class (the
        anchor's class is used) instead of a global one; needs
        ``num_classes``. Ignored when ``learn_beta=False`` (a constant
        boundary is the same for every class).

    num_classes : int, default=None
        Number of classes for ``per_class_beta``; ``None`` takes it from
        :meth:`configure`.

    {loss_distance_lp}

    Attributes
    ----------
    betas : torch.nn.Parameter of shape (1,) or (num_classes,)
        The learned boundary, created by :meth:`configure` when
        ``learn_beta=True`` and filled with ``beta``.

    See Also
    --------
    sklearn_dml.miners.DistanceWeightedMiner : The sampling of the same paper.

    Notes
    -----
    For the triplets :math:`T` (all valid triplets of the batch, or those of
    ``indices_tuple``; pairs combine into the triplets sharing an anchor):

    .. math::

        L = \frac{1}{D} \sum_{(a, p, n) \in T}
            \big([d_{ap} - \beta_{y_a} + \alpha]_+
               + [\beta_{y_a} - d_{an} + \alpha]_+\big) + R

    where :math:`D` counts the non-zero hinge terms (0 if none, and the sum
    is then 0). :math:`R = \nu \beta` for a learned global boundary,
    :math:`R = \frac{\nu}{D} \sum_{T} \beta_{y_a}` for learned per-class
    boundaries and 0 otherwise (pytorch-metric-learning's reduction). For a
    similarity the hinges read :math:`[\beta - s_{ap} + \alpha]_+` and
    :math:`[s_{an} - \beta + \alpha]_+`.

    The triplets are never built: each hinge depends on one pair, so the sums
    run over pairs weighted by the number of triplets they occur in
    (:math:`O(n^2)` where pytorch-metric-learning enumerates all
    :math:`O(n^3)` triplets). The paper trains :math:`\beta` with its own
    learning rate; the re-implementation of Roth et al. uses 0.0005 for
    per-class boundaries.

    {loss_configure_note}

    References
    ----------
    .. [1] Wu, C.-Y., Manmatha, R., Smola, A. J. and Krähenbühl, P. "Sampling
       Matters in Deep Embedding Learning", ICCV 2017.
    .. [2] Roth, K., Milbich, T., Sinha, S., Gupta, P., Ommer, B. and Cohen,
       J. P. "Revisiting Training Strategies and Generalization Performance
       in Deep Metric Learning", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MarginLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(MarginLoss(margin=0.2, beta=1.0)(embeddings, labels).item(), 4)
    0.2521
    >>> loss = MarginLoss(learn_beta=True, per_class_beta=True).configure(2, 2)
    >>> loss.betas
    Parameter containing:
    tensor([1.2000, 1.2000], requires_grad=True)
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "margin": [_ANY_REAL],
        "nu": [_NON_NEGATIVE_REAL],
        "beta": [_ANY_REAL],
        "learn_beta": ["boolean"],
        "per_class_beta": ["boolean"],
        "num_classes": SIZE_CONSTRAINT,
    }

    def __init__(
        self,
        margin=0.2,
        nu=0.0,
        beta=1.2,
        learn_beta=False,
        per_class_beta=False,
        num_classes=None,
        distance=None,
    ):
        super().__init__(distance=distance)
        self.margin = margin
        self.nu = nu
        self.beta = beta
        self.learn_beta = learn_beta
        self.per_class_beta = per_class_beta
        self.num_classes = num_classes

    def configure(self, num_classes=None, embedding_size=None):
        """Create the learnable boundary (a no-op when ``learn_beta=False``).

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes, needed for ``per_class_beta``; ``None`` uses
            the constructor's value.
        embedding_size : int, default=None
            Unused; accepted so that every loss configures alike.

        Returns
        -------
        self : MarginLoss
            This loss, with ``betas`` when ``learn_beta=True``.
        """
        self._validate_params()
        if not self.learn_beta:
            self.betas = None
            return self
        size = 1
        if self.per_class_beta:
            size = resolve_size(self, "num_classes", num_classes)
        self.betas = torch.nn.Parameter(torch.full((size,), float(self.beta)))
        return self

    def _boundary(self, labels, anchors, embeddings):
        """Boundary per anchor (tensor) and the learned values (or None)."""
        if not self.learn_beta:
            return float(self.beta), None
        betas = getattr(self, "betas", None)
        if betas is None:
            raise not_configured_error(self, "betas")
        betas = betas.to(embeddings.dtype)
        if len(betas) == 1:
            return betas[0], betas
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(betas)):
            raise ValueError(
                f"labels must lie in [0, {len(betas)}) for per-class boundaries; "
                f"got values from {int(labels.min())} to {int(labels.max())}."
            )
        return betas[labels[anchors]], betas

    def _weighted_pairs(self, indices_tuple, labels):
        """Positive and negative pairs with the number of triplets of each."""
        size = labels.shape[0]
        if indices_tuple is not None and len(indices_tuple) == 3:
            a, p, n = indices_tuple
            ones = torch.ones(a.shape[0], device=labels.device)
            return (a, p, ones), (a, n, ones)
        a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
        n_pos = torch.bincount(a1, minlength=size).to(torch.get_default_dtype())
        n_neg = torch.bincount(a2, minlength=size).to(n_pos.dtype)
        return (a1, p, n_neg[a1]), (a2, n, n_pos[a2])

    def _compute(self, embeddings, labels, indices_tuple, distance):
        (a1, p, w_pos), (a2, n, w_neg) = self._weighted_pairs(indices_tuple, labels)
        beta_pos, betas = self._boundary(labels, a1, embeddings)
        beta_neg, _ = self._boundary(labels, a2, embeddings)
        if w_pos.sum() == 0:
            return zero_loss(embeddings) + (0.0 if betas is None else 0.0 * betas.sum())
        mat = distance(embeddings)
        w_pos, w_neg = w_pos.to(mat.dtype), w_neg.to(mat.dtype)
        pos_terms = F.relu(distance.margin(beta_pos, mat[a1, p]) + self.margin)
        neg_terms = F.relu(distance.margin(mat[a2, n], beta_neg) + self.margin)
        divisor = (w_pos * (pos_terms > 0)).sum() + (w_neg * (neg_terms > 0)).sum()
        total = (w_pos * pos_terms).sum() + (w_neg * neg_terms).sum()
        if betas is not None and len(betas) > 1:
            total = total + self.nu * (w_pos * beta_pos).sum()
        loss = total / divisor if divisor > 0 else zero_loss(embeddings) + 0.0 * total
        if betas is not None and len(betas) == 1:
            loss = loss + self.nu * betas[0]
        return loss


@fill_doc
class TupletMarginLoss(BaseMetricLoss):
    r"""Tuplet margin loss: an angular margin on positives, scaled softmax.

    Parameters
    ----------
    margin : float, default=5.73
        Angular margin :math:`\beta`, in degrees.

    scale : float, default=64
        Scale :math:`s` of the cosines.

    {loss_distance_cosine_only}

    See Also
    --------
    NTXentLoss : Same structure without the angular margin.

    Notes
    -----
    For every positive pair :math:`(a, p) \in P`, with
    :math:`\theta_{ap} = \arccos s_{ap}` and :math:`N_a` the negative partners
    of :math:`a`:

    .. math::

        L = \frac{1}{|P|} \sum_{(a, p) \in P}
            \log\Big(1 + \sum_{n \in N_a}
                e^{s (\cos\theta_{an} - \cos(\theta_{ap} - \beta))}\Big)

    The cosine :math:`s_{ap}` is clipped to :math:`[-1 + 10^{-7}, 1 - 10^{-7}]`
    before the arc cosine, so identical embeddings give a finite gradient
    (pytorch-metric-learning returns NaN there). The per-anchor log-sum-exp
    over negatives is shared by its positive pairs (:math:`O(n^2)`; pml
    builds a positive pairs x negative pairs matrix). The paper pairs this
    loss with an intra-pair variance loss; use them together for its
    set-up. {pml_single_pair_note}

    References
    ----------
    .. [1] Yu, B. and Tao, D. "Deep Metric Learning with Tuplet Margin Loss",
       ICCV 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import TupletMarginLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(TupletMarginLoss(margin=5.73, scale=4.0)(embeddings, labels).item(), 4)
    0.517
    """

    _CLIP = 1e-7

    _parameter_constraints = {
        "margin": [_ANY_REAL],
        "scale": [_POSITIVE_REAL],
        "distance": [None, DistanceConstraint(CosineSimilarity)],
    }

    def __init__(self, margin=5.73, scale=64, distance=None):
        super().__init__(distance=distance)
        self.margin = margin
        self.scale = scale

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        a1, p, neg = _pos_pairs_and_neg_mask(indices_tuple, labels)
        if a1.numel() == 0 or not neg.any():
            return zero_loss(embeddings)
        mat = distance(embeddings)
        cos_ap = mat[a1, p].clamp(-1.0 + self._CLIP, 1.0 - self._CLIP)
        shifted = torch.cos(torch.acos(cos_ap) - math.radians(self.margin))
        lse = _masked_logsumexp(self.scale * mat, neg)
        return _log1p_exp(lse[a1] - self.scale * shifted).mean()


@fill_doc
class AngularLoss(BaseMetricLoss):
    r"""Angular loss: bound the angle at the negative of every triangle.

    Parameters
    ----------
    alpha : float, default=40
        Angle bound :math:`\alpha`, in degrees.

    distance : LpDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.LpDistance`; the loss
        works on unit-norm embeddings, so only ``LpDistance(p=2, power=1,
        normalize_embeddings=True)`` is accepted (``InvalidParameterError``,
        a ``ValueError``, otherwise).

    See Also
    --------
    NPairsLoss : The paper combines both.

    Notes
    -----
    On unit-norm embeddings :math:`x`, for every positive pair
    :math:`(a, p) \in P`, with :math:`N_a` the negative partners of :math:`a`:

    .. math::

        L = \frac{1}{|P|} \sum_{(a, p) \in P} \log\Big(1 + \sum_{n \in N_a}
            e^{4 \tan^2\alpha \, (x_a + x_p)^\top x_n
               - 2 (1 + \tan^2\alpha) \, x_a^\top x_p}\Big)

    Both inner products come from one cosine matrix; the (positive pairs x
    batch) exponent matrix is built in chunks of positive pairs. Zero when
    there is no positive or no negative pair at all.

    Differences from pytorch-metric-learning: the negatives :math:`x_n` are
    normalised too (pml normalises anchors and positives only), and with
    ``indices_tuple`` the negatives of :math:`a` are its negative pairs in
    the tuple (pml uses every sample of another class).
    {pml_single_pair_note}

    References
    ----------
    .. [1] Wang, J., Zhou, F., Wen, S., Liu, X. and Lin, Y. "Deep Metric
       Learning with Angular Loss", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import AngularLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(AngularLoss(alpha=40)(embeddings, labels).item(), 4)
    0.8026
    """

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, 90, closed="neither")],
        "distance": [None, UNIT_EUCLIDEAN_POWER_1],
    }

    def __init__(self, alpha=40, distance=None):
        super().__init__(distance=distance)
        self.alpha = alpha

    def _compute(self, embeddings, labels, indices_tuple, distance):
        a1, p, neg = _pos_pairs_and_neg_mask(indices_tuple, labels)
        if a1.numel() == 0 or not neg.any():
            return zero_loss(embeddings)
        unit = F.normalize(embeddings, p=2, dim=1)
        cos = unit @ unit.T
        sq_tan = math.tan(math.radians(self.alpha)) ** 2
        size = labels.shape[0]
        chunk = max(1, _ANGULAR_CHUNK_CELLS // max(1, size))
        total = zero_loss(embeddings)
        for start in range(0, a1.shape[0], chunk):
            a, q = a1[start : start + chunk], p[start : start + chunk]
            exponent = 4.0 * sq_tan * (cos[a] + cos[q])
            lse = _masked_logsumexp(exponent, neg[a])
            pull = 2.0 * (1.0 + sq_tan) * cos[a, q]
            total = total + _log1p_exp(lse - pull).sum()
        return total / a1.shape[0]


# Positive pairs per chunk of AngularLoss: a chunk holds about this many
# (positive pair, sample) cells.
_ANGULAR_CHUNK_CELLS = 2**22
