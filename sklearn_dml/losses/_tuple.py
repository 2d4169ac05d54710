"""Pair and tuple losses beyond contrastive/triplet: circle, lifted structure,
N-pairs, NT-Xent, SupCon, SNR contrastive, margin, tuplet margin, FastAP,
angular and histogram losses.

Everything works on the ``(n, n)`` comparison matrix of the batch and on
per-anchor reductions of it (a log-sum-exp over an anchor's negatives is
computed once and shared by all its positive pairs), so no loss builds an
``(n, n, n)`` tensor or a (positive pairs x negative pairs) matrix; the one
loss that needs a (positive pairs x batch) matrix, :class:`AngularLoss`,
builds it in chunks.
"""

import math

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._tuples import convert_to_pairs, label_masks
from ..distances import CosineSimilarity, DotProductSimilarity, LpDistance, SNRDistance
from ._base import BaseMetricLoss, masked_mean_of_positive, zero_loss
from ._pair import ContrastiveLoss
from ._regularizers import not_configured_error, resolve_size

__all__ = [
    "AngularLoss",
    "CircleLoss",
    "FastAPLoss",
    "GeneralizedLiftedStructureLoss",
    "HistogramLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "NPairsLoss",
    "NTXentLoss",
    "SignalToNoiseRatioContrastiveLoss",
    "SupConLoss",
    "TupletMarginLoss",
]

# Positive pairs per chunk of AngularLoss: a chunk holds about this many
# (positive pair, sample) cells.
_ANGULAR_CHUNK_CELLS = 2**22

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
        only comparison this loss is defined for (a ``ValueError`` says so
        otherwise).
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


def _as_similarity(mat, distance):
    """Orient a matrix so that large means close."""
    return mat if distance.is_inverted else -mat


def _require(distance, kind, name, **attributes):
    """Raise ``ValueError`` unless ``distance`` is a ``kind`` with ``attributes``."""
    ok = isinstance(distance, kind) and all(
        getattr(distance, key) == value for key, value in attributes.items()
    )
    if not ok:
        wanted = ", ".join(f"{k}={v!r}" for k, v in attributes.items())
        raise ValueError(
            f"{name} is defined for {kind.__name__}({wanted}) only; got "
            f"{distance!r}. Leave distance=None for the default."
        )


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
        works; a distance raises ``ValueError``.

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
    >>> from sklearn_dml.losses._tuple import CircleLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(CircleLoss(m=0.25, gamma=4.0)(embeddings, labels).item(), 4)
    1.7653
    """

    def __init__(self, m=0.4, gamma=80, distance=None):
        super().__init__(distance=distance)
        self.m = m
        self.gamma = gamma

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        if not distance.is_inverted:
            raise ValueError(
                "CircleLoss needs a similarity (is_inverted=True) such as "
                f"CosineSimilarity; got {distance!r}."
            )
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
    >>> from sklearn_dml.losses._tuple import GeneralizedLiftedStructureLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = GeneralizedLiftedStructureLoss(neg_margin=1.0)
    >>> round(loss(embeddings, labels).item(), 4)
    0.8711
    """

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
    >>> from sklearn_dml.losses._tuple import LiftedStructureLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(LiftedStructureLoss()(embeddings, labels).item(), 4)
    1.3428
    """

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
    >>> from sklearn_dml.losses._tuple import NPairsLoss
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
    >>> from sklearn_dml.losses._tuple import NTXentLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(NTXentLoss(temperature=0.5)(embeddings, labels).item(), 4)
    0.5881
    """

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
    >>> from sklearn_dml.losses._tuple import SupConLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(SupConLoss(temperature=0.5)(embeddings, labels).item(), 4)
    0.5881
    """

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
        comparison this loss accepts (``ValueError`` otherwise).

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
    >>> from sklearn_dml.losses._tuple import SignalToNoiseRatioContrastiveLoss
    >>> embeddings = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0],
    ...                            [0.0, 1.0, 0.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> loss = SignalToNoiseRatioContrastiveLoss(neg_margin=3.5)
    >>> round(loss(embeddings, labels).item(), 4)
    0.6
    """

    def __init__(self, pos_margin=0.0, neg_margin=1.0, distance=None):
        super().__init__(
            pos_margin=pos_margin, neg_margin=neg_margin, distance=distance
        )

    def _default_distance(self):
        return SNRDistance()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        _require(distance, SNRDistance, type(self).__name__)
        return super()._compute(embeddings, labels, indices_tuple, distance)


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
    >>> from sklearn_dml.losses._tuple import MarginLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(MarginLoss(margin=0.2, beta=1.0)(embeddings, labels).item(), 4)
    0.2521
    >>> loss = MarginLoss(learn_beta=True, per_class_beta=True).configure(2, 2)
    >>> loss.betas
    Parameter containing:
    tensor([1.2000, 1.2000], requires_grad=True)
    """

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
        if not self.learn_beta:
            self.betas = None
            return self
        size = 1
        if self.per_class_beta:
            size = resolve_size(self.num_classes, num_classes, "num_classes")
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
    >>> from sklearn_dml.losses._tuple import TupletMarginLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(TupletMarginLoss(margin=5.73, scale=4.0)(embeddings, labels).item(), 4)
    0.517
    """

    _CLIP = 1e-7

    def __init__(self, margin=5.73, scale=64, distance=None):
        super().__init__(distance=distance)
        self.margin = margin
        self.scale = scale

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        _require(distance, CosineSimilarity, type(self).__name__)
        a1, p, neg = _pos_pairs_and_neg_mask(indices_tuple, labels)
        if a1.numel() == 0 or not neg.any():
            return zero_loss(embeddings)
        mat = distance(embeddings)
        cos_ap = mat[a1, p].clamp(-1.0 + self._CLIP, 1.0 - self._CLIP)
        shifted = torch.cos(torch.acos(cos_ap) - math.radians(self.margin))
        lse = _masked_logsumexp(self.scale * mat, neg)
        return _log1p_exp(lse[a1] - self.scale * shifted).mean()


