"""What the one-method embedders share: parameter checks and loss building.

A method embedder declares its loss component (``_loss_class``) and the
constraints of the constructor parameters forwarded to it
(``_loss_params``); :class:`MethodEmbedder` validates them before training
and builds the component. The estimators still list every parameter in an
explicit ``__init__``, the scikit-learn convention.
"""

import copy
import numbers

import torch
from sklearn.base import clone
from sklearn.utils import check_scalar

from ._docstrings import register_doc
from .base import BaseDeepMetricLearner

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


def fresh_component(component):
    """A new, untrained copy of a component (``clone`` for ours, deepcopy otherwise)."""
    if hasattr(component, "get_params"):
        return clone(component)
    return copy.deepcopy(component)


def check_component(value, name, module):
    """Raise ``TypeError`` unless ``value`` is ``None`` or a torch module."""
    if value is not None and not isinstance(value, torch.nn.Module):
        raise TypeError(
            f"{name} must be None or a torch.nn.Module component (see "
            f"sklearn_dml.{module}); got {type(value).__name__}."
        )


def check_learning_rate(value, name):
    """``None`` or a positive number."""
    if value is not None:
        check_scalar(value, name, numbers.Real, min_val=0, include_boundaries="neither")


def check_param(owner, name, spec):
    """Check one method parameter against a spec.

    ``spec`` is ``("bool",)``, ``("int", low)`` or ``("real", low, high,
    include_boundaries)`` with ``None`` for an open end.
    """
    value = getattr(owner, name)
    kind = spec[0]
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(
                f"{name} must be a bool (True or False); got {value!r} of type "
                f"{type(value).__name__}."
            )
    elif kind == "int":
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an int; got the bool {value!r}.")
        check_scalar(value, name, numbers.Integral, min_val=spec[1])
    else:
        _, low, high, bounds = spec
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a number; got the bool {value!r}.")
        check_scalar(
            value,
            name,
            numbers.Real,
            min_val=low,
            max_val=high,
            include_boundaries=bounds,
        )


class MethodEmbedder(BaseDeepMetricLearner):
    """Base of the embedders trained with one named loss.

    Subclasses set ``_loss_class``, ``_loss_params`` (estimator parameter
    name -> spec for :func:`check_param`, in the loss's own parameter
    names) and may override :meth:`_check_extra` and :meth:`_build_miner`.
    A ``miner`` parameter, when the estimator has one, is checked and cloned
    here; so is ``loss_learning_rate``.
    """

    _loss_class = None
    _loss_params = {}

    def _check_method_params(self):
        for name, spec in self._loss_params.items():
            check_param(self, name, spec)
        if hasattr(self, "loss_learning_rate"):
            check_learning_rate(self.loss_learning_rate, "loss_learning_rate")
        self._check_extra()

    def _check_extra(self):
        """Checks relating several parameters, and of the miner."""
        check_component(getattr(self, "miner", None), "miner", "miners")

    def _loss_learning_rate(self):
        return getattr(self, "loss_learning_rate", None)

    def _build_miner(self):
        miner = getattr(self, "miner", None)
        return None if miner is None else fresh_component(miner)

    def _build_loss(self, n_classes, n_components):
        loss = self._loss_class(**{n: getattr(self, n) for n in self._loss_params})
        return loss, self._build_miner()
