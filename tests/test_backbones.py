"""The backbones: the residual MLP's PCA start and anchoring, user backbones."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_dml import (
    TripletEmbedder,
)
from sklearn_dml.backbones._mlp import MLP, ResidualMLP

# Epochs of the guard test (the default is 50; fewer keep the test cheap).


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


@pytest.mark.parametrize("hidden", [(16,), ()])
def test_blending_with_the_start_interpolates_the_outputs(hidden):
    rng = np.random.RandomState(2)
    X = rng.randn(60, 6) @ rng.randn(6, 6)
    net = ResidualMLP(6, 3, hidden_layer_sizes=hidden, normalize_embeddings=False)
    net.initialize(X)
    x = torch.tensor(X, dtype=torch.float32)
    start = _numpy_pca(X, 3)
    with torch.no_grad():  # "train": move every parameter
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
        trained = net(x).numpy()
        out = net.blend_with_start(0.25)(x).numpy()
    signs = np.sign(np.sum(out * start, axis=0))  # PCA axes up to their sign
    expected = 0.75 * trained + 0.25 * start * signs
    np.testing.assert_allclose(out, expected, atol=1e-3)
    with torch.no_grad():
        back = net.blend_with_start(1.0)(x).numpy()
    np.testing.assert_allclose(back, start * signs, atol=1e-3)
    with pytest.raises(ValueError, match="share must be in"):
        net.blend_with_start(1.5)


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


def test_principal_axes_match_the_svd_of_the_centred_data():
    # Covariance eigendecomposition vs the SVD of the whole centred array:
    # same axes up to sign, the same subspace, and a fixed sign convention.
    from sklearn_dml.backbones._mlp import principal_axes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 12)) * np.linspace(5.0, 0.5, 12) + 3.0
    X = X @ np.linalg.qr(rng.normal(size=(12, 12)))[0]
    before = X.copy()
    mean, axes = principal_axes(X)
    np.testing.assert_array_equal(X, before)  # the input is not modified
    centred = X - X.mean(axis=0)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(mean.numpy(), X.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(np.abs(axes.numpy()), np.abs(vh), atol=1e-8)
    for k in (1, 4, 12):
        np.testing.assert_allclose(
            axes.numpy()[:k].T @ axes.numpy()[:k], vh[:k].T @ vh[:k], atol=1e-8
        )
    top = np.abs(axes.numpy()).argmax(axis=1)
    assert (axes.numpy()[np.arange(12), top] > 0).all()
    # Chunked accumulation and a float32 tensor give the same axes.
    _, again = principal_axes(torch.from_numpy(X.astype(np.float32)))
    np.testing.assert_allclose(np.abs(again.numpy()[:4]), np.abs(vh[:4]), atol=1e-4)
