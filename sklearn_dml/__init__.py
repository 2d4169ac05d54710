"""Deep metric learning as scikit-learn estimators, on PyTorch."""

from . import embedders
from .base import BaseDeepMetricLearner
from .embedders import *  # noqa: F403 (the estimators, listed in embedders.__all__)

__version__ = "0.1.0.dev0"

# The form static analysers (pyright, mypy) follow for re-exports.
__all__ = ["BaseDeepMetricLearner", "__version__"]
__all__ += embedders.__all__
