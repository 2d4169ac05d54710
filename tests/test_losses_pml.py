"""Agreement with pytorch-metric-learning (pml) on random batches.

Every test carries the ``pml`` marker; run them with ``pytest -m pml`` once
the ``test`` extra (which holds pytorch-metric-learning) is installed. pml is
imported inside the tests so that collecting this file never needs it.

Known, deliberate differences (not tested here):

* ``BaseDistance.margin(x, y)`` is "how much closer x is than y", the
  negative of pml's ``margin``; the losses and miners are still equal.
* ``DotProductSimilarity`` does not normalise by default (pml does).
* ``LpDistance.pairwise`` is exactly the diagonal of the matrix; pml's
  ``pairwise_distance`` adds ``eps=1e-6`` to every difference.
* Triplets given to a pair loss become *distinct* pairs (pml repeats a pair
  once per triplet), and ``ContrastiveLoss`` scores a single pair (pml
  returns zero when every index tensor has at most one element).
"""

import numpy as np
import pytest
import torch

from sklearn_dml import distances, losses, miners

pytestmark = pytest.mark.pml


@pytest.fixture(scope="module")
def pml():
    import pytorch_metric_learning.distances
    import pytorch_metric_learning.losses
    import pytorch_metric_learning.miners

    return pytorch_metric_learning


def _batch(seed, n=16, d=5, n_classes=4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (n,), generator=gen)
    labels[-1] = n_classes  # a class of size one
    return x, labels


def _distance_pair(pml, name):
    ours = {
        "lp": distances.LpDistance(),
        "lp1_sq": distances.LpDistance(p=1, power=2),
        "cos": distances.CosineSimilarity(),
        "dot": distances.DotProductSimilarity(),
    }[name]
    theirs = {
        "lp": lambda: pml.distances.LpDistance(),
        "lp1_sq": lambda: pml.distances.LpDistance(p=1, power=2),
        "cos": lambda: pml.distances.CosineSimilarity(),
        "dot": lambda: pml.distances.DotProductSimilarity(normalize_embeddings=False),
    }[name]()
    return ours, theirs


def _value_and_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    value.backward()
    return value.item(), x.grad.numpy()


def _assert_same(ours, theirs, x, labels, indices_tuple=None):
    v1, g1 = _value_and_grad(ours, x, labels, indices_tuple)
    v2, g2 = _value_and_grad(theirs, x, labels, indices_tuple)
    assert v1 > 0
    np.testing.assert_allclose(v1, v2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", ["lp", "lp1_sq", "cos", "dot"])
def test_distances_match(pml, name):
    ours, theirs = _distance_pair(pml, name)
    x, _ = _batch(0)
    y, _ = _batch(1)
    np.testing.assert_allclose(ours(x, y).numpy(), theirs(x, y).numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), atol=1e-7)
    # pml's own pairwise_distance adds eps=1e-6 to the difference (it calls
    # torch.nn.functional.pairwise_distance); compare with its exact matrix.
    np.testing.assert_allclose(
        ours.pairwise(x, y).numpy(), torch.diagonal(theirs(x, y)).numpy(), rtol=1e-10
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dist", ["lp", "cos"])
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.2, 0.6)])
def test_contrastive(pml, seed, dist, margins):
    if dist == "cos":
        margins = (0.8, 0.1)
    x, labels = _batch(seed)
    ours, theirs = _distance_pair(pml, dist)
    _assert_same(
        losses.ContrastiveLoss(*margins, distance=ours),
        pml.losses.ContrastiveLoss(*margins, distance=theirs),
        x,
        labels,
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dist", ["lp", "cos"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("smooth", [False, True])
def test_triplet_margin(pml, seed, dist, swap, smooth):
    x, labels = _batch(seed)
    ours, theirs = _distance_pair(pml, dist)
    kwargs = {"margin": 0.1, "swap": swap, "smooth_loss": smooth}
    _assert_same(
        losses.TripletMarginLoss(**kwargs, distance=ours),
        pml.losses.TripletMarginLoss(**kwargs, distance=theirs),
        x,
        labels,
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dist", ["cos", "lp"])
@pytest.mark.parametrize("params", [(2.0, 50.0, 0.5), (1.0, 5.0, 0.1)])
def test_multi_similarity(pml, seed, dist, params):
    x, labels = _batch(seed)
    ours, theirs = _distance_pair(pml, dist)
    _assert_same(
        losses.MultiSimilarityLoss(*params, distance=ours),
        pml.losses.MultiSimilarityLoss(*params, distance=theirs),
        x,
        labels,
    )


def _miner_pairs(pml):
    return [
        (miners.BatchHardMiner(), pml.miners.BatchHardMiner()),
        (
            miners.BatchHardMiner(distance=distances.CosineSimilarity()),
            pml.miners.BatchHardMiner(distance=pml.distances.CosineSimilarity()),
        ),
        *[
            (
                miners.TripletMarginMiner(0.2, kind),
                pml.miners.TripletMarginMiner(0.2, type_of_triplets=kind),
            )
            for kind in ("all", "hard", "semihard", "easy")
        ],
        (
            miners.TripletMarginMiner(0.1, "semihard", distances.CosineSimilarity()),
            pml.miners.TripletMarginMiner(
                0.1, "semihard", distance=pml.distances.CosineSimilarity()
            ),
        ),
        (miners.MultiSimilarityMiner(0.1), pml.miners.MultiSimilarityMiner(0.1)),
        (
            miners.MultiSimilarityMiner(0.3, distance=distances.LpDistance()),
            pml.miners.MultiSimilarityMiner(0.3, distance=pml.distances.LpDistance()),
        ),
    ]


def _as_sets(indices_tuple):
    lists = [t.tolist() for t in indices_tuple]
    if len(lists) == 3:
        return [set(zip(*lists))]
    return [set(zip(lists[0], lists[1])), set(zip(lists[2], lists[3]))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miners_and_losses_on_mined_tuples(pml, seed):
    x, labels = _batch(seed, n=20)
    loss_pairs = [
        (losses.ContrastiveLoss(0.1, 0.7), pml.losses.ContrastiveLoss(0.1, 0.7)),
        (losses.TripletMarginLoss(0.3), pml.losses.TripletMarginLoss(0.3)),
        (losses.MultiSimilarityLoss(), pml.losses.MultiSimilarityLoss()),
    ]
    n_nonempty = 0
    for ours, theirs in _miner_pairs(pml):
        mined = ours(x, labels)
        assert _as_sets(mined) == _as_sets(theirs(x, labels))
        if all(len(t) > 1 for t in mined):
            n_nonempty += 1
            for our_loss, their_loss in loss_pairs:
                if len(mined) == 3 and isinstance(our_loss, losses.ContrastiveLoss):
                    continue  # pml repeats pairs from triplets; we deduplicate
                _assert_same(our_loss, their_loss, x, labels, mined)
    assert n_nonempty >= 5
