"""Embedders that learn from other networks: relational distillation from a teacher,
mutual learning in a cohort.
"""

import copy
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .._docstrings import fill_doc
from .._param_validation import HasMethods, Interval
from .._params import fresh_component
from ..base import BaseDeepMetricLearner
from ..losses import TripletMarginLoss
from ..losses._distillation import MutualLearningLoss, RKDLoss
from ..miners import TripletMarginMiner
from ..training.objective import RelationalTerm
from ._method import MINER_CONSTRAINT
from ._pair import TripletEmbedder

_TRIPLET_MARGIN = 0.0961


def _default_metric(loss, miner):
    """``(loss, miner)`` clones; ``loss=None``: TripletEmbedder's default."""
    if loss is None:
        loss = TripletMarginLoss(margin=_TRIPLET_MARGIN)
        if miner is None:
            miner = TripletMarginMiner(
                margin=_TRIPLET_MARGIN, type_of_triplets="semihard"
            )
        return loss, None if miner is None else fresh_component(miner)
    return fresh_component(loss), None if miner is None else fresh_component(miner)


def _reset_parameters(module):
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


class _Cohort(torch.nn.Module):
    """Composite backbone of a mutual-learning cohort.

    Training mode: the concatenated embeddings of every member, each on its
    own view of the batch (feature dropout), then those of the
    temporal-average copies (updated first, without gradient). Evaluation
    mode: member 0's embedding, or with ``ensemble`` the (re-normalised)
    concatenation of all members'.
    """

    def __init__(self, members, feature_dropout, ema_decay, ensemble, normalize):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.feature_dropout = feature_dropout
        self.ema_decay = ema_decay
        self.ensemble = ensemble
        self.normalize = normalize
        self.temporal = None
        if ema_decay is not None:
            self.temporal = torch.nn.ModuleList(copy.deepcopy(m) for m in members)
            self.temporal.requires_grad_(False)

    @torch.no_grad()
    def _update_temporal(self):
        decay = self.ema_decay
        for avg, member in zip(self.temporal, self.members):
            for p_avg, p in zip(avg.parameters(), member.parameters()):
                p_avg.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
            for b_avg, b in zip(avg.buffers(), member.buffers()):
                b_avg.copy_(b)

    def forward(self, x):
        if not self.training:
            if not self.ensemble:
                return self.members[0](x)
            out = torch.cat([m(x) for m in self.members], dim=1)
            return F.normalize(out, dim=1) if self.normalize else out
        p = self.feature_dropout
        views = [F.dropout(x, p) if p > 0 else x for _ in self.members]
        outs = [m(v) for m, v in zip(self.members, views)]
        # Kept for training_penalty, which the engine calls on this batch.
        self._views = views
        if self.temporal is not None:
            self._update_temporal()
            with torch.no_grad():
                outs += [m(v) for m, v in zip(self.temporal, views)]
        return torch.cat(outs, dim=1)

    def training_penalty(self, x, embeddings, y=None):
        """The sum of the members' own penalties (e.g. the anchoring of the
        default backbone), each on its view and its part of the output."""
        views = getattr(self, "_views", None) or [x] * len(self.members)
        self._views = None
        size = embeddings.shape[1] // (
            len(self.members) * (1 if self.temporal is None else 2)
        )
        total = None
        for i, (member, view) in enumerate(zip(self.members, views)):
            penalty = getattr(member, "training_penalty", None)
            if not callable(penalty):
                continue
            term = penalty(view, embeddings[:, i * size : (i + 1) * size], y)
            if term is not None:
                total = term if total is None else total + term
        return total


