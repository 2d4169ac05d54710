"""Matryoshka training (``nested_dims``) and :class:`MatryoshkaLoss`.

The wrapper's value is checked against a NumPy triplet loss looped over the
prefixes (an independent route from the vectorised torch code), and against
independently configured proxy losses; the estimators' ``nested_dims``
against plain truncation on digits.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_dml import DeepMetricEmbedder, ProxyAnchorEmbedder, TripletEmbedder
from sklearn_dml.backbones._mlp import MLP
from sklearn_dml.losses import (
    CenterLoss,
    MatryoshkaLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
)
from sklearn_dml.metrics import map_at_r_score
from sklearn_dml.miners import BatchHardMiner

RNG = np.random.default_rng(3)
EMB = RNG.normal(size=(8, 6))
LABELS = [0, 0, 0, 1, 1, 2, 2, 2]


def _numpy_triplet(x, labels, margin):
    """Triplet margin loss on L2-normalised rows, mean over the positive terms."""
    x = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    terms = []
    for a in range(len(x)):
        for p in range(len(x)):
            for n in range(len(x)):
                if a == p or labels[a] != labels[p] or labels[a] == labels[n]:
                    continue
                d_ap = np.sqrt(((x[a] - x[p]) ** 2).sum())
                d_an = np.sqrt(((x[a] - x[n]) ** 2).sum())
                terms.append(max(d_ap - d_an + margin, 0.0))
    terms = np.array(terms)
    positive = terms[terms > 0]
    return positive.mean() if positive.size else 0.0


@pytest.mark.parametrize(
    "weights", [None, (1.0, 2.0, 0.5, 3.0)], ids=["equal", "weighted"]
)
def test_value_is_the_weighted_mean_of_the_prefix_losses(weights):
    dims = (1, 2, 4)
    loss = MatryoshkaLoss(TripletMarginLoss(margin=0.3), dims, weights=weights)
    loss.configure(3, 6)
    value = loss(torch.tensor(EMB), torch.tensor(LABELS))
    w = np.ones(4) if weights is None else np.asarray(weights)
    per_prefix = [_numpy_triplet(EMB[:, :k], LABELS, 0.3) for k in (1, 2, 4, 6)]
    expected = (w * per_prefix).sum() / w.sum()
    assert expected > 0
    np.testing.assert_allclose(float(value), expected, rtol=1e-10)


@pytest.mark.parametrize("normalize", [True, False])
def test_normalize_switches_the_prefix_normalisation(normalize):
    # CenterLoss compares raw vectors with centres, so normalisation shows.
    loss = MatryoshkaLoss(CenterLoss(), (2, 3), normalize=normalize)
    loss.configure(3, 6).double()
    emb, labels = torch.tensor(EMB), torch.tensor(LABELS)
    expected = []
    for part, k in zip(loss.parts, (2, 3, 6)):
        prefix = EMB[:, :k]
        if normalize:
            prefix = prefix / np.linalg.norm(prefix, axis=1, keepdims=True)
        centres = part.centers.detach().numpy()[LABELS]
        expected.append(0.5 * ((prefix - centres) ** 2).sum(axis=1).mean())
    np.testing.assert_allclose(float(loss(emb, labels).detach()), np.mean(expected))


def test_proxy_losses_get_one_copy_per_prefix():
    loss = MatryoshkaLoss(ProxyAnchorLoss(), (2, 4)).configure(3, 6)
    assert loss.dims_ == (2, 4, 6)
    assert [tuple(p.shape) for p in loss.parameters()] == [(3, 2), (3, 4), (3, 6)]
    emb, labels = torch.tensor(EMB), torch.tensor(LABELS)
    expected = 0.0
    for part, k in zip(loss.parts, (2, 4, 6)):
        # An independently built loss holding the same proxies.
        own = ProxyAnchorLoss().configure(3, k)
        with torch.no_grad():
            own.proxies.copy_(part.proxies)
        expected += own(torch.nn.functional.normalize(emb[:, :k]), labels).item() / 3
    np.testing.assert_allclose(loss(emb, labels).item(), expected, rtol=1e-6)


def test_gradcheck():
    loss = MatryoshkaLoss(TripletMarginLoss(margin=0.3), (2, 4)).configure(3, 6)
    loss = loss.double()
    emb = torch.tensor(EMB, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda e: loss(e, torch.tensor(LABELS)), (emb,), eps=1e-6, atol=1e-5
    )


def test_mined_tuples_are_shared():
    emb, labels = torch.tensor(EMB), torch.tensor(LABELS)
    triplets = BatchHardMiner()(emb, labels)
    loss = MatryoshkaLoss(TripletMarginLoss(margin=0.3), (3,)).configure(3, 6)
    expected = np.mean(
        [
            float(TripletMarginLoss(margin=0.3)(emb[:, :k], labels, triplets))
            for k in (3, 6)
        ]
    )
    np.testing.assert_allclose(float(loss(emb, labels, triplets)), expected)


@pytest.mark.parametrize(
    "nested_dims, match",
    [
        ((), "'nested_dims' parameter"),
        ("8", "'nested_dims' parameter"),
        ((4, 0), "'nested_dims' parameter"),
        ((2.5,), "'nested_dims' parameter"),
        ((8, 4), "strictly increasing"),
        ((4, 4), "strictly increasing"),
        ((4, 8), "smaller than the embedding size"),
    ],
)
def test_invalid_nested_dims(nested_dims, match):
    X, y = RNG.normal(size=(20, 5)), np.repeat([0, 1], 10)
    emb = TripletEmbedder(n_components=8, max_iter=1, nested_dims=nested_dims)
    with pytest.raises(ValueError, match=match):
        emb.fit(X, y)
    assert not hasattr(emb, "backbone_")  # rejected before training


def test_nested_dims_checked_against_a_user_backbone():
    X, y = RNG.normal(size=(20, 5)), np.repeat([0, 1], 10)
    backbone = MLP(5, 4, (8,))
    emb = TripletEmbedder(backbone=backbone, max_iter=1, nested_dims=(2, 4))
    with pytest.raises(ValueError, match="backbone returns embeddings of size 4"):
        emb.fit(X, y)
    emb.set_params(nested_dims=(2,)).fit(X, y)
    assert emb.loss_.dims_ == (2, 4)


def test_invalid_weights():
    with pytest.raises(
        ValueError,
        match="'weights' parameter of MatryoshkaLoss .*one weight per prefix",
    ):
        MatryoshkaLoss(TripletMarginLoss(), (2,), weights=(1.0,))
    with pytest.raises(ValueError, match="'weights' parameter .* not be all zero"):
        MatryoshkaLoss(TripletMarginLoss(), (2,), weights=(0.0, 0.0))
    with pytest.raises(ValueError, match="'weights' parameter of MatryoshkaLoss"):
        MatryoshkaLoss(TripletMarginLoss(), (2,), weights=(1.0, float("nan")))
    with pytest.raises(
        ValueError, match="'nested_dims' parameter of MatryoshkaLoss .*increasing"
    ):
        MatryoshkaLoss(TripletMarginLoss(), (4, 2))
    loss = MatryoshkaLoss(TripletMarginLoss(), (2,), weights=(1.0, 3.0))
    with pytest.raises(ValueError, match="one weight per prefix"):
        loss.set_params(nested_dims=(2, 3))
    assert loss.nested_dims == (2,)
    loss.set_params(nested_dims=(2, 3), weights=(1.0, 1.0, 2.0))
    with pytest.raises(RuntimeError, match="must be configured"):
        MatryoshkaLoss(TripletMarginLoss(), (2,))(torch.zeros(4, 4), torch.zeros(4))


def test_estimator_state_clone_pickle_partial_fit():
    X, y = RNG.normal(size=(40, 6)), np.repeat([0, 1, 2, 3], 10)
    emb = ProxyAnchorEmbedder(
        n_components=8,
        hidden_layer_sizes=(8,),
        max_iter=2,
        nested_dims=(2, 4),
        random_state=0,
    ).fit(X, y)
    assert isinstance(emb.loss_, MatryoshkaLoss)
    assert [tuple(p.shape) for p in emb.loss_.parameters()] == [(4, 2), (4, 4), (4, 8)]
    again = pickle.loads(pickle.dumps(emb))
    np.testing.assert_array_equal(again.transform(X), emb.transform(X))
    np.testing.assert_array_equal(
        clone(emb).fit(X, y).transform_nested(X, 2), emb.transform_nested(X, 2)
    )
    emb.partial_fit(X, y)  # resumes with the wrapped loss and its optimizer state
    for changed in ((2,), None):
        emb.set_params(nested_dims=changed)
        with pytest.raises(ValueError, match="differs from the value the model"):
            emb.partial_fit(X, y)
    emb.set_params(nested_dims=(2, 4))
    with pytest.raises(ValueError, match="did not see"):
        emb.set_params(warm_start=True).fit(X, np.repeat([0, 1, 2, 9], 10))


def test_transform_nested():
    X, y = RNG.normal(size=(30, 6)), np.repeat([0, 1, 2], 10)
    emb = TripletEmbedder(n_components=8, max_iter=1, random_state=0).fit(X, y)
    full = emb.transform(X)
    prefix = emb.transform_nested(X, 3)
    assert prefix.shape == (30, 3) and prefix.dtype == np.float32
    expected = full[:, :3] / np.linalg.norm(full[:, :3], axis=1, keepdims=True)
    np.testing.assert_allclose(prefix, expected, rtol=1e-5)
    np.testing.assert_allclose(emb.transform_nested(X, 8), full, rtol=1e-5)
    raw = TripletEmbedder(
        n_components=8, max_iter=1, random_state=0, normalize_embeddings=False
    ).fit(X, y)
    np.testing.assert_array_equal(raw.transform_nested(X, 3), raw.transform(X)[:, :3])
    for bad in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="'n_dims' parameter"):
            emb.transform_nested(X, bad)


def test_nested_training_improves_short_prefixes_on_digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    train = np.arange(len(y)) % 2 == 0
    params = dict(n_components=32, max_iter=10, random_state=0)
    plain = TripletEmbedder(**params).fit(X[train], y[train])
    nested = TripletEmbedder(nested_dims=(2, 4, 8, 16), **params).fit(
        X[train], y[train]
    )

    def quality(model, k):
        return map_at_r_score(model.transform_nested(X[~train], k), y[~train])

    gains = [quality(nested, k) - quality(plain, k) for k in (2, 4, 8)]
    # Measured gains are about +0.02, +0.05 and +0.07 MAP@R.
    assert np.mean(gains) > 0.02, gains
    assert min(gains) > -0.01, gains
    # The full embedding stays close to the plain model's.
    assert quality(nested, 32) > quality(plain, 32) - 0.05


def test_nested_dims_with_a_generic_loss_and_miner():
    X, y = RNG.normal(size=(40, 6)), np.repeat([0, 1, 2, 3], 10)
    emb = DeepMetricEmbedder(
        loss=TripletMarginLoss(),
        miner=BatchHardMiner(),
        n_components=6,
        max_iter=2,
        nested_dims=(3,),
        random_state=0,
    ).fit(X, y)
    assert emb.loss_.dims_ == (3, 6)
    assert np.isfinite(emb.loss_curve_).all()
