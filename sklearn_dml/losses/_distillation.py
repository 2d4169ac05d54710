"""Distillation losses: relational knowledge distillation and deep mutual learning."""

from numbers import Integral, Real

import torch
import torch.nn.functional as F

from .._docstrings import fill_doc, register_doc
from .._param_validation import Interval
from .._params import ParamsMixin
from ..distances import LpDistance
from ._base import POSITIVE_INT, zero_loss

_POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE_REAL = Interval(Real, 0, None, closed="left")

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


# Stateless, built once (not at every batch).
_EUCLIDEAN = LpDistance(normalize_embeddings=False)


def _normalized_distances(x, off_diagonal):
    """Euclidean distances divided by their mean over pairs ``i != j``."""
    dist = _EUCLIDEAN(x)
    mean = dist[off_diagonal].mean()
    return dist / mean.clamp_min(torch.finfo(x.dtype).tiny)


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


class _RelationalDistillationLoss(ParamsMixin, torch.nn.Module):
    """Shared validation of the (student, teacher) losses."""

    _min_batch = 2

    _parameter_constraints = {"delta": [_POSITIVE_REAL]}

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
        _check_student_teacher(type(self).__name__, student, teacher)
        return self._loss(student, teacher, float(self.delta))

    @classmethod
    def _loss(cls, student, teacher, delta):
        """The loss of checked inputs with Huber threshold ``delta``."""
        if student.shape[0] < cls._min_batch:
            return zero_loss(student)
        teacher = teacher.detach().to(student.dtype)
        return cls._compute(student, teacher, delta)

    @staticmethod
    def _compute(student, teacher, delta):
        raise NotImplementedError


def _check_student_teacher(name, student, teacher):
    """Raise unless ``student`` and ``teacher`` are 2-D float tensors of equal length."""
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
    >>> from sklearn_dml.losses import RKDDistanceLoss
    >>> teacher = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    >>> student = torch.tensor([[0.0], [1.0], [2.0]])
    >>> round(RKDDistanceLoss()(student, teacher).item(), 4)
    0.0833
    >>> RKDDistanceLoss()(2 * teacher, teacher).item()
    0.0
    """

    @staticmethod
    def _compute(student, teacher, delta):
        n = student.shape[0]
        off = ~torch.eye(n, dtype=torch.bool, device=student.device)
        psi_s = _normalized_distances(student, off)
        psi_t = _normalized_distances(teacher, off)
        return F.huber_loss(psi_s[off], psi_t[off], delta=delta)


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
    >>> from sklearn_dml.losses import RKDAngleLoss
    >>> teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> student = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    >>> RKDAngleLoss()(student, teacher).item()  # same angles, other lengths
    0.0
    """

    _min_batch = 3

    @staticmethod
    def _compute(student, teacher, delta):
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


# (vertex, sample, sample) cells per chunk of RKDAngleLoss, and Gram cells
# per chunk of rows when generating equiangular basis vectors.
_ANGLE_CHUNK_CELLS = 2**22


class RKDLoss(ParamsMixin, torch.nn.Module):
    """Relational knowledge distillation: distance-wise plus angle-wise (RKD-DA).

    Parameters
    ----------
    distance_weight : float, default=1.0
        Weight :math:`\\lambda_D` of :class:`RKDDistanceLoss` (the paper: 1).

    angle_weight : float, default=2.0
        Weight :math:`\\lambda_A` of :class:`RKDAngleLoss` (the paper: 2).

    delta : float, default=1.0
        Threshold of the Huber loss of both terms.

    See Also
    --------
    RKDDistanceLoss, RKDAngleLoss : The two terms.
    sklearn_dml.RKDEmbedder : Trains a student embedder with it.

    Notes
    -----
    With :math:`L_D` and :math:`L_A` the two relational losses between the
    student embeddings :math:`s` and the teacher embeddings :math:`t` of a
    batch,

    .. math::

        L_{RKD}(s, t) = \\lambda_D L_D(s, t) + \\lambda_A L_A(s, t).

    A zero weight skips its term (the angle term is the costly one,
    :math:`O(n^3)` in the batch size). Called as ``loss(student, teacher)``;
    the teacher is detached.

    References
    ----------
    .. [1] Park, W., Kim, D., Lu, Y. and Cho, M. "Relational Knowledge
       Distillation", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import RKDLoss
    >>> teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> RKDLoss()(3 * teacher, teacher).item()  # same relations
    0.0
    """

    _parameter_constraints = {
        "distance_weight": [_NON_NEGATIVE_REAL],
        "angle_weight": [_NON_NEGATIVE_REAL],
        "delta": [_POSITIVE_REAL],
    }

    def __init__(self, distance_weight=1.0, angle_weight=2.0, delta=1.0):
        super().__init__()
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight
        self.delta = delta

    def forward(self, student, teacher):
        """Weighted RKD loss of the student's batch toward the teacher's."""
        return _rkd_loss(
            student,
            teacher,
            float(self.distance_weight),
            float(self.angle_weight),
            float(self.delta),
        )


