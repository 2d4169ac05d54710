"""Embedders with pair and triplet margin losses: the TCM regulariser recipe."""

import numpy as np
import pytest

from sklearn_dml import (
    DeepMetricEmbedder,
    TCMEmbedder,
)
from sklearn_dml.losses import (
    CombinedLoss,
    ContrastiveLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    TCMRegularizer,
)
from sklearn_dml.miners import BatchHardMiner

SMALL = {"n_components": 8, "hidden_layer_sizes": (16,)}


@pytest.mark.parametrize(
    "cls, loss_cls, names",
    [
        (
            TCMEmbedder,
            TCMRegularizer,
            ["margin_plus", "margin_minus", "lambda_plus", "lambda_minus"],
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
        (TCMEmbedder(base_loss="ms"), TypeError, "'base_loss' parameter"),
        (
            TCMEmbedder(base_loss=TCMRegularizer()),
            ValueError,
            "base_loss is a TCMRegularizer",
        ),
        (
            TCMEmbedder(lambda_plus=0, lambda_minus=0.0),
            ValueError,
            "both 0, so the TCM term vanishes",
        ),
        (TCMEmbedder(margin_plus=2.0), ValueError, "'margin_plus' parameter"),
        (TCMEmbedder(miner="hard"), TypeError, "'miner' parameter"),
    ],
)
def test_bad_parameters_rejected_before_training(est, error, match, tiny):
    X, y = tiny
    with pytest.raises(error, match=match):
        est.set_params(max_iter=1, **SMALL).fit(X, y)
    assert not hasattr(est, "backbone_")


def test_tcm_embedder_is_the_combined_loss_recipe(tiny):
    X, y = tiny
    params = dict(max_iter=2, random_state=0, **SMALL)
    est = TCMEmbedder(base_loss=ContrastiveLoss(), margin_minus=0.4, **params).fit(X, y)
    base, tcm = est.loss_.parts
    assert isinstance(base, ContrastiveLoss) and isinstance(tcm, TCMRegularizer)
    assert tcm.margin_minus == 0.4 and tcm.margin_plus == 0.9
    recipe = CombinedLoss([ContrastiveLoss(), TCMRegularizer(margin_minus=0.4)])
    ref = DeepMetricEmbedder(loss=recipe, **params).fit(X, y)
    np.testing.assert_allclose(est.transform(X), ref.transform(X), rtol=1e-6, atol=1e-6)
    # The TCM term changes the training: not the base loss alone.
    alone = DeepMetricEmbedder(loss=ContrastiveLoss(), **params).fit(X, y)
    assert not np.allclose(est.transform(X), alone.transform(X), atol=1e-4)


def test_tcm_default_base_and_miner(tiny):
    X, y = tiny
    est = TCMEmbedder(miner=BatchHardMiner(), max_iter=1, **SMALL).fit(X, y)
    assert isinstance(est.loss_.parts[0], MultiSimilarityLoss)
    assert isinstance(est.miner_, BatchHardMiner)
    assert est.base_loss is None and est.miner is not est.miner_


def test_tcm_with_a_proxy_loss_trains_and_fixes_its_proxies(tiny):
    X, y = tiny
    user = ProxyAnchorLoss()
    est = TCMEmbedder(base_loss=user, loss_learning_rate=0.05, max_iter=1, **SMALL)
    est.partial_fit(X, y)
    assert not hasattr(user, "proxies")
    assert tuple(est.loss_.parts[0].proxies.shape) == (10, 8)
    assert est._optimizer_state["param_groups"][1]["lr"] == 0.05
    assert est._fixed_classes()
