"""Unseen-class retrieval: the residual backbone, its PCA start, class splits."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.preprocessing import StandardScaler

from sklearn_dml import (
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sklearn_dml.backbones._mlp import MLP, ResidualMLP
from sklearn_dml.datasets import load_mnist_5k, split_classes
from sklearn_dml.metrics import map_at_r_score

# Epochs of the guard test (the default is 50; fewer keep the test cheap).
MAX_ITER = 20


def _numpy_pca(X, k):
    """PCA projection by eigen-decomposition of the covariance (float64)."""
    Xc = X - X.mean(axis=0)
    vals, vecs = np.linalg.eigh(Xc.T @ Xc)
    top = vecs[:, np.argsort(vals)[::-1][:k]]
    return Xc @ top


def test_identity_init_returns_the_input_exactly():
    torch.manual_seed(0)
    net = ResidualMLP(
        6, 6, hidden_layer_sizes=(16, 8), init="identity", normalize_embeddings=False
    )
    x = torch.randn(20, 6)
    assert torch.equal(net(x), x)


def test_identity_init_with_normalisation_gives_unit_rows():
    net = ResidualMLP(3, 3, init="identity")
    x = torch.tensor([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0]])
    expected = np.array([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(net(x).detach().numpy(), expected, atol=1e-6)


def test_pca_init_equals_the_pca_transform_up_to_axis_signs():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 10) @ rng.randn(10, 10) + 3.0
    net = ResidualMLP(10, 4, init="pca", normalize_embeddings=False).initialize(X)
    out = net(torch.tensor(X, dtype=torch.float32)).detach().numpy().astype(float)
    ref = _numpy_pca(X, 4)
    # Each principal axis is defined up to its sign.
    signs = np.sign(np.sum(out * ref, axis=0))
    np.testing.assert_allclose(out, ref * signs, atol=1e-3)


def test_pca_init_preserves_distances_when_keeping_every_axis():
    rng = np.random.RandomState(1)
    X = rng.randn(40, 5)
    net = ResidualMLP(5, 5, hidden_layer_sizes=(), normalize_embeddings=False)
    out = net.initialize(X)(torch.tensor(X, dtype=torch.float32)).detach().numpy()
    d_in = np.linalg.norm(X[:, None] - X[None], axis=2)
    d_out = np.linalg.norm(out[:, None] - out[None], axis=2)
    np.testing.assert_allclose(d_out, d_in, atol=1e-4)


def test_pca_init_pads_components_beyond_the_rank_with_zeros():
    X = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [2.0, 4.0, 0.0]])
    net = ResidualMLP(3, 3, init="pca", normalize_embeddings=False).initialize(X)
    out = net(torch.tensor(X, dtype=torch.float32)).detach().numpy()
    # One direction of variance: the projection is +-(x - mean) . (1, 2, 0)/sqrt(5).
    proj = (X - X.mean(axis=0)) @ np.array([1.0, 2.0, 0.0]) / np.sqrt(5.0)
    np.testing.assert_allclose(np.abs(out[:, 0]), np.abs(proj), atol=1e-5)
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-5)


def test_pca_flag_and_other_inits_ignore_initialize():
    net = ResidualMLP(4, 2)
    assert not net.initialized
    net.initialize(np.random.RandomState(0).randn(10, 4))
    assert net.initialized
    ident = ResidualMLP(4, 4, init="identity")
    before = ident.skip.weight.detach().clone()
    ident.initialize(np.ones((5, 4)))
    assert torch.equal(ident.skip.weight, before)


def test_branch_starts_at_zero_but_receives_gradients():
    torch.manual_seed(0)
    net = ResidualMLP(
        5,
        5,
        hidden_layer_sizes=(7,),
        init="identity",
        dropout=0.2,
        normalize_embeddings=False,
    )
    x = torch.randn(8, 5)
    net(x).pow(2).sum().backward()
    last = net.branch[-1]
    assert torch.count_nonzero(last.weight) == 0
    assert last.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(n_features=5, n_components=3, init="identity"),
            "n_components == n_features",
        ),
        (dict(n_features=5, n_components=3, init="zeros"), "init must be one of"),
        (dict(n_features=5, n_components=3, dropout=1.0), "dropout must be in"),
        (
            dict(n_features=5, n_components=3, anchor_weight=-1.0),
            "anchor_weight must be >= 0",
        ),
    ],
)
def test_residual_mlp_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResidualMLP(**kwargs)


def test_initialize_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        ResidualMLP(4, 2).initialize(np.zeros((3, 5)))


def test_default_backbone_starts_at_the_pca_of_the_training_data():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:300])
    y = y[:300]
    emb = TripletEmbedder(
        n_components=8,
        max_iter=1,
        learning_rate_init=1e-12,
        random_state=0,
        device="cpu",
    ).fit(X, y)
    assert isinstance(emb.backbone_, ResidualMLP)
    ref = _numpy_pca(X, 8)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    out = emb.transform(X).astype(float)
    signs = np.sign(np.sum(out * ref, axis=0))
    np.testing.assert_allclose(out, ref * signs, atol=1e-3)


def test_user_backbone_with_initialize_is_initialised_on_a_copy():
    X = np.random.RandomState(0).randn(60, 6)
    y = np.repeat(np.arange(3), 20)
    user_net = ResidualMLP(6, 3, hidden_layer_sizes=(), normalize_embeddings=False)
    emb = TripletEmbedder(
        backbone=user_net, max_iter=1, random_state=0, device="cpu"
    ).fit(X, y)
    assert not user_net.initialized
    assert emb.backbone_[0].initialized


def test_user_mlp_backbone_still_works():
    X = np.random.RandomState(0).randn(60, 6)
    y = np.repeat(np.arange(3), 20)
    emb = TripletEmbedder(
        backbone=MLP(6, 3, (8,), normalize_embeddings=False),
        max_iter=1,
        random_state=0,
        device="cpu",
    ).fit(X, y)
    np.testing.assert_allclose(np.linalg.norm(emb.transform(X), axis=1), 1.0, atol=1e-5)


def test_engine_gives_back_the_start_when_every_epoch_scores_worse():
    from sklearn_dml import _engine
    from sklearn_dml.losses import ContrastiveLoss

    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 4).astype(np.float32), np.repeat(np.arange(4), 10)
    net = ResidualMLP(4, 4, hidden_layer_sizes=(8,), init="identity")
    start = {k: v.clone() for k, v in net.state_dict().items()}
    calls = []

    def falling_score(embeddings, labels):
        calls.append(1)
        return 1.0 / len(calls)  # the start scores 1, every epoch less

    state = _engine.TrainingState(backbone=net, loss=ContrastiveLoss(), miner=None)
    config = _engine.TrainingConfig(
        max_iter=3,
        batch_size=8,
        learning_rate_init=0.1,
        n_iter_no_change=5,
        device="cpu",
    )
    _engine.fit(state, config, X, y, validation=(X, y), score_func=falling_score)
    assert len(calls) == 4  # the start, then three epochs
    assert state.best_validation_score == 1.0
    for key, value in state.backbone.state_dict().items():
        assert torch.equal(value, start[key]), key


def _numpy_anchor_penalty(X, E, W0, b0, weight):
    """Mean squared change of the pairwise cosines, NumPy float64."""
    A = X @ W0.T + b0
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    E = E / np.linalg.norm(E, axis=1, keepdims=True)
    diff = E @ E.T - A @ A.T
    n = len(X)
    return weight * (diff**2).sum() / (n * (n - 1))


def test_anchor_penalty_matches_numpy_and_is_zero_at_the_start():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 6)
    net = ResidualMLP(6, 3, hidden_layer_sizes=(8,), anchor_weight=2.5).initialize(X)
    x = torch.tensor(X[:7], dtype=torch.float32)
    start = net(x)
    assert net.training_penalty(x, start).item() == pytest.approx(0.0, abs=1e-10)
    E = rng.randn(7, 3)
    got = net.training_penalty(x, torch.tensor(E, dtype=torch.float32))
    W0 = net._start_weight.double().numpy()
    b0 = net._start_bias.double().numpy()
    expected = _numpy_anchor_penalty(X[:7], E, W0, b0, 2.5)
    assert float(got) == pytest.approx(expected, rel=1e-4)
    assert ResidualMLP(6, 3, anchor_weight=0.0).training_penalty(x, start) is None


def test_anchor_penalty_gradcheck():
    torch.manual_seed(0)
    net = ResidualMLP(4, 3, hidden_layer_sizes=(), anchor_weight=1.5).double()
    net.initialize(torch.randn(20, 4, dtype=torch.float64))
    x = torch.randn(5, 4, dtype=torch.float64)
    E = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: net.training_penalty(x, e), (E,))


def test_engine_adds_the_backbone_penalty_to_the_loss():
    from sklearn_dml import _engine
    from sklearn_dml.backbones._mlp import L2Normalize
    from sklearn_dml.losses import ContrastiveLoss

    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    X = torch.tensor(rng.randn(12, 5), dtype=torch.float32)
    y = torch.tensor(np.repeat(np.arange(3), 4))
    net = ResidualMLP(5, 5, hidden_layer_sizes=(), init="identity", anchor_weight=3.0)
    with torch.no_grad():
        net.skip.weight.add_(0.3 * torch.randn(5, 5))  # move away from the start
    loss = ContrastiveLoss()
    for backbone in (net, torch.nn.Sequential(net, L2Normalize())):
        state = _engine.TrainingState(backbone=backbone, loss=loss, miner=None)
        with torch.no_grad():
            E = backbone(X)
            expected = loss(E, y) + net.training_penalty(X, E)
            assert net.training_penalty(X, E).item() > 0
            got = _engine.batch_loss(state, _engine.TrainingConfig(), X, y)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # A module after the network changes the embedding: no penalty then.
    other = torch.nn.Sequential(net, torch.nn.Linear(5, 2))
    assert _engine.backbone_penalty(other, X, other(X), y) is None


def _unseen_digits(seen=(0, 1, 2, 3, 4)):
    """Standardised digits of the ``seen`` classes (training) and of the others
    (unseen), and the unseen MAP@R of the raw standardised features."""
    X, y = load_digits(return_X_y=True)
    X_seen, y_seen, X_new, y_new = split_classes(X, y, seen_classes=list(seen))
    scaler = StandardScaler().fit(X_seen)
    X_seen, X_new = scaler.transform(X_seen), scaler.transform(X_new)
    return X_seen, y_seen, X_new, y_new, map_at_r_score(X_new, y_new)


def test_default_embedder_does_not_lose_to_raw_features_on_unseen_digits():
    # The guard of the default (user_guide/unseen_classes.rst): trained on
    # digits 0-4, the default embedder retrieves digits 5-9 at least as well
    # as the raw standardised features; without the anchoring it does not.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits()
    params = dict(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb = TripletEmbedder(**params).fit(X_seen, y_seen)
    assert emb.backbone_.anchor_weight > 0
    assert map_at_r_score(emb.transform(X_new), y_new) >= raw
    loose = ResidualMLP(64, 64, anchor_weight=0.0, normalize_embeddings=False)
    unanchored = TripletEmbedder(backbone=loose, **params).fit(X_seen, y_seen)
    assert map_at_r_score(unanchored.transform(X_new), y_new) < raw


@pytest.mark.parametrize(
    "embedder, previous",
    [
        # The margins that fit the PCA start (0.5 / 1.2) against the previous
        # ones (0.2652 / 0.513, where no negative pair starts within the margin).
        (ContrastiveEmbedder, {"pos_margin": 0.2652, "neg_margin": 0.513}),
        (SupConEmbedder, None),
        (MultiSimilarityEmbedder, None),
    ],
)
def test_other_defaults_do_not_lose_to_raw_features_on_unseen_digits(
    embedder, previous
):
    # user_guide/unseen_classes.rst: these defaults retrieve unseen digits at
    # least as well as the raw features; the previous contrastive margins
    # lose to them.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits()
    params = dict(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb = embedder(**params).fit(X_seen, y_seen)
    assert map_at_r_score(emb.transform(X_new), y_new) >= raw
    if previous is not None:
        old = embedder(**previous, **params).fit(X_seen, y_seen)
        assert map_at_r_score(old.transform(X_new), y_new) < raw


@pytest.mark.parametrize("embedder", [TripletEmbedder, ProxyAnchorEmbedder])
def test_defaults_beat_raw_features_when_trained_on_the_other_digits(embedder):
    # user_guide/unseen_classes.rst: trained on digits 5-9, the triplet and
    # proxy-anchor defaults retrieve digits 0-4 better than the raw features
    # (on the 0-4 / 5-9 split they only tie); scikit-learn's NCA does not.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits(seen=(5, 6, 7, 8, 9))
    emb = embedder(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb.fit(X_seen, y_seen)
    assert map_at_r_score(emb.transform(X_new), y_new) > raw + 0.01
    nca = NeighborhoodComponentsAnalysis(max_iter=MAX_ITER, random_state=0)
    nca.fit(X_seen, y_seen)
    assert map_at_r_score(nca.transform(X_new), y_new) < raw + 0.01


def test_split_classes_separates_and_copies():
    X = np.arange(20.0).reshape(10, 2)
    y = np.array([0, 1, 2, 3, 4] * 2)
    X_s, y_s, X_u, y_u = split_classes(X, y, seen_classes=[1, 3])
    assert y_s.tolist() == [1, 3, 1, 3] and y_u.tolist() == [0, 2, 4, 0, 2, 4]
    np.testing.assert_array_equal(X_s[:, 0], [2.0, 6.0, 12.0, 16.0])
    X_s[0, 0] = -1.0
    assert X[1, 0] == 2.0


@pytest.mark.parametrize(
    "seen, match", [([7], "not in y"), ([0, 1, 2], "no unseen class")]
)
def test_split_classes_errors(seen, match):
    X, y = np.zeros((6, 2)), np.array([0, 1, 2] * 2)
    with pytest.raises(ValueError, match=match):
        split_classes(X, y, seen)


def test_load_mnist_5k_shapes_and_balance():
    X, y = load_mnist_5k(return_X_y=True)
    assert X.shape == (5000, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    bunch = load_mnist_5k()
    np.testing.assert_array_equal(bunch["target"], y)
