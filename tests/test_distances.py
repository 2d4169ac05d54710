import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.distances import (
    CosineSimilarity,
    DotProductSimilarity,
    LpDistance,
)


def _random(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _np_normalize(x, p=2):
    if np.isinf(p):
        return x / np.abs(x).max(axis=1, keepdims=True)
    norms = np.sum(np.abs(x) ** p, axis=1) ** (1.0 / p)
    return x / norms[:, None]


def _np_lp_matrix(x, y, p):
    out = np.zeros((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            diff = np.abs(x[i] - y[j])
            out[i, j] = diff.max() if np.isinf(p) else np.sum(diff**p) ** (1.0 / p)
    return out


@pytest.mark.parametrize("p", [1, 2, 3, float("inf")])
@pytest.mark.parametrize("normalize", [True, False])
def test_lp_distance_matrix_matches_numpy(p, normalize):
    x, y = _random(6, 4, seed=1), _random(5, 4, seed=2)
    xn, yn = (_np_normalize(x, p), _np_normalize(y, p)) if normalize else (x, y)
    dist = LpDistance(p=p, normalize_embeddings=normalize)
    got = dist(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, _np_lp_matrix(xn, yn, p), rtol=1e-7, atol=1e-7)
    self_got = dist(torch.tensor(x)).numpy()
    np.testing.assert_allclose(self_got, _np_lp_matrix(xn, xn, p), atol=1e-7)
    np.testing.assert_array_equal(np.diag(self_got), 0.0)


def test_lp_distance_power():
    x, y = _random(4, 3, seed=3), _random(4, 3, seed=4)
    dist = LpDistance(power=2, normalize_embeddings=False)
    expected = _np_lp_matrix(x, y, 2) ** 2
    np.testing.assert_allclose(dist(torch.tensor(x), torch.tensor(y)).numpy(), expected)
    np.testing.assert_allclose(
        dist.pairwise(torch.tensor(x), torch.tensor(y)).numpy(), np.diag(expected)
    )


@pytest.mark.parametrize(
    "dist",
    [
        LpDistance(),
        LpDistance(p=1),
        LpDistance(p=3, normalize_embeddings=False),
        CosineSimilarity(),
        DotProductSimilarity(),
    ],
)
def test_pairwise_is_diagonal_of_matrix(dist):
    x, y = torch.tensor(_random(7, 3, seed=5)), torch.tensor(_random(7, 3, seed=6))
    np.testing.assert_allclose(
        dist.pairwise(x, y).numpy(), torch.diagonal(dist(x, y)).numpy(), atol=1e-10
    )


def test_similarities_match_numpy():
    x, y = _random(5, 3, seed=7), _random(4, 3, seed=8)
    dots = np.array([[np.dot(a, b) for b in y] for a in x])
    norms = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
    tx, ty = torch.tensor(x), torch.tensor(y)
    np.testing.assert_allclose(DotProductSimilarity()(tx, ty).numpy(), dots)
    np.testing.assert_allclose(CosineSimilarity()(tx, ty).numpy(), dots / norms)
    np.testing.assert_allclose(
        DotProductSimilarity(normalize_embeddings=True)(tx, ty).numpy(), dots / norms
    )
    assert CosineSimilarity.is_inverted and DotProductSimilarity.is_inverted
    assert not LpDistance.is_inverted


def test_margin_measures_how_much_closer_x_is():
    # distance: x=1 is closer than y=3 by 2; similarity: x=1 is farther by 2.
    assert LpDistance().margin(1.0, 3.0) == 2.0
    assert CosineSimilarity().margin(1.0, 3.0) == -2.0
    got = LpDistance().margin(torch.tensor([[1.0], [2.0]]), torch.tensor([[4.0, 5.0]]))
    np.testing.assert_allclose(got.numpy(), [[3.0, 4.0], [2.0, 3.0]])


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_gradient_at_zero_distance_is_finite(p):
    x = torch.tensor(_random(4, 3, seed=9), requires_grad=True)
    dist = LpDistance(p=p)
    dist(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    y = torch.tensor(_random(4, 3, seed=9), requires_grad=True)
    dist.pairwise(y, y.detach().clone()).sum().backward()
    assert torch.isfinite(y.grad).all()
    np.testing.assert_allclose(y.grad.numpy(), 0.0, atol=1e-12)


def test_lp_gradient_of_duplicate_rows_is_finite():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]], requires_grad=True)
    LpDistance()(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "dist",
    [
        LpDistance(),
        LpDistance(p=1.5, power=2),
        CosineSimilarity(),
        DotProductSimilarity(),
    ],
)
def test_gradcheck(dist):
    x = torch.tensor(_random(5, 3, seed=10), requires_grad=True)
    y = torch.tensor(_random(4, 3, seed=11), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: dist(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a: dist(a), (x,))
    assert torch.autograd.gradcheck(lambda a, b: dist.pairwise(a, b), (x[:4], y))


def test_input_validation_messages():
    with pytest.raises(ValueError, match="query must be a 2-D tensor"):
        LpDistance()(torch.zeros(3))
    with pytest.raises(ValueError, match="query has 3 columns but ref has 2"):
        LpDistance()(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        CosineSimilarity().pairwise(torch.zeros(2, 3), torch.zeros(3, 3))


def test_params_and_clone():
    dist = LpDistance(p=1, power=2, normalize_embeddings=False)
    assert dist.get_params() == {"normalize_embeddings": False, "p": 1, "power": 2}
    copy = clone(dist)
    assert copy is not dist and isinstance(copy, LpDistance)
    assert copy.get_params() == dist.get_params()
    assert dist.set_params(p=3) is dist and dist.p == 3 and copy.p == 1
    assert CosineSimilarity().get_params() == {}
    assert clone(CosineSimilarity()).normalize_embeddings is True
    with pytest.raises(ValueError, match="Invalid parameter 'q'"):
        dist.set_params(q=1)
