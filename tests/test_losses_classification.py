"""Classification losses (``losses._classification``): margin softmaxes and EBV against NumPy."""

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.base import clone

from sklearn_dml.losses._classification import (
    ArcFaceLoss,
    CosFaceLoss,
    EquiangularBasisLoss,
    LargeMarginSoftmaxLoss,
    SphereFaceLoss,
)
from sklearn_dml.miners import BatchHardMiner

from .loss_references import (
    N_CLASSES,
    PROXIES,
    TRIPLETS,
    X,
    Y,
    assert_zero_value_with_zero_grad,
    cosine,
    l64,
    np_cross_entropy,
    np_margin_softmax,
    np_weights,
    t64,
    unit,
    with_proxies,
)


# ---------------------------------------------------------- margin softmaxes
def test_hand_worked_cosface_and_arcface():
    # Proxies e1, e2; x0 = e1 (class 0), x1 = (0.6, 0.8) (class 1).
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    labels = l64([0, 1])
    eye = np.eye(2)
    # CosFace, m = 0.2, s = 4: logits (3.2, 0) and (2.4, 2.4).
    expected = (math.log1p(math.exp(-3.2)) + math.log(2.0)) / 2
    got = with_proxies(CosFaceLoss(margin=0.2, scale=4.0), eye)(x, labels)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)
    # ArcFace, m = 30 degrees, s = 4: target angles 0 and acos(0.8).
    t1 = math.cos(math.acos(0.8) + math.pi / 6)
    expected = (
        math.log1p(math.exp(-4 * math.cos(math.pi / 6)))
        + math.log1p(math.exp(4 * (0.6 - t1)))
    ) / 2
    got = with_proxies(ArcFaceLoss(margin=30.0, scale=4.0), eye)(x, labels)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)


def test_arcface_uses_the_monotonic_branch_beyond_pi_minus_m():
    # A sample almost opposite to its proxy: theta > pi - m.
    x = np.array([[-1.0, 0.05], [0.0, 1.0]])
    labels = [0, 1]
    assert np.arccos(unit(x[0]) @ np.array([1.0, 0.0])) > np.pi - np.radians(40.0)
    loss = with_proxies(ArcFaceLoss(margin=40.0, scale=3.0), np.eye(2))
    expected = np_margin_softmax(x, np.eye(2), labels, "arcface", 40.0, 3.0)
    np.testing.assert_allclose(loss(t64(x), l64(labels)).item(), expected, rtol=1e-10)


def test_arcface_gradient_is_finite_when_a_sample_equals_its_proxy():
    loss = with_proxies(ArcFaceLoss(), np.eye(3))
    x = t64(np.eye(3), requires_grad=True)
    value = loss(x, l64([0, 1, 2]))
    value.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.proxies.grad).all()


def test_large_margin_with_margin_one_is_plain_softmax():
    loss = with_proxies(LargeMarginSoftmaxLoss(margin=1, scale=1.0), PROXIES)
    logits = X @ PROXIES.T
    expected = np.mean([np_cross_entropy(logits[i], Y[i]) for i in range(len(X))])
    np.testing.assert_allclose(loss(t64(X), l64(Y)).item(), expected, rtol=1e-10)


@pytest.mark.parametrize("margin", [2, 3, 4, 5, 6.0])
def test_large_margin_covers_every_k_interval(margin):
    # Angles spread over [0, pi], so every k = 0 .. m-1 occurs.
    angles = np.linspace(0.05, np.pi - 0.05, 25)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = [0] * len(x)
    proxies = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = with_proxies(LargeMarginSoftmaxLoss(margin=margin), proxies)
    expected = np_margin_softmax(x, proxies, labels, "lsoftmax", int(margin), 1.0)
    np.testing.assert_allclose(loss(t64(x), l64(labels)).item(), expected, rtol=1e-10)


def test_forward_does_not_modify_inputs():
    loss = with_proxies(SphereFaceLoss(), PROXIES)
    x, labels = t64(X), l64(Y)
    x_before, labels_before = x.clone(), labels.clone()
    loss(x, labels, BatchHardMiner()(x, labels))
    assert torch.equal(x, x_before) and torch.equal(labels, labels_before)


# ------------------------------------------------- equiangular basis (EBV)
def np_ebv(x, basis, y, temperature, w):
    terms = []
    for i in range(len(x)):
        logits = np.array([cosine(x[i], b) / temperature for b in basis])
        terms.append(logsumexp(logits) - logits[y[i]])
    return sum(wi * ti for wi, ti in zip(w, terms)) / len(x)


