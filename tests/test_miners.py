"""Miners against brute-force enumeration in NumPy."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn_dml.miners import (
    BatchEasyHardMiner,
    BatchHardMiner,
    DistanceWeightedMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    TripletMarginMiner,
)

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
    monkeypatch.setattr(miners, "_TRIPLET_CHUNK_CELLS", 60)  # 5 pairs a chunk
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
    with pytest.raises(
        ValueError, match="'type_of_triplets' parameter of TripletMarginMiner"
    ):
        miner.set_params(type_of_triplets="diagonal")
    assert miner.type_of_triplets == "hard"  # left unchanged
    ms = clone(MultiSimilarityMiner(epsilon=0.3))
    assert ms.epsilon == 0.3 and ms.distance is None
    with pytest.raises(ValueError, match="labels must be a 1-D tensor"):
        BatchHardMiner()(torch.tensor(X), torch.tensor(X))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pos_strategy": "hardest"}, "'pos_strategy' parameter of BatchEasyHardMiner"),
        (
            {"pos_strategy": "semihard", "neg_strategy": "semihard"},
            "'pos_strategy' and 'neg_strategy' parameters .* both be \"semihard\"",
        ),
        (
            {"pos_strategy": "all", "neg_strategy": "semihard"},
            '\'neg_strategy\' parameter .* "semihard" when the other side is "all"',
        ),
        ({"allowed_pos_range": (0.5, 0.1)}, "'allowed_pos_range' parameter .*low <="),
        ({"allowed_neg_range": (0.1,)}, "'allowed_neg_range' parameter"),
        ({"allowed_neg_range": (float("nan"), 1.0)}, "'allowed_neg_range' parameter"),
        ({"allowed_pos_range": "ab"}, "'allowed_pos_range' parameter"),
    ],
)
def test_batch_easy_hard_rejects_bad_parameters_when_built(params, message):
    with pytest.raises(ValueError, match=message):
        BatchEasyHardMiner(**params)
    miner = BatchEasyHardMiner()
    with pytest.raises(ValueError, match=message):
        miner.set_params(**params)
    assert miner.get_params() == BatchEasyHardMiner().get_params()


def test_batch_easy_hard_ranges_may_be_open_or_arrays():
    embeddings, labels = torch.tensor(X), torch.tensor(Y)
    open_range = BatchEasyHardMiner(allowed_pos_range=(-float("inf"), float("inf")))
    plain = BatchEasyHardMiner()
    for got, expected in zip(open_range(embeddings, labels), plain(embeddings, labels)):
        assert torch.equal(got, expected)
    BatchEasyHardMiner(allowed_neg_range=np.array([0.0, 1.5]))(embeddings, labels)


def test_triplet_margin_tie_at_zero_is_hard_not_semihard():
    # Positive and negative exactly equidistant from the anchor: t == 0.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1])
    hard = TripletMarginMiner(0.1, "hard")(x, labels)
    semihard = TripletMarginMiner(0.1, "semihard")(x, labels)
    assert (0, 1, 2) in _zip(*hard)
    assert (0, 1, 2) not in _zip(*semihard)


# ------------------------------------------- pair margin, easy/hard, weighted
@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("margins", [(0.2, 0.8), (0.9, 1.3), (0.3, -0.1)])
def test_pair_margin_matches_brute_force(kind, margins):
    pos_margin, neg_margin = margins
    m = np_matrix(X, kind)
    pos, neg = [], []
    for i in range(len(Y)):
        for j in range(len(Y)):
            if i == j:
                continue
            farther = m[i, j] > pos_margin if kind == "lp" else m[i, j] < pos_margin
            closer = m[i, j] < neg_margin if kind == "lp" else m[i, j] > neg_margin
            if Y[i] == Y[j] and farther:
                pos.append((i, j))
            if Y[i] != Y[j] and closer:
                neg.append((i, j))
    miner = PairMarginMiner(pos_margin, neg_margin, distance=DISTANCES[kind]())
    a1, p, a2, n = _run(miner)
    assert list(zip(a1.tolist(), p.tolist())) == pos  # row-major, as pml
    assert list(zip(a2.tolist(), n.tolist())) == neg


def np_easy_hard(m, labels, pos_s, neg_s):
    """Brute-force BatchEasyHardMiner on a distance-like matrix (small = close)."""
    size = len(labels)
    pos = {
        a: [j for j in range(size) if j != a and labels[j] == labels[a]]
        for a in range(size)
    }
    neg = {a: [j for j in range(size) if labels[j] != labels[a]] for a in range(size)}

    def pick(a, cands, strategy, positive, bound=None):
        if strategy == "semihard":
            keep = [
                j for j in cands if (m[a, j] < bound if positive else m[a, j] > bound)
            ]
            cands, strategy = keep, ("hard" if positive else "hard")
            if not cands:
                return None
            return (
                max(cands, key=lambda j: m[a, j])
                if positive
                else min(cands, key=lambda j: m[a, j])
            )
        if not cands:
            return None
        farthest = (strategy == "hard") if positive else (strategy == "easy")
        key = lambda j: m[a, j]  # noqa: E731
        return max(cands, key=key) if farthest else min(cands, key=key)

    first, second = [], []
    for a in range(size):
        if pos_s == "semihard":
            n = pick(a, neg[a], neg_s, False)
            p = None if n is None else pick(a, pos[a], "semihard", True, m[a, n])
        elif neg_s == "semihard":
            p = pick(a, pos[a], pos_s, True)
            n = None if p is None else pick(a, neg[a], "semihard", False, m[a, p])
        else:
            p = None if pos_s == "all" else pick(a, pos[a], pos_s, True)
            n = None if neg_s == "all" else pick(a, neg[a], neg_s, False)
        if pos_s == "all":
            first += [(a, j) for j in pos[a]]
        if neg_s == "all":
            second += [(a, j) for j in neg[a]]
        if pos_s != "all" and neg_s != "all":
            if p is not None and n is not None:
                first.append((a, p))
                second.append((a, n))
        elif pos_s != "all" and p is not None:
            first.append((a, p))
        elif neg_s != "all" and n is not None:
            second.append((a, n))
    return first, second


STRATEGIES = [
    ("easy", "semihard"),
    ("hard", "semihard"),
    ("semihard", "hard"),
    ("semihard", "easy"),
    ("easy", "hard"),
    ("hard", "easy"),
    ("all", "hard"),
    ("easy", "all"),
    ("all", "all"),
]


@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("strategies", STRATEGIES, ids="-".join)
def test_batch_easy_hard_matches_brute_force(kind, strategies):
    m = np_matrix(X, kind)
    expected = np_easy_hard(-closeness(m, kind), Y, *strategies)
    miner = BatchEasyHardMiner(*strategies, distance=DISTANCES[kind]())
    a1, p, a2, n = _run(miner)
    assert list(zip(a1.tolist(), p.tolist())) == expected[0]
    assert list(zip(a2.tolist(), n.tolist())) == expected[1]
    assert len(expected[0]) > 0 and len(expected[1]) > 0


def test_batch_easy_hard_allowed_ranges():
    m = np_matrix(X, "lp")
    low, high = 0.5, 1.5
    miner = BatchEasyHardMiner(
        "hard", "hard", allowed_pos_range=(low, high), allowed_neg_range=(low, high)
    )
    a1, p, a2, n = _run(miner)
    assert len(a1) > 0
    pairs = list(zip(a1.tolist(), p.tolist())) + list(zip(a2.tolist(), n.tolist()))
    assert all(low <= m[i, j] <= high for i, j in pairs)
    # the hardest candidate inside the range: nothing in range is harder
    for a, q in zip(a1.tolist(), p.tolist()):
        inside = [m[a, j] for j in range(len(Y)) if j != a and Y[j] == Y[a]]
        inside = [v for v in inside if low <= v <= high]
        assert m[a, q] == pytest.approx(max(inside))


@pytest.mark.parametrize("labels", [[0] * 6, list(range(6))])
def test_batch_easy_hard_without_positives_or_negatives(labels):
    a1, p, a2, n = _run(BatchEasyHardMiner(), X[:6], labels)
    assert all(t.numel() == 0 for t in (a1, p, a2, n))


def np_distance_weights(x, labels, cutoff, nonzero_cutoff):
    dist = np.maximum(np_matrix(x, "lp"), cutoff)
    dim = x.shape[1]
    out = np.zeros_like(dist)
    for a in range(len(labels)):
        w = np.zeros(len(labels))
        for j in range(len(labels)):
            if labels[j] != labels[a] and dist[a, j] < nonzero_cutoff:
                # q(d) = d^(dim-2) (1 - d^2/4)^((dim-3)/2); the weight is 1/q
                q = dist[a, j] ** (dim - 2) * (1 - dist[a, j] ** 2 / 4) ** (
                    (dim - 3) / 2
                )
                w[j] = 1.0 / q
        if w.sum() > 0:
            out[a] = w / w.sum()
    return out


def test_distance_weighted_weights_and_draws():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 6))
    miner = DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
    w = miner.weights(torch.tensor(x), torch.tensor(Y)).numpy()
    expected = np_distance_weights(x, Y, 0.5, 1.4)
    np.testing.assert_allclose(w, expected, rtol=1e-10, atol=1e-14)
    assert (expected.sum(1) > 0).sum() >= 8
    torch.manual_seed(0)
    a, p, n = _run(miner, x)
    y = np.array(Y)
    # every positive pair of a usable anchor, once, with a drawn negative
    usable = expected.sum(1) > 0
    pairs = [
        (i, j)
        for i in range(12)
        for j in range(12)
        if i != j and Y[i] == Y[j] and usable[i]
    ]
    assert list(zip(a.tolist(), p.tolist())) == pairs
    assert (y[n.numpy()] != y[a.numpy()]).all()
    assert (expected[a.numpy(), n.numpy()] > 0).all()


def test_distance_weighted_draw_frequencies_follow_the_weights():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2 + 5, 5))
    labels = [0] * 2 + [1] * 5  # anchor 0 has one positive and 5 negatives
    expected = np_distance_weights(x, labels, 0.5, 1.9)[0]
    miner = DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.9)
    torch.manual_seed(0)
    counts = np.zeros(len(labels))
    for _ in range(400):
        a, _, n = miner(torch.tensor(x), torch.tensor(labels))
        counts += np.bincount(n[a == 0].numpy(), minlength=len(labels))
    freq = counts / counts.sum()
    # 400 draws: a binomial standard deviation is at most 0.025
    np.testing.assert_allclose(freq, expected, atol=0.1)


def test_distance_weighted_rejects_other_distances():
    with pytest.raises(
        ValueError,
        match="'distance' parameter of DistanceWeightedMiner must be None or a "
        "LpDistance with p=2, power=1",
    ):
        DistanceWeightedMiner(distance=CosineSimilarity())
    # A nested change to the distance is checked against the miner's constraint.
    miner = DistanceWeightedMiner(distance=LpDistance())
    with pytest.raises(ValueError, match="'distance' parameter of DistanceWeighted"):
        miner.set_params(distance__power=2)
    assert miner.distance.power == 1


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_pair_and_easy_hard_miners_match_pml(seed):
    import pytorch_metric_learning.distances as pml_distances
    import pytorch_metric_learning.miners as pml_miners

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (20,), generator=gen)
    labels[-1] = 4  # a class of size one
    cases = [
        (PairMarginMiner(), pml_miners.PairMarginMiner()),
        (
            PairMarginMiner(0.7, 0.3, distance=CosineSimilarity()),
            pml_miners.PairMarginMiner(
                0.7, 0.3, distance=pml_distances.CosineSimilarity()
            ),
        ),
        *[
            (BatchEasyHardMiner(*s), pml_miners.BatchEasyHardMiner(*s))
            for s in STRATEGIES
            if "all" not in s
        ],
    ]
    for ours, theirs in cases:
        got = [t.tolist() for t in ours(x, labels)]
        want = [t.tolist() for t in theirs(x, labels)]
        assert sorted(zip(got[0], got[1])) == sorted(zip(want[0], want[1])), ours
        assert sorted(zip(got[2], got[3])) == sorted(zip(want[2], want[3])), ours
        assert len(got[0]) > 0
