"""Pair and triplet losses: contrastive, triplet margin, multi-similarity."""

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc
from .._tuples import convert_to_pairs, convert_to_triplets, label_masks
from ..distances import CosineSimilarity
from ._base import (
    BaseMetricLoss,
    SoftPairLossMixin,
    masked_mean_of_positive,
    weighted_mean_of_positive,
    zero_loss,
)

__all__ = ["ContrastiveLoss", "MultiSimilarityLoss", "TripletMarginLoss"]

# Positive pairs per chunk of the dense all-triplets computation: a chunk
# holds about this many (positive pair, negative) cells.
_TRIPLET_CHUNK_CELLS = 2**22


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

    def __init__(self, pos_margin=0.0, neg_margin=1.0, distance=None):
        super().__init__(distance=distance)
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    supports_sample_weight = True

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
