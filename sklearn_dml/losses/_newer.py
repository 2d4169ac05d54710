"""Recent losses: mean-field losses, the TCM regulariser and relational
knowledge distillation.

* :class:`MeanFieldContrastiveLoss` and
  :class:`MeanFieldClassWiseMultiSimilarityLoss` replace the sample-sample
  interactions of a pair loss by interactions with one learnable "mean
  field" per class (Furusawa, ICLR 2024); like proxy losses they own a
  ``proxies`` parameter created by :meth:`configure`.
* :class:`TCMRegularizer` is the threshold-consistent margin term of Zhang et
  al. (ICLR 2024), meant to be added with a weight to another loss.
* :class:`RKDDistanceLoss` and :class:`RKDAngleLoss` (Park et al., CVPR 2019)
  compare the *relations* inside a batch of student embeddings with those of
  a teacher: they are called as ``loss(student, teacher)``, not with labels.
* :class:`EquiangularBasisLoss` (Shen et al., CVPR 2023): a softmax over the
  cosines to fixed, nearly orthogonal class vectors (a buffer, not learned).
"""

import numbers

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._params import ParamsMixin
from .._tuples import convert_to_pairs, label_masks
from ..distances import CosineSimilarity, LpDistance
from ._base import BaseMetricLoss, zero_loss
from ._base import check_real as _check_real
from ._proxy import (
    _cosine_to_proxies,
    _ProxyLoss,
    _resolve_size,
    _sample_weights,
    _weighted_mean,
)

__all__ = [
    "EquiangularBasisLoss",
    "MeanFieldClassWiseMultiSimilarityLoss",
    "MeanFieldContrastiveLoss",
    "RKDAngleLoss",
    "RKDDistanceLoss",
    "TCMRegularizer",
]

# (vertex, sample, sample) cells per chunk of RKDAngleLoss, and Gram cells
# per chunk of rows when generating equiangular basis vectors.
_ANGLE_CHUNK_CELLS = 2**22
_GRAM_CHUNK_CELLS = 2**22
# Step t of the EBV generation is learning_rate / (1 + t / _EBV_STEP_DECAY).
_EBV_STEP_DECAY = 20.0

register_doc(
    "mean_field_notes",
    """
    **Mean fields.** The parameter ``proxies`` holds the mean fields
    :math:`\\Psi_c`, one per class, created by :meth:`configure` (standard
    normal initialisation, as the authors' code). Embeddings and mean fields
    are compared by their cosine :math:`s_{ic} = \\cos(x_i, \\Psi_c)`, the
    paper's distance being :math:`d_{ic} = 1 - s_{ic}`; the loss takes no
    ``distance``. A forward call before :meth:`configure` raises
    ``RuntimeError``; estimators call it before building the optimizer.

    **Mined tuples.** ``indices_tuple`` weights samples: sample :math:`i`
    gets :math:`w_i = c_i / \\max_j c_j`, where :math:`c_i` counts its
    occurrences in the tuple (``1`` for every sample without a tuple). An
    empty tuple gives a zero loss, regulariser included.
    """,
)


def _masked_power(x, power):
    """``max(x, 0) ** power`` with a zero (never NaN) gradient where ``x <= 0``."""
    active = x > 0
    safe = torch.where(active, x, torch.ones_like(x))
    return torch.where(active, safe**power, torch.zeros_like(x))


def _off_diagonal(square):
    n = square.shape[0]
    return ~torch.eye(n, dtype=torch.bool, device=square.device)


class _MeanFieldLoss(_ProxyLoss):
    """Mean-field losses: a ``_ProxyLoss`` plus a mean-field regulariser."""

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(num_classes=num_classes, embedding_size=embedding_size)
        self.mf_reg = mf_reg
        self.mf_power = mf_power

    def _default_distance(self):
        return CosineSimilarity()

    def _proxy_compute(self, embeddings, labels, proxies, weights, distance):
        mf_reg = _check_real(self, "mf_reg", 0.0)
        mf_power = _check_real(self, "mf_power", 0.0, strict=True)
        self._check_hyperparameters()
        cosine = _cosine_to_proxies(embeddings, proxies)
        loss = self._data_term(cosine, labels, weights)
        if mf_reg > 0 and proxies.shape[0] > 1:
            unit = F.normalize(proxies, dim=1)
            gram = unit @ unit.T
            terms = _masked_power(self._field_penalty(gram), mf_power)
            terms = terms * _off_diagonal(gram)
            loss = loss + mf_reg * terms.sum() / proxies.shape[0]
        return loss

    def _check_hyperparameters(self):
        raise NotImplementedError

    def _data_term(self, cosine, labels, weights):
        raise NotImplementedError

    def _field_penalty(self, gram):
        raise NotImplementedError


