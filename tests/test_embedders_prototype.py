"""Embedders against the class prototypes of the batch: ProtoTriplet, ICNN and
angular prototypical."""

import numpy as np
import pytest

from sklearn_dml import (
    AngularPrototypicalEmbedder,
    ICNNEmbedder,
    ProtoTripletEmbedder,
)
from sklearn_dml.losses import (
    AngularPrototypicalLoss,
    ICNNLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
)
from sklearn_dml.miners import BatchHardMiner

SMALL = {"n_components": 8, "hidden_layer_sizes": (16,)}


@pytest.mark.parametrize(
    "cls, loss_cls, names",
    [
        (ProtoTripletEmbedder, ProtoTripletLoss, ["margin"]),
        (ICNNEmbedder, ICNNLoss, ["n_neighbors"]),
        (
            AngularPrototypicalEmbedder,
            AngularPrototypicalLoss,
            ["init_scale", "init_bias"],
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
        (
            AngularPrototypicalEmbedder(init_scale=-1.0),
            ValueError,
            "'init_scale' parameter",
        ),
        (
            AngularPrototypicalEmbedder(samples_per_class=1),
            ValueError,
            "samples_per_class >= 2",
        ),
    ],
)
def test_bad_parameters_rejected_before_training(est, error, match, tiny):
    X, y = tiny
    with pytest.raises(error, match=match):
        est.set_params(max_iter=1, **SMALL).fit(X, y)
    assert not hasattr(est, "backbone_")


def test_same_random_state_same_embedding(tiny):
    X, y = tiny
    for cls in (ProtoTripletEmbedder, ICNNEmbedder, AngularPrototypicalEmbedder):
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


def test_angular_prototypical_embedder_learns_the_scale(tiny):
    X, y = tiny
    est = AngularPrototypicalEmbedder(
        n_components=8, hidden_layer_sizes=(32,), max_iter=6, random_state=0
    ).fit(X, y)
    assert isinstance(est.loss_, AngularPrototypicalLoss)
    # The scale is a parameter of the optimizer; the bias cancels and stays.
    assert abs(est.loss_.scale.item() - 10.0) > 1e-3
    assert est.loss_.bias.item() == -5.0
