"""Losses with a softmax over the other samples of the batch (N-pairs, NT-Xent, SupCon,
NCA).
"""

from numbers import Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc
from .._param_validation import Interval
from .._tuples import convert_to_pairs, label_masks
from ..distances import CosineSimilarity, DotProductSimilarity, LpDistance
from ._base import (
    BaseMetricLoss,
    _log1p_exp,
    _masked_logsumexp,
    _pair_masks,
    _pos_pairs_and_neg_mask,
    _sample_weights,
    _softmax_logits,
    masked_mean_of_positive,
    zero_loss,
)


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


def _as_similarity(mat, distance):
    """Orient a matrix so that large means close."""
    return mat if distance.is_inverted else -mat


def _first_two_of_each_class(labels):
    """First and second position of every class with two or more samples.

    These are the lowest positive pair of each class in row-major order,
    found by one stable sort instead of an ``(n, n)`` mask.
    """
    sorted_labels, order = torch.sort(labels, stable=True)
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    starts = starts[counts >= 2]
    return order[starts], order[starts + 1]


@fill_doc
class NPairsLoss(BaseMetricLoss):
    r"""N-pair loss: one positive pair per class, a softmax over the others.

    Parameters
    ----------
    distance : BaseDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.DotProductSimilarity`
        on the raw embeddings, as in the paper (pytorch-metric-learning's
        default normalises them, which is ``CosineSimilarity``). A distance
        is used negated.

    See Also
    --------
    NTXentLoss : Uses every positive pair, with a temperature.

    Notes
    -----
    From the positive pairs (all, or those of ``indices_tuple``) one pair
    :math:`(a_c, p_c)` is taken per class :math:`c` of the anchor: the first
    in row-major order (lowest anchor, then lowest positive). With :math:`k`
    such pairs, each anchor must pick its own positive among the :math:`k`
    positives:

    .. math::

        L = \frac{1}{k} \sum_{c=1}^{k} -\log
            \frac{e^{s(a_c, p_c)}}{\sum_{c'=1}^{k} e^{s(a_c, p_{c'})}}

    A batch with fewer than two classes having a pair gives 0 (nothing to
    contrast). The paper adds an L2 penalty on the embeddings (weight 0.002
    in its experiments); combine with an embedding regulariser for it.

    References
    ----------
    .. [1] Sohn, K. "Improved Deep Metric Learning with Multi-class N-pair
       Loss Objective", NeurIPS 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import NPairsLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [0.3, 0.9]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> round(NPairsLoss()(embeddings, labels).item(), 4)
    0.4386
    """

    def __init__(self, distance=None):
        super().__init__(distance=distance)

    def _default_distance(self):
        return DotProductSimilarity()

    @staticmethod
    def _first_pair_per_class(indices_tuple, labels):
        """Lowest (anchor, positive) pair of every anchor class in the tuple."""
        a1, p, _, _ = convert_to_pairs(indices_tuple, labels)
        if a1.numel() == 0:
            return a1, p
        _, inverse = torch.unique(labels[a1], return_inverse=True)
        n_groups = int(inverse.max()) + 1
        # Row-major rank of each pair, so that "amin" finds the lowest anchor
        # and then the lowest positive whatever the order of the tuple.
        rank = a1 * labels.shape[0] + p
        big = labels.shape[0] ** 2
        first = torch.full((n_groups,), big, dtype=torch.long, device=a1.device)
        first = first.scatter_reduce(0, inverse, rank, reduce="amin")
        return first // labels.shape[0], first % labels.shape[0]

    def _compute(self, embeddings, labels, indices_tuple, distance):
        if indices_tuple is None:
            anchors, positives = _first_two_of_each_class(labels)
        else:
            anchors, positives = self._first_pair_per_class(indices_tuple, labels)
        if anchors.numel() == 0:
            return zero_loss(embeddings)
        n_groups = anchors.shape[0]
        logits = _as_similarity(
            distance(embeddings[anchors], embeddings[positives]), distance
        )
        targets = torch.arange(n_groups, device=logits.device)
        return F.cross_entropy(logits, targets)


