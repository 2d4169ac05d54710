"""Metric losses: ``loss(embeddings, labels, indices_tuple=None) -> 0-d tensor``.

Every loss is a :class:`torch.nn.Module` with scikit-learn style
``get_params``/``set_params``, usable on its own in any PyTorch training loop
or passed to an estimator as a hyper-parameter. Losses with learnable
parameters (proxies, class weights, centres, a learned boundary) create them
in ``configure(num_classes, embedding_size)``, which estimators call before
training.
"""

from ._base import BaseMetricLoss
from ._combined import CombinedLoss
from ._distill import MutualLearningLoss, RKDLoss
from ._fewshot import ICNNLoss, ProtoTripletLoss, PrototypicalLoss
from ._hedged import HedgedInstanceLoss
from ._matryoshka import MatryoshkaLoss
from ._newer import (
    EquiangularBasisLoss,
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    RKDAngleLoss,
    RKDDistanceLoss,
    TCMRegularizer,
)
from ._pair import ContrastiveLoss, MultiSimilarityLoss, TripletMarginLoss
from ._proxy import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    NCALoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from ._regularizers import CenterLoss
from ._robust import (
    EnergyConfusionRegularizer,
    ProcSimLoss,
    ProcSimWeighting,
)
from ._tuple import (
    AngularLoss,
    CircleLoss,
    FastAPLoss,
    GeneralizedLiftedStructureLoss,
    HistogramLoss,
    LiftedStructureLoss,
    MarginLoss,
    NPairsLoss,
    NTXentLoss,
    SignalToNoiseRatioContrastiveLoss,
    SupConLoss,
    TupletMarginLoss,
)

__all__ = [
    "AngularLoss",
    "ArcFaceLoss",
    "BaseMetricLoss",
    "CenterLoss",
    "CircleLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
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
