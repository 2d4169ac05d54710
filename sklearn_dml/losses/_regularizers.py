"""Regularisers added to a metric loss: class centres, threshold-consistent margins,
energy confusion.
"""

from numbers import Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from .._params import ParamsMixin
from .._tuples import check_embeddings_labels, convert_to_pairs, label_masks
from ..distances import CosineSimilarity, LpDistance
from ._base import (
    SIZE_CONSTRAINT,
    BaseMetricLoss,
    not_configured_error,
    resolve_size,
    zero_loss,
)

register_doc(
    "loss_configure_note",
    """
    The learnable parameters do not exist until :meth:`configure` is called
    (``__init__`` only stores its arguments): an estimator calls
    ``configure(n_classes, n_components)`` before it builds the optimizer, so
    that the optimizer sees them. Calling it again re-initialises them from
    the caller's torch random state. ``sklearn.base.clone`` gives an
    unconfigured copy; ``copy.deepcopy``, pickling, ``state_dict`` and
    ``.to(device)`` carry the parameters (plain :class:`torch.nn.Parameter`).
    """,
)


# Floor of the energy inside the logarithm: a batch whose negative pairs all
# coincide gives a finite (very negative) term, not -inf.
_ENERGY_FLOOR = 1e-12


def _squared_distances(x):
    """Pairwise squared Euclidean distances (Gram form, clamped at 0)."""
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)


@fill_doc
class CenterLoss(BaseMetricLoss):
    r"""Center loss: pull every embedding towards a learned centre of its class.

    A regulariser, usually added with a small weight to another loss
    (``total = main_loss(e, y) + lam * center_loss(e, y)``). Same forward
    signature as every loss.

    Parameters
    ----------
    num_classes : int, default=None
        Number of classes (labels must lie in ``[0, num_classes)``). ``None``
        takes it from :meth:`configure`.

    embedding_size : int, default=None
        Dimension of the embeddings. ``None`` takes it from :meth:`configure`.

    distance : BaseDistance, default=None
        How an embedding is compared with its centre. ``None`` means the
        squared Euclidean distance of the raw (not normalised) embeddings,
        ``LpDistance(power=2, normalize_embeddings=False)``. With a similarity
        the loss is minus the mean similarity to the centres.

    Attributes
    ----------
    centers : torch.nn.Parameter of shape (num_classes, embedding_size)
        The class centres, created by :meth:`configure` with standard normal
        entries.

    See Also
    --------
    MarginLoss : Also holds learnable per-class parameters.

    Notes
    -----
    For a batch of :math:`n` samples with labels :math:`y_i`:

    .. math::

        L = \frac{1}{2n} \sum_{i=1}^{n} \| x_i - c_{y_i} \|_2^2

    (:math:`d(x_i, c_{y_i})` for another distance, :math:`-s(x_i, c_{y_i})`
    for a similarity). The paper sums over the batch; the mean makes the
    weight independent of the batch size. With ``indices_tuple`` only the
    samples named in it count. The paper moves the centres with their own
    update rule (centre step :math:`\alpha = 0.5`, loss weight
    :math:`\lambda = 0.003` for its face models); here they are ordinary
    parameters trained by the optimizer through the gradient
    :math:`c_j - x_i`. The usual PyTorch equivalent gives the centres their
    own SGD learning rate of 0.5 (an estimator's learning rate for loss
    parameters).

    {loss_configure_note}

    Not in pytorch-metric-learning (which has no center loss).

    References
    ----------
    .. [1] Wen, Y., Zhang, K., Li, Z. and Qiao, Y. "A Discriminative Feature
       Learning Approach for Deep Face Recognition", ECCV 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._regularizers import CenterLoss
    >>> loss = CenterLoss().configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    Parameter containing:
    tensor([[0., 0.],
            [1., 1.]], requires_grad=True)
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])
    >>> loss(embeddings, torch.tensor([0, 0, 1])).item()
    1.0
    """

    _parameter_constraints = {
        **BaseMetricLoss._parameter_constraints,
        "num_classes": SIZE_CONSTRAINT,
        "embedding_size": SIZE_CONSTRAINT,
    }

    def __init__(self, num_classes=None, embedding_size=None, distance=None):
        super().__init__(distance=distance)
        self.num_classes = num_classes
        self.embedding_size = embedding_size

    def _default_distance(self):
        return LpDistance(power=2, normalize_embeddings=False)

    def configure(self, num_classes=None, embedding_size=None):
        """Create the class centres.

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes; ``None`` uses the constructor's value.
        embedding_size : int, default=None
            Dimension of the embeddings; ``None`` uses the constructor's
            value.

        Returns
        -------
        self : CenterLoss
            This loss, with ``centers`` of shape ``(num_classes,
            embedding_size)`` drawn from the caller's torch random state.
        """
        self._validate_params()
        n = resolve_size(self, "num_classes", num_classes)
        d = resolve_size(self, "embedding_size", embedding_size)
        self.centers = torch.nn.Parameter(torch.randn(n, d))
        return self

    def _compute(self, embeddings, labels, indices_tuple, distance):
        centers = getattr(self, "centers", None)
        if centers is None:
            raise not_configured_error(self, "centers")
        if embeddings.shape[1] != centers.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} dimensions but the "
                f"centers have {centers.shape[1]}; call configure with the "
                "embedding size."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(centers)):
            raise ValueError(
                f"labels must lie in [0, {len(centers)}) (one centre per class); "
                f"got values from {int(labels.min())} to {int(labels.max())}."
            )
        if indices_tuple is not None:
            named = torch.cat([t.reshape(-1) for t in indices_tuple])
            if named.numel() == 0:
                return zero_loss(embeddings)
            keep = torch.unique(named)
            embeddings_, labels_ = embeddings[keep], labels[keep]
        else:
            embeddings_, labels_ = embeddings, labels
        if labels_.numel() == 0:
            return zero_loss(embeddings)
        own = centers[labels_].to(embeddings.dtype)
        values = distance.pairwise(embeddings_, own)
        if distance.is_inverted:
            values = -values
        return 0.5 * values.mean()


