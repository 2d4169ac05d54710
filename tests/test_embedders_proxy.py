"""Embedders against learned class proxies: the mean-field losses."""

import pytest
import torch
from sklearn.base import clone

from sklearn_dml import (
    MeanFieldClassWiseMultiSimilarityEmbedder,
    MeanFieldContrastiveEmbedder,
)
from sklearn_dml.losses import (
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
)

SMALL = {"n_components": 8, "hidden_layer_sizes": (16,)}


@pytest.mark.parametrize(
    "cls, loss_cls, names",
    [
        (
            MeanFieldContrastiveEmbedder,
            MeanFieldContrastiveLoss,
            ["pos_margin", "neg_margin", "mf_reg", "mf_power"],
        ),
        (
            MeanFieldClassWiseMultiSimilarityEmbedder,
            MeanFieldClassWiseMultiSimilarityLoss,
            ["alpha", "beta", "base", "mf_reg", "mf_power"],
        ),
    ],
)
def test_defaults_are_the_components_paper_defaults(cls, loss_cls, names):
    est, loss = cls(), loss_cls()
    for name in names:
        assert getattr(est, name) == getattr(loss, name), name


@pytest.mark.parametrize(
    "est, error, match",
    [
        (
            MeanFieldContrastiveEmbedder(pos_margin=0.5, neg_margin=0.3),
            ValueError,
            r"pos_margin \(0.5\) must be smaller than neg_margin \(0.3\)",
        ),
        (
            MeanFieldContrastiveEmbedder(neg_margin=0),
            ValueError,
            "'neg_margin' parameter",
        ),
        (MeanFieldContrastiveEmbedder(mf_reg=-1.0), ValueError, "'mf_reg' parameter"),
        (
            MeanFieldClassWiseMultiSimilarityEmbedder(alpha=0),
            ValueError,
            "'alpha' parameter",
        ),
        (
            MeanFieldClassWiseMultiSimilarityEmbedder(base=1.5),
            ValueError,
            "'base' parameter",
        ),
        (
            MeanFieldClassWiseMultiSimilarityEmbedder(loss_learning_rate=0),
            ValueError,
            "'loss_learning_rate' parameter",
        ),
    ],
)
def test_bad_parameters_rejected_before_training(est, error, match, tiny):
    X, y = tiny
    with pytest.raises(error, match=match):
        est.set_params(max_iter=1, **SMALL).fit(X, y)
    assert not hasattr(est, "backbone_")


@pytest.mark.parametrize(
    "cls", [MeanFieldContrastiveEmbedder, MeanFieldClassWiseMultiSimilarityEmbedder]
)
def test_mean_fields_are_trained_in_their_own_group(cls, tiny):
    X, y = tiny
    est = cls(loss_learning_rate=0.05, random_state=0, **SMALL)
    est.partial_fit(X, y)
    before = est.loss_.proxies.detach().clone()
    assert tuple(before.shape) == (10, 8)
    est.partial_fit(X, y)
    assert not torch.equal(before, est.loss_.proxies.detach())
    groups = est._optimizer_state["param_groups"]
    assert [g["lr"] for g in groups] == [est.learning_rate_init, 0.05]
    first = y < 5
    fresh = clone(est).partial_fit(X[first], y[first])
    with pytest.raises(ValueError, match="not in classes_"):
        fresh.partial_fit(X, y)
