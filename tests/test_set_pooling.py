"""Generalized sum pooling against a NumPy Sinkhorn, its limits, the backbone.

The reference solves the entropic partial transport problem by plain
Sinkhorn scaling (iterative KL projections) of the full kernel matrix,
augmented with one "residual" row of cost zero, over thousands of
iterations: an independent route from the layer's closed form in one
scalar dual variable.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml import TripletEmbedder
from sklearn_dml.backbones._set_pooling import (
    AveragePooling,
    GeneralizedSumPooling,
    SetPoolingMLP,
)

RNG = np.random.default_rng(5)


def _numpy_sinkhorn(x, prototypes, mu, epsilon, n_iter=20000):
    """Plan (m, n) and residual (n,) of one sample by Sinkhorn scaling."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    zn = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    costs = ((zn[:, None, :] - xn[None, :, :]) ** 2).sum(axis=2)
    n = x.shape[0]
    q = np.full(n, 1.0 / n)
    # Row 0: the residual (cost 0); rows 1..m: the prototypes.
    P = np.vstack([np.ones((1, n)), np.exp(-costs / epsilon)])
    for _ in range(n_iter):
        P *= q / P.sum(axis=0)  # every vector sends exactly its mass
        P[1:] *= mu / P[1:].sum()  # the prototypes receive mu in total
        P[0] *= (1.0 - mu) / P[0].sum()  # the residual 1 - mu
    P *= q / P.sum(axis=0)
    return P[1:], P[0]


def _layer(dim, m, mu, epsilon, prototypes=None):
    layer = GeneralizedSumPooling(dim, n_prototypes=m, mu=mu, epsilon=epsilon)
    layer = layer.double()
    if prototypes is not None:
        with torch.no_grad():
            layer.prototypes.copy_(torch.tensor(prototypes))
    return layer


@pytest.mark.parametrize("mu, epsilon", [(0.3, 0.5), (0.5, 0.2), (0.8, 1.0)])
def test_transport_plan_matches_numpy_sinkhorn(mu, epsilon):
    x = RNG.normal(size=(3, 6, 4))
    prototypes = RNG.normal(size=(5, 4))
    layer = _layer(4, 5, mu, epsilon, prototypes)
    plan, residual = layer.transport(torch.tensor(x))
    for b in range(3):
        ref_plan, ref_residual = _numpy_sinkhorn(x[b], prototypes, mu, epsilon)
        np.testing.assert_allclose(plan[b].detach().numpy(), ref_plan, atol=1e-9)
        np.testing.assert_allclose(
            residual[b].detach().numpy(), ref_residual, atol=1e-9
        )
    weights = layer.weights(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(weights, plan.detach().numpy().sum(axis=1) / mu)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    pooled = layer(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(pooled, np.einsum("bn,bnd->bd", weights, x))


def test_sharp_selection_converges():
    # A small epsilon makes the selection nearly hard: the vectors closest to
    # the prototypes take all the transported mass mu.
    x = RNG.normal(size=(2, 10, 3))
    prototypes = x[0, :2] * 3.0  # vectors 0 and 1 of sample 0 sit on prototypes
    layer = _layer(3, 2, 0.2, 0.01, prototypes)
    plan, residual = layer.transport(torch.tensor(x))
    plan, residual = plan.detach().numpy(), residual.detach().numpy()
    np.testing.assert_allclose(plan.sum(axis=(1, 2)), 0.2, rtol=1e-9)
    np.testing.assert_allclose(residual + plan.sum(axis=1), 0.1, rtol=1e-9)
    assert residual.min() >= 0
    w = layer.weights(torch.tensor(x)).detach().numpy()
    assert w[0, :2].sum() > 0.95, w[0]


def test_gradcheck():
    x = torch.tensor(RNG.normal(size=(2, 5, 3)), requires_grad=True)
    prototypes = torch.tensor(RNG.normal(size=(4, 3)), requires_grad=True)
    layer = _layer(3, 4, 0.4, 0.3)

    def pooled(x, prototypes):
        out = torch.func.functional_call(layer, {"prototypes": prototypes}, (x,))
        return out

    assert torch.autograd.gradcheck(pooled, (x, prototypes), eps=1e-6, atol=1e-6)


def test_average_pooling_limits():
    x = torch.tensor(RNG.normal(size=(3, 7, 4)))
    mean = x.mean(dim=1)
    # mu = 1: all the mass is transported, every weight is 1/n (exactly).
    torch.testing.assert_close(_layer(4, 3, 1.0, 0.1)(x), mean)
    # Continuous in mu: close to 1 it is close to average pooling.
    torch.testing.assert_close(_layer(4, 3, 1 - 1e-7, 0.1)(x), mean, atol=1e-5, rtol=0)
    # A huge smoothing makes every vector equally close to the prototypes.
    torch.testing.assert_close(_layer(4, 3, 0.3, 1e6)(x), mean, atol=1e-5, rtol=0)
    # And a selective pooling is not the average.
    assert (_layer(4, 3, 0.3, 0.1)(x) - mean).abs().max() > 0.05
    torch.testing.assert_close(AveragePooling()(x), mean)


def test_errors():
    for mu in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="mu"):
            GeneralizedSumPooling(3, mu=mu)
    with pytest.raises(ValueError, match="epsilon"):
        GeneralizedSumPooling(3, epsilon=0.0)
    with pytest.raises(ValueError, match=r"shape \(batch, n_vectors, 3\)"):
        GeneralizedSumPooling(3)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="pooling must be one of"):
        SetPoolingMLP(4, 2, 3, pooling="max")
    with pytest.raises(ValueError, match="at least one hidden layer"):
        SetPoolingMLP(4, 2, 3, hidden_layer_sizes=())
    with pytest.raises(ValueError, match="rows of n_vectors"):
        SetPoolingMLP(4, 2, 3)(torch.zeros(5, 7))


