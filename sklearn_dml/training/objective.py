"""The training objective: a sum of terms, each a callable on a batch.

An estimator describes what is minimised as a list of terms; the engine
(:func:`sklearn_dml.training.engine.batch_objective`) embeds the batch once,
calls every term with the training state and the :class:`Batch`, and adds
the values in list order. A term returns a 0-d tensor, or ``None`` when it
does not apply to the batch. Each term has a ``name`` under which its mean
value per epoch is recorded in the estimator's ``history_``.

Terms reach the models through the state (``state.backbone``,
``state.loss``, ``state.miner``), so one list serves a whole fit whatever
device the models are moved to. Nothing here imports a loss or a backbone:
the estimator passes in what a term needs.
"""

from dataclasses import dataclass

import torch

__all__ = [
    "Batch",
    "EnergyConfusionTerm",
    "MetricLossTerm",
    "MixupTerm",
    "PenaltyTerm",
    "RelationalTerm",
    "metric_layer_parameters",
]


@dataclass
class Batch:
    """One training batch: inputs, class codes, targets and embeddings."""

    x: torch.Tensor
    y: torch.Tensor
    embeddings: torch.Tensor
    targets: torch.Tensor | None = None


class MetricLossTerm:
    """The metric loss of the batch's embeddings on the miner's tuples.

    ``weight`` scales it (a weight of 1 leaves the value untouched). A loss
    that composes others (nested dimensions, ProcSim weighting) is still one
    metric term: it is built by the estimator as a loss component.
    """

    name = "metric"

    def __init__(self, weight=1.0):
        self.weight = weight

    def __call__(self, state, batch):
        miner = state.miner
        if getattr(state.loss, "takes_miner", False):  # e.g. cross-batch memory
            loss = state.loss(batch.embeddings, batch.y, miner=miner)
            return loss if self.weight == 1 else self.weight * loss
        indices = miner(batch.embeddings, batch.y) if miner is not None else None
        loss = state.loss(batch.embeddings, batch.y, indices)
        return loss if self.weight == 1 else self.weight * loss


class RelationalTerm:
    """``module(embeddings, targets)``: e.g. a teacher's relations to match."""

    name = "relational"

    def __init__(self, module):
        self.module = module

    def __call__(self, state, batch):
        return self.module(batch.embeddings, batch.targets)


class MixupTerm:
    """The soft-label loss of mixed samples (a ``MixupPlan``), weighted."""

    name = "mixup"

    def __init__(self, plan):
        self.plan = plan

    def __call__(self, state, batch):
        mixed = self.plan.mixed_loss(
            state.backbone, state.loss, batch.x, batch.y, batch.embeddings
        )
        return self.plan.metrix.weight * mixed


class PenaltyTerm:
    """A penalty ``penalty(x, embeddings, y)`` of the backbone, e.g. its anchoring."""

    def __init__(self, penalty, name="penalty"):
        self.penalty = penalty
        self.name = name

    def __call__(self, state, batch):
        return self.penalty(batch.x, batch.embeddings, batch.y)


def metric_layer_parameters(backbone, n_out):
    """Parameters of the backbone's output layers: its ``torch.nn.Linear``
    modules with ``n_out`` output features (the "metric" of ECAML)."""
    return [
        p
        for module in backbone.modules()
        if isinstance(module, torch.nn.Linear) and module.out_features == n_out
        for p in module.parameters()
        if p.requires_grad
    ]


class EnergyConfusionTerm:
    """The ECAML energy-confusion term, its gradient routed to the metric layer.

    Its value is ``weight`` times that of ``regularizer`` (an
    :class:`~sklearn_dml.losses.EnergyConfusionRegularizer`); its gradient
    reaches only the output ``Linear`` layers of the backbone (the embedding
    layer :math:`W` of the paper) and stops at the features entering them,
    as in the authors' implementation: the metric loss trains the whole
    network to separate the classes, the confusion term trains :math:`W`
    alone to mix them. Done with a surrogate ``s - s.detach()`` (value 0)
    whose gradient is the term's gradient with respect to those parameters.
    """

    name = "energy_confusion"

    def __init__(self, weight, regularizer):
        self.weight = weight
        self.regularizer = regularizer

    def __call__(self, state, batch):
        embeddings = batch.embeddings
        term = self.regularizer(embeddings, batch.y)
        params = metric_layer_parameters(state.backbone, embeddings.shape[1])
        if not term.requires_grad or not params:
            value = term.detach()
        else:
            grads = torch.autograd.grad(
                term, params, retain_graph=True, allow_unused=True
            )
            surrogate = sum(
                (p * g.detach()).sum() for p, g in zip(params, grads) if g is not None
            )
            if not isinstance(surrogate, torch.Tensor):
                value = term.detach()
            else:
                value = term.detach() + (surrogate - surrogate.detach())
        return self.weight * value