def test_ebv_vectors_are_unit_and_nearly_orthogonal():
    loss = EquiangularBasisLoss(max_cosine=0.5, max_iter=3000).configure(10, 4)
    basis = loss.basis_vectors.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(basis, axis=1), 1.0, rtol=1e-6)
    worst = max(
        abs(cosine(basis[i], basis[j])) for i in range(10) for j in range(10) if i != j
    )
    np.testing.assert_allclose(loss.max_cosine_reached_, worst, rtol=1e-5)
    assert worst <= 0.5 + 1e-4
    # as many dimensions as classes: close to an orthonormal basis
    loss = EquiangularBasisLoss(max_cosine=0.002).configure(5, 5)
    gram = loss.basis_vectors.numpy() @ loss.basis_vectors.numpy().T
    assert np.abs(gram - np.eye(5)).max() <= 0.0021


def test_ebv_generation_step_is_gradient_descent_on_the_penalty():
    # One step from the seeded start, against autograd on the penalty (a
    # step that lowers the largest |cos|, so it is the iterate kept).
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(6, 3, generator=gen, dtype=torch.float32)
    start = start / start.norm(dim=1, keepdim=True)
    w = start.clone().requires_grad_(True)
    gram = w @ w.T
    off = ~torch.eye(6, dtype=torch.bool)
    torch.relu(gram[off].abs() - 0.1).sum().backward()
    expected = start - 0.02 * w.grad
    expected = expected / expected.norm(dim=1, keepdim=True)

    def worst(v):
        return (v @ v.T)[off].abs().max().item()

    assert worst(expected) < worst(start)
    loss = EquiangularBasisLoss(
        max_cosine=0.1, max_iter=1, learning_rate=0.02, random_state=3
    ).configure(6, 3)
    np.testing.assert_allclose(loss.basis_vectors, expected, rtol=1e-5, atol=1e-6)


def test_ebv_seeding():
    def make(seed):
        loss = EquiangularBasisLoss(max_iter=50, random_state=seed)
        return loss.configure(4, 3).basis_vectors

    a, b, c = make(3), make(3), make(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(1)
    d = make(None)
    torch.manual_seed(1)
    e = make(None)
    assert torch.equal(d, e)


@pytest.mark.parametrize("tuple_", [None, TRIPLETS], ids=["all", "mined"])
def test_ebv_loss_matches_numpy_and_gradcheck(tuple_):
    loss = EquiangularBasisLoss(temperature=0.3, max_cosine=0.4)
    loss = loss.configure(N_CLASSES, 3).double()
    basis = loss.basis_vectors.numpy()
    got = loss(t64(X), l64(Y), tuple_).item()
    expected = np_ebv(X, basis, Y, 0.3, np_weights(tuple_, len(X)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    x = t64(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, l64(Y), tuple_), (x,))


def test_ebv_edge_cases_buffer_and_errors():
    loss = EquiangularBasisLoss(max_cosine=0.4).configure(N_CLASSES, 3)
    assert list(loss.parameters()) == []
    assert set(loss.state_dict()) == {"basis_vectors"}
    for labels in ([2] * 7, [1]):
        x = torch.tensor(X[: len(labels)], requires_grad=True)
        value = loss(x, l64(labels))
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    empty = torch.zeros(0, dtype=torch.long)
    x = t64(X, requires_grad=True)
    assert_zero_value_with_zero_grad(loss(x, l64(Y), (empty,) * 3), [x])
    x32 = torch.tensor(X, dtype=torch.float32)
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert torch.equal(other.basis_vectors, loss.basis_vectors)
        assert other(x32, l64(Y)).item() == loss(x32, l64(Y)).item()
    fresh = clone(loss)
    assert fresh.get_params() == loss.get_params()
    with pytest.raises(RuntimeError, match=r"call loss.configure\(num_classes"):
        fresh(x32, l64(Y))
    with pytest.raises(ValueError, match=r"labels must be class indices in 0 \.\. 3"):
        loss(x32, l64([0, 1, 2, 3, 4, 0, 0]))
    with pytest.raises(ValueError, match="embeddings have 2 columns"):
        loss(x32[:, :2], l64(Y))
    with pytest.raises(
        ValueError, match="'random_state' parameter of EquiangularBasisLoss"
    ):
        EquiangularBasisLoss(random_state="a")
    with pytest.raises(
        ValueError, match="'max_iter' parameter of EquiangularBasisLoss"
    ):
        EquiangularBasisLoss(max_iter=-1)
    with pytest.raises(ValueError, match="'temperature' parameter of EquiangularBasis"):
        EquiangularBasisLoss(temperature=0)
