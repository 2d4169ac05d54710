"""Pair and triplet losses (``losses._pair``) against NumPy loops, miners and pml."""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml._tuples import get_all_triplets_indices
from sklearn_dml.distances import (
    CosineSimilarity,
    DotProductSimilarity,
    LpDistance,
    SNRDistance,
)
from sklearn_dml.losses import _pair
from sklearn_dml.losses._pair import (
    AngularLoss,
    CircleLoss,
    ContrastiveLoss,
    MarginLoss,
    MultiSimilarityLoss,
    TripletMarginLoss,
    TupletMarginLoss,
)
from sklearn_dml.miners import BatchHardMiner, MultiSimilarityMiner, TripletMarginMiner

from .loss_references import (
    X_TILTED,
    Y_SINGLETON,
    X,
    Y,
    assert_same,
    assert_zero_with_zero_grad,
    balanced_batch,
    configured,
    import_pml,
    l64,
    mean_nonzero,
    np_angular,
    np_circle,
    np_margin,
    np_matrix,
    t64,
)


# ---------------------------------------------------------------- references
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


DISTANCES = {"lp": LpDistance, "cos": CosineSimilarity}


@pytest.fixture(scope="module")
def pml():
    return import_pml()


# ------------------------------------ contrastive, triplet and multi-similarity
@pytest.mark.parametrize("kind", ["lp", "cos"])
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.3, 0.8)])
def test_contrastive_matches_numpy(kind, labels, margins):
    if kind == "cos":
        margins = (0.9, 0.2)
    loss = ContrastiveLoss(*margins, distance=DISTANCES[kind]())
    expected, _ = np_contrastive(X, labels, *margins, kind=kind)
    assert expected > 0
    np.testing.assert_allclose(loss(t64(X), l64(labels)).item(), expected, rtol=1e-10)


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
    np.testing.assert_allclose(loss(t64(X), l64(labels)).item(), expected, rtol=1e-10)


def test_triplet_swap_changes_the_value():
    # Guard: the batch has triplets where d_pn < d_an, so swap is exercised.
    a, _ = np_triplet(X, Y, 0.2, swap=False)
    b, _ = np_triplet(X, Y, 0.2, swap=True)
    assert abs(a - b) > 1e-3


@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("params", [(2.0, 50.0, 0.5), (1.0, 3.0, 0.2)])
def test_multi_similarity_matches_numpy(labels, params):
    expected = np_multi_similarity(X, labels, *params)
    got = MultiSimilarityLoss(*params)(t64(X), l64(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_multi_similarity_with_a_distance_and_dot_product():
    expected = np_multi_similarity(X, Y, 2.0, 5.0, 0.8, kind="lp")
    got = MultiSimilarityLoss(2.0, 5.0, 0.8, distance=LpDistance())(t64(X), l64(Y))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)
    expected = np_multi_similarity(X, Y, 2.0, 5.0, 0.8, kind="dot")
    loss = MultiSimilarityLoss(2.0, 5.0, 0.8, distance=DotProductSimilarity())
    got = loss(t64(X), l64(Y))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


def test_multi_similarity_is_stable_for_large_beta():
    x = t64(X * 100, requires_grad=True)
    loss = MultiSimilarityLoss(alpha=50.0, beta=5000.0, base=-0.9)(x, l64(Y))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_triplet_dense_chunks_agree_with_indexed(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    labels = l64(rng.integers(0, 4, size=20))
    loss = TripletMarginLoss(margin=0.3, swap=True)
    indexed = loss(t64(x), labels, get_all_triplets_indices(labels))
    monkeypatch.setattr(_pair, "_TRIPLET_CHUNK_CELLS", 100)  # 5 pairs a chunk
    dense = loss(t64(x), labels)
    np.testing.assert_allclose(dense.item(), indexed.item(), rtol=1e-12)
    expected, _ = np_triplet(x, labels.tolist(), 0.3, swap=True)
    np.testing.assert_allclose(dense.item(), expected, rtol=1e-10)


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
    x = t64(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, l64(labels)), (x,))


@pytest.mark.parametrize(
    "loss", [ContrastiveLoss(0.3, 0.8), TripletMarginLoss(0.2), MultiSimilarityLoss()]
)
def test_gradcheck_with_mined_tuples(loss):
    x = t64(X, requires_grad=True)
    labels = l64(Y)
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    triplets = TripletMarginMiner(margin=0.3)(x, labels)
    assert len(pairs[0]) > 0 and len(pairs[2]) > 0 and len(triplets[0]) > 0
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, pairs), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(e, labels, triplets), (x,))


CONTRASTIVE_TRIPLET_MS = [ContrastiveLoss(), TripletMarginLoss(), MultiSimilarityLoss()]


@pytest.mark.parametrize("loss", CONTRASTIVE_TRIPLET_MS)
def test_single_sample_batch_gives_zero(loss):
    assert_zero_with_zero_grad(loss, t64(X[:1]), l64([3]))