class _UnitLpMixin:
    """Losses defined on the Euclidean distance of unit-norm embeddings."""

    _required_power = None

    def _check_distance(self, distance):
        attributes = {"p": 2, "normalize_embeddings": True}
        if self._required_power is not None:
            attributes["power"] = self._required_power
        _require(distance, LpDistance, type(self).__name__, **attributes)


@fill_doc
class FastAPLoss(_UnitLpMixin, BaseMetricLoss):
    r"""FastAP: a differentiable average precision from distance histograms.

    Parameters
    ----------
    num_bins : int, default=10
        Number of histogram bins :math:`L` over the distance range.

    distance : LpDistance, default=None
        ``None`` means ``LpDistance(power=2)`` (squared Euclidean distance of
        unit-norm embeddings, the paper's choice). Any ``power`` works with
        ``p=2`` and ``normalize_embeddings=True``; other distances raise
        ``ValueError``. The range :math:`[0, 2^{power}]` is binned.

    See Also
    --------
    HistogramLoss : Another histogram-based loss.

    Notes
    -----
    Every anchor :math:`i` ranks the batch by distance. With triangular
    (linear-interpolation) kernels centred on :math:`L + 1` evenly spaced
    nodes :math:`z_0 = 0, \dots, z_L = 2^{power}`, let :math:`h^+_{i,l}`
    and :math:`h_{i,l}` be the soft counts of positives and of all partners
    at node :math:`l`, and :math:`H^+_{i,l}, H_{i,l}` their cumulative sums:

    .. math::

        \mathrm{FastAP}_i = \frac{1}{N^+_i} \sum_{l=0}^{L}
            \frac{h^+_{i,l} H^+_{i,l}}{H_{i,l}}, \qquad
        L = \frac{1}{|A|} \sum_{i \in A} (1 - \mathrm{FastAP}_i)

    over the anchors :math:`A` with at least one positive (:math:`N^+_i` of
    them). A distance lands on its two neighbouring nodes only, so the
    histograms are two scatter-adds over the ``(n, n)`` matrix (no
    ``(L, n, n)`` kernel tensor).

    Difference from pytorch-metric-learning: with ``indices_tuple`` an
    anchor's ranked list holds only its pairs in the tuple (pml always ranks
    the whole batch and weights each anchor by how often it is mined).

    References
    ----------
    .. [1] Cakir, F., He, K., Xia, X., Kulis, B. and Sclaroff, S. "Deep Metric
       Learning to Rank", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._tuple import FastAPLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(FastAPLoss(num_bins=4)(embeddings, labels).item(), 4)
    0.275
    """

    _required_power = None

    def __init__(self, num_bins=10, distance=None):
        super().__init__(distance=distance)
        self.num_bins = num_bins

    def _default_distance(self):
        return LpDistance(power=2)

    def _compute(self, embeddings, labels, indices_tuple, distance):
        self._check_distance(distance)
        n_bins = int(self.num_bins)
        if n_bins < 1:
            raise ValueError(
                f"num_bins must be a positive integer; got {self.num_bins!r}."
            )
        pos, neg = _pair_masks(indices_tuple, labels)
        n_pos = pos.sum(1)
        anchors = n_pos > 0
        if not anchors.any() or not neg.any():  # no negative: every AP is 1
            return zero_loss(embeddings)
        mat = distance(embeddings)
        size = mat.shape[0]
        width = 2.0**distance.power / n_bins
        scaled = mat / width
        low = scaled.detach().floor().clamp(0, n_bins - 1)
        frac = scaled - low
        w_low = F.relu(1.0 - frac)
        w_high = F.relu(1.0 - (1.0 - frac).abs())
        low = low.long()
        rows = torch.arange(size, device=mat.device)[:, None] * (n_bins + 1)
        idx_low = (rows + low).reshape(-1)
        idx_high = idx_low + 1

        def histogram(mask):
            zero = torch.zeros_like(w_low)
            flat = mat.new_zeros(size * (n_bins + 1))
            flat = flat.index_add(
                0, idx_low, torch.where(mask, w_low, zero).reshape(-1)
            )
            flat = flat.index_add(
                0, idx_high, torch.where(mask, w_high, zero).reshape(-1)
            )
            return flat.reshape(size, n_bins + 1)

        h_pos = histogram(pos)
        h_all = h_pos + histogram(neg)
        cum_pos = torch.cumsum(h_pos, dim=1)
        cum_all = torch.cumsum(h_all, dim=1)
        product = h_pos * cum_pos
        safe = (product > 0) & (cum_all > 0)
        ratio = torch.where(safe, product / torch.where(safe, cum_all, 1.0), 0.0)
        fast_ap = ratio.sum(1)[anchors] / n_pos[anchors]
        return (1.0 - fast_ap).mean()


