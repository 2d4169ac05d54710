"""Deep metric learning as scikit-learn estimators, on PyTorch."""

from ._embedders import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    TripletEmbedder,
)
from ._embedders_distill import MutualLearningEmbedder, RKDEmbedder
from ._embedders_hedged import HedgedInstanceEmbedder
from ._embedders_newer import (
    EquiangularBasisEmbedder,
    ICNNEmbedder,
    MeanFieldClassWiseMultiSimilarityEmbedder,
    MeanFieldContrastiveEmbedder,
    ProtoTripletEmbedder,
    TCMEmbedder,
)
from ._embedders_proxy import (
    ArcFaceEmbedder,
    CosFaceEmbedder,
    LargeMarginSoftmaxEmbedder,
    NCAEmbedder,
    NormalizedSoftmaxEmbedder,
    ProxyAnchorEmbedder,
    ProxyNCAEmbedder,
    SoftTripleEmbedder,
    SubCenterArcFaceEmbedder,
)
from ._embedders_tuple import (
    AngularEmbedder,
    CircleEmbedder,
    FastAPEmbedder,
    HistogramEmbedder,
    LiftedStructureEmbedder,
    MarginEmbedder,
    NPairsEmbedder,
    NTXentEmbedder,
    SNRContrastiveEmbedder,
    SupConEmbedder,
    TupletMarginEmbedder,
)
from .base import BaseDeepMetricLearner

__version__ = "0.1.0.dev0"

__all__ = [
    "AngularEmbedder",
    "ArcFaceEmbedder",
    "BaseDeepMetricLearner",
    "CircleEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "DeepMetricEmbedder",
    "EquiangularBasisEmbedder",
    "FastAPEmbedder",
    "HedgedInstanceEmbedder",
    "HistogramEmbedder",
    "ICNNEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "LiftedStructureEmbedder",
    "MarginEmbedder",
    "MeanFieldClassWiseMultiSimilarityEmbedder",
    "MeanFieldContrastiveEmbedder",
    "MultiSimilarityEmbedder",
    "MutualLearningEmbedder",
    "NCAEmbedder",
    "NPairsEmbedder",
    "NTXentEmbedder",
    "NormalizedSoftmaxEmbedder",
    "ProtoTripletEmbedder",
    "ProxyAnchorEmbedder",
    "ProxyNCAEmbedder",
    "RKDEmbedder",
    "SNRContrastiveEmbedder",
    "SoftTripleEmbedder",
    "SubCenterArcFaceEmbedder",
    "SupConEmbedder",
    "TCMEmbedder",
    "TripletEmbedder",
    "TupletMarginEmbedder",
    "__version__",
]