@fill_doc
class MeanFieldContrastiveLoss(_MeanFieldLoss):
    """Mean-field contrastive loss: the contrastive loss against class mean fields.

    Mean field theory replaces the pairs of a contrastive loss by the
    interaction of every sample with a learnable mean field per class, so the
    cost is linear in the batch size, as for proxy losses.

    Parameters
    ----------
    {proxy_size_params}

    pos_margin : float, default=0.02
        Margin :math:`m_+` on the distance :math:`1 - \\cos` to the sample's
        own mean field (the default of the authors' training script).

    neg_margin : float, default=0.3
        Margin :math:`m_-` on the distance to the other mean fields, and
        between mean fields in the regulariser.

    mf_reg : float, default=0.0
        Weight :math:`\\lambda_{MF}` of the mean-field regulariser (``0``
        leaves it out; it costs a ``num_classes x num_classes`` matrix).

    mf_power : float, default=2
        Power :math:`p` of the regulariser's hinge (the authors' code uses 2).

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The mean fields :math:`\\Psi_c`, created by :meth:`configure`.

    See Also
    --------
    sklearn_dml.losses.ContrastiveLoss : The pair loss it is derived from.
    MeanFieldClassWiseMultiSimilarityLoss : The multi-similarity analogue.

    Notes
    -----
    With :math:`d_{ic} = 1 - \\cos(x_i, \\Psi_c)`,
    :math:`D_{cc'} = 1 - \\cos(\\Psi_c, \\Psi_{c'})` and :math:`C` the
    number of classes (every configured class, present in the batch or not):

    .. math::

        L = \\frac{1}{n} \\sum_{i=1}^{n} w_i \\Big( [d_{iy_i} - m_+]_+
              + \\sum_{c \\neq y_i} [m_- - d_{ic}]_+ \\Big)
          + \\frac{\\lambda_{MF}}{C} \\sum_{c} \\sum_{c' \\neq c}
              [m_- - D_{cc'}]_+^{p}

    The first term is the contrastive loss with every partner of a pair
    replaced by its class's mean field; the second keeps mean fields of
    different classes apart. The reductions (mean over samples, sum over
    classes, mean over mean fields of the regulariser) follow the authors'
    code, since the paper leaves them implicit.

    {mean_field_notes}

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._newer import MeanFieldContrastiveLoss
    >>> loss = MeanFieldContrastiveLoss(pos_margin=0.0, neg_margin=0.5)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.15
    """

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        pos_margin=0.02,
        neg_margin=0.3,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(
            num_classes=num_classes,
            embedding_size=embedding_size,
            mf_reg=mf_reg,
            mf_power=mf_power,
        )
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def _check_hyperparameters(self):
        _check_real(self, "pos_margin")
        _check_real(self, "neg_margin")

    def _data_term(self, cosine, labels, weights):
        dist = 1.0 - cosine
        target = F.one_hot(labels, cosine.shape[1]).to(torch.bool)
        pos = F.relu(dist - self.pos_margin)
        neg = F.relu(self.neg_margin - dist)
        terms = torch.where(target, pos, neg).sum(dim=1)
        return _weighted_mean(terms, weights)

    def _field_penalty(self, gram):
        return self.neg_margin - (1.0 - gram)


