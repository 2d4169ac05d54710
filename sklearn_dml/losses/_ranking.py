"""List-wise ranking and distribution losses (FastAP, Histogram)."""

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc
from ..distances import CosineSimilarity, DistanceConstraint, LpDistance
from ._base import POSITIVE_INT, UNIT_EUCLIDEAN, BaseMetricLoss, _pair_masks, zero_loss


@fill_doc
class FastAPLoss(BaseMetricLoss):
    r"""FastAP: a differentiable average precision from distance histograms.

    Parameters
    ----------
    num_bins : int, default=10
        Number of histogram bins :math:`L` over the distance range.

    distance : LpDistance, default=None
        ``None`` means ``LpDistance(power=2)`` (squared Euclidean distance of
        unit-norm embeddings, the paper's choice). Any ``power`` works with
        ``p=2`` and ``normalize_embeddings=True``; other distances raise
        ``InvalidParameterError`` (a ``ValueError``). The range :math:`[0, 2^{power}]` is binned.

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
    >>> from sklearn_dml.losses import FastAPLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(FastAPLoss(num_bins=4)(embeddings, labels).item(), 4)
    0.275
    """

    _parameter_constraints = {
        "num_bins": [POSITIVE_INT],
        "distance": [None, UNIT_EUCLIDEAN],
    }

    def __init__(self, num_bins=10, distance=None):
        super().__init__(distance=distance)
        self.num_bins = num_bins

    def _default_distance(self):
        return LpDistance(power=2)

    def _compute(self, embeddings, labels, indices_tuple, distance):
        n_bins = int(self.num_bins)
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
    >>> from sklearn_dml.losses import HistogramLoss
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(HistogramLoss(n_bins=4)(embeddings, labels).item(), 4)
    0.46
    """

    _parameter_constraints = {
        "n_bins": [POSITIVE_INT],
        "distance": [None, DistanceConstraint(CosineSimilarity)],
    }

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
        n_bins = int(self.n_bins)
        pos, neg = self._triplet_pairs(indices_tuple, labels)
        if not pos.any() or not neg.any():
            return zero_loss(embeddings)
        mat = distance(embeddings)
        h_pos = self._density(mat[pos], n_bins)
        h_neg = self._density(mat[neg], n_bins)
        return (h_neg * torch.cumsum(h_pos, dim=0)).sum()
