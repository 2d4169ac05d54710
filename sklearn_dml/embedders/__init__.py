"""The deep metric learning estimators, one module per family of methods.

========================  ==================================================
module                    embedders
========================  ==================================================
``_generic``              :class:`DeepMetricEmbedder` (any loss and miner)
``_pair``                 margin losses on pairs and triplets: triplet,
                          contrastive, multi-similarity, circle, lifted
                          structure, SNR, margin, tuplet margin, angular, TCM
``_batch_softmax``        a softmax over the batch: N-pairs, NT-Xent, SupCon,
                          NCA
``_ranking``              list-wise ranking and histograms: FastAP, Histogram
``_proxy``                learned class proxies: Proxy-NCA, Proxy-Anchor,
                          SoftTriple, mean-field losses
``_classification``       normalised classifiers: normalised softmax,
                          CosFace, ArcFace, sub-centre ArcFace, large-margin
                          softmax, equiangular basis
``_prototype``            class prototypes of the batch: ProtoTriplet, ICNN,
                          angular prototypical
``_distillation``         learning from other networks: RKD, mutual learning
``_probabilistic``        a distribution per sample: hedged instances
``_label_free``           no labels: :class:`TLDREmbedder`
``_weak``                 fitted on constraints (weak supervision): the
                          contrastive loss on labelled pairs, the triplet
                          loss on given triplets
``_method``               :class:`MethodEmbedder`, the base of the embedders
                          trained with one named loss
========================  ==================================================

Every class of ``__all__`` is also importable from :mod:`sklearn_dml`;
:class:`MethodEmbedder` is the base class to derive a new one-method
embedder from (see the developer's guide).
"""

from ._batch_softmax import NCAEmbedder, NPairsEmbedder, NTXentEmbedder, SupConEmbedder
from ._classification import (
    ArcFaceEmbedder,
    CosFaceEmbedder,
    EquiangularBasisEmbedder,
    LargeMarginSoftmaxEmbedder,
    NormalizedSoftmaxEmbedder,
    SubCenterArcFaceEmbedder,
)
from ._distillation import MutualLearningEmbedder, RKDEmbedder
from ._generic import DeepMetricEmbedder
from ._label_free import TLDREmbedder
from ._method import MethodEmbedder as MethodEmbedder
from ._pair import (
    AngularEmbedder,
    CircleEmbedder,
    ContrastiveEmbedder,
    LiftedStructureEmbedder,
    MarginEmbedder,
    MultiSimilarityEmbedder,
    SNRContrastiveEmbedder,
    TCMEmbedder,
    TripletEmbedder,
    TupletMarginEmbedder,
)
from ._probabilistic import HedgedInstanceEmbedder
from ._prototype import (
    AngularPrototypicalEmbedder,
    ICNNEmbedder,
    ProtoTripletEmbedder,
)
from ._proxy import (
    MeanFieldClassWiseMultiSimilarityEmbedder,
    MeanFieldContrastiveEmbedder,
    ProxyAnchorEmbedder,
    ProxyNCAEmbedder,
    SoftTripleEmbedder,
)
from ._ranking import FastAPEmbedder, HistogramEmbedder
from ._weak import WeakContrastiveEmbedder, WeakTripletEmbedder

__all__ = [
    "AngularEmbedder",
    "AngularPrototypicalEmbedder",
    "ArcFaceEmbedder",
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
    "TLDREmbedder",
    "TripletEmbedder",
    "TupletMarginEmbedder",
    "WeakContrastiveEmbedder",
    "WeakTripletEmbedder",
]
