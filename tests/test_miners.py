"""Miners against brute-force enumeration in NumPy."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn_dml.miners import BatchHardMiner, MultiSimilarityMiner, TripletMarginMiner

RNG = np.random.default_rng(42)
X = RNG.normal(size=(12, 3))
Y = [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4]  # class 4 is a single sample


def np_matrix(x, kind):
    unit = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    n = len(x)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if kind == "lp":
                out[i, j] = np.sqrt(np.sum((unit[i] - unit[j]) ** 2))
            else:
                out[i, j] = np.dot(unit[i], unit[j])
    return out


def closeness(m, kind):
    """Larger = closer, whatever the kind."""
    return -m if kind == "lp" else m


DISTANCES = {"lp": LpDistance, "cos": CosineSimilarity}


def _run(miner, x=X, labels=Y):
    out = miner(torch.tensor(x), torch.tensor(labels))
    for t in out:
        assert t.dtype == torch.long and not t.requires_grad
    return out


def _zip(*tensors):
    return sorted(zip(*(t.tolist() for t in tensors)))


@pytest.mark.parametrize("kind", ["lp", "cos"])
def test_batch_hard_matches_brute_force(kind):
    close = closeness(np_matrix(X, kind), kind)
    expected = []
    for a in range(len(Y)):
        pos = [p for p in range(len(Y)) if p != a and Y[p] == Y[a]]
        neg = [n for n in range(len(Y)) if Y[n] != Y[a]]
        if pos and neg:
            hardest_p = min(pos, key=lambda p: close[a, p])
            hardest_n = max(neg, key=lambda n: close[a, n])
            expected.append((a, hardest_p, hardest_n))
    a, p, n = _run(BatchHardMiner(distance=DISTANCES[kind]()))
    assert list(zip(a.tolist(), p.tolist(), n.tolist())) == expected
    assert 11 not in a.tolist()  # the singleton has no positive


def test_batch_hard_drops_anchors_without_negatives_or_positives():
    a, p, n = _run(BatchHardMiner(), X[:5], [0, 0, 0, 0, 0])
    assert a.numel() == p.numel() == n.numel() == 0
    a, p, n = _run(BatchHardMiner(), X[:4], [0, 1, 2, 3])
    assert a.numel() == 0


@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("type_of_triplets", ["all", "hard", "semihard", "easy"])
@pytest.mark.parametrize("margin", [0.2, 0.5])
def test_triplet_margin_matches_brute_force(kind, type_of_triplets, margin):
    close = closeness(np_matrix(X, kind), kind)
    expected = []
    for a in range(len(Y)):
        for p in range(len(Y)):
            for n in range(len(Y)):
                if p == a or Y[p] != Y[a] or Y[n] == Y[a]:
                    continue
                t = close[a, p] - close[a, n]  # how much closer p is than n
                keep = {
                    "all": t <= margin,
                    "hard": t <= margin and t <= 0,
                    "semihard": 0 < t <= margin,
                    "easy": t > margin,
                }[type_of_triplets]
                if keep:
                    expected.append((a, p, n))
    assert len(expected) > 0
    miner = TripletMarginMiner(margin, type_of_triplets, distance=DISTANCES[kind]())
    assert _zip(*_run(miner)) == expected


def test_triplet_margin_types_partition_all_triplets():
    found = {
        t: set(_zip(*_run(TripletMarginMiner(0.3, t))))
        for t in ("all", "hard", "semihard", "easy")
    }
    assert found["hard"] | found["semihard"] == found["all"]
    assert not found["hard"] & found["semihard"]
    assert not found["all"] & found["easy"]
    n_triplets = sum(
        (Y.count(c) - 1) * Y.count(c) * (len(Y) - Y.count(c)) for c in set(Y)
    )
    assert len(found["all"]) + len(found["easy"]) == n_triplets


def test_triplet_margin_chunks(monkeypatch):
    from sklearn_dml import miners

    expected = _zip(*_run(TripletMarginMiner(0.3)))
    monkeypatch.setattr(miners, "_TRIPLET_CHUNK_CELLS", 300)  # 2 anchors a chunk
    assert _zip(*_run(TripletMarginMiner(0.3))) == expected


@pytest.mark.parametrize(
    "kind, distance", [("cos", None), ("lp", LpDistance()), ("cos", CosineSimilarity())]
)
@pytest.mark.parametrize("epsilon", [0.1, 0.4])
def test_multi_similarity_matches_brute_force(kind, distance, epsilon):
    close = closeness(np_matrix(X, kind), kind)
    exp_pos, exp_neg = [], []
    for a in range(len(Y)):
        pos = [p for p in range(len(Y)) if p != a and Y[p] == Y[a]]
        neg = [n for n in range(len(Y)) if Y[n] != Y[a]]
        if not pos or not neg:
            continue
        least_close_pos = min(close[a, p] for p in pos)
        most_close_neg = max(close[a, n] for n in neg)
        exp_pos += [(a, p) for p in pos if close[a, p] - epsilon < most_close_neg]
        exp_neg += [(a, n) for n in neg if close[a, n] + epsilon > least_close_pos]
    assert exp_pos and exp_neg
    a1, p, a2, n = _run(MultiSimilarityMiner(epsilon, distance=distance))
    assert _zip(a1, p) == sorted(exp_pos)
    assert _zip(a2, n) == sorted(exp_neg)


def test_multi_similarity_without_pairs():
    a1, p, a2, n = _run(MultiSimilarityMiner(), X[:4], [0, 1, 2, 3])
    assert a1.numel() == p.numel() == a2.numel() == n.numel() == 0
    a1, p, a2, n = _run(MultiSimilarityMiner(), X[:4], [0, 0, 0, 0])
    assert a1.numel() == a2.numel() == 0


def test_mining_does_not_track_gradients():
    x = torch.tensor(X, requires_grad=True)
    for miner in (BatchHardMiner(), TripletMarginMiner(), MultiSimilarityMiner()):
        out = miner(x, torch.tensor(Y))
        assert all(t.grad_fn is None for t in out)
    assert x.grad is None


def test_dot_product_is_treated_as_similarity():
    # The largest dot product is the closest negative.
    x = torch.tensor([[1.0, 0.0], [0.5, 0.1], [3.0, 0.0], [0.0, 1.0]])
    miner = BatchHardMiner(distance=DotProductSimilarity())
    a, p, n = miner(x, torch.tensor([0, 0, 1, 1]))
    assert list(zip(a.tolist(), p.tolist(), n.tolist())) == [
        (0, 1, 2),
        (1, 0, 2),
        (2, 3, 0),
        (3, 2, 1),
    ]


def test_params_clone_and_validation():
    miner = TripletMarginMiner(
        margin=0.1, type_of_triplets="hard", distance=LpDistance(p=1)
    )
    copy = clone(miner)
    assert copy is not miner and copy.distance is not miner.distance
    assert copy.get_params() == {**miner.get_params(), "distance": copy.distance}
    assert copy.get_params()["distance__p"] == 1
    miner.set_params(type_of_triplets="diagonal")
    with pytest.raises(ValueError, match="type_of_triplets must be one of"):
        miner(torch.tensor(X), torch.tensor(Y))
    ms = clone(MultiSimilarityMiner(epsilon=0.3))
    assert ms.epsilon == 0.3 and ms.distance is None
    with pytest.raises(ValueError, match="labels must be a 1-D tensor"):
        BatchHardMiner()(torch.tensor(X), torch.tensor(X))


def test_triplet_margin_tie_at_zero_is_hard_not_semihard():
    # Positive and negative exactly equidistant from the anchor: t == 0.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1])
    hard = TripletMarginMiner(0.1, "hard")(x, labels)
    semihard = TripletMarginMiner(0.1, "semihard")(x, labels)
    assert (0, 1, 2) in _zip(*hard)
    assert (0, 1, 2) not in _zip(*semihard)
