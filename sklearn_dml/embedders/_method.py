"""What the one-method embedders share: the base class that builds a named loss,
the constraints of the parameters several embedders have, shared docstring
sections.
"""

from numbers import Real

import torch

from .._docstrings import register_doc
from .._param_validation import Interval
from .._params import fresh_component
from ..base import BaseDeepMetricLearner

# Registered here, in the first estimator module the package imports, for the
# method modules too (they import ``MLRC_NOTE`` to make the order explicit).
MLRC_NOTE = "mlrc_defaults_note"


register_doc(
    MLRC_NOTE,
    """
    The loss defaults are tuned values from Musgrave, Belongie and Lim,
    "A Metric Learning Reality Check" (ECCV 2020), which tuned every loss by
    Bayesian optimisation (50 steps, 4-fold cross-validation) on CUB200,
    Cars196 and Stanford Online Products with a BN-Inception backbone,
    128-dimensional embeddings and batches of 32. Each default is the median
    of the three datasets' optima, as listed (per dataset) in the "Optimal
    hyperparameters" table of the paper's companion page
    (github.com/KevinMusgrave/powerful-benchmarker, docs/papers/mlrc.md);
    the median avoids one dataset's outliers. The paper used
    pytorch-metric-learning's losses, whose parameter conventions are ours,
    so no value is converted. Learning rates of the loss's own parameters
    were tuned together with the paper's much smaller backbone learning rate
    and are not carried over; nor are the shared training defaults (Adam,
    learning rate 1e-3, batches of 128 with 4 samples per class), which are
    the package's. The values suit natural-image retrieval of unseen classes;
    tune with ``GridSearchCV`` and a class-disjoint split
    (:mod:`sklearn_dml.model_selection`) on other data.
    """,
)


_LR_TEXT = """
        Learning rate of the loss's own learnable parameters (proxies, class
        weights, centres, boundaries), trained in their own optimizer group.
        ``None`` uses ``learning_rate_init``. Proxy papers train them faster
        than the network (Proxy-Anchor: 100 times; SoftTriple: 1e-2 for the
        centres with 1e-4 for the network)."""


register_doc(
    "loss_learning_rate_none",
    "    loss_learning_rate : float or None, default=None" + _LR_TEXT,
)


register_doc(
    "loss_learning_rate_proxy",
    "    loss_learning_rate : float or None, default=1e-2"
    + _LR_TEXT
    + """ The default is ten times
        the default ``learning_rate_init``.""",
)


register_doc(
    "miner_param",
    """
    miner : torch.nn.Module or None, default=None
        A miner from :mod:`sklearn_dml.miners` (or your own) selecting the
        pairs or triplets of each batch the loss uses; ``fit`` trains with a
        clone. ``None`` uses every pair of the batch.
    """,
)


register_doc(
    "defaults_note",
    """
    The defaults are the values recommended by the paper cited below (also
    pytorch-metric-learning's defaults); the shared training defaults (Adam,
    learning rate 1e-3, batches of 128 with 4 samples per class) are the
    package's. Tune with ``GridSearchCV`` and a class-disjoint split
    (:mod:`sklearn_dml.model_selection`) for retrieval of unseen classes.
    """,
)


class MethodEmbedder(BaseDeepMetricLearner):
    """Base of the embedders trained with one named loss.

    Subclasses set ``_loss_class`` and ``_loss_params`` (the names of the
    estimator parameters forwarded to the loss, which are the loss's own
    parameter names), declare those parameters with their constraints, and
    may override :meth:`_build_miner`. A ``miner`` parameter, when the
    estimator has one, is cloned here; ``loss_learning_rate``, when it has
    one, sets the learning rate of the loss's own parameters.
    """

    _loss_class = None
    _loss_params = ()

    def _loss_learning_rate(self):
        return getattr(self, "loss_learning_rate", None)

    def _build_miner(self):
        miner = getattr(self, "miner", None)
        return None if miner is None else fresh_component(miner)

    def _build_loss(self, n_classes, n_components):
        loss = self._loss_class(**{n: getattr(self, n) for n in self._loss_params})
        return loss, self._build_miner()


#: Constraints of the parameters several embedders share.
MINER_CONSTRAINT = [None, torch.nn.Module]
LOSS_LEARNING_RATE_CONSTRAINT = [None, Interval(Real, 0, None, closed="neither")]
