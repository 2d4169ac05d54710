"""scikit-learn's estimator checks on every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks
from torch.nn import LazyLinear

import sklearn_dml
from sklearn_dml import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    MutualLearningEmbedder,
    ProxyAnchorEmbedder,
    RKDEmbedder,
    TripletEmbedder,
)
from sklearn_dml.losses import ArcFaceLoss, CenterLoss, CombinedLoss, ContrastiveLoss
from sklearn_dml.miners import BatchHardMiner
from sklearn_dml.mixup import Metrix

# Listed above with several settings each; every other embedder once below.
_SEVERAL_SETTINGS = {
    "ContrastiveEmbedder",
    "DeepMetricEmbedder",
    "MultiSimilarityEmbedder",
    "TripletEmbedder",
}


def _instances():
    # Few epochs keep the ~50 checks per estimator quick; the contract does not
    # depend on the training length.
    small = {"max_iter": 3, "hidden_layer_sizes": (16,), "n_components": 8}
    return [
        TripletEmbedder(**small),
        TripletEmbedder(mining="batch_hard", **small),
        ContrastiveEmbedder(**small),
        MultiSimilarityEmbedder(**small),
        DeepMetricEmbedder(**small),
        DeepMetricEmbedder(loss=ContrastiveLoss(), miner=BatchHardMiner(), **small),
        DeepMetricEmbedder(loss=ArcFaceLoss(), **small),
        DeepMetricEmbedder(
            loss=CombinedLoss([ContrastiveLoss(), CenterLoss()], [1.0, 0.1]), **small
        ),
        # The training options of the ECAML / ProcSim helper.
        MultiSimilarityEmbedder(procsim=True, **small),
        TripletEmbedder(energy_confusion=0.1, **small),
        # Training options: Metrix mixup on a pair loss and on a proxy loss.
        ContrastiveEmbedder(mixup="embedding", **small),
        ProxyAnchorEmbedder(mixup=Metrix(on="input", alpha=1.0), **small),
        # Matryoshka training, a pair loss and a proxy loss (one copy per
        # prefix). Some checks set n_components=1, which leaves no prefix to
        # nest: a lazy linear backbone fixes the embedding size at 8 instead.
        TripletEmbedder(backbone=LazyLinear(8), nested_dims=(2, 4), max_iter=3),
        DeepMetricEmbedder(
            loss=ArcFaceLoss(), backbone=LazyLinear(8), nested_dims=(4,), max_iter=3
        ),
        # An unfitted teacher is cloned and fitted on the data of each fit, so
        # the student works with clone (a fitted one would be cloned unfitted).
        RKDEmbedder(teacher=TripletEmbedder(**small), metric_weight=1.0, **small),
        MutualLearningEmbedder(
            n_models=2, feature_dropout=0.1, ema_decay=0.9, ensemble=True, **small
        ),
    ] + [
        # The one-method embedders: one epoch of a tiny network is enough for
        # the contract and keeps the ~50 checks of each quick.
        getattr(sklearn_dml, name)(max_iter=1, hidden_layer_sizes=(8,), n_components=4)
        for name in sorted(sklearn_dml.__all__)
        if name.endswith("Embedder")
        and name not in _SEVERAL_SETTINGS
        # fitted on pairs or triplets: their contract is in test_weak_supervision
        and not name.startswith("Weak")
    ]


@parametrize_with_checks(_instances())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
