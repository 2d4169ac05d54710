"""Batch-softmax losses (``losses._batch_softmax``): N-pairs and NCA against NumPy and pml."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from sklearn_dml._tuples import get_all_pairs_indices
from sklearn_dml.distances import CosineSimilarity, LpDistance
from sklearn_dml.losses._batch_softmax import NCALoss, NPairsLoss
from sklearn_dml.miners import MultiSimilarityMiner

from .loss_references import (
    X_TILTED,
    Y_SINGLETON,
    X,
    Y,
    assert_zero_with_zero_grad,
    l64,
    np_weights,
    random_labels_batch,
    t64,
    unit,
    value_and_grads,
)


def np_nca(x, labels, scale, kind="lp2", w=None):
    n = len(x)
    w = np.ones(n) if w is None else w
    total, count = 0.0, 0
    for i in range(n):
        logits, positive = [], []
        for j in range(n):
            if j == i:
                continue
            if kind == "lp2":
                value = -scale * np.sum((unit(x[i]) - unit(x[j])) ** 2)
            else:  # cosine
                value = scale * np.dot(unit(x[i]), unit(x[j]))
            logits.append(value)
            positive.append(labels[j] == labels[i])
        if not any(positive):
            continue
        logits = np.array(logits)
        pos_logits = logits[np.array(positive)]
        total += w[i] * (logsumexp(logits) - logsumexp(pos_logits))
        count += 1
    return total / count if count else 0.0


# ----------------------------------------------------------------- N-pairs
def test_npairs_with_one_class_is_zero():
    # One pair, one class: the softmax over a single logit is certain.
    assert_zero_with_zero_grad(NPairsLoss(), t64(X_TILTED), l64([1] * 7))


def test_npairs_picks_the_same_pairs_whatever_the_tuple_order():
    # The lowest (anchor, positive) pair of each class in row-major order:
    # for the full batch, the first and second sample of the class.
    labels = l64([2, 0, 1, 0, 2, 1, 0, 3])
    x = t64(np.random.default_rng(5).normal(size=(8, 3)))
    a1, p, a2, n = get_all_pairs_indices(labels)
    order = torch.randperm(a1.shape[0], generator=torch.Generator().manual_seed(0))
    shuffled = (a1[order], p[order], a2, n)
    expected = NPairsLoss()(x, labels).item()
    assert NPairsLoss()(x, labels, shuffled).item() == pytest.approx(
        expected, rel=1e-12
    )
    # independent: classes 0, 1, 2 give pairs (1, 3), (2, 5), (0, 4)
    xa, xp = x.numpy()[[1, 2, 0]], x.numpy()[[3, 5, 4]]
    logits = xa @ xp.T
    logits = logits - logits.max(1, keepdims=True)
    log_prob = np.diag(logits) - np.log(np.exp(logits).sum(1))
    assert expected == pytest.approx(-log_prob.mean(), rel=1e-10)


# --------------------------------------------------------------------- NCA
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_nca_matches_numpy(labels, scale):
    expected = np_nca(X, labels, scale)
    assert expected > 0
    got = NCALoss(softmax_scale=scale)(t64(X), l64(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    expected = np_nca(X, labels, scale, kind="cos")
    got = NCALoss(scale, distance=CosineSimilarity())(t64(X), l64(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_nca_with_unnormalised_squared_distance_and_weights():
    # Raw squared Euclidean distance (no normalisation), mined weights.
    distance = LpDistance(power=2, normalize_embeddings=False)
    pairs = MultiSimilarityMiner(epsilon=0.3)(t64(X), l64(Y))
    w = np_weights(pairs, len(X))
    n = len(X)
    total, count = 0.0, 0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        logits = np.array([-np.sum((X[i] - X[j]) ** 2) for j in others])
        pos = np.array([Y[j] == Y[i] for j in others])
        if pos.any():
            total += w[i] * (logsumexp(logits) - logsumexp(logits[pos]))
            count += 1
    got = NCALoss(distance=distance)(t64(X), l64(Y), pairs).item()
    np.testing.assert_allclose(got, total / count, rtol=1e-10)


def test_nca_is_finite_when_the_positive_mass_underflows():
    # Scale 100 on squared distances of unit vectors: exp(-400) underflows.
    x = np.array([[1.0, 0.0], [-1.0, 0.01], [0.0, 1.0], [0.01, -1.0]])
    labels = [0, 0, 1, 1]
    xt = t64(x, requires_grad=True)
    value = NCALoss(softmax_scale=100.0)(xt, l64(labels))
    value.backward()
    np.testing.assert_allclose(value.item(), np_nca(x, labels, 100.0), rtol=1e-10)
    assert value.item() > 100
    assert torch.isfinite(xt.grad).all() and xt.grad.abs().sum() > 0
    x32 = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    value32 = NCALoss(softmax_scale=30.0)(x32, l64(labels))
    value32.backward()
    np.testing.assert_allclose(value32.item(), np_nca(x, labels, 30.0), rtol=1e-4)
    assert torch.isfinite(x32.grad).all()


@pytest.mark.parametrize("distance", [None, CosineSimilarity()])
def test_gradcheck_nca(distance):
    loss = NCALoss(softmax_scale=2.0, distance=distance)
    x = t64(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, l64(Y_SINGLETON)), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(e, l64(Y)), (x,), fast_mode=True)


@pytest.mark.parametrize("labels", [[0] * 7, list(range(7)), [5]])
def test_nca_without_positives_or_negatives(labels):
    x = t64(X[: len(labels)])
    assert_zero_with_zero_grad(NCALoss(), x, l64(labels))
    assert_zero_with_zero_grad(NCALoss(distance=CosineSimilarity()), x, l64(labels))


def test_nca_empty_indices_tuple_gives_zero():
    empty = torch.zeros(0, dtype=torch.long)
    assert_zero_with_zero_grad(NCALoss(), t64(X), l64(Y), (empty, empty, empty))


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_nca_matches_pml(seed, scale):
    import pytorch_metric_learning.distances as pml_distances
    import pytorch_metric_learning.losses as pml_losses

    x, labels = random_labels_batch(seed)
    for ours, theirs in (
        (NCALoss(scale), pml_losses.NCALoss(softmax_scale=scale)),
        (
            NCALoss(scale, distance=CosineSimilarity()),
            pml_losses.NCALoss(
                softmax_scale=scale, distance=pml_distances.CosineSimilarity()
            ),
        ),
    ):
        v1, g1, _ = value_and_grads(ours, x, labels)
        v2, g2, _ = value_and_grads(theirs, x, labels)
        assert v1 > 0
        np.testing.assert_allclose(v1, v2, rtol=1e-9)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)
