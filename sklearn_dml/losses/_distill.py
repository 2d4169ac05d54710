"""Relational knowledge transfer between embedders.

* :class:`RKDLoss`: the weighted sum of the distance-wise and angle-wise
  relational distillation losses of Park et al. (CVPR 2019), called as
  ``loss(student, teacher)``.
* :class:`MutualLearningLoss`: the objective of diversified mutual learning
  (Park et al., ECCV Workshops 2020): several embedders, whose embeddings
  arrive concatenated, each trained with its own metric loss plus RKD
  toward the other embedders' (detached) embeddings.
"""

import numbers

import torch

from .._params import ParamsMixin
from ._base import check_real, zero_loss
from ._newer import RKDAngleLoss, RKDDistanceLoss

__all__ = ["MutualLearningLoss", "RKDLoss"]


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

    def __init__(self, distance_weight=1.0, angle_weight=2.0, delta=1.0):
        super().__init__()
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight
        self.delta = delta

    def forward(self, student, teacher):
        """Weighted RKD loss of the student's batch toward the teacher's."""
        w_d = check_real(self, "distance_weight", 0)
        w_a = check_real(self, "angle_weight", 0)
        total = zero_loss(student) if isinstance(student, torch.Tensor) else None
        if w_d > 0:
            total = total + w_d * RKDDistanceLoss(delta=self.delta)(student, teacher)
        if w_a > 0:
            total = total + w_a * RKDAngleLoss(delta=self.delta)(student, teacher)
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

    def _check(self):
        for name, low in (("n_models", 1), ("n_temporal", 0)):
            value = getattr(self, name)
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < low
            ):
                raise ValueError(
                    f"MutualLearningLoss: {name} must be an int >= {low}; got "
                    f"{value!r}."
                )
        if not isinstance(self.loss, torch.nn.Module):
            raise TypeError(
                "MutualLearningLoss: loss must be a metric loss module (see "
                f"sklearn_dml.losses); got {type(self.loss).__name__}."
            )
        for name in ("metric_weight", "distance_weight", "angle_weight"):
            check_real(self, name, 0)

    def _parts(self):
        """Per-model clones of the metric loss and the miner (built once)."""
        from .._embedders_common import fresh_component

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
        self._check()
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
        self._check()
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
        relational = RKDLoss(self.distance_weight, self.angle_weight)
        use_rkd = n_blocks > 1 and (self.distance_weight > 0 or self.angle_weight > 0)
        total = zero_loss(embeddings)
        for k in range(self.n_models):
            block = blocks[k]
            if self.metric_weight > 0:
                miner = miners[k]
                indices = None if miner is None else miner(block, labels)
                total = total + self.metric_weight * losses[k](block, labels, indices)
            if use_rkd:
                peers = [blocks[j].detach() for j in range(n_blocks) if j != k]
                rkd = sum(relational(block, peer) for peer in peers)
                total = total + rkd / len(peers)
        return total