# ------------------------------------------------------------------ TCM
@fill_doc
class TCMRegularizer(BaseMetricLoss):
    """Threshold-consistent margin (TCM) regulariser.

    Penalises the hard pairs of the batch: positive pairs whose cosine is
    below :math:`m_+` and negative pairs whose cosine is above :math:`m_-`.
    It computes **only the regulariser**; it is meant to be added, with a
    weight, to a base loss (``total = base_loss(e, y) + tcm(e, y)``, the
    weights being ``lambda_plus`` and ``lambda_minus``), which makes the
    distance threshold that separates same from different classes more
    uniform across classes.

    Parameters
    ----------
    margin_plus : float, default=0.9
        Cosine margin :math:`m_+`: positive pairs with a cosine at or below
        it are penalised.

    margin_minus : float, default=0.5
        Cosine margin :math:`m_-`: negative pairs with a cosine at or above
        it are penalised.

    lambda_plus : float, default=1.0
        Weight :math:`\\lambda_+` of the positive part.

    lambda_minus : float, default=1.0
        Weight :math:`\\lambda_-` of the negative part.

    See Also
    --------
    sklearn_dml.losses.ContrastiveLoss : A similar hinge on every pair,
        averaged over active pairs.

    Notes
    -----
    With :math:`S_{ij}` the cosine similarity, :math:`P` the positive and
    :math:`N` the negative pairs (all pairs of the batch, or the pairs of
    ``indices_tuple``; triplets become their distinct pairs):

    .. math::

        L_{TCM} = \\lambda_+
            \\frac{\\sum_{(i,j) \\in P} (m_+ - S_{ij})\\, \\mathbb{1}[S_{ij} \\le m_+]}
                 {\\sum_{(i,j) \\in P} \\mathbb{1}[S_{ij} \\le m_+]}
          + \\lambda_-
            \\frac{\\sum_{(i,j) \\in N} (S_{ij} - m_-)\\, \\mathbb{1}[S_{ij} \\ge m_-]}
                 {\\sum_{(i,j) \\in N} \\mathbb{1}[S_{ij} \\ge m_-]}

    A part with no hard pair contributes 0 (with a zero gradient). The
    comparison is the cosine of the embeddings; the regulariser takes no
    ``distance``. Pairs at exactly the margin count in the denominator with
    a zero term, as in the paper's indicator :math:`\\le` / :math:`\\ge` and
    in pytorch-metric-learning's ``ThresholdConsistentMarginLoss``.

    References
    ----------
    .. [1] Zhang, Q., Xu, L., Tang, Q., Fang, J., Wu, Y. N., Tighe, J. and
       Xing, Y. "Threshold-Consistent Margin Loss for Open-World Deep Metric
       Learning", ICLR 2024, arXiv:2307.04047.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import TCMRegularizer
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(TCMRegularizer()(embeddings, labels).item(), 4)
    0.68
    """

    _parameter_constraints = {
        "margin_plus": [Interval(Real, None, None, closed="neither")],
        "margin_minus": [Interval(Real, None, None, closed="neither")],
        "lambda_plus": [Interval(Real, 0, None, closed="left")],
        "lambda_minus": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, margin_plus=0.9, margin_minus=0.5, lambda_plus=1.0, lambda_minus=1.0
    ):
        super().__init__()
        self.margin_plus = margin_plus
        self.margin_minus = margin_minus
        self.lambda_plus = lambda_plus
        self.lambda_minus = lambda_minus

    def _default_distance(self):
        return CosineSimilarity()

    def _compute(self, embeddings, labels, indices_tuple, distance):
        m_plus, m_minus = float(self.margin_plus), float(self.margin_minus)
        lam_plus, lam_minus = float(self.lambda_plus), float(self.lambda_minus)
        unit = F.normalize(embeddings, dim=1)
        if indices_tuple is None:
            pos_mask, neg_mask = label_masks(labels)
            sim = unit @ unit.T
            pos_sim, neg_sim = sim[pos_mask], sim[neg_mask]
        else:
            a1, p, a2, n = convert_to_pairs(indices_tuple, labels)
            pos_sim = (unit[a1] * unit[p]).sum(dim=1)
            neg_sim = (unit[a2] * unit[n]).sum(dim=1)
        loss = zero_loss(embeddings)
        hard_pos = pos_sim <= m_plus
        if hard_pos.any():
            loss = loss + lam_plus * (m_plus - pos_sim[hard_pos]).mean()
        hard_neg = neg_sim >= m_minus
        if hard_neg.any():
            loss = loss + lam_minus * (neg_sim[hard_neg] - m_minus).mean()
        return loss


