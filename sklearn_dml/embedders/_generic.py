"""The generic embedder: any loss and miner components."""

import torch

from .._docstrings import fill_doc
from .._params import fresh_component
from ..base import BaseDeepMetricLearner
from ..losses import TripletMarginLoss
from ._method import LOSS_LEARNING_RATE_CONSTRAINT, MINER_CONSTRAINT


@fill_doc
class DeepMetricEmbedder(BaseDeepMetricLearner):
    """Deep metric learning with any loss and miner components.

    The generic embedder: pass a loss object from :mod:`sklearn_dml.losses`
    (or your own module with the same ``forward(embeddings, labels,
    indices_tuple)`` signature) and optionally a miner from
    :mod:`sklearn_dml.miners`. Their own hyper-parameters can be tuned with the
    ``loss__<name>`` / ``miner__<name>`` syntax in ``GridSearchCV``.

    Parameters
    ----------
    loss : torch.nn.Module, default=None
        The metric loss. ``None`` means ``TripletMarginLoss(margin=0.1)``.
        ``fit`` trains a fresh clone of it; the object passed in is not
        modified (see ``loss_`` for the trained copy). A loss with learnable
        parameters (proxies, class weights, centres) is configured for the
        classes of ``y`` and the embedding size, trains them with the
        backbone, and fixes the classes: ``partial_fit`` then needs every
        class on its first call. Combine losses (e.g. a regulariser) with
        :class:`~sklearn_dml.losses.CombinedLoss`.

    miner : torch.nn.Module, default=None
        Selects the pairs or triplets of each batch that the loss uses.
        ``None`` uses every pair/triplet.

    {loss_learning_rate_none}

    {backbone_params}

    {engine_params}

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    TripletEmbedder : Triplet loss with a miner, as plain parameters.
    sklearn.neighbors.NeighborhoodComponentsAnalysis : Linear metric learning.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import DeepMetricEmbedder
    >>> from sklearn_dml.losses import ContrastiveLoss
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:500] / 16, y[:500]
    >>> emb = DeepMetricEmbedder(loss=ContrastiveLoss(neg_margin=0.8),
    ...                          max_iter=5, random_state=0).fit(X, y)
    >>> emb.transform(X[:3]).shape
    (3, 64)
    >>> emb.score(X, y) > 0.5
    True
    """

    _method_parameters = {
        "loss": None,
        "miner": None,
        "loss_learning_rate": None,
    }

    _parameter_constraints = {
        "loss": [None, torch.nn.Module],
        "miner": MINER_CONSTRAINT,
        "loss_learning_rate": LOSS_LEARNING_RATE_CONSTRAINT,
    }

    def _loss_learning_rate(self):
        return self.loss_learning_rate

    def _build_loss(self, n_classes, n_components):
        # The base class configures the loss (learnable parameters) afterwards.
        if self.loss is None:
            loss = TripletMarginLoss(margin=0.1)
        else:
            loss = fresh_component(self.loss)
        miner = None if self.miner is None else fresh_component(self.miner)
        return loss, miner
