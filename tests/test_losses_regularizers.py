"""Regularisers (``losses._regularizers``): center loss and TCM against NumPy loops and pml."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.distances import CosineSimilarity
from sklearn_dml.losses._pair import ContrastiveLoss
from sklearn_dml.losses._regularizers import CenterLoss, TCMRegularizer
from sklearn_dml.miners import BatchHardMiner

from .loss_references import (
    TRIPLETS,
    X_TILTED,
    X,
    Y,
    assert_zero_value_with_zero_grad,
    configured,
    cosine,
    l64,
    t64,
    unit,
)


def np_tcm(x, y, m_plus, m_minus, lam_plus, lam_minus, pairs=None):
    n = len(x)
    if pairs is None:
        pos = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
        neg = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
    else:
        pos, neg = pairs
    hard_pos = [
        m_plus - cosine(x[i], x[j]) for i, j in pos if cosine(x[i], x[j]) <= m_plus
    ]
    hard_neg = [
        cosine(x[i], x[j]) - m_minus for i, j in neg if cosine(x[i], x[j]) >= m_minus
    ]
    value = 0.0
    if hard_pos:
        value += lam_plus * np.mean(hard_pos)
    if hard_neg:
        value += lam_minus * np.mean(hard_neg)
    return value


# ------------------------------------------------------------- center loss
def test_center_loss_matches_numpy():
    torch.manual_seed(0)
    loss = configured(CenterLoss())
    centers = loss.centers.detach().numpy()
    x = X_TILTED
    expected = np.mean([0.5 * np.sum((x[i] - centers[Y[i]]) ** 2) for i in range(7)])
    np.testing.assert_allclose(loss(t64(x), l64(Y)).item(), expected, rtol=1e-12)
    # Restricted to the samples named by a tuple.
    tup = (torch.tensor([0, 3]), torch.tensor([1, 6]), torch.tensor([5, 5]))
    named = [0, 1, 3, 5, 6]
    expected = np.mean([0.5 * np.sum((x[i] - centers[Y[i]]) ** 2) for i in named])
    np.testing.assert_allclose(loss(t64(x), l64(Y), tup).item(), expected, rtol=1e-12)
    # A similarity: minus half the mean cosine to the centres.
    cos = CenterLoss(distance=CosineSimilarity()).configure(3, 3).double()
    with torch.no_grad():
        cos.centers.copy_(loss.centers)
    expected = -0.5 * np.mean(
        [unit(x[i : i + 1])[0] @ unit(centers[Y[i] : Y[i] + 1])[0] for i in range(7)]
    )
    np.testing.assert_allclose(cos(t64(x), l64(Y)).item(), expected, rtol=1e-12)


def test_configure_uses_the_callers_random_state():
    torch.manual_seed(3)
    a = CenterLoss().configure(5, 4).centers.detach().clone()
    torch.manual_seed(3)
    b = CenterLoss().configure(5, 4).centers.detach().clone()
    assert torch.equal(a, b)
    assert not torch.equal(a, CenterLoss().configure(5, 4).centers.detach())


# ------------------------------------------------------------------- TCM
def test_tcm_matches_numpy():
    x, y = X, Y
    got = TCMRegularizer(0.8, 0.1, 2.0, 0.5)(t64(x), l64(y)).item()
    expected = np_tcm(x, y, 0.8, 0.1, 2.0, 0.5)
    assert expected > 0
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # a mined triplet tuple: its distinct positive and negative pairs
    pos = sorted({(a, p) for a, p in zip(TRIPLETS[0].tolist(), TRIPLETS[1].tolist())})
    neg = sorted({(a, n) for a, n in zip(TRIPLETS[0].tolist(), TRIPLETS[2].tolist())})
    got = TCMRegularizer(0.8, 0.1, 2.0, 0.5)(t64(x), l64(y), TRIPLETS).item()
    np.testing.assert_allclose(got, np_tcm(x, y, 0.8, 0.1, 2.0, 0.5, (pos, neg)))


def test_tcm_gradcheck_and_zero_cases():
    x = t64(X, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda e: TCMRegularizer(0.8, 0.1, 2.0, 0.5)(e, l64(Y)), (x,)
    )
    # margins no pair violates: zero with zero gradient
    loss = TCMRegularizer(margin_plus=-1.5, margin_minus=1.5)
    assert_zero_value_with_zero_grad(loss(x, l64(Y)), [x])
    # one-class batch (no negatives) and all-distinct labels (no positives)
    for labels in ([0] * 7, list(range(7))):
        x = t64(X, requires_grad=True)
        value = TCMRegularizer()(x, l64(labels))
        np.testing.assert_allclose(value.item(), np_tcm(X, labels, 0.9, 0.5, 1, 1))
        value.backward()
        assert torch.isfinite(x.grad).all()
    x = t64(X[:1], requires_grad=True)
    assert_zero_value_with_zero_grad(TCMRegularizer()(x, l64([0])), [x])


def test_tcm_params_and_validation():
    reg = TCMRegularizer(margin_plus=0.7)
    assert (
        clone(reg).get_params()
        == reg.get_params()
        == {
            "lambda_minus": 1.0,
            "lambda_plus": 1.0,
            "margin_minus": 0.5,
            "margin_plus": 0.7,
        }
    )
    with pytest.raises(ValueError, match="'lambda_plus' parameter of TCMRegularizer"):
        TCMRegularizer(lambda_plus=-1)
    # added to a base loss with a weight, as documented
    x = t64(X, requires_grad=True)
    total = ContrastiveLoss()(x, l64(Y)) + 0.5 * TCMRegularizer()(x, l64(Y))
    total.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.pml
def test_tcm_matches_pml():
    from pytorch_metric_learning.losses import ThresholdConsistentMarginLoss

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (20,), generator=gen)
    for params in ({}, {"margin_plus": 0.3, "margin_minus": -0.1, "lambda_plus": 2.0}):
        ours_x = x.clone().requires_grad_(True)
        theirs_x = x.clone().requires_grad_(True)
        ours = TCMRegularizer(**params)(ours_x, labels)
        theirs = ThresholdConsistentMarginLoss(**params)(theirs_x, labels)
        ours.backward()
        theirs.backward()
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)
        np.testing.assert_allclose(ours_x.grad, theirs_x.grad, atol=1e-12)
    miner_tuple = BatchHardMiner()(x, labels)
    np.testing.assert_allclose(
        TCMRegularizer()(x, labels, miner_tuple).item(),
        ThresholdConsistentMarginLoss()(x, labels, miner_tuple).item(),
        rtol=1e-10,
    )
