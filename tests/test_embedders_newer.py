"""Embedders of the newer losses: parameter checks, components, TCM recipe."""

import inspect

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sklearn_dml import (
    DeepMetricEmbedder,
    EquiangularBasisEmbedder,
    ICNNEmbedder,
    MeanFieldClassWiseMultiSimilarityEmbedder,
    MeanFieldContrastiveEmbedder,
    ProtoTripletEmbedder,
    TCMEmbedder,
)
from sklearn_dml.losses import (
    CombinedLoss,
    ContrastiveLoss,
    EquiangularBasisLoss,
    ICNNLoss,
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    MultiSimilarityLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
    ProxyAnchorLoss,
    TCMRegularizer,
)
from sklearn_dml.miners import BatchHardMiner

SMALL = {"n_components": 8, "hidden_layer_sizes": (16,)}
NEW = [
    MeanFieldContrastiveEmbedder,
    MeanFieldClassWiseMultiSimilarityEmbedder,
    TCMEmbedder,
    EquiangularBasisEmbedder,
    ProtoTripletEmbedder,
    ICNNEmbedder,
]


@pytest.fixture(scope="module")
def tiny():
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16, y[:200]


@pytest.mark.parametrize("cls", NEW, ids=lambda c: c.__name__)
def test_training_options_follow_normalize_embeddings(cls):
    names = list(inspect.signature(cls).parameters)
    at = names.index("normalize_embeddings")
    assert names[at + 1 : at + 5] == [
        "nested_dims",
        "mixup",
        "energy_confusion",
        "procsim",
    ]
    est = cls()
    assert est.get_params()["energy_confusion"] == 0.0
    with pytest.raises(ValueError, match="'mixup' parameter"):
        cls(mixup=0.2, max_iter=1).fit(np.eye(4), [0, 0, 1, 1])


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
        (
            TCMEmbedder,
            TCMRegularizer,
            ["margin_plus", "margin_minus", "lambda_plus", "lambda_minus"],
        ),
        (EquiangularBasisEmbedder, EquiangularBasisLoss, ["temperature", "max_cosine"]),
        (ProtoTripletEmbedder, ProtoTripletLoss, ["margin"]),
        (ICNNEmbedder, ICNNLoss, ["n_neighbors"]),
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
        (MeanFieldContrastiveEmbedder(neg_margin=0), ValueError, "'neg_margin' parameter"),
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
        (EquiangularBasisEmbedder(max_cosine=1.0), ValueError, "'max_cosine' parameter"),
        (EquiangularBasisEmbedder(temperature=0), ValueError, "'temperature' parameter"),
        (EquiangularBasisEmbedder(basis_max_iter=-1), ValueError, "basis_max_iter"),
        (
            EquiangularBasisEmbedder(basis_random_state="a"),
            TypeError,
            "'basis_random_state' parameter",
        ),
        (ProtoTripletEmbedder(margin=-0.1), ValueError, "'margin' parameter"),
        (ICNNEmbedder(n_neighbors=0), ValueError, "'n_neighbors' parameter"),
        (ICNNEmbedder(n_neighbors=2.5), TypeError, "'n_neighbors' parameter"),
        (ICNNEmbedder(n_neighbors=True), TypeError, "'n_neighbors' parameter"),
        (
            ICNNEmbedder(prototypical_weight=-1.0),
            ValueError,
            "'prototypical_weight' parameter",
        ),
        (ICNNEmbedder(temperature=0.0), ValueError, "'temperature' parameter"),
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


def test_equiangular_basis_is_fixed_and_fixes_the_classes(tiny):
    X, y = tiny
    # n_components >= classes, so the target max |cos| is reachable.
    est = EquiangularBasisEmbedder(
        max_iter=2, random_state=0, n_components=16, hidden_layer_sizes=(16,)
    ).fit(X, y)
    reference = EquiangularBasisLoss(max_cosine=0.05).configure(10, 16)
    assert torch.equal(est.loss_.basis_vectors, reference.basis_vectors)
    assert list(est.loss_.parameters()) == []
    assert len(est._optimizer_state["param_groups"]) == 1
    assert est.loss_.max_cosine_reached_ <= 0.05 + 1e-3
    first = y < 5
    warm = clone(est).set_params(warm_start=True, max_iter=1).fit(X[first], y[first])
    with pytest.raises(ValueError, match="one parameter per class"):
        warm.fit(X, y)
    other = est.set_params(basis_random_state=1).fit(X, y)
    assert not torch.equal(other.loss_.basis_vectors, reference.basis_vectors)


def test_same_random_state_same_embedding(tiny):
    X, y = tiny
    for cls in (ProtoTripletEmbedder, ICNNEmbedder):
        a = cls(max_iter=2, random_state=3, **SMALL).fit(X, y).transform(X)
        b = cls(max_iter=2, random_state=3, **SMALL).fit(X, y).transform(X)
        np.testing.assert_array_equal(a, b)


def test_proto_triplet_embedder_clones_its_miner(tiny):
    X, y = tiny
    miner = BatchHardMiner()
    est = ProtoTripletEmbedder(miner=miner, max_iter=1, **SMALL).fit(X, y)
    assert isinstance(est.miner_, BatchHardMiner) and est.miner_ is not miner
    assert isinstance(est.loss_, ProtoTripletLoss) and est.loss_.margin == 0.05


def test_icnn_embedder_loss_is_icnn_plus_prototypical(tiny):
    X, y = tiny
    est = ICNNEmbedder(n_neighbors=3, temperature=0.2, max_iter=1, **SMALL).fit(X, y)
    icnn, proto = est.loss_.parts
    assert isinstance(icnn, ICNNLoss) and icnn.n_neighbors == 3
    assert isinstance(proto, PrototypicalLoss) and proto.temperature == 0.2
    assert est.loss_.weights == [1.0, 1.0]
    alone = ICNNEmbedder(prototypical_weight=0.0, max_iter=1, **SMALL).fit(X, y)
    assert isinstance(alone.loss_, ICNNLoss)