def _class_log_mean_exp(z, rows, weights, membership, counts):
    """``log((1 / n_c) * sum_{i in c} w_i * exp(z[i, k]))`` for every class row.

    ``z`` is ``(n, K)``; ``rows`` ``(n,)`` gives every sample's row of the
    output (any row for a sample of weight 0), ``membership`` is the
    ``(B, n)`` 0/1 matrix of the rows' samples and ``counts`` their numbers
    ``n_c``. Every entry is shifted by the maximum of its own class and
    column over the samples of non-zero weight, so one term of each sum is
    ``w_i * 1``: no overflow, and no row is lost to underflow.
    """
    active = (weights > 0)[:, None]
    masked = torch.where(active, z.detach(), torch.full_like(z, float("-inf")))
    index = rows[:, None].expand_as(z)
    shift = torch.full(
        (membership.shape[0], z.shape[1]), float("-inf"), dtype=z.dtype, device=z.device
    ).scatter_reduce(0, index, masked, reduce="amax")
    own_shift = shift[rows]
    safe = torch.where(active, z, own_shift)
    terms = torch.exp(safe - own_shift) * weights[:, None]
    sums = (membership @ terms).clamp_min(torch.finfo(z.dtype).tiny)
    return torch.log(sums) + shift - torch.log(counts)[:, None]