@pytest.mark.parametrize("loss", CONTRASTIVE_TRIPLET_MS)
def test_empty_indices_tuple_gives_zero(loss):
    empty = torch.zeros(0, dtype=torch.long)
    assert_zero_with_zero_grad(loss, t64(X), l64(Y), (empty, empty, empty))
    assert_zero_with_zero_grad(loss, t64(X), l64(Y), (empty, empty, empty, empty))


@pytest.mark.parametrize("labels", [[0] * 7, list(range(7))])
def test_triplet_without_positives_or_negatives_gives_zero(labels):
    for loss in (TripletMarginLoss(), TripletMarginLoss(swap=True, smooth_loss=True)):
        assert_zero_with_zero_grad(loss, t64(X), l64(labels))


def test_inactive_terms_give_zero():
    # Every positive pair within pos_margin, every negative beyond neg_margin.
    assert_zero_with_zero_grad(ContrastiveLoss(2.0, 0.0), t64(X), l64(Y))
    # Every triplet satisfied by a negative margin.
    assert_zero_with_zero_grad(TripletMarginLoss(margin=-2.1), t64(X), l64(Y))


def test_zero_loss_keeps_float32_graph():
    x = torch.tensor(X[:1], dtype=torch.float32, requires_grad=True)
    value = TripletMarginLoss()(x, l64([0]))
    assert value.dtype == torch.float32 and value.grad_fn is not None


def test_indices_tuple_restricts_the_loss():
    labels = l64(Y)
    triplets = (torch.tensor([0, 3]), torch.tensor([2, 6]), torch.tensor([5, 1]))
    expected, _ = np_triplet(X, Y, 0.5, triplets=[(0, 2, 5), (3, 6, 1)])
    got = TripletMarginLoss(0.5)(t64(X), labels, triplets).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert not np.isclose(got, TripletMarginLoss(0.5)(t64(X), labels).item())


MINERS = [
    BatchHardMiner(),
    TripletMarginMiner(margin=0.3, type_of_triplets="all"),
    TripletMarginMiner(margin=0.3, type_of_triplets="semihard"),
    MultiSimilarityMiner(epsilon=0.2),
]


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
def test_losses_accept_every_miner(miner, labels):
    x, lab = t64(X), l64(labels)
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
    np.testing.assert_allclose(copy(t64(X), l64(Y)).item(), loss(t64(X), l64(Y)).item())

    assert loss.set_params(margin=0.1, distance=LpDistance(p=1)) is loss
    assert loss.margin == 0.1 and copy.margin == 0.3
    loss.set_params(distance__p=2)
    assert loss.distance.p == 2 and loss.get_params()["distance__p"] == 2
    expected, _ = np_triplet(X, Y, 0.1, swap=True, kind="lp")
    np.testing.assert_allclose(loss(t64(X), l64(Y)).item(), expected, rtol=1e-10)


