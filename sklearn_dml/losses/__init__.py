"""Metric losses: ``loss(embeddings, labels, indices_tuple=None) -> 0-d tensor``.

Every loss is a :class:`torch.nn.Module` with scikit-learn style
``get_params``/``set_params``, usable on its own in any PyTorch training loop
or passed to an estimator as a hyper-parameter. Losses with learnable
parameters (proxies, class weights, centres, a learned boundary) create them
in ``configure(num_classes, embedding_size)``, which estimators call before
training.
"""

from ._base import BaseMetricLoss
from ._batch_softmax import NCALoss, NPairsLoss, NTXentLoss, SupConLoss
from ._classification import (
    ArcFaceLoss,
    CosFaceLoss,
    EquiangularBasisLoss,
    LargeMarginSoftmaxLoss,
    NormalizedSoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from ._cross_batch_memory import CrossBatchMemoryLoss
from ._distillation import MutualLearningLoss, RKDAngleLoss, RKDDistanceLoss, RKDLoss
from ._pair import (
    AngularLoss,
    CircleLoss,
    ContrastiveLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    SignalToNoiseRatioContrastiveLoss,
    TripletMarginLoss,
    TupletMarginLoss,
)
from ._probabilistic import HedgedInstanceLoss
from ._prototype import (
    AngularPrototypicalLoss,
    ICNNLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
)
from ._proxy import (
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
)
from ._ranking import FastAPLoss, HistogramLoss
from ._redundancy import BarlowTwinsLoss
from ._regularizers import CenterLoss, EnergyConfusionRegularizer, TCMRegularizer
from ._wrappers import CombinedLoss, MatryoshkaLoss, ProcSimLoss, ProcSimWeighting

__all__ = [
    "AngularLoss",
    "AngularPrototypicalLoss",
    "ArcFaceLoss",
    "BarlowTwinsLoss",
    "BaseMetricLoss",
    "CenterLoss",
    "CircleLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossBatchMemoryLoss",
    "EnergyConfusionRegularizer",
    "EquiangularBasisLoss",
    "FastAPLoss",
    "GeneralizedLiftedStructureLoss",
    "HedgedInstanceLoss",
    "HistogramLoss",
    "ICNNLoss",
    "LargeMarginSoftmaxLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MatryoshkaLoss",
    "MeanFieldClassWiseMultiSimilarityLoss",
    "MeanFieldContrastiveLoss",
    "MultiSimilarityLoss",
    "MutualLearningLoss",
    "NCALoss",
    "NormalizedSoftmaxLoss",
    "NPairsLoss",
    "NTXentLoss",
    "ProcSimLoss",
    "ProcSimWeighting",
    "ProxyAnchorLoss",
    "ProtoTripletLoss",
    "PrototypicalLoss",
    "ProxyNCALoss",
    "RKDAngleLoss",
    "RKDDistanceLoss",
    "RKDLoss",
    "SignalToNoiseRatioContrastiveLoss",
    "SoftTripleLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
    "SupConLoss",
    "TCMRegularizer",
    "TripletMarginLoss",
    "TupletMarginLoss",
]