@fill_doc
class MeanFieldClassWiseMultiSimilarityLoss(_MeanFieldLoss):
    """Mean-field class-wise multi-similarity loss.

    The class-wise multi-similarity loss (a multi-similarity loss between
    classes of the batch) with every class's samples replaced, as partners,
    by a learnable mean field: each class's samples are pulled towards their
    mean field and pushed away from the mean fields of the other classes.

    Parameters
    ----------
    {proxy_size_params}

    alpha : float, default=0.01
        Scale :math:`\\alpha > 0` of the positive exponents (the authors'
        setting for every benchmark).

    beta : float, default=80
        Scale :math:`\\beta > 0` of the negative exponents.

    base : float, default=0.8
        Similarity offset :math:`\\lambda` (the authors' ``mrg``).

    mf_reg : float, default=0.0
        Weight :math:`\\lambda_{MF}` of the mean-field regulariser (the
        authors use 0 in every published run).

    mf_power : float, default=2
        Power :math:`p` of the regulariser.

    Attributes
    ----------
    proxies : torch.nn.Parameter of shape (num_classes, embedding_size)
        The mean fields :math:`\\Psi_c`, created by :meth:`configure`.

    See Also
    --------
    MeanFieldContrastiveLoss : The contrastive analogue.
    sklearn_dml.losses.MultiSimilarityLoss : The pair loss it descends from.

    Notes
    -----
    With :math:`s_{ic} = \\cos(x_i, \\Psi_c)`, :math:`B` the classes of the
    batch, :math:`n_c` the number of samples of class :math:`c` and

    .. math::

        P_c = \\frac{1}{n_c} \\sum_{y_i = c} w_i e^{-\\alpha (s_{ic} - \\lambda)},
        \\qquad
        N_{cc'} = \\frac{1}{n_c} \\sum_{y_i = c} w_i e^{\\beta (s_{ic'} - \\lambda)}

    (:math:`N_{cc'} = 0` for a class :math:`c` absent from the batch), the
    loss is

    .. math::

        L = \\frac{1}{\\alpha |B|} \\sum_{c \\in B} \\log(1 + P_c)
          + \\frac{1}{\\beta |B|} \\sum_{\\{c, c'\\},\\, c \\neq c'}
              \\log(1 + N_{cc'} + N_{c'c})
          + \\frac{\\lambda_{MF}}{C} \\sum_{c} \\sum_{c' \\neq c}
              \\Big[\\tfrac{1}{\\beta}
              \\log\\big(1 + e^{\\beta (\\cos(\\Psi_c, \\Psi_{c'}) - \\lambda)}\\big)
              \\Big]^{p}

    where the second sum runs over unordered pairs of distinct classes among
    all :math:`C` configured classes (a pair with neither class in the batch
    contributes 0). This follows the authors' code: the paper writes the
    sums over classes without fixing the normalisation. :math:`B` holds the
    classes with a non-zero total weight. Both exponential sums are computed
    in log space (shifted log-sum-exp), so a large ``beta`` does not
    overflow.

    {mean_field_notes}

    References
    ----------
    .. [1] Furusawa, T. "Mean Field Theory in Deep Metric Learning", ICLR
       2024, arXiv:2306.15368.
    .. [2] Wang, X., Han, X., Huang, W., Dong, D. and Scott, M. R.
       "Multi-Similarity Loss with General Pair Weighting for Deep Metric
       Learning", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._newer import MeanFieldClassWiseMultiSimilarityLoss
    >>> loss = MeanFieldClassWiseMultiSimilarityLoss(alpha=1.0, beta=1.0, base=0.5)
    >>> loss = loss.configure(num_classes=2, embedding_size=2)
    >>> with torch.no_grad():
    ...     _ = loss.proxies.copy_(torch.eye(2))
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(loss(embeddings, torch.tensor([0, 1])).item(), 4)
    0.8713
    """

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        alpha=0.01,
        beta=80,
        base=0.8,
        mf_reg=0.0,
        mf_power=2,
    ):
        super().__init__(
            num_classes=num_classes,
            embedding_size=embedding_size,
            mf_reg=mf_reg,
            mf_power=mf_power,
        )
        self.alpha = alpha
        self.beta = beta
        self.base = base

    def _check_hyperparameters(self):
        _check_real(self, "alpha", 0.0, strict=True)
        _check_real(self, "beta", 0.0, strict=True)
        _check_real(self, "base")

    def _data_term(self, cosine, labels, weights):
        n, n_classes = cosine.shape
        if weights is None:
            weights = torch.ones(n, dtype=cosine.dtype, device=cosine.device)
        onehot = F.one_hot(labels, n_classes).to(cosine.dtype)  # (n, C)
        total = (onehot * weights[:, None]).sum(dim=0)
        present = total > 0
        n_present = int(present.sum())
        membership = onehot.T[present]  # (B, n)
        counts = membership.sum(dim=1)
        rows = (torch.cumsum(present, 0) - 1).clamp_min(0)[labels]
        group = (rows, weights, membership, counts)
        # positive part: log(1 + P_c) for the classes of the batch
        own = (cosine * onehot).sum(dim=1, keepdim=True)  # s_{i, y_i}
        log_p = _class_log_mean_exp(-self.alpha * (own - self.base), *group)[:, 0]
        pos = F.softplus(log_p).sum() / (self.alpha * n_present)
        # negative part: log N_{cc'} for c in the batch, every c'
        log_n = _class_log_mean_exp(self.beta * (cosine - self.base), *group)
        idx = torch.nonzero(present, as_tuple=True)[0]
        inside = log_n[:, idx]  # (B, B): both classes in the batch
        upper = torch.triu(torch.ones_like(inside, dtype=torch.bool), diagonal=1)
        both = torch.logsumexp(
            torch.stack([inside, inside.T, torch.zeros_like(inside)]), dim=0
        )
        neg = both[upper].sum() + F.softplus(log_n[:, ~present]).sum()
        return pos + neg / (self.beta * n_present)

    def _field_penalty(self, gram):
        beta = float(self.beta)
        return torch.logaddexp(torch.zeros_like(gram), beta * (gram - self.base)) / beta


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
    >>> from sklearn_dml.losses._newer import TCMRegularizer
    >>> embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    >>> labels = torch.tensor([0, 0, 1])
    >>> round(TCMRegularizer()(embeddings, labels).item(), 4)
    0.68
    """

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
        m_plus = _check_real(self, "margin_plus")
        m_minus = _check_real(self, "margin_minus")
        lam_plus = _check_real(self, "lambda_plus", 0.0)
        lam_minus = _check_real(self, "lambda_minus", 0.0)
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


# ------------------------------------------------------------------ RKD
register_doc(
    "rkd_forward_params",
    """
    student : torch.Tensor of shape (batch_size, n_student_dims)
        Embeddings of the batch by the network being trained.
    teacher : torch.Tensor of shape (batch_size, n_teacher_dims)
        Embeddings of the same samples, in the same order, by the teacher.
        The dimensions may differ from the student's. They are detached: no
        gradient flows to the teacher.
    """,
)

register_doc(
    "rkd_signature_note",
    """
    **Call signature.** A distillation loss compares two embeddings of the
    same batch, not embeddings with labels: it is called as
    ``loss(student, teacher)``. It is therefore a plain
    :class:`torch.nn.Module` with ``get_params``/``set_params`` (so ``clone``
    and grid searches work), not a
    :class:`~sklearn_dml.losses.BaseMetricLoss`, and cannot be passed where a
    metric loss is expected.
    """,
)


class _RelationalDistillationLoss(ParamsMixin, torch.nn.Module):
    """Shared validation of the (student, teacher) losses."""

    _min_batch = 2

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = delta

    @fill_doc
    def forward(self, student, teacher):
        """Distillation loss of one batch.

        Parameters
        ----------
        {rkd_forward_params}

        Returns
        -------
        loss : torch.Tensor of shape ()
            Differentiable with respect to ``student``; a zero still attached
            to the graph when the batch is too small to hold a relation.
        """
        name = type(self).__name__
        for arg, value in (("student", student), ("teacher", teacher)):
            if not isinstance(value, torch.Tensor) or value.ndim != 2:
                raise ValueError(
                    f"{name}: {arg} must be a 2-D tensor of shape "
                    f"(batch_size, n_dims); got "
                    f"{getattr(value, 'shape', type(value).__name__)}."
                )
            if not value.is_floating_point():
                raise TypeError(
                    f"{name}: {arg} must be a floating point tensor; got {value.dtype}."
                )
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(
                f"{name}: student has {student.shape[0]} rows but teacher has "
                f"{teacher.shape[0]}; pass the embeddings of the same samples "
                "in the same order."
            )
        delta = _check_real(self, "delta", 0.0, strict=True)
        if student.shape[0] < self._min_batch:
            return zero_loss(student)
        teacher = teacher.detach().to(student.dtype)
        return self._compute(student, teacher, delta)

    def _compute(self, student, teacher, delta):
        raise NotImplementedError


def _normalized_distances(x, off_diagonal):
    """Euclidean distances divided by their mean over pairs ``i != j``."""
    dist = LpDistance(normalize_embeddings=False)(x)
    mean = dist[off_diagonal].mean()
    return dist / mean.clamp_min(torch.finfo(x.dtype).tiny)


@fill_doc
class RKDDistanceLoss(_RelationalDistillationLoss):
    """Distance-wise relational knowledge distillation (RKD-D).

    Trains the student so that the pairwise distances of a batch, each
    divided by the batch's mean distance, match those of the teacher.

    Parameters
    ----------
    delta : float, default=1.0
        Threshold :math:`\\delta` of the Huber loss (the paper uses 1).

    See Also
    --------
    RKDAngleLoss : The angle-wise relation; the paper adds both.

    Notes
    -----
    With :math:`\\psi(u_i, u_j) = \\|u_i - u_j\\|_2 / \\mu_u`, where
    :math:`\\mu_u` is the mean of :math:`\\|u_i - u_j\\|_2` over the pairs
    :math:`i \\neq j` of the batch, :math:`s` the student and :math:`t` the
    teacher embeddings and :math:`\\ell_\\delta` the Huber loss:

    .. math::

        L = \\frac{1}{n (n - 1)} \\sum_{i \\neq j}
            \\ell_\\delta\\big(\\psi(s_i, s_j), \\psi(t_i, t_j)\\big),
        \\qquad
        \\ell_\\delta(a, b) = \\begin{cases}
            \\frac{1}{2} (a - b)^2 & |a - b| \\le \\delta \\\\
            \\delta (|a - b| - \\frac{1}{2} \\delta) & \\text{otherwise}
        \\end{cases}

    The paper sums over pairs; the mean over ordered pairs :math:`i \\neq j`
    is chosen here. The authors' code averages over all :math:`n^2` entries,
    diagonal included, which is this value times :math:`(n - 1) / n`. The
    student's normaliser :math:`\\mu_s` is part of the graph. A batch of
    fewer than 2 samples gives 0; a batch whose points all coincide has
    :math:`\\psi = 0`.

    {rkd_signature_note}

    References
    ----------
    .. [1] Park, W., Kim, D., Lu, Y. and Cho, M. "Relational Knowledge
       Distillation", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._newer import RKDDistanceLoss
    >>> teacher = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    >>> student = torch.tensor([[0.0], [1.0], [2.0]])
    >>> round(RKDDistanceLoss()(student, teacher).item(), 4)
    0.0833
    >>> RKDDistanceLoss()(2 * teacher, teacher).item()
    0.0
    """

    def _compute(self, student, teacher, delta):
        n = student.shape[0]
        off = ~torch.eye(n, dtype=torch.bool, device=student.device)
        psi_s = _normalized_distances(student, off)
        psi_t = _normalized_distances(teacher, off)
        return F.huber_loss(psi_s[off], psi_t[off], delta=delta)


def _angle_huber_sum(student, teacher, vertices, delta):
    """Huber sum of the angles at ``vertices`` over distinct (i, j, k).

    No mask is needed: an entry with ``i`` or ``k`` at the vertex has
    ``e = 0``, so both cosines are 0, and one with ``i == k`` has both
    cosines 1; either way the student's and the teacher's entries agree and
    add nothing (neither value nor gradient) to the Huber sum.
    """
    e_s = F.normalize(student[None, :, :] - student[vertices, None, :], dim=2)
    e_t = F.normalize(teacher[None, :, :] - teacher[vertices, None, :], dim=2)
    cos_s = e_s @ e_s.transpose(1, 2)  # (chunk, n, n)
    cos_t = e_t @ e_t.transpose(1, 2)
    return F.huber_loss(cos_s, cos_t, delta=delta, reduction="sum")


@fill_doc
class RKDAngleLoss(_RelationalDistillationLoss):
    """Angle-wise relational knowledge distillation (RKD-A).

    Trains the student so that the angles formed by every triplet of the
    batch match those formed by the teacher's embeddings.

    Parameters
    ----------
    delta : float, default=1.0
        Threshold :math:`\\delta` of the Huber loss (the paper uses 1).

    See Also
    --------
    RKDDistanceLoss : The distance-wise relation.

    Notes
    -----
    With :math:`\\psi(u_i, u_j, u_k) = \\langle e_{ij}, e_{kj} \\rangle`,
    :math:`e_{ij} = (u_i - u_j) / \\|u_i - u_j\\|_2` (the cosine of the angle
    at vertex :math:`j`) and :math:`\\ell_\\delta` the Huber loss of
    :class:`RKDDistanceLoss`:

    .. math::

        L = \\frac{1}{n (n - 1) (n - 2)} \\sum_{i, j, k \\text{ distinct}}
            \\ell_\\delta\\big(\\psi(s_i, s_j, s_k), \\psi(t_i, t_j, t_k)\\big)

    The mean over ordered triplets of distinct samples is chosen here (the
    paper sums over triplets). The authors' code averages over all
    :math:`n^3` entries, whose extra entries are 0, which is this value
    times :math:`(n - 1)(n - 2) / n^2`. A point coinciding with the vertex
    gives :math:`e = 0` (as ``F.normalize``). The cosines are computed one
    chunk of vertices at a time, so memory stays bounded (about
    :math:`2^{22}` cells per chunk), not :math:`O(n^3)`. A batch of fewer
    than 3 samples gives 0.

    {rkd_signature_note}

    References
    ----------
    .. [1] Park, W., Kim, D., Lu, Y. and Cho, M. "Relational Knowledge
       Distillation", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._newer import RKDAngleLoss
    >>> teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> student = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    >>> RKDAngleLoss()(student, teacher).item()  # same angles, other lengths
    0.0
    """

    _min_batch = 3

    def _compute(self, student, teacher, delta):
        n = student.shape[0]
        dims = max(student.shape[1], teacher.shape[1], n)
        chunk = max(1, _ANGLE_CHUNK_CELLS // (n * dims))
        vertices = torch.arange(n, device=student.device)
        total = zero_loss(student)
        for start in range(0, n, chunk):
            total = total + _angle_huber_sum(
                student, teacher, vertices[start : start + chunk], delta
            )
        return total / (n * (n - 1) * (n - 2))


# ------------------------------------------------------------------ EBV
def equiangular_basis_vectors(
    n_vectors, n_dims, max_cosine, max_iter, learning_rate, generator=None
):
    """Unit vectors whose pairwise ``|cos|`` is pushed below ``max_cosine``.

    Gradient descent, from standard normal vectors, on
    ``sum_{i != j} max(|cos(w_i, w_j)| - max_cosine, 0)``, renormalising
    after every step, with step ``learning_rate / (1 + t / 20)`` at step
    ``t``; stops once no pair exceeds ``max_cosine`` (with a 1e-4
    tolerance) or after ``max_iter`` steps, and returns the iterate with the
    smallest largest ``|cos|``. The Gram matrix is formed a chunk of rows at
    a time.

    Returns
    -------
    basis : torch.Tensor of shape (n_vectors, n_dims)
        The unit vectors (float32).
    worst : float
        Their largest pairwise ``|cos|``.
    """
    basis = F.normalize(torch.randn(n_vectors, n_dims, generator=generator), dim=1)
    chunk = max(1, _GRAM_CHUNK_CELLS // n_vectors)
    best, best_worst = basis, float("inf")
    for step in range(max_iter + 1):
        grad = torch.zeros_like(basis)
        worst = 0.0
        for start in range(0, n_vectors, chunk):
            rows = basis[start : start + chunk]
            gram = rows @ basis.T
            own = torch.arange(start, start + rows.shape[0])
            gram[torch.arange(rows.shape[0]), own] = 0.0
            if gram.numel():
                worst = max(worst, float(gram.abs().max()))
            active = (gram.abs() > max_cosine).to(basis.dtype)
            # d/dW of the penalty: each pair appears as (i, j) and (j, i)
            grad[start : start + chunk] = 2.0 * (torch.sign(gram) * active) @ basis
        if worst < best_worst:
            best, best_worst = basis, worst
        if worst <= max_cosine + 1e-4 or step == max_iter:
            break
        size = learning_rate / (1.0 + step / _EBV_STEP_DECAY)
        basis = F.normalize(basis - size * grad, dim=1)
    return best, best_worst


@fill_doc
class EquiangularBasisLoss(BaseMetricLoss):
    """Equiangular basis vectors (EBV) loss: a softmax over fixed class vectors.

    Every class gets a predefined unit vector, the class vectors being as
    close to orthogonal as the dimension allows; the loss is the
    cross-entropy of the scaled cosines between an embedding and every class
    vector. The vectors are generated once, by :meth:`configure`, and are
    not trained: the loss has no learnable parameter, so the number of
    trained parameters does not grow with the number of classes.

    Parameters
    ----------
    {proxy_size_params}

    temperature : float, default=0.07
        Temperature :math:`\\tau` dividing the cosines (the authors' 0.07).

    max_cosine : float, default=0.05
        Target :math:`\\alpha` of the generation: the largest allowed
        :math:`|\\cos|` between two class vectors (the authors use 0.002 with
        as many dimensions as classes). It cannot go below the Welch bound
        :math:`\\sqrt{(C - d) / (d (C - 1))}` when :math:`C > d`.

    max_iter : int, default=1000
        Maximum number of gradient steps of the generation.

    learning_rate : float, default=0.01
        Step size of the generation.

    random_state : int or None, default=0
        Seed of the class vectors (a local ``torch.Generator``); ``None``
        draws from the global torch random state.

    Attributes
    ----------
    basis_vectors : torch.Tensor of shape (num_classes, embedding_size)
        The unit class vectors, a buffer created by :meth:`configure`
        (carried by ``state_dict``, ``copy.deepcopy``, pickling and
        ``.to()``, but not a parameter).

    max_cosine_reached_ : float
        Largest :math:`|\\cos|` between two class vectors after generation.

    See Also
    --------
    sklearn_dml.losses.NormalizedSoftmaxLoss : The same softmax with
        learnable class vectors.

    Notes
    -----
    The class vectors :math:`W_c` minimise, by gradient descent from random
    normal vectors with renormalisation after each step,

    .. math::

        \\sum_{i \\neq j} \\max(|\\cos(W_i, W_j)| - \\alpha, 0)

    until every pair is within :math:`\\alpha` (the authors' generation
    script), for at most ``max_iter`` steps. Two choices differ from that
    script: the step shrinks as :math:`\\eta / (1 + t / 20)` at step
    :math:`t` (a fixed step oscillates around a small :math:`\\alpha`), and
    the iterate with the smallest largest :math:`|\\cos|` is kept. When
    :math:`\\alpha` is below what the dimension allows the result is the
    best found: check ``max_cosine_reached_``. With :math:`\\tau` the temperature, the training loss is

    .. math::

        L = -\\frac{1}{n} \\sum_{i=1}^{n} w_i \\log
            \\frac{e^{\\cos(x_i, W_{y_i}) / \\tau}}
                 {\\sum_{c} e^{\\cos(x_i, W_c) / \\tau}}

    and a sample is classified by its most similar class vector. The loss
    works on the cosine and takes no ``distance``. ``indices_tuple`` weights
    samples as the proxy losses do (:math:`w_i = c_i / \\max_j c_j`, an empty
    tuple gives 0).

    References
    ----------
    .. [1] Shen, Y., Sun, X. and Wei, X.-S. "Equiangular Basis Vectors", CVPR
       2023.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses._newer import EquiangularBasisLoss
    >>> loss = EquiangularBasisLoss(max_cosine=0.01).configure(3, 3)
    >>> gram = loss.basis_vectors @ loss.basis_vectors.T
    >>> bool((gram - torch.eye(3)).abs().max() <= 0.0101)
    True
    >>> embeddings = loss.basis_vectors[[0, 1, 2]] * 5.0
    >>> loss(embeddings, torch.tensor([0, 1, 2])).item() < 1e-5
    True
    """

    def __init__(
        self,
        num_classes=None,
        embedding_size=None,
        temperature=0.07,
        max_cosine=0.05,
        max_iter=1000,
        learning_rate=0.01,
        random_state=0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.embedding_size = embedding_size
        self.temperature = temperature
        self.max_cosine = max_cosine
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _default_distance(self):
        return CosineSimilarity()

    def configure(self, num_classes=None, embedding_size=None):
        """Generate the class vectors (a buffer, not a parameter).

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes; ``None`` uses the constructor's value.
        embedding_size : int, default=None
            Dimension of the embeddings; ``None`` uses the constructor's value.

        Returns
        -------
        self : EquiangularBasisLoss
            This loss, with ``basis_vectors`` set.
        """
        num_classes = _resolve_size(self, "num_classes", num_classes)
        embedding_size = _resolve_size(self, "embedding_size", embedding_size)
        max_cosine = _check_real(self, "max_cosine", 0.0)
        learning_rate = _check_real(self, "learning_rate", 0.0, strict=True)
        max_iter = self.max_iter
        if (
            isinstance(max_iter, bool)
            or not isinstance(max_iter, numbers.Integral)
            or max_iter < 0
        ):
            raise ValueError(
                "EquiangularBasisLoss: max_iter must be a non-negative integer; "
                f"got {max_iter!r}."
            )
        seed = self.random_state
        if seed is None:
            generator = None
        elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            generator = torch.Generator().manual_seed(int(seed))
        else:
            raise ValueError(
                "EquiangularBasisLoss: random_state must be an int or None; got "
                f"{seed!r}."
            )
        basis, worst = equiangular_basis_vectors(
            num_classes,
            embedding_size,
            max_cosine,
            int(max_iter),
            learning_rate,
            generator,
        )
        self.register_buffer("basis_vectors", basis)
        self.max_cosine_reached_ = worst
        return self

    def _compute(self, embeddings, labels, indices_tuple, distance):
        basis = getattr(self, "basis_vectors", None)
        if basis is None:
            raise RuntimeError(
                "EquiangularBasisLoss has no basis vectors yet: call "
                "loss.configure(num_classes, embedding_size) before the first "
                "forward (estimators do this in fit)."
            )
        if embeddings.shape[1] != basis.shape[1]:
            raise ValueError(
                f"embeddings have {embeddings.shape[1]} columns but "
                "EquiangularBasisLoss was configured for "
                f"embedding_size={basis.shape[1]}."
            )
        if labels.numel() > 0 and (
            int(labels.min()) < 0 or int(labels.max()) >= basis.shape[0]
        ):
            raise ValueError(
                f"labels must be class indices in 0 .. {basis.shape[0] - 1} for "
                f"EquiangularBasisLoss configured with num_classes={basis.shape[0]};"
                f" got values from {int(labels.min())} to {int(labels.max())}."
            )
        temperature = _check_real(self, "temperature", 0.0, strict=True)
        weights = _sample_weights(indices_tuple, labels, embeddings.dtype)
        if labels.shape[0] == 0 or (weights is not None and not weights.any()):
            return zero_loss(embeddings)
        logits = _cosine_to_proxies(embeddings, basis.to(embeddings)) / temperature
        terms = F.cross_entropy(logits, labels, reduction="none")
        return _weighted_mean(terms, weights)