class EnergyConfusionRegularizer(ParamsMixin, torch.nn.Module):
    r"""Energy-confusion term of Energy Confused Adversarial Metric Learning.

    The logarithm of the mean "energy" of the pairs of samples from
    different classes. Minimising it *pulls different classes together*: it
    confuses the metric on the seen classes, against the metric loss that
    separates them, so that the embedding cannot rely on the few features
    that separate the training classes most easily [1]_.

    The component has no hyper-parameters; its weight is set where it is
    used (``CombinedLoss`` weights, or the estimators' ``energy_confusion``).

    See Also
    --------
    sklearn_dml.losses.CombinedLoss : Adds it to a metric loss.

    Notes
    -----
    With :math:`N` the pairs :math:`i < j` of the batch with
    :math:`y_i \neq y_j` (or the negative pairs of ``indices_tuple``):

    .. math::

        L_{EC} = \log E, \qquad
        E = \frac{1}{|N|} \sum_{(i,j) \in N} \tfrac{1}{2}
            \lVert f_i - f_j \rVert_2^2

    (0 when the batch has no negative pair; :math:`E` is floored at
    :math:`10^{-12}` inside the logarithm).

    The paper trains the two terms adversarially by letting them act on
    different parameters: the metric loss trains the whole network, the
    energy-confusion term trains only the embedding layer (the "metric"
    :math:`W`), its gradient stopped at the features entering that layer.
    The estimators' ``energy_confusion=lambda`` option does exactly that
    (see the engine); used inside :class:`CombinedLoss`, or on its own, the
    term is a plain regulariser whose gradient reaches every parameter that
    produced the embeddings. The authors' implementation draws a few random
    partners per sample instead of using every pair; this is the exact
    (all-pairs) mean. The authors' released configuration weighs the
    term 0.13, next to a binomial-deviance metric loss.

    References
    ----------
    .. [1] Chen, B. and Deng, W. "Energy Confused Adversarial Metric Learning
       for Zero-Shot Image Retrieval and Clustering", AAAI 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import EnergyConfusionRegularizer
    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> labels = torch.tensor([0, 1, 1])
    >>> # negative pairs (0, 1) and (0, 2): energies 1 and 1, log(1) = 0
    >>> EnergyConfusionRegularizer()(emb, labels).item()
    0.0
    """

    def __init__(self):
        super().__init__()

    def forward(self, embeddings, labels, indices_tuple=None):
        """Energy-confusion term of one batch.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, n_dims)
            Embeddings of the batch.
        labels : torch.Tensor of shape (batch_size,)
            Class index of every embedding.
        indices_tuple : tuple of torch.Tensor, default=None
            Mined pairs or triplets: their negative pairs are used; ``None``
            uses every pair of different classes.

        Returns
        -------
        loss : torch.Tensor of shape ()
            :math:`\\log E` (0 without negative pairs).
        """
        check_embeddings_labels(embeddings, labels)
        if indices_tuple is None:
            neg = labels[:, None] != labels[None, :]
            count = neg.sum() // 2
            if int(count) == 0:
                return zero_loss(embeddings)
            sq = _squared_distances(embeddings)
            energy = 0.25 * torch.where(neg, sq, 0.0).sum() / count
        else:
            _, _, a2, n = convert_to_pairs(indices_tuple, labels)
            if a2.numel() == 0:
                return zero_loss(embeddings)
            diff = embeddings[a2] - embeddings[n]
            energy = 0.5 * (diff * diff).sum(dim=1).mean()
        return torch.log(energy.clamp_min(_ENERGY_FLOOR))