def _rkd_loss(student, teacher, w_d, w_a, delta):
    """``w_d * L_D + w_a * L_A`` (a zero weight skips its term), inputs checked."""
    total = zero_loss(student) if isinstance(student, torch.Tensor) else None
    if w_d > 0:
        _check_student_teacher("RKDDistanceLoss", student, teacher)
        total = total + w_d * RKDDistanceLoss._loss(student, teacher, delta)
    if w_a > 0:
        _check_student_teacher("RKDAngleLoss", student, teacher)
        total = total + w_a * RKDAngleLoss._loss(student, teacher, delta)
    if total is None:
        raise ValueError(
            f"RKDLoss: student must be a 2-D tensor; got {type(student).__name__}."
        )
    return total


class MutualLearningLoss(ParamsMixin, torch.nn.Module):
    """Diversified mutual learning of a cohort of embedders.

    The embeddings of ``n_models`` embedders of the same batch arrive
    concatenated along the feature axis (``n_models`` blocks of equal
    width), optionally followed by as many blocks from temporal-average
    copies of them (``n_temporal`` blocks). Each embedder is trained with
    its own copy of the metric ``loss`` (on the tuples of its own copy of
    ``miner``) and with RKD toward every other block, detached.

    Parameters
    ----------
    loss : torch.nn.Module
        The metric loss ``loss(embeddings, labels, indices_tuple)`` of each
        embedder; each block gets a clone, so learnable parameters (proxies)
        are per embedder.

    n_models : int, default=2
        Number of trained embedders (blocks that receive gradients).

    miner : torch.nn.Module or None, default=None
        Miner run on each block separately; ``None`` uses every tuple.

    n_temporal : int, default=0
        Number of trailing blocks produced by frozen temporal-average
        models (teachers only: they get no metric loss and no gradient).

    metric_weight : float, default=1.0
        Weight of the metric loss of each embedder.

    distance_weight : float, default=1.0
        Weight :math:`\\lambda_D` of the distance-wise RKD term.

    angle_weight : float, default=2.0
        Weight :math:`\\lambda_A` of the angle-wise RKD term.

    block_size : int or None, default=None
        Width of one block, passed to each metric loss's ``configure``;
        ``None`` passes the ``embedding_size`` given to :meth:`configure`.

    See Also
    --------
    RKDLoss : The relational term.
    sklearn_dml.MutualLearningEmbedder : Trains a cohort with it.

    Notes
    -----
    With blocks :math:`e_1, \\dots, e_M` of the trained embedders,
    :math:`e_{M+1}, \\dots, e_{M+T}` of the temporal-average models,
    :math:`L_m` the metric loss and :math:`L_{RKD}` of :class:`RKDLoss`,

    .. math::

        L = \\sum_{k=1}^{M} \\Big( w\\, L_m(e_k)
            + \\frac{1}{M + T - 1} \\sum_{l \\neq k}
            L_{RKD}\\big(e_k, \\operatorname{sg}(e_l)\\big) \\Big),

    where :math:`\\operatorname{sg}` stops the gradient. The peers are
    detached, so the gradient of :math:`L` with respect to embedder
    :math:`k` is that of its own term: each embedder minimises its metric
    loss plus the mean relational disagreement with its peers, as in deep
    mutual learning, with RKD in place of the KL divergence of classifiers.

    References
    ----------
    .. [1] Park, W., Kim, W., You, K. and Cho, M. "Diversified Mutual
       Learning for Deep Metric Learning", ECCV Workshops 2020.
    .. [2] Zhang, Y., Xiang, T., Hospedales, T. M. and Lu, H. "Deep Mutual
       Learning", CVPR 2018.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dml.losses import MutualLearningLoss, TripletMarginLoss
    >>> loss = MutualLearningLoss(TripletMarginLoss(margin=0.1), n_models=2)
    >>> emb = torch.nn.functional.normalize(torch.randn(8, 3), dim=1)
    >>> both = torch.cat([emb, emb], dim=1)  # two models that agree
    >>> labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    >>> single = TripletMarginLoss(margin=0.1)(emb, labels)
    >>> torch.allclose(loss(both, labels), 2 * single)
    True
    """

    _parameter_constraints = {
        "loss": [torch.nn.Module],
        "n_models": [POSITIVE_INT],
        "miner": [None, torch.nn.Module],
        "n_temporal": [Interval(Integral, 0, None, closed="left")],
        "metric_weight": [_NON_NEGATIVE_REAL],
        "distance_weight": [_NON_NEGATIVE_REAL],
        "angle_weight": [_NON_NEGATIVE_REAL],
        "block_size": [None, POSITIVE_INT],
    }

    def __init__(
        self,
        loss,
        n_models=2,
        miner=None,
        n_temporal=0,
        metric_weight=1.0,
        distance_weight=1.0,
        angle_weight=2.0,
        block_size=None,
    ):
        super().__init__()
        self.loss = loss
        self.n_models = n_models
        self.miner = miner
        self.n_temporal = n_temporal
        self.metric_weight = metric_weight
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight
        self.block_size = block_size
        self._built = None

    def _parts(self):
        """Per-model clones of the metric loss and the miner (built once)."""
        from .._params import fresh_component

        if self._built is None or len(self._built[0]) != self.n_models:
            losses = torch.nn.ModuleList(
                fresh_component(self.loss) for _ in range(self.n_models)
            )
            miners = [
                None if self.miner is None else fresh_component(self.miner)
                for _ in range(self.n_models)
            ]
            self._built = (losses, miners)
            # Registered so that learnable parameters train and move devices.
            self.losses_ = losses
        return self._built

    def configure(self, num_classes=None, embedding_size=None):
        """Configure each model's metric loss (``embedding_size``: one block).

        Parameters
        ----------
        num_classes : int, default=None
            Number of classes.
        embedding_size : int, default=None
            Width of one model's embedding.

        Returns
        -------
        self : MutualLearningLoss
        """
        self._validate_params()
        self._built = None
        size = embedding_size if self.block_size is None else self.block_size
        for part in self._parts()[0]:
            if hasattr(part, "configure"):
                part.configure(num_classes, size)
        return self

    def forward(self, embeddings, labels, indices_tuple=None):
        """Cohort loss of one batch.

        Parameters
        ----------
        embeddings : torch.Tensor of shape (batch_size, (n_models + n_temporal) * d)
            The blocks of every model, concatenated.
        labels : torch.Tensor of shape (batch_size,)
            Class labels.
        indices_tuple : None
            Unused (each block is mined by its own miner); must be ``None``.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        if indices_tuple is not None:
            raise ValueError(
                "MutualLearningLoss mines each model's block itself: pass its "
                "miner as miner= and call it without indices_tuple."
            )
        n_blocks = self.n_models + self.n_temporal
        if embeddings.ndim != 2 or embeddings.shape[1] % n_blocks:
            raise ValueError(
                f"MutualLearningLoss: embeddings of shape {tuple(embeddings.shape)} "
                f"do not split into n_models + n_temporal = {n_blocks} blocks "
                "of equal width."
            )
        blocks = embeddings.chunk(n_blocks, dim=1)
        losses, miners = self._parts()
        w_d, w_a = float(self.distance_weight), float(self.angle_weight)
        use_rkd = n_blocks > 1 and (w_d > 0 or w_a > 0)
        total = zero_loss(embeddings)
        for k in range(self.n_models):
            block = blocks[k]
            if self.metric_weight > 0:
                miner = miners[k]
                indices = None if miner is None else miner(block, labels)
                total = total + self.metric_weight * losses[k](block, labels, indices)
            if use_rkd:
                peers = [blocks[j].detach() for j in range(n_blocks) if j != k]
                rkd = sum(_rkd_loss(block, peer, w_d, w_a, 1.0) for peer in peers)
                total = total + rkd / len(peers)
        return total