@fill_doc
class NTXentLoss(BaseMetricLoss):
    r"""NT-Xent (InfoNCE) loss: each positive against the anchor's negatives.

    Parameters
    ----------
    temperature : float, default=0.07
        Temperature :math:`\tau` dividing the similarities.

    {loss_distance_cosine}

    See Also
    --------
    SupConLoss : All positives of an anchor in one softmax.

    Notes
    -----
    For every positive pair :math:`(a, p) \in P`, with :math:`N_a` the
    negative partners of :math:`a`:

    .. math::

        L = \frac{1}{|P|} \sum_{(a, p) \in P} -\log
            \frac{e^{s_{ap} / \tau}}{e^{s_{ap} / \tau}
                 + \sum_{n \in N_a} e^{s_{an} / \tau}}

    computed as :math:`\log(1 + e^{\mathrm{LSE}_a - s_{ap} / \tau})` with the
    log-sum-exp :math:`\mathrm{LSE}_a` over the negatives computed once per
    anchor (:math:`O(n^2)`; pytorch-metric-learning builds a positive pairs x
    negative pairs matrix). A distance is used negated. With
    ``indices_tuple`` the negatives of :math:`a` are its negative pairs
    there. Zero when there is no positive or no negative pair at all.
    {pml_single_pair_note}

    References
    ----------
    .. [1] Chen, T., Kornblith, S., Norouzi, M. and Hinton, G. "A Simple
       Framework for Contrastive Learning of Visual Representations", ICML
       2020.
    .. [2] van den Oord, A., Li, Y. and Vinyals, O. "Representation Learning
       with Contrastive Predictive Coding", arXiv:1807.03748, 2018.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import NTXentLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(NTXentLoss(temperature=0.5)(embeddings, labels).item(), 4)
    0.5881
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=0.07, distance=None):
        super().__init__(distance=distance)
        self.temperature = temperature

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        a1, p, neg = _pos_pairs_and_neg_mask(indices_tuple, labels)
        if a1.numel() == 0 or not neg.any():
            return zero_loss(embeddings)
        logits = _as_similarity(distance(embeddings), distance) / self.temperature
        lse = _masked_logsumexp(logits, neg)
        return _log1p_exp(lse[a1] - logits[a1, p]).mean()


@fill_doc
class SupConLoss(BaseMetricLoss):
    r"""Supervised contrastive loss: all positives of an anchor in one softmax.

    Parameters
    ----------
    temperature : float, default=0.1
        Temperature :math:`\tau` dividing the similarities.

    {loss_distance_cosine}

    See Also
    --------
    NTXentLoss : One softmax per positive pair.

    Notes
    -----
    For every anchor :math:`i` with positive partners :math:`P_i` and
    negative partners :math:`N_i`:

    .. math::

        L_i = -\frac{1}{|P_i|} \sum_{p \in P_i} \log
            \frac{e^{s_{ip} / \tau}}{\sum_{k \in P_i \cup N_i} e^{s_{ik} / \tau}}

    :math:`L` is the mean of the non-zero :math:`L_i` (the
    :math:`\mathcal{L}^{sup}_{out}` form of the paper). A distance is used
    negated. Zero when there is no positive or no negative pair at all.
    {pml_single_pair_note}

    References
    ----------
    .. [1] Khosla, P., Teterwak, P., Wang, C., Sarna, A., Tian, Y., Isola, P.,
       Maschinot, A., Liu, C. and Krishnan, D. "Supervised Contrastive
       Learning", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import SupConLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(SupConLoss(temperature=0.5)(embeddings, labels).item(), 4)
    0.5881
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=0.1, distance=None):
        super().__init__(distance=distance)
        self.temperature = temperature

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        pos, neg = _pair_masks(indices_tuple, labels)
        if not pos.any() or not neg.any():
            return zero_loss(embeddings)
        logits = _as_similarity(distance(embeddings), distance) / self.temperature
        log_denominator = _masked_logsumexp(logits, pos | neg)
        log_prob = logits - log_denominator[:, None]
        n_pos = pos.sum(1)
        per_anchor = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)
        per_anchor = per_anchor / n_pos.clamp_min(1)
        return masked_mean_of_positive(per_anchor, n_pos > 0, embeddings)


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
    >>> from sklearn_dml.losses import NCALoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = NCALoss(softmax_scale=2.0)(embeddings, labels)
    >>> round(loss.item(), 4)
    0.629
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "softmax_scale": [Interval(Real, 0, None, closed="neither")],
    }

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
