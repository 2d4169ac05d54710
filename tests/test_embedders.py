"""Every one-method embedder: its loss, learnable loss parameters, CombinedLoss."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import sklearn_dml
from sklearn_dml import (
    ArcFaceEmbedder,
    CircleEmbedder,
    DeepMetricEmbedder,
    LargeMarginSoftmaxEmbedder,
    MarginEmbedder,
    ProxyAnchorEmbedder,
    SoftTripleEmbedder,
    SubCenterArcFaceEmbedder,
)
from sklearn_dml.losses import (
    ArcFaceLoss,
    CenterLoss,
    CombinedLoss,
    ContrastiveLoss,
    SphereFaceLoss,
    TripletMarginLoss,
)
from sklearn_dml.metrics import map_at_r_score
from sklearn_dml.miners import BatchHardMiner, DistanceWeightedMiner

# The generic embedder and the three headline pair embedders have their own
# tests (tests/test_estimators.py); the zoo is every other one.
HEADLINE = {
    "ContrastiveEmbedder",
    "DeepMetricEmbedder",
    "MultiSimilarityEmbedder",
    "TripletEmbedder",
}
ZOO = sorted(
    n
    for n in sklearn_dml.__all__
    if n.endswith("Embedder")
    and n not in HEADLINE
    and issubclass(getattr(sklearn_dml, n), sklearn_dml.BaseDeepMetricLearner)
    # fitted on pairs or triplets, not on labelled samples (test_weak_supervision)
    and not n.startswith("Weak")
)
PROXY = [
    "ArcFaceEmbedder",
    "CosFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "NormalizedSoftmaxEmbedder",
    "ProxyAnchorEmbedder",
    "ProxyNCAEmbedder",
    "SoftTripleEmbedder",
    "SubCenterArcFaceEmbedder",
]
SMALL = {"n_components": 16, "hidden_layer_sizes": (32,)}
# Epochs of the closed-set retrieval test: 8, except for the three methods
# whose epoch costs several times the others' (two networks, a teacher, a
# sampled loss); they clear the margin over raw pixels in 4 (by 0.09-0.13
# against 0.05, where an untrained network is 0.02 above).
EPOCHS = {"HedgedInstanceEmbedder": 4, "MutualLearningEmbedder": 4, "RKDEmbedder": 4}


@pytest.fixture(scope="module")
def split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.5, stratify=y, random_state=0)


def test_zoo_is_complete():
    assert len(ZOO) == 30
    assert set(PROXY) <= set(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_learns_closed_set_retrieval_on_digits(name, split):
    X_tr, X_te, y_tr, y_te = split
    raw = map_at_r_score(X_te, y_te)
    est = getattr(sklearn_dml, name)(
        n_components=16,
        hidden_layer_sizes=(64,),
        max_iter=EPOCHS.get(name, 8),
        learning_rate_init=3e-3,
        anchor_weight=None,  # each method's own weight: no choice on data here
        random_state=0,
    )
    est.fit(X_tr, y_tr)
    emb = est.transform(X_te)
    assert emb.shape == (X_te.shape[0], 16)
    assert map_at_r_score(emb, y_te) > raw + 0.05


def _loss_params(est):
    return [p.detach().clone() for p in est.loss_.parameters()]


@pytest.mark.parametrize("name", [*PROXY, "MarginEmbedder"])
def test_learnable_parameters_trained_in_their_own_group(name, tiny):
    X, y = tiny
    est = getattr(sklearn_dml, name)(random_state=0, loss_learning_rate=0.05, **SMALL)
    est.partial_fit(X, y)
    before = _loss_params(est)
    assert before, "the loss should own learnable parameters"
    est.partial_fit(X, y)
    after = _loss_params(est)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    groups = est._optimizer_state["param_groups"]
    assert len(groups) == 2
    assert groups[1]["lr"] == 0.05
    assert groups[0]["lr"] == est.learning_rate_init
    assert len(groups[1]["params"]) == len(before)


def test_margin_boundary_moves_from_its_initial_value(tiny):
    X, y = tiny
    est = MarginEmbedder(beta=1.2, max_iter=3, random_state=0, **SMALL).fit(X, y)
    assert est.loss_.betas.shape == (1,)
    assert float(est.loss_.betas.detach()[0]) != pytest.approx(1.2, abs=1e-6)
    assert isinstance(est.miner_, DistanceWeightedMiner)
    assert MarginEmbedder(miner=None, max_iter=1, **SMALL).fit(X, y).miner_ is None


@pytest.mark.parametrize(
    "est, shape",
    [
        (ArcFaceEmbedder(max_iter=1, **SMALL), (10, 16)),
        (SubCenterArcFaceEmbedder(sub_centers=2, max_iter=1, **SMALL), (10, 2, 16)),
        (SoftTripleEmbedder(centers_per_class=3, max_iter=1, **SMALL), (10, 3, 16)),
    ],
)
def test_proxies_created_for_classes_and_embedding_size(est, shape, tiny):
    X, y = tiny
    assert tuple(est.fit(X, y).loss_.proxies.shape) == shape


@pytest.mark.parametrize("name", ["ArcFaceEmbedder", "SoftTripleEmbedder"])
def test_pickle_round_trip_keeps_learned_parameters(name, tiny):
    X, y = tiny
    est = getattr(sklearn_dml, name)(max_iter=2, random_state=0, **SMALL).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    for a, b in zip(back.loss_.parameters(), est.loss_.parameters()):
        assert torch.equal(a, b)
    # Training continues from the restored proxies and optimizer state.
    back.set_params(warm_start=True, max_iter=1).fit(X, y)
    assert back.n_iter_ == 3


def test_clone_gives_unconfigured_loss_and_user_loss_untouched(tiny):
    X, y = tiny
    user_loss = ArcFaceLoss(margin=20.0)
    est = DeepMetricEmbedder(loss=user_loss, max_iter=1, random_state=0, **SMALL)
    est.fit(X, y)
    assert tuple(est.loss_.proxies.shape) == (10, 16)
    assert est.loss_.margin == 20.0
    assert not hasattr(user_loss, "proxies")
    assert len(list(user_loss.parameters())) == 0
    fresh = clone(est)
    assert not hasattr(fresh, "loss_")
    assert not hasattr(fresh.loss, "proxies")
    assert fresh.loss.margin == 20.0


def test_deep_metric_embedder_trains_loss_with_its_learning_rate(tiny):
    X, y = tiny
    est = DeepMetricEmbedder(
        loss=ArcFaceLoss(), loss_learning_rate=0.1, max_iter=1, **SMALL
    )
    est.partial_fit(X, y)
    assert est._optimizer_state["param_groups"][1]["lr"] == 0.1


@pytest.mark.parametrize(
    "est",
    [
        ProxyAnchorEmbedder(**SMALL),
        MarginEmbedder(per_class_beta=True, **SMALL),
        DeepMetricEmbedder(loss=CombinedLoss([TripletMarginLoss(), CenterLoss()])),
    ],
)
def test_per_class_parameters_fix_the_classes(est, tiny):
    X, y = tiny
    first = y < 5
    est.partial_fit(X[first], y[first])
    assert est._fixed_classes()
    with pytest.raises(ValueError, match="not in classes_"):
        est.partial_fit(X, y)
    warm = clone(est).set_params(warm_start=True, max_iter=1).fit(X[first], y[first])
    with pytest.raises(ValueError, match="one parameter per class"):
        warm.fit(X, y)


@pytest.mark.parametrize(
    "est",
    [
        CircleEmbedder(**SMALL),
        MarginEmbedder(**SMALL),
        DeepMetricEmbedder(loss=ContrastiveLoss(), **SMALL),
    ],
)
def test_losses_without_class_parameters_accept_new_classes(est, tiny):
    X, y = tiny
    first = y < 5
    est.partial_fit(X[first], y[first])
    assert not est._fixed_classes()
    est.partial_fit(X, y)
    assert len(est.classes_) == 10


def test_large_margin_softmax_sphereface_variant(tiny):
    X, y = tiny
    est = LargeMarginSoftmaxEmbedder(normalize_weights=True, max_iter=1, **SMALL)
    assert isinstance(est.fit(X, y).loss_, SphereFaceLoss)
    est = LargeMarginSoftmaxEmbedder(max_iter=1, **SMALL).fit(X, y)
    assert type(est.loss_).__name__ == "LargeMarginSoftmaxLoss"


@pytest.mark.parametrize(
    "name, params, error, match",
    [
        ("CircleEmbedder", {"gamma": 0}, ValueError, "gamma"),
        ("CircleEmbedder", {"m": -0.1}, ValueError, "'m' parameter"),
        ("CircleEmbedder", {"miner": "hard"}, TypeError, "'miner' parameter"),
        ("NTXentEmbedder", {"temperature": 0.0}, ValueError, "temperature"),
        ("SupConEmbedder", {"temperature": "0.1"}, TypeError, "temperature"),
        ("SNRContrastiveEmbedder", {"neg_margin": 0.0}, ValueError, "larger than"),
        (
            "MarginEmbedder",
            {"learn_beta": 1},
            TypeError,
            "'learn_beta' parameter of Margin",
        ),
        ("MarginEmbedder", {"miner": "random"}, TypeError, "'miner' parameter"),
        ("TupletMarginEmbedder", {"margin": 95.0}, ValueError, "margin"),
        ("FastAPEmbedder", {"num_bins": 0}, ValueError, "num_bins"),
        ("FastAPEmbedder", {"num_bins": 2.5}, TypeError, "num_bins"),
        ("AngularEmbedder", {"alpha": 90}, ValueError, "alpha"),
        ("HistogramEmbedder", {"n_bins": True}, TypeError, "n_bins"),
        ("ProxyAnchorEmbedder", {"alpha": -1}, ValueError, "alpha"),
        ("ProxyNCAEmbedder", {"loss_learning_rate": 0}, ValueError, "loss_learning"),
        ("ArcFaceEmbedder", {"scale": 0}, ValueError, "scale"),
        ("SubCenterArcFaceEmbedder", {"sub_centers": 0}, ValueError, "sub_centers"),
        ("LargeMarginSoftmaxEmbedder", {"margin": 1.5}, TypeError, "margin"),
        ("LargeMarginSoftmaxEmbedder", {"normalize_weights": "yes"}, TypeError, "bool"),
        ("SoftTripleEmbedder", {"tau": -0.2}, ValueError, "tau"),
        ("NCAEmbedder", {"softmax_scale": 0}, ValueError, "softmax_scale"),
        ("CosFaceEmbedder", {"margin": -1}, ValueError, "margin"),
        ("NormalizedSoftmaxEmbedder", {"temperature": -1}, ValueError, "temperature"),
        ("LiftedStructureEmbedder", {"neg_margin": "1"}, TypeError, "neg_margin"),
    ],
)
def test_invalid_hyper_parameters_rejected_before_training(
    name, params, error, match, tiny, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before the parameters were checked")

    monkeypatch.setattr(sklearn_dml.training.engine, "fit", no_training)
    X, y = tiny
    est = getattr(sklearn_dml, name)(**params)
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "loss_")


# --------------------------------------------------------------- CombinedLoss
def _contrastive_by_hand(emb, labels, neg_margin):
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    diff = labels[:, None] != labels[None, :]
    pos = d[same]
    neg = np.maximum(neg_margin - d[diff], 0.0)
    return pos[pos > 0].mean() + neg[neg > 0].mean()


def test_combined_loss_is_the_weighted_sum_by_hand():
    rng = np.random.RandomState(0)
    emb = rng.randn(12, 4)
    labels = np.repeat([0, 1, 2], 4)
    loss = CombinedLoss([ContrastiveLoss(neg_margin=1.0), CenterLoss()], [1.0, 0.5])
    loss.configure(3, 4)
    centers = loss.parts[1].centers.detach().double().numpy()
    center_part = 0.5 * ((emb - centers[labels]) ** 2).sum(1).mean()
    expected = _contrastive_by_hand(emb, labels, 1.0) + 0.5 * center_part
    value = loss(torch.tensor(emb), torch.tensor(labels))
    assert float(value.detach()) == pytest.approx(expected, rel=1e-6)


def test_combined_loss_parameters_configure_clone_and_errors():
    loss = CombinedLoss([TripletMarginLoss(), CenterLoss()], weights=[1.0, 0.1])
    assert list(loss.parameters()) == []
    loss.configure(5, 3)
    assert [tuple(p.shape) for p in loss.parameters()] == [(5, 3)]
    copy = clone(loss)
    assert list(copy.parameters()) == []
    assert copy.losses[1] is not loss.losses[1]
    with pytest.raises(ValueError, match="one weight per loss"):
        CombinedLoss([TripletMarginLoss()], weights=[1.0, 2.0]).configure(2, 2)
    with pytest.raises(ValueError, match="non-negative"):
        CombinedLoss([TripletMarginLoss()], weights=[-1.0]).configure(2, 2)
    with pytest.raises(TypeError, match="non-empty list"):
        CombinedLoss([]).configure(2, 2)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        CombinedLoss(["triplet"]).configure(2, 2)


def test_center_loss_combined_in_an_estimator_is_trained(tiny):
    X, y = tiny
    loss = CombinedLoss([TripletMarginLoss(), CenterLoss()], weights=[1.0, 0.01])
    est = DeepMetricEmbedder(loss=loss, miner=BatchHardMiner(), random_state=0, **SMALL)
    est.partial_fit(X, y)
    before = est.loss_.parts[1].centers.detach().clone()
    est.partial_fit(X, y)
    assert not torch.equal(before, est.loss_.parts[1].centers)
    assert not hasattr(loss, "parts")
    back = pickle.loads(pickle.dumps(est))
    assert torch.equal(back.loss_.losses[1].centers, est.loss_.parts[1].centers)