@fill_doc
class AngularLoss(_UnitLpMixin, BaseMetricLoss):
    r"""Angular loss: bound the angle at the negative of every triangle.

    Parameters
    ----------
    alpha : float, default=40
        Angle bound :math:`\alpha`, in degrees.

    distance : LpDistance, default=None
        ``None`` means :class:`~sklearn_dml.distances.LpDistance`; the loss
        works on unit-norm embeddings, so only ``LpDistance(p=2, power=1,
        normalize_embeddings=True)`` is accepted (``ValueError`` otherwise).

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
    >>> from sklearn_dml.losses._tuple import AngularLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(AngularLoss(alpha=40)(embeddings, labels).item(), 4)
    0.8026
    """

    _required_power = 1

    def __init__(self, alpha=40, distance=None):
        super().__init__(distance=distance)
        self.alpha = alpha

    def _compute(self, embeddings, labels, indices_tuple, distance):
        self._check_distance(distance)
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


@fill_doc
class HistogramLoss(BaseMetricLoss):
    r"""Histogram loss: probability that a negative is more similar than a positive.

    Parameters
    ----------
    n_bins : int, default=100
        Number of bins over the cosine range :math:`[-1, 1]` (bin width
        :math:`\Delta = 2 / n_{bins}`).

    {loss_distance_cosine_only}

    See Also
    --------
    FastAPLoss : Another histogram-based loss.

    Notes
    -----
    The similarities of the positive pairs and of the negative pairs are
    spread on the :math:`n_{bins} + 1` nodes :math:`t_r = -1 + r \Delta` by
    linear interpolation, giving densities :math:`h^+_r` and :math:`h^-_r`
    (each summing to 1):

    .. math::

        L = \sum_{r} h^-_r \, \Phi^+_r, \qquad \Phi^+_r = \sum_{q \le r} h^+_q

    Pairs are unordered and counted once. As in pytorch-metric-learning,
    the pairs are those of the triplets of the batch (or of
    ``indices_tuple``): a positive pair counts when its anchor has a
    negative, a negative pair when its anchor has a positive. A similarity
    of exactly 1 lands on the last node (pml indexes past the end there).

    References
    ----------
    .. [1] Ustinova, E. and Lempitsky, V. "Learning Deep Embeddings with
       Histogram Loss", NeurIPS 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._tuple import HistogramLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(HistogramLoss(n_bins=4)(embeddings, labels).item(), 4)
    0.46
    """

    def __init__(self, n_bins=100, distance=None):
        super().__init__(distance=distance)
        self.n_bins = n_bins

    def _default_distance(self):
        return CosineSimilarity()

    def _triplet_pairs(self, indices_tuple, labels):
        """Unordered positive/negative pair masks (upper triangle) of the triplets."""
        size = labels.shape[0]
        if indices_tuple is not None and len(indices_tuple) == 3:
            a, p, n = indices_tuple
            pos = torch.zeros(size, size, dtype=torch.bool, device=labels.device)
            neg = torch.zeros_like(pos)
            pos[a, p] = True
            neg[a, n] = True
        else:
            pos, neg = _pair_masks(indices_tuple, labels)
            has_pos, has_neg = pos.any(1, keepdim=True), neg.any(1, keepdim=True)
            pos, neg = pos & has_neg, neg & has_pos
        upper = torch.ones(size, size, dtype=torch.bool, device=labels.device).triu(1)
        return (pos | pos.T) & upper, (neg | neg.T) & upper

    def _density(self, values, n_bins):
        width = 2.0 / n_bins
        scaled = (values + 1.0) / width
        low = scaled.detach().floor().clamp(0, n_bins - 1)
        frac = scaled - low
        low = low.long()
        density = values.new_zeros(n_bins + 1)
        density = density.index_add(0, low, 1.0 - frac)
        density = density.index_add(0, low + 1, frac)
        return density / values.shape[0]

    def _compute(self, embeddings, labels, indices_tuple, distance):
        _require(distance, CosineSimilarity, type(self).__name__)
        n_bins = int(self.n_bins)
        if n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer; got {self.n_bins!r}.")
        pos, neg = self._triplet_pairs(indices_tuple, labels)
        if not pos.any() or not neg.any():
            return zero_loss(embeddings)
        mat = distance(embeddings)
        h_pos = self._density(mat[pos], n_bins)
        h_neg = self._density(mat[neg], n_bins)
        return (h_neg * torch.cumsum(h_pos, dim=0)).sum()