@fill_doc
class RKDEmbedder(BaseDeepMetricLearner):
    """A student embedder trained by relational knowledge distillation.

    Learns an embedding whose within-batch relations (normalised distances
    and angles) match those of a teacher's embedding of the same samples,
    optionally together with a metric loss on the labels. Typical use: shrink
    the embedding (``n_components``) or the network of a fitted embedder.

    Parameters
    ----------
    teacher : transformer or None, default=None
        The teacher: any object with ``fit(X, y)`` and ``transform(X)``
        returning one row per sample (an sklearn-dml embedder, a
        ``Pipeline``, ``PCA``...). A *fitted* teacher is used as it is (only
        its ``transform`` is called, once, on the training data); an
        unfitted one is cloned and fitted on the training data first (its
        ``random_state``, when ``None``, set from this estimator's). ``None``
        fits a ``TripletEmbedder(n_components=64, hidden_layer_sizes=(256,))``
        with this estimator's ``max_iter``. ``clone`` (and so
        ``GridSearchCV``) turns a fitted estimator into an unfitted one:
        wrap a fitted teacher in :class:`sklearn.frozen.FrozenEstimator` to
        keep it fitted through cloning.

    loss : torch.nn.Module or None, default=None
        The metric loss, used when ``metric_weight > 0``. ``None`` is
        :class:`TripletEmbedder`'s default: the triplet margin loss (margin
        0.0961) on semi-hard triplets.

    miner : torch.nn.Module or None, default=None
        Miner of the metric loss; with ``loss=None`` the semi-hard triplet
        miner is the default. Cloned for training.

    metric_weight : float, default=0.0
        Weight :math:`w` of the metric loss; ``0`` trains by distillation
        alone, the paper's metric-learning student.

    distance_weight : float, default=1.0
        Weight :math:`\\lambda_D` of the distance-wise term (the paper: 1).

    angle_weight : float, default=2.0
        Weight :math:`\\lambda_A` of the angle-wise term (the paper: 2).

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    teacher_ : object
        The teacher used: the ``teacher`` passed in when it was fitted, a
        fitted clone of it otherwise.

    {fitted_attributes}

    See Also
    --------
    sklearn_dml.losses.RKDLoss : The distillation loss.
    MutualLearningEmbedder : Embedders distilling into each other.

    Notes
    -----
    For a batch :math:`B` with student embeddings :math:`s` and teacher
    embeddings :math:`t`, training minimises

    .. math::

        L = w\\, L_m(s, y) + \\lambda_D L_D(s, t) + \\lambda_A L_A(s, t),

    with :math:`L_D` the Huber loss between the pairwise distances of
    :math:`s` and of :math:`t`, each divided by its batch mean
    (:class:`~sklearn_dml.losses.RKDDistanceLoss`), and :math:`L_A` the
    Huber loss between the cosines of the angles of every triplet
    (:class:`~sklearn_dml.losses.RKDAngleLoss`). Relations, not the
    coordinates, are matched, so the student's dimension may differ from
    the teacher's.

    **Teacher targets.** The teacher's embeddings of the training set are
    computed once, before training, and given to the engine as per-sample
    targets sliced with every batch. This is exact for a deterministic
    teacher (the paper's teachers are frozen), costs one inference pass
    instead of one per batch, and keeps the engine's loop generic: the
    teacher is never run nor changed inside training.

    The training options (``nested_dims``, ``mixup``, ``energy_confusion``,
    ``procsim``) modify the metric loss, so they are refused when
    ``metric_weight=0``.

    References
    ----------
    .. [1] Park, W., Kim, D., Lu, Y. and Cho, M. "Relational Knowledge
       Distillation", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import RKDEmbedder, TripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> teacher = TripletEmbedder(n_components=32, max_iter=3, random_state=0)
    >>> teacher = teacher.fit(X, y)
    >>> student = RKDEmbedder(teacher, n_components=4, hidden_layer_sizes=(32,),
    ...                       batch_size=40, max_iter=3, random_state=0)
    >>> student.fit(X, y).transform(X[:2]).shape
    (2, 4)
    >>> student.teacher_ is teacher  # fitted: used as it is
    True
    """

    # The student learns the teacher's relations: no anchoring of the default
    # backbone to its PCA start, which would pull it back.
    _default_anchor_weight = 0.0

    _method_parameters = {
        "teacher": None,
        "loss": None,
        "miner": None,
        "metric_weight": 0.0,
        "distance_weight": 1.0,
        "angle_weight": 2.0,
    }

    _parameter_constraints = {
        "teacher": [None, HasMethods(["fit", "transform"])],
        "loss": [None, torch.nn.Module],
        "miner": MINER_CONSTRAINT,
        "metric_weight": [Interval(Real, 0, None, closed="left")],
        "distance_weight": [Interval(Real, 0, None, closed="left")],
        "angle_weight": [Interval(Real, 0, None, closed="left")],
    }

    def _check_method_params(self):
        if self.metric_weight == 0 and self.distance_weight == 0 == self.angle_weight:
            raise ValueError(
                "metric_weight, distance_weight and angle_weight are all 0: nothing "
                "to train. Give distance_weight or angle_weight a positive value "
                "(the paper: 1 and 2)."
            )

    def _check_training_options(self):
        used = self._training_options_in_use()
        if used and self.metric_weight == 0:
            raise ValueError(
                f"{', '.join(used)} modify the metric loss, which metric_weight=0 "
                "switches off; set metric_weight > 0 or leave them at their defaults."
            )

    def _build_loss(self, n_classes, n_components):
        return _default_metric(self.loss, self.miner)

    def _metric_weight(self):
        return float(self.metric_weight)

    def _extra_terms(self, state):
        # The teacher's relations, matched on the teacher's embeddings of the
        # batch (the targets of _training_targets).
        rkd = RKDLoss(
            distance_weight=self.distance_weight, angle_weight=self.angle_weight
        )
        return [RelationalTerm(rkd)]

    def _fitted_teacher(self, X, y, config):
        teacher = self.teacher
        if teacher is None:
            teacher = TripletEmbedder(
                n_components=64,
                hidden_layer_sizes=(256,),
                max_iter=self.max_iter,
                device=self.device,
                random_state=config.seed,
            )
        else:
            try:
                check_is_fitted(teacher)
                fitted = True
            except NotFittedError:
                fitted = False
            if fitted:
                n_in = getattr(teacher, "n_features_in_", None)
                if n_in is not None and n_in != X.shape[1]:
                    raise ValueError(
                        f"The teacher was fitted on {n_in} features but X has "
                        f"{X.shape[1]}. Pass a teacher fitted on the same features "
                        "(or an unfitted one, to be fitted on X)."
                    )
                return teacher
            teacher = clone(teacher)
            if teacher.get_params().get("random_state", 0) is None:
                teacher.set_params(random_state=config.seed)
        return teacher.fit(X, y)

    def _training_targets(self, X, y, config, first):
        if first or not hasattr(self, "teacher_"):
            self.teacher_ = self._fitted_teacher(X, y, config)
        targets = np.asarray(self.teacher_.transform(X))
        if targets.ndim != 2 or targets.shape[0] != X.shape[0]:
            raise ValueError(
                "The teacher's transform must return a 2-D array with one row per "
                f"sample ({X.shape[0]} rows); it returned shape {targets.shape}."
            )
        if not np.isfinite(targets).all():
            raise ValueError(
                "The teacher's embeddings of X hold NaN or infinite values; check "
                "the teacher."
            )
        return targets


