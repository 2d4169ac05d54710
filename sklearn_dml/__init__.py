"""Deep metric learning as scikit-learn estimators, on PyTorch."""

from ._embedders import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    TripletEmbedder,
)
from .base import BaseDeepMetricLearner

__version__ = "0.1.0.dev0"

__all__ = [
    "BaseDeepMetricLearner",
    "ContrastiveEmbedder",
    "DeepMetricEmbedder",
    "MultiSimilarityEmbedder",
    "TripletEmbedder",
    "__version__",
]
