"""scikit-learn's estimator checks on every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_dml import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    TripletEmbedder,
)
from sklearn_dml.losses import ContrastiveLoss
from sklearn_dml.miners import BatchHardMiner


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
    ]


@parametrize_with_checks(_instances())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