@fill_doc
class MutualLearningEmbedder(BaseDeepMetricLearner):
    """Diversified mutual learning: several embedders taught by each other.

    Trains ``n_models`` embedders of the same architecture together. Each
    minimises its own metric loss plus the relational (RKD) disagreement of
    its batch embedding with those of the other members, which act as
    (detached) teachers. Three diversities keep the members apart:

    * model: each member has its own random initialisation;
    * view (``feature_dropout``): each member sees its own random feature
      dropout of the batch, the tabular stand-in for image augmentations;
    * temporal (``ema_decay``): a temporal-average (exponential moving
      average) copy of each member, updated at every step, joins the
      teachers.

    ``transform`` returns member 0's embedding, or with ``ensemble=True``
    the concatenation of every member's.

    Parameters
    ----------
    loss : torch.nn.Module or None, default=None
        The metric loss of each member (each trains a clone). ``None`` is
        :class:`TripletEmbedder`'s default: the triplet margin loss (margin
        0.0961) on semi-hard triplets.

    miner : torch.nn.Module or None, default=None
        Miner of the metric loss, run on each member's embedding; with
        ``loss=None`` the semi-hard triplet miner is the default.

    n_models : int, default=2
        Number of members of the cohort.

    distance_weight : float, default=1.0
        Weight :math:`\\lambda_D` of the distance-wise relational term.

    angle_weight : float, default=2.0
        Weight :math:`\\lambda_A` of the angle-wise relational term.

    feature_dropout : float, default=0.0
        View diversity: probability of zeroing each input feature (the kept
        ones scaled by :math:`1 / (1 - p)`), drawn independently for every
        member at every step. ``0`` gives every member the same batch.

    ema_decay : float or None, default=None
        Temporal diversity: decay :math:`\\alpha` of the temporal-average copy
        of each member, :math:`\\bar\\theta \\leftarrow \\alpha \\bar\\theta +
        (1 - \\alpha) \\theta`, applied at the start of every step (so with
        the weights of the previous step). ``None`` uses no temporal copies.

    ensemble : bool, default=False
        ``transform`` returns the concatenation of the members' embeddings
        (L2-normalised again when ``normalize_embeddings``), of dimension
        ``n_models * n_components``, instead of member 0's. Also what early
        stopping scores.

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    sklearn_dml.losses.MutualLearningLoss : The cohort objective.
    RKDEmbedder : Distillation from a fixed teacher.

    Notes
    -----
    With members' embeddings :math:`e_1, \\dots, e_M` of a batch, the
    temporal copies' :math:`e_{M+1}, \\dots, e_{M+T}` (:math:`T = M` with
    ``ema_decay``, else 0), the metric loss :math:`L_m` and the RKD loss
    :math:`L_{RKD} = \\lambda_D L_D + \\lambda_A L_A` of
    :class:`~sklearn_dml.losses.RKDLoss`,

    .. math::

        L = \\sum_{k=1}^{M} \\Big( L_m(e_k, y)
            + \\frac{1}{M + T - 1} \\sum_{l \\neq k}
            L_{RKD}\\big(e_k, \\operatorname{sg}(e_l)\\big) \\Big)

    (:math:`\\operatorname{sg}`: no gradient), so each member's gradient is
    that of its own term. The cohort is one composite backbone whose
    training output is the concatenation of the blocks, and the objective
    one loss component that splits it
    (:class:`~sklearn_dml.losses.MutualLearningLoss`): the engine trains it
    like any embedder, with one optimizer over all members.

    The default backbone starts every member's linear path at the same PCA
    projection (and its residual branch's output at zero), so members begin
    as the same function and diverge through their hidden layers; view
    diversity separates them more. A user ``backbone`` is copied for each
    member, and members after the first get ``reset_parameters()`` on every
    submodule that has it.

    The training options (``nested_dims``, ``mixup``, ``energy_confusion``,
    ``procsim``) act on a single embedding and are refused.

    References
    ----------
    .. [1] Park, W., Kim, W., You, K. and Cho, M. "Diversified Mutual
       Learning for Deep Metric Learning", ECCV Workshops 2020.
    .. [2] Park, W., Kim, D., Lu, Y. and Cho, M. "Relational Knowledge
       Distillation", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import MutualLearningEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200] / 16, y[:200]
    >>> emb = MutualLearningEmbedder(n_models=2, n_components=8, ensemble=True,
    ...                              batch_size=40, max_iter=3, random_state=0)
    >>> emb.fit(X, y).transform(X[:2]).shape
    (2, 16)
    """

    _method_parameters = {
        "loss": None,
        "miner": None,
        "n_models": 2,
        "distance_weight": 1.0,
        "angle_weight": 2.0,
        "feature_dropout": 0.0,
        "ema_decay": None,
        "ensemble": False,
    }

    _parameter_constraints = {
        "loss": [None, torch.nn.Module],
        "miner": MINER_CONSTRAINT,
        "n_models": [Interval(Integral, 1, None, closed="left")],
        "distance_weight": [Interval(Real, 0, None, closed="left")],
        "angle_weight": [Interval(Real, 0, None, closed="left")],
        "feature_dropout": [Interval(Real, 0, 1, closed="left")],
        "ema_decay": [None, Interval(Real, 0, 1, closed="neither")],
        "ensemble": ["boolean"],
    }
    # The cohort's shape is fixed once trained (warm_start, partial_fit).
    _architecture_params = (
        *BaseDeepMetricLearner._architecture_params,
        "n_models",
        "feature_dropout",
        "ema_decay",
        "ensemble",
    )

    def _check_training_options(self):
        used = self._training_options_in_use()
        if used:
            raise ValueError(
                f"MutualLearningEmbedder does not support {', '.join(used)}: these "
                "options act on the embedding of one model, while the cohort "
                "trains several. Leave them at their defaults."
            )

    def _build_backbone(self, n_features, X=None):
        members = []
        for k in range(self.n_models):
            member = super()._build_backbone(n_features, X)
            if k and self.backbone is not None:
                _reset_parameters(member)
            members.append(member)
        return _Cohort(
            members,
            float(self.feature_dropout),
            None if self.ema_decay is None else float(self.ema_decay),
            self.ensemble,
            self.normalize_embeddings,
        )

    def _build_loss(self, n_classes, n_components):
        loss, miner = _default_metric(self.loss, self.miner)
        block = n_components // self.n_models if self.ensemble else n_components
        return (
            MutualLearningLoss(
                loss,
                n_models=self.n_models,
                miner=miner,
                n_temporal=0 if self.ema_decay is None else self.n_models,
                distance_weight=self.distance_weight,
                angle_weight=self.angle_weight,
                block_size=block,
            ),
            None,
        )
