"""Losses against plain NumPy loops on small hand-built batches."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml._tuples import get_all_pairs_indices, get_all_triplets_indices
from sklearn_dml.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn_dml.losses import (
    ContrastiveLoss,
    MultiSimilarityLoss,
    TripletMarginLoss,
    _pair,
)
from sklearn_dml.miners import BatchHardMiner, MultiSimilarityMiner, TripletMarginMiner

# A hand-built batch: three classes, the last one a single sample.
X = np.array(
    [
        [1.0, 0.2, -0.1],
        [0.8, 0.5, 0.3],
        [0.9, -0.4, 0.2],
        [-0.2, 1.0, 0.4],
        [0.1, 0.7, -0.6],
        [-0.5, 0.3, 1.0],
        [0.4, 0.4, 0.4],
    ]
)
Y = [0, 0, 0, 1, 1, 2, 1]
Y_SINGLETON = [0, 0, 1, 1, 2, 2, 3]  # class 3 has one sample


# ---------------------------------------------------------------- references
def np_matrix(x, kind):
    """Pairwise comparison with explicit loops: "lp" = Euclidean of unit rows."""
    unit = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    n = len(x)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if kind == "lp":
                out[i, j] = np.sqrt(np.sum((unit[i] - unit[j]) ** 2))
            elif kind == "cos":
                out[i, j] = np.dot(unit[i], unit[j])
            else:  # raw dot product
                out[i, j] = np.dot(x[i], x[j])
    return out


def np_all_pairs(labels):
    n = len(labels)
    pos, neg = [], []
    for i in range(n):
        for j in range(n):
            if labels[i] != labels[j]:
                neg.append((i, j))
            elif i != j:
                pos.append((i, j))
    return pos, neg


def np_all_triplets(labels):
    n = len(labels)
    return [
        (a, p, q)
        for a in range(n)
        for p in range(n)
        for q in range(n)
        if a != p and labels[a] == labels[p] and labels[a] != labels[q]
    ]


def np_pairs_from_tuple(tup):
    """Pairs from a pairs/triplets index tuple, triplets reduced to unique pairs."""
    lists = [t.tolist() for t in tup]
    if len(lists) == 4:
        return list(zip(lists[0], lists[1])), list(zip(lists[2], lists[3]))
    a, p, n = lists
    return sorted(set(zip(a, p))), sorted(set(zip(a, n)))


def np_triplets_from_tuple(tup):
    lists = [t.tolist() for t in tup]
    if len(lists) == 3:
        return list(zip(*lists))
    pos = list(zip(lists[0], lists[1]))
    neg = list(zip(lists[2], lists[3]))
    return [(a, p, n) for a, p in pos for b, n in neg if a == b]


def mean_nonzero(values):
    nonzero = [v for v in values if v > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def np_contrastive(x, labels, pos_margin, neg_margin, kind="lp", pairs=None):
    m = np_matrix(x, kind)
    pos, neg = np_all_pairs(labels) if pairs is None else pairs
    if kind == "lp":
        pos_args = [m[i, j] - pos_margin for i, j in pos]
        neg_args = [neg_margin - m[i, j] for i, j in neg]
    else:
        pos_args = [pos_margin - m[i, j] for i, j in pos]
        neg_args = [m[i, j] - neg_margin for i, j in neg]
    value = mean_nonzero([max(0.0, v) for v in pos_args]) + mean_nonzero(
        [max(0.0, v) for v in neg_args]
    )
    return value, pos_args + neg_args


def np_triplet(x, labels, margin, swap=False, smooth=False, kind="lp", triplets=None):
    m = np_matrix(x, kind)
    triplets = np_all_triplets(labels) if triplets is None else triplets
    args = []
    for a, p, n in triplets:
        ap, an, pn = m[a, p], m[a, n], m[p, n]
        if kind == "lp":
            if swap:
                an = min(an, pn)
            args.append(ap - an + margin)
        else:
            if swap:
                an = max(an, pn)
            args.append(an - ap + margin)
    if smooth:
        terms = [np.log1p(np.exp(v)) for v in args]
    else:
        terms = [max(0.0, v) for v in args]
    return mean_nonzero(terms), args


def np_multi_similarity(x, labels, alpha, beta, base, kind="cos", pairs=None):
    m = np_matrix(x, kind)
    pos, neg = np_all_pairs(labels) if pairs is None else pairs
    pos, neg = set(pos), set(neg)
    total = 0.0
    for i in range(len(x)):
        pos_sum, neg_sum = 0.0, 0.0
        for j in range(len(x)):
            # exponents are written for a similarity; a distance flips the sign
            s = -m[i, j] if kind == "lp" else m[i, j]
            b = -base if kind == "lp" else base
            if (i, j) in pos:
                pos_sum += np.exp(-alpha * (s - b))
            if (i, j) in neg:
                neg_sum += np.exp(beta * (s - b))
        total += np.log(1 + pos_sum) / alpha + np.log(1 + neg_sum) / beta
    return total / len(x)


def _t(x=X, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _l(labels):
    return torch.tensor(labels, dtype=torch.long)


DISTANCES = {"lp": LpDistance, "cos": CosineSimilarity}


# ------------------------------------------------------------ values vs NumPy
@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.3, 0.8)])
def test_contrastive_matches_numpy(kind, labels, margins):
    if kind == "cos":
        margins = (0.9, 0.2)
    loss = ContrastiveLoss(*margins, distance=DISTANCES[kind]())
    expected, _ = np_contrastive(X, labels, *margins, kind=kind)
    assert expected > 0
    np.testing.assert_allclose(loss(_t(), _l(labels)).item(), expected, rtol=1e-10)


@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("smooth", [False, True])
def test_triplet_matches_numpy(kind, labels, swap, smooth):
    loss = TripletMarginLoss(
        margin=0.2, swap=swap, smooth_loss=smooth, distance=DISTANCES[kind]()
    )
    expected, _ = np_triplet(X, labels, 0.2, swap=swap, smooth=smooth, kind=kind)
    assert expected > 0
    np.testing.assert_allclose(loss(_t(), _l(labels)).item(), expected, rtol=1e-10)


def test_triplet_swap_changes_the_value():
    # Guard: the batch has triplets where d_pn < d_an, so swap is exercised.
    a, _ = np_triplet(X, Y, 0.2, swap=False)
    b, _ = np_triplet(X, Y, 0.2, swap=True)
    assert abs(a - b) > 1e-3


@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("params", [(2.0, 50.0, 0.5), (1.0, 3.0, 0.2)])
def test_multi_similarity_matches_numpy(labels, params):
    expected = np_multi_similarity(X, labels, *params)
    got = MultiSimilarityLoss(*params)(_t(), _l(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_multi_similarity_with_a_distance_and_dot_product():
    expected = np_multi_similarity(X, Y, 2.0, 5.0, 0.8, kind="lp")
    got = MultiSimilarityLoss(2.0, 5.0, 0.8, distance=LpDistance())(_t(), _l(Y))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)
    expected = np_multi_similarity(X, Y, 2.0, 5.0, 0.8, kind="dot")
    loss = MultiSimilarityLoss(2.0, 5.0, 0.8, distance=DotProductSimilarity())
    got = loss(_t(), _l(Y))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


def test_multi_similarity_is_stable_for_large_beta():
    x = _t(X * 100, requires_grad=True)
    loss = MultiSimilarityLoss(alpha=50.0, beta=5000.0, base=-0.9)(x, _l(Y))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_triplet_dense_chunks_agree_with_indexed(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    labels = _l(rng.integers(0, 4, size=20))
    loss = TripletMarginLoss(margin=0.3, swap=True)
    indexed = loss(_t(x), labels, get_all_triplets_indices(labels))
    monkeypatch.setattr(_pair, "_TRIPLET_CHUNK_CELLS", 100)  # 5 pairs a chunk
    dense = loss(_t(x), labels)
    np.testing.assert_allclose(dense.item(), indexed.item(), rtol=1e-12)
    expected, _ = np_triplet(x, labels.tolist(), 0.3, swap=True)
    np.testing.assert_allclose(dense.item(), expected, rtol=1e-10)


# -------------------------------------------------------------- gradients
def _away_from_kinks(args, tol=1e-3):
    return min(abs(v) for v in args) > tol


GRAD_CASES = [
    ("contrastive", ContrastiveLoss(0.3, 0.8), Y),
    (
        "contrastive",
        ContrastiveLoss(0.9, 0.2, distance=CosineSimilarity()),
        Y_SINGLETON,
    ),
    ("triplet", TripletMarginLoss(margin=0.2), Y),
    ("triplet", TripletMarginLoss(margin=0.2, swap=True), Y_SINGLETON),
    ("triplet", TripletMarginLoss(margin=0.1, distance=CosineSimilarity()), Y),
    ("triplet", TripletMarginLoss(margin=0.2, smooth_loss=True), Y),
    ("ms", MultiSimilarityLoss(), Y),
    ("ms", MultiSimilarityLoss(1.0, 3.0, 0.2, distance=LpDistance()), Y_SINGLETON),
]


@pytest.mark.parametrize("name, loss, labels", GRAD_CASES)
def test_gradcheck(name, loss, labels):
    kind = "cos" if isinstance(loss.distance, CosineSimilarity) else "lp"
    if name == "contrastive":
        _, args = np_contrastive(X, labels, loss.pos_margin, loss.neg_margin, kind)
        assert _away_from_kinks(args)
    elif name == "triplet":
        _, args = np_triplet(X, labels, loss.margin, loss.swap, kind=kind)
        assert _away_from_kinks(args)
    x = _t(requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, _l(labels)), (x,))


@pytest.mark.parametrize(
    "loss", [ContrastiveLoss(0.3, 0.8), TripletMarginLoss(0.2), MultiSimilarityLoss()]
)
def test_gradcheck_with_mined_tuples(loss):
    x = _t(requires_grad=True)
    labels = _l(Y)
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    triplets = TripletMarginMiner(margin=0.3)(x, labels)
    assert len(pairs[0]) > 0 and len(pairs[2]) > 0 and len(triplets[0]) > 0
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, pairs), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, triplets), (x,))


# ---------------------------------------------------------- edge cases
def _assert_zero_with_zero_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    assert value.ndim == 0 and value.requires_grad
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad) == 0


ALL_LOSSES = [ContrastiveLoss(), TripletMarginLoss(), MultiSimilarityLoss()]


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_single_sample_batch_gives_zero(loss):
    _assert_zero_with_zero_grad(loss, _t(X[:1]), _l([3]))


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_empty_indices_tuple_gives_zero(loss):
    empty = torch.zeros(0, dtype=torch.long)
    _assert_zero_with_zero_grad(loss, _t(), _l(Y), (empty, empty, empty))
    _assert_zero_with_zero_grad(loss, _t(), _l(Y), (empty, empty, empty, empty))


@pytest.mark.parametrize("labels", [[0] * 7, list(range(7))])
def test_triplet_without_positives_or_negatives_gives_zero(labels):
    for loss in (TripletMarginLoss(), TripletMarginLoss(swap=True, smooth_loss=True)):
        _assert_zero_with_zero_grad(loss, _t(), _l(labels))


def test_inactive_terms_give_zero():
    # Every positive pair within pos_margin, every negative beyond neg_margin.
    _assert_zero_with_zero_grad(ContrastiveLoss(2.0, 0.0), _t(), _l(Y))
    # Every triplet satisfied by a negative margin.
    _assert_zero_with_zero_grad(TripletMarginLoss(margin=-2.1), _t(), _l(Y))


def test_zero_loss_keeps_float32_graph():
    x = torch.tensor(X[:1], dtype=torch.float32, requires_grad=True)
    value = TripletMarginLoss()(x, _l([0]))
    assert value.dtype == torch.float32 and value.grad_fn is not None


# ------------------------------------------------- indices tuples and miners
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_all_tuples_given_equal_none(loss):
    # No singleton class: every anchor has a positive, so all triplets cover
    # all pairs too.
    labels = _l([0, 0, 0, 1, 1, 2, 2])
    expected = loss(_t(), labels).item()
    for tup in (get_all_pairs_indices(labels), get_all_triplets_indices(labels)):
        np.testing.assert_allclose(loss(_t(), labels, tup).item(), expected, rtol=1e-12)


def test_indices_tuple_restricts_the_loss():
    labels = _l(Y)
    triplets = (torch.tensor([0, 3]), torch.tensor([2, 6]), torch.tensor([5, 1]))
    expected, _ = np_triplet(X, Y, 0.5, triplets=[(0, 2, 5), (3, 6, 1)])
    got = TripletMarginLoss(0.5)(_t(), labels, triplets).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert not np.isclose(got, TripletMarginLoss(0.5)(_t(), labels).item())


MINERS = [
    BatchHardMiner(),
    TripletMarginMiner(margin=0.3, type_of_triplets="all"),
    TripletMarginMiner(margin=0.3, type_of_triplets="semihard"),
    MultiSimilarityMiner(epsilon=0.2),
]


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
def test_losses_accept_every_miner(miner, labels):
    x, lab = _t(), _l(labels)
    tup = miner(x, lab)
    pairs = np_pairs_from_tuple(tup)
    triplets = np_triplets_from_tuple(tup)
    assert len(triplets) > 0

    got = ContrastiveLoss(0.3, 0.8)(x, lab, tup).item()
    expected, _ = np_contrastive(X, labels, 0.3, 0.8, pairs=pairs)
    np.testing.assert_allclose(got, expected, rtol=1e-10)

    got = TripletMarginLoss(0.4)(x, lab, tup).item()
    expected, _ = np_triplet(X, labels, 0.4, triplets=triplets)
    np.testing.assert_allclose(got, expected, rtol=1e-10)

    got = MultiSimilarityLoss()(x, lab, tup).item()
    expected = np_multi_similarity(X, labels, 2.0, 50.0, 0.5, pairs=pairs)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# --------------------------------------------------------- params and clone
def test_params_clone_round_trip():
    loss = TripletMarginLoss(margin=0.3, swap=True, distance=CosineSimilarity())
    params = loss.get_params(deep=False)
    assert params["margin"] == 0.3 and params["swap"] is True
    assert params["smooth_loss"] is False
    copy = clone(loss)
    assert copy is not loss and type(copy) is TripletMarginLoss
    assert copy.distance is not loss.distance
    assert isinstance(copy.distance, CosineSimilarity)
    shallow = {k: v for k, v in copy.get_params(deep=False).items() if k != "distance"}
    assert shallow == {k: v for k, v in params.items() if k != "distance"}
    np.testing.assert_allclose(copy(_t(), _l(Y)).item(), loss(_t(), _l(Y)).item())

    assert loss.set_params(margin=0.1, distance=LpDistance(p=1)) is loss
    assert loss.margin == 0.1 and copy.margin == 0.3
    loss.set_params(distance__p=2)
    assert loss.distance.p == 2 and loss.get_params()["distance__p"] == 2
    expected, _ = np_triplet(X, Y, 0.1, swap=True, kind="lp")
    np.testing.assert_allclose(loss(_t(), _l(Y)).item(), expected, rtol=1e-10)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_default_params_clone(loss):
    copy = clone(loss)
    assert copy is not loss and copy.get_params() == loss.get_params()
    assert copy.distance is None
    assert list(copy.parameters()) == []


def test_input_validation_messages():
    loss = TripletMarginLoss()
    with pytest.raises(ValueError, match="embeddings must be a 2-D tensor"):
        loss(torch.zeros(3), _l([0, 0, 1]))
    with pytest.raises(ValueError, match="labels must be a 1-D tensor"):
        loss(torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="embeddings has 3 rows but labels has 2"):
        loss(torch.zeros(3, 2), _l([0, 1]))
    with pytest.raises(ValueError, match="got a tuple of length 2"):
        loss(_t(), _l(Y), (torch.tensor([0]), torch.tensor([1])))


# ------------------------------------------------ one class, all singletons
@pytest.mark.parametrize("labels", [[0] * 7, list(range(7))], ids=["one", "singletons"])
def test_pair_losses_with_one_side_missing_match_numpy(labels):
    # One class: positive pairs only; all singletons: negative pairs only. The
    # missing part adds 0 and the gradient stays finite.
    expected, _ = np_contrastive(X, labels, 0.3, 1.5)
    expected_ms = np_multi_similarity(X, labels, 2.0, 5.0, 0.5)
    for loss, want in [
        (ContrastiveLoss(0.3, 1.5), expected),
        (MultiSimilarityLoss(2.0, 5.0, 0.5), expected_ms),
    ]:
        x = _t(requires_grad=True)
        value = loss(x, _l(labels))
        value.backward()
        assert want > 0
        np.testing.assert_allclose(value.item(), want, rtol=1e-10)
        assert torch.isfinite(x.grad).all() and torch.count_nonzero(x.grad) > 0


@pytest.mark.parametrize(
    "loss",
    [
        ContrastiveLoss(),
        TripletMarginLoss(margin=1.0),
        TripletMarginLoss(margin=1.0, swap=True),
        MultiSimilarityLoss(),
    ],
)
def test_duplicate_embeddings_give_finite_gradients(loss):
    # Identical rows: zero distances, where a plain square root has an
    # infinite derivative.
    x = np.repeat(X[:3], 2, axis=0)
    xt = _t(x, requires_grad=True)
    value = loss(xt, _l([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(xt.grad).all()