def test_set_pooling_mlp_is_the_documented_composition():
    torch.manual_seed(0)
    net = SetPoolingMLP(3, 2, 4, hidden_layer_sizes=(5, 6), pooling="average")
    with torch.no_grad():
        net.position.normal_()
    x = torch.randn(8, 6)
    parts = x.reshape(8, 3, 2)
    h = torch.relu(parts @ net.first.weight.T + net.first.bias + net.position)
    lin = net.encoder[1]
    h = torch.relu(h @ lin.weight.T + lin.bias)
    out = h.mean(dim=1) @ net.head.weight.T + net.head.bias
    out = out / out.norm(dim=1, keepdim=True)
    torch.testing.assert_close(net(x), out)
    gsp = SetPoolingMLP(3, 2, 4, hidden_layer_sizes=(5,), n_prototypes=2)
    assert isinstance(gsp.pool, GeneralizedSumPooling)
    assert tuple(gsp.pool.prototypes.shape) == (2, 5)


def test_as_an_estimator_backbone():
    X = RNG.normal(size=(60, 12)).astype(np.float32)
    y = np.repeat([0, 1, 2], 20)
    X[y == 1, :3] += 2.0  # class 1 differs in its first vector only
    backbone = SetPoolingMLP(4, 3, 8, hidden_layer_sizes=(16,), n_prototypes=4)
    emb = TripletEmbedder(backbone=backbone, max_iter=3, random_state=0).fit(X, y)
    Z = emb.transform(X)
    assert Z.shape == (60, 8) and np.isfinite(Z).all()
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    # The user's module is untouched and the fit is reproducible.
    assert backbone.pool.prototypes.grad is None
    again = clone(emb).fit(X, y)
    np.testing.assert_array_equal(again.transform(X), Z)
    # The prototypes were trained.
    trained = emb.backbone_[0].pool.prototypes.detach()
    assert not torch.equal(trained, backbone.pool.prototypes.detach())