@pytest.mark.parametrize("loss", CONTRASTIVE_TRIPLET_MS)
def test_default_params_clone(loss):
    copy = clone(loss)
    assert copy is not loss and copy.get_params() == loss.get_params()
    assert copy.distance is None
    assert list(copy.parameters()) == []


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
        x = t64(X, requires_grad=True)
        value = loss(x, l64(labels))
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
    xt = t64(x, requires_grad=True)
    value = loss(xt, l64([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(xt.grad).all()


# ------------------------------------------------------------- margin loss
def test_margin_loss_learned_beta_matches_numpy():
    torch.manual_seed(0)
    loss = configured(MarginLoss(0.1, nu=0.3, learn_beta=True, per_class_beta=True))
    with torch.no_grad():
        loss.betas.copy_(torch.tensor([0.9, 1.1, 1.3], dtype=torch.float64))
    expected = np_margin(X_TILTED, Y, 0.1, [0.9, 1.1, 1.3], nu=0.3, mode="class")
    np.testing.assert_allclose(loss(t64(X_TILTED), l64(Y)).item(), expected, rtol=1e-10)
    glob = configured(MarginLoss(0.1, nu=0.3, beta=1.25, learn_beta=True))
    expected = np_margin(X_TILTED, Y, 0.1, [1.25], nu=0.3, mode="global")
    np.testing.assert_allclose(glob(t64(X_TILTED), l64(Y)).item(), expected, rtol=1e-10)


def test_params_and_clone():
    loss = MarginLoss(margin=0.3, learn_beta=True, num_classes=4, distance=LpDistance())
    params = loss.get_params(deep=False)
    assert params["margin"] == 0.3 and params["num_classes"] == 4
    assert set(params) == {
        "margin",
        "nu",
        "beta",
        "learn_beta",
        "per_class_beta",
        "num_classes",
        "distance",
    }
    copy_ = clone(loss)
    assert copy_.margin == 0.3 and copy_.distance is not loss.distance
    tuplet = TupletMarginLoss().set_params(margin=3.0)
    assert tuplet.margin == 3.0 and "margin=3.0" in repr(tuplet)


@pytest.mark.pml
@pytest.mark.parametrize("per_class", [False, True])
def test_margin_learned_beta_matches_pml(pml, per_class):
    x, labels = balanced_batch(2)
    torch.manual_seed(0)
    ours = MarginLoss(0.2, nu=0.1, beta=1.1, learn_beta=True, per_class_beta=per_class)
    ours.configure(5, 6)
    ours.double()
    with torch.no_grad():
        ours.betas.add_(0.1 * torch.randn(ours.betas.shape, dtype=torch.float64))
    theirs = pml.losses.MarginLoss(
        0.2, nu=0.1, beta=1.1, learn_beta=True, num_classes=5 if per_class else None
    ).double()
    with torch.no_grad():
        theirs.beta.copy_(ours.betas)  # both start equal
    assert_same(ours, theirs, x, labels)
    (g1,) = torch.autograd.grad(ours(x, labels), ours.betas)
    (g2,) = torch.autograd.grad(theirs(x, labels), theirs.beta)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-9)


# ------------------------------------------------------------- circle loss
def test_circle_gradient_treats_weights_as_constants():
    # The weights alpha are detached (as in the paper), so autograd's gradient
    # is the finite-difference gradient of the loss with alpha frozen at x.
    loss = CircleLoss(m=0.25, gamma=4.0)
    x = t64(X_TILTED, requires_grad=True)
    loss(x, l64(Y)).backward()
    numeric = np.zeros_like(X_TILTED)
    eps = 1e-6
    for idx in np.ndindex(X_TILTED.shape):
        for sign in (1, -1):
            shifted = X_TILTED.copy()
            shifted[idx] += sign * eps
            numeric[idx] += sign * np_circle(shifted, Y, 0.25, 4.0, frozen_x=X_TILTED)
    np.testing.assert_allclose(
        x.grad.numpy(), numeric / (2 * eps), rtol=1e-6, atol=1e-9
    )


def test_circle_is_finite_for_large_gamma():
    x = t64(X_TILTED * 10, requires_grad=True)
    value = CircleLoss(m=0.1, gamma=1000.0)(x, l64(Y))
    value.backward()
    assert torch.isfinite(value) and value.item() > 0 and torch.isfinite(x.grad).all()
    assert math.isfinite(np_circle(X_TILTED, Y, 0.25, 4.0))


# ------------------------------------------------------------ angular loss
def test_angular_chunks_agree(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    labels = l64(rng.integers(0, 4, size=30))
    whole = AngularLoss(30)(t64(x), labels).item()
    monkeypatch.setattr(_pair, "_ANGULAR_CHUNK_CELLS", 60)  # 2 pairs a chunk
    np.testing.assert_allclose(
        AngularLoss(30)(t64(x), labels).item(), whole, rtol=1e-12
    )
    np.testing.assert_allclose(whole, np_angular(x, labels.tolist(), 30), rtol=1e-10)


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_angular_matches_pml_on_unit_embeddings(pml, seed):
    # pml normalises anchors and positives but not the negatives: on unit-norm
    # input the values agree and the gradients agree up to their radial part.
    x, labels = balanced_batch(seed)
    x = x / x.norm(dim=1, keepdim=True)
    for alpha in (40, 25):
        assert_same(
            AngularLoss(alpha), pml.losses.AngularLoss(alpha), x, labels, project=True
        )


# -------------------------------------- SNR distance (SNR contrastive loss)
def test_snr_distance_matches_numpy():
    expected = np_matrix(X_TILTED, "snr")
    np.testing.assert_allclose(
        SNRDistance()(t64(X_TILTED)).numpy(), expected, atol=1e-12
    )
    raw = SNRDistance(normalize_embeddings=False)
    q, r = X_TILTED[:3], X_TILTED[3:]
    cross = np.array(
        [[np.var(a - b, ddof=1) / np.var(a, ddof=1) for b in r] for a in q]
    )
    np.testing.assert_allclose(raw(t64(q), t64(r)).numpy(), cross, rtol=1e-12)
    np.testing.assert_allclose(
        raw.pairwise(t64(q), t64(r[:3])).numpy(), np.diag(cross[:, :3]), rtol=1e-12
    )
    assert not np.allclose(cross[:, :3], cross[:, :3].T)  # not symmetric


@pytest.mark.pml
def test_snr_distance_matches_pml(pml):
    x, _ = balanced_batch(0)
    y, _ = balanced_batch(1)
    theirs = pml.distances.SNRDistance()
    np.testing.assert_allclose(
        SNRDistance()(x, y).numpy(), theirs(x, y).numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(SNRDistance()(x).numpy(), theirs(x).numpy(), atol=1e-12)
    # pml's pairwise_distance skips the normalisation; compare with its matrix.
    np.testing.assert_allclose(
        SNRDistance().pairwise(x, y).numpy(),
        torch.diagonal(theirs(x, y)).numpy(),
        rtol=1e-9,
    )
