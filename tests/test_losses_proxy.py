"""Proxy, classification and NCA losses against NumPy loops and against pml.

The reference implementations below loop over samples and classes in plain
NumPy (angles with ``arccos``/``cos``, softmax with explicit sums), an
independent route from the vectorised torch code under test.

Deliberate differences from pytorch-metric-learning (pml), not compared:

* ``indices_tuple``: an empty tuple gives a zero loss (pml: "no tuple");
  ProxyNCALoss weights every position of the tuple (pml: anchors only);
  ProxyAnchorLoss multiplies the exponentials by ``w`` (pml: ``e^(w - 1)``).
* NCALoss / ProxyNCALoss keep rows whose probability underflows (pml drops
  them); ArcFaceLoss has a finite gradient at ``cos = 1`` (pml: inf/NaN).
* ArcFaceLoss / SoftTripleLoss take no ``distance`` (cosine only); SoftTriple
  keeps ``gamma`` as given (pml stores ``1 / gamma``) and adds the paper's
  ``tau`` regulariser (default 0, as pml).
"""

import copy
import io
import math
import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.base import clone

from sklearn_dml.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn_dml.losses import ContrastiveLoss, TripletMarginLoss
from sklearn_dml.losses._batch_softmax import NCALoss
from sklearn_dml.losses._classification import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    NormalizedSoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from sklearn_dml.losses._proxy import ProxyAnchorLoss, ProxyNCALoss, SoftTripleLoss
from sklearn_dml.miners import BatchHardMiner, MultiSimilarityMiner

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
Y = [0, 0, 0, 1, 1, 2, 1]  # class 3 of the 4 proxies has no sample
Y_SINGLETON = [0, 0, 1, 1, 2, 2, 3]  # class 3 has one sample
N_CLASSES = 4
_RNG = np.random.default_rng(7)
P = _RNG.normal(size=(N_CLASSES, 3))
P3 = _RNG.normal(size=(N_CLASSES, 3, 3))  # three centres per class


def _t(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _l(labels):
    return torch.tensor(labels, dtype=torch.long)


def _configured(loss, proxies):
    """``loss`` configured for ``proxies``, whose values it then takes (float64)."""
    proxies = np.asarray(proxies)
    loss.configure(proxies.shape[0], proxies.shape[-1])
    loss.double()
    with torch.no_grad():
        loss.proxies.copy_(torch.from_numpy(proxies))
    return loss


# ---------------------------------------------------------------- references
def unit(v):
    return v / np.sqrt(np.sum(v * v))


def np_weights(indices_tuple, n):
    if indices_tuple is None:
        return np.ones(n)
    counts = np.zeros(n)
    for t in indices_tuple:
        for i in t.tolist():
            counts[i] += 1
    return counts / counts.max()


def np_cross_entropy(logits, target):
    return logsumexp(logits) - logits[target]


def np_mean(terms, w):
    return sum(wi * ti for wi, ti in zip(w, terms)) / len(terms)


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


def np_proxy_nca(x, proxies, labels, scale, w=None):
    terms = []
    for i in range(len(x)):
        logits = np.array(
            [-scale * np.sum((unit(x[i]) - unit(p)) ** 2) for p in proxies]
        )
        terms.append(np_cross_entropy(logits, labels[i]))
    return np_mean(terms, np.ones(len(x)) if w is None else w)


def np_proxy_anchor(x, proxies, labels, margin, alpha, w=None):
    w = np.ones(len(x)) if w is None else w
    pos_total, neg_total, n_with_pos = 0.0, 0.0, 0
    for c, p in enumerate(proxies):
        pos_sum, neg_sum, has_pos = 0.0, 0.0, False
        for i in range(len(x)):
            if w[i] == 0:
                continue
            s = np.dot(unit(x[i]), unit(p))
            if labels[i] == c:
                pos_sum += w[i] * np.exp(-alpha * (s - margin))
                has_pos = True
            else:
                neg_sum += w[i] * np.exp(alpha * (s + margin))
        pos_total += np.log1p(pos_sum)
        neg_total += np.log1p(neg_sum)
        n_with_pos += has_pos
    return pos_total / n_with_pos + neg_total / len(proxies)


def np_normalized_softmax(x, proxies, labels, temperature, w=None):
    terms = []
    for i in range(len(x)):
        logits = np.array([np.dot(unit(x[i]), unit(p)) for p in proxies])
        terms.append(np_cross_entropy(logits / temperature, labels[i]))
    return np_mean(terms, np.ones(len(x)) if w is None else w)


def np_margin_softmax(x, proxies, labels, kind, margin, scale, w=None):
    """kind: "lsoftmax", "sphereface", "cosface", "arcface" or "subcenter"."""
    terms = []
    for i in range(len(x)):
        logits = []
        for c, p in enumerate(proxies):
            if kind == "subcenter":
                cos = max(np.dot(unit(x[i]), unit(q)) for q in p)
            else:
                cos = np.dot(unit(x[i]), unit(p))
            if c == labels[i]:
                theta = np.arccos(np.clip(cos, -1, 1))
                if kind in ("lsoftmax", "sphereface"):
                    k = np.floor(theta * margin / np.pi)
                    cos = (-1) ** k * np.cos(margin * theta) - 2 * k
                elif kind == "cosface":
                    cos = cos - margin
                else:
                    m = np.radians(margin)
                    if theta <= np.pi - m:
                        cos = np.cos(theta + m)
                    else:
                        cos = cos - m * np.sin(m)
            if kind == "lsoftmax":
                cos *= np.linalg.norm(x[i]) * np.linalg.norm(p)
            elif kind == "sphereface":
                cos *= np.linalg.norm(x[i])
            logits.append(scale * cos)
        terms.append(np_cross_entropy(np.array(logits), labels[i]))
    return np_mean(terms, np.ones(len(x)) if w is None else w)


def np_soft_triple(x, centers, labels, la, gamma, margin, tau, w=None):
    terms = []
    for i in range(len(x)):
        logits = []
        for c, class_centers in enumerate(centers):
            sims = np.array([np.dot(unit(x[i]), unit(q)) for q in class_centers])
            prob = np.exp(sims / gamma) / np.sum(np.exp(sims / gamma))
            relaxed = np.sum(prob * sims)
            logits.append(la * (relaxed - (margin if c == labels[i] else 0.0)))
        terms.append(np_cross_entropy(np.array(logits), labels[i]))
    value = np_mean(terms, np.ones(len(x)) if w is None else w)
    n_classes, k = centers.shape[0], centers.shape[1]
    if tau > 0 and k > 1:
        reg = 0.0
        for class_centers in centers:
            for a in range(k):
                for b in range(a + 1, k):
                    reg += np.linalg.norm(
                        unit(class_centers[a]) - unit(class_centers[b])
                    )
        value += tau * reg / (n_classes * k * (k - 1))
    return value


# Each case: (id, loss factory, proxies, NumPy reference(x, labels, w)).
CASES = [
    (
        "proxy_nca",
        lambda: ProxyNCALoss(softmax_scale=3.0),
        P,
        lambda x, y, w: np_proxy_nca(x, P, y, 3.0, w),
    ),
    (
        "proxy_anchor",
        lambda: ProxyAnchorLoss(margin=0.1, alpha=8.0),
        P,
        lambda x, y, w: np_proxy_anchor(x, P, y, 0.1, 8.0, w),
    ),
    (
        "normalized_softmax",
        lambda: NormalizedSoftmaxLoss(temperature=0.3),
        P,
        lambda x, y, w: np_normalized_softmax(x, P, y, 0.3, w),
    ),
    (
        "lsoftmax",
        lambda: LargeMarginSoftmaxLoss(margin=3, scale=1.5),
        P,
        lambda x, y, w: np_margin_softmax(x, P, y, "lsoftmax", 3, 1.5, w),
    ),
    (
        "sphereface",
        lambda: SphereFaceLoss(margin=4, scale=2.0),
        P,
        lambda x, y, w: np_margin_softmax(x, P, y, "sphereface", 4, 2.0, w),
    ),
    (
        "cosface",
        lambda: CosFaceLoss(margin=0.3, scale=5.0),
        P,
        lambda x, y, w: np_margin_softmax(x, P, y, "cosface", 0.3, 5.0, w),
    ),
    (
        "arcface",
        lambda: ArcFaceLoss(margin=25.0, scale=6.0),
        P,
        lambda x, y, w: np_margin_softmax(x, P, y, "arcface", 25.0, 6.0, w),
    ),
    (
        "subcenter_arcface",
        lambda: SubCenterArcFaceLoss(margin=25.0, scale=6.0, sub_centers=3),
        P3,
        lambda x, y, w: np_margin_softmax(x, P3, y, "subcenter", 25.0, 6.0, w),
    ),
    (
        "soft_triple",
        lambda: SoftTripleLoss(centers_per_class=3, la=5.0, gamma=0.5, margin=0.1),
        P3,
        lambda x, y, w: np_soft_triple(x, P3, y, 5.0, 0.5, 0.1, 0.0, w),
    ),
    (
        "soft_triple_tau",
        lambda: SoftTripleLoss(
            centers_per_class=3, la=5.0, gamma=0.5, margin=0.1, tau=0.3
        ),
        P3,
        lambda x, y, w: np_soft_triple(x, P3, y, 5.0, 0.5, 0.1, 0.3, w),
    ),
]
CASE_IDS = [c[0] for c in CASES]


# ------------------------------------------------------------ values vs NumPy
@pytest.mark.parametrize("name, factory, proxies, reference", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
def test_proxy_losses_match_numpy(name, factory, proxies, reference, labels):
    loss = _configured(factory(), proxies)
    expected = reference(X, labels, None)
    assert expected > 0
    got = loss(_t(X), _l(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("name, factory, proxies, reference", CASES, ids=CASE_IDS)
def test_proxy_losses_weight_mined_samples(name, factory, proxies, reference):
    loss = _configured(factory(), proxies)
    x, labels = _t(X), _l(Y)
    triplets = (
        torch.tensor([0, 0, 3]),
        torch.tensor([1, 2, 6]),
        torch.tensor([3, 5, 0]),
    )
    w = np_weights(triplets, len(X))
    assert 0.0 in w and ((w > 0) & (w < 1)).any()  # guard: weights are exercised
    got = loss(x, labels, triplets).item()
    np.testing.assert_allclose(got, reference(X, Y, w), rtol=1e-10)
    assert not np.isclose(got, loss(x, labels).item())


def test_hand_worked_cosface_and_arcface():
    # Proxies e1, e2; x0 = e1 (class 0), x1 = (0.6, 0.8) (class 1).
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    labels = _l([0, 1])
    eye = np.eye(2)
    # CosFace, m = 0.2, s = 4: logits (3.2, 0) and (2.4, 2.4).
    expected = (math.log1p(math.exp(-3.2)) + math.log(2.0)) / 2
    got = _configured(CosFaceLoss(margin=0.2, scale=4.0), eye)(x, labels)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)
    # ArcFace, m = 30 degrees, s = 4: target angles 0 and acos(0.8).
    t1 = math.cos(math.acos(0.8) + math.pi / 6)
    expected = (
        math.log1p(math.exp(-4 * math.cos(math.pi / 6)))
        + math.log1p(math.exp(4 * (0.6 - t1)))
    ) / 2
    got = _configured(ArcFaceLoss(margin=30.0, scale=4.0), eye)(x, labels)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)


def test_arcface_uses_the_monotonic_branch_beyond_pi_minus_m():
    # A sample almost opposite to its proxy: theta > pi - m.
    x = np.array([[-1.0, 0.05], [0.0, 1.0]])
    labels = [0, 1]
    assert np.arccos(unit(x[0]) @ np.array([1.0, 0.0])) > np.pi - np.radians(40.0)
    loss = _configured(ArcFaceLoss(margin=40.0, scale=3.0), np.eye(2))
    expected = np_margin_softmax(x, np.eye(2), labels, "arcface", 40.0, 3.0)
    np.testing.assert_allclose(loss(_t(x), _l(labels)).item(), expected, rtol=1e-10)


def test_large_margin_with_margin_one_is_plain_softmax():
    loss = _configured(LargeMarginSoftmaxLoss(margin=1, scale=1.0), P)
    logits = X @ P.T
    expected = np.mean([np_cross_entropy(logits[i], Y[i]) for i in range(len(X))])
    np.testing.assert_allclose(loss(_t(X), _l(Y)).item(), expected, rtol=1e-10)


@pytest.mark.parametrize("margin", [2, 3, 4, 5, 6.0])
def test_large_margin_covers_every_k_interval(margin):
    # Angles spread over [0, pi], so every k = 0 .. m-1 occurs.
    angles = np.linspace(0.05, np.pi - 0.05, 25)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = [0] * len(x)
    proxies = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = _configured(LargeMarginSoftmaxLoss(margin=margin), proxies)
    expected = np_margin_softmax(x, proxies, labels, "lsoftmax", int(margin), 1.0)
    np.testing.assert_allclose(loss(_t(x), _l(labels)).item(), expected, rtol=1e-10)


# --------------------------------------------------------------------- NCA
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_nca_matches_numpy(labels, scale):
    expected = np_nca(X, labels, scale)
    assert expected > 0
    got = NCALoss(softmax_scale=scale)(_t(X), _l(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    expected = np_nca(X, labels, scale, kind="cos")
    got = NCALoss(scale, distance=CosineSimilarity())(_t(X), _l(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_nca_with_unnormalised_squared_distance_and_weights():
    # Raw squared Euclidean distance (no normalisation), mined weights.
    distance = LpDistance(power=2, normalize_embeddings=False)
    pairs = MultiSimilarityMiner(epsilon=0.3)(_t(X), _l(Y))
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
    got = NCALoss(distance=distance)(_t(X), _l(Y), pairs).item()
    np.testing.assert_allclose(got, total / count, rtol=1e-10)


def test_nca_is_finite_when_the_positive_mass_underflows():
    # Scale 100 on squared distances of unit vectors: exp(-400) underflows.
    x = np.array([[1.0, 0.0], [-1.0, 0.01], [0.0, 1.0], [0.01, -1.0]])
    labels = [0, 0, 1, 1]
    xt = _t(x, requires_grad=True)
    value = NCALoss(softmax_scale=100.0)(xt, _l(labels))
    value.backward()
    np.testing.assert_allclose(value.item(), np_nca(x, labels, 100.0), rtol=1e-10)
    assert value.item() > 100
    assert torch.isfinite(xt.grad).all() and xt.grad.abs().sum() > 0
    x32 = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    value32 = NCALoss(softmax_scale=30.0)(x32, _l(labels))
    value32.backward()
    np.testing.assert_allclose(value32.item(), np_nca(x, labels, 30.0), rtol=1e-4)
    assert torch.isfinite(x32.grad).all()


# --------------------------------------------------------------- gradients
@pytest.mark.parametrize("name, factory, proxies, reference", CASES, ids=CASE_IDS)
def test_gradcheck_embeddings_and_proxies(name, factory, proxies, reference):
    loss = _configured(factory(), proxies)
    labels = _l(Y_SINGLETON)

    def func(x, p):
        return torch.func.functional_call(loss, {"proxies": p}, (x, labels))

    inputs = (_t(X, requires_grad=True), _t(proxies, requires_grad=True))
    assert torch.autograd.gradcheck(func, inputs, fast_mode=True)


@pytest.mark.parametrize("distance", [None, CosineSimilarity()])
def test_gradcheck_nca(distance):
    loss = NCALoss(softmax_scale=2.0, distance=distance)
    x = _t(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, _l(Y_SINGLETON)), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(e, _l(Y)), (x,), fast_mode=True)


def test_arcface_gradient_is_finite_when_a_sample_equals_its_proxy():
    loss = _configured(ArcFaceLoss(), np.eye(3))
    x = _t(np.eye(3), requires_grad=True)
    value = loss(x, _l([0, 1, 2]))
    value.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.proxies.grad).all()


# ---------------------------------------------------------- edge cases
def _assert_zero_with_zero_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    assert value.ndim == 0 and value.requires_grad
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all() and torch.count_nonzero(x.grad) == 0
    for p in loss.parameters():
        assert p.grad is None or torch.count_nonzero(p.grad) == 0


@pytest.mark.parametrize("name, factory, proxies, reference", CASES, ids=CASE_IDS)
def test_empty_indices_tuple_gives_zero(name, factory, proxies, reference):
    loss = _configured(factory(), proxies)
    empty = torch.zeros(0, dtype=torch.long)
    _assert_zero_with_zero_grad(loss, _t(X), _l(Y), (empty, empty, empty))
    _assert_zero_with_zero_grad(loss, _t(X), _l(Y), (empty,) * 4)


@pytest.mark.parametrize("name, factory, proxies, reference", CASES, ids=CASE_IDS)
def test_one_class_batch_and_single_sample(name, factory, proxies, reference):
    # Other proxies still act as negatives: a positive, finite loss.
    loss = _configured(factory(), proxies)
    for labels in ([2] * len(X), [1]):
        x = _t(X[: len(labels)], requires_grad=True)
        value = loss(x, _l(labels))
        value.backward()
        np.testing.assert_allclose(
            value.item(), reference(X[: len(labels)], labels, None), rtol=1e-10
        )
        assert torch.isfinite(x.grad).all()


def test_proxy_anchor_without_negatives_counts_only_the_positive_part():
    # A single proxy: no negatives at all, the negative part is exactly 0.
    proxies = P[:1]
    loss = _configured(ProxyAnchorLoss(margin=0.1, alpha=8.0), proxies)
    labels = [0] * len(X)
    got = loss(_t(X), _l(labels)).item()
    expected = np.log1p(
        sum(np.exp(-8.0 * (unit(x) @ unit(proxies[0]) - 0.1)) for x in X)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("labels", [[0] * 7, list(range(7)), [5]])
def test_nca_without_positives_or_negatives(labels):
    x = _t(X[: len(labels)])
    _assert_zero_with_zero_grad(NCALoss(), x, _l(labels))
    _assert_zero_with_zero_grad(NCALoss(distance=CosineSimilarity()), x, _l(labels))


def test_nca_empty_indices_tuple_gives_zero():
    empty = torch.zeros(0, dtype=torch.long)
    _assert_zero_with_zero_grad(NCALoss(), _t(X), _l(Y), (empty, empty, empty))


def test_zero_loss_keeps_float32_graph_to_the_proxies():
    loss = ProxyAnchorLoss().configure(4, 3)
    empty = torch.zeros(0, dtype=torch.long)
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value = loss(x, _l(Y), (empty, empty, empty))
    assert value.dtype == torch.float32 and value.grad_fn is not None
    value.backward()
    assert loss.proxies.grad is not None and torch.count_nonzero(loss.proxies.grad) == 0


# ------------------------------------------------- configure and parameters
ALL_PROXY_LOSSES = [
    ProxyNCALoss,
    ProxyAnchorLoss,
    NormalizedSoftmaxLoss,
    LargeMarginSoftmaxLoss,
    SphereFaceLoss,
    CosFaceLoss,
    ArcFaceLoss,
    SubCenterArcFaceLoss,
    SoftTripleLoss,
]
EXPECTED_SHAPES = {
    SubCenterArcFaceLoss: (5, 3, 8),
    SoftTripleLoss: (5, 10, 8),
}


@pytest.mark.parametrize("cls", ALL_PROXY_LOSSES)
def test_forward_before_configure_raises(cls):
    loss = cls()
    assert list(loss.parameters()) == []
    with pytest.raises(RuntimeError, match=r"call loss.configure\(num_classes"):
        loss(_t(X), _l(Y))


@pytest.mark.parametrize("cls", ALL_PROXY_LOSSES)
def test_configure_creates_seeded_parameters(cls):
    torch.manual_seed(3)
    a = cls().configure(5, 8)
    torch.manual_seed(3)
    b = cls().configure(num_classes=5, embedding_size=8)
    c = cls().configure(5, 8)
    assert tuple(a.proxies.shape) == EXPECTED_SHAPES.get(cls, (5, 8))
    assert isinstance(a.proxies, torch.nn.Parameter) and a.proxies.requires_grad
    assert [p is a.proxies for p in a.parameters()] == [True]
    assert torch.equal(a.proxies, b.proxies)
    assert not torch.equal(a.proxies, c.proxies)
    # constructor values stay as given; configure reads them
    d = cls(num_classes=5, embedding_size=8)
    assert d.configure() is d and tuple(d.proxies.shape) == tuple(a.proxies.shape)
    assert d.num_classes == 5 and cls().get_params()["num_classes"] is None


def test_configure_validates_sizes():
    with pytest.raises(ValueError, match="built with num_classes=3 but configure"):
        ProxyNCALoss(num_classes=3).configure(4, 2)
    with pytest.raises(ValueError, match="needs embedding_size"):
        ProxyNCALoss().configure(3)
    with pytest.raises(
        ValueError, match="'num_classes' parameter of ProxyNCALoss.configure must be"
    ):
        ProxyNCALoss().configure(0, 2)
    with pytest.raises(
        ValueError, match="'embedding_size' parameter of ProxyNCALoss.configure must"
    ):
        ProxyNCALoss().configure(3, 2.5)
    # Constructor values are checked when the loss is built.
    with pytest.raises(
        ValueError, match="'sub_centers' parameter of SubCenterArcFaceLoss must be"
    ):
        SubCenterArcFaceLoss(sub_centers=0)
    with pytest.raises(ValueError, match="'num_classes' parameter of ProxyNCALoss"):
        ProxyNCALoss(num_classes=0)


def test_forward_validates_labels_and_shapes():
    loss = CosFaceLoss().configure(3, 3)
    with pytest.raises(ValueError, match=r"labels must be class indices in 0 \.\. 2"):
        loss(torch.zeros(2, 3), _l([0, 3]))
    with pytest.raises(ValueError, match="got values from -1 to 0"):
        loss(torch.zeros(2, 3), _l([-1, 0]))
    with pytest.raises(ValueError, match="embeddings have 4 columns but CosFaceLoss"):
        loss(torch.zeros(2, 4), _l([0, 1]))
    with pytest.raises(ValueError, match="embeddings must be a 2-D tensor"):
        loss(torch.zeros(3), _l([0, 0, 1]))
    soft = SoftTripleLoss(centers_per_class=2).configure(3, 3)
    soft.set_params(centers_per_class=4)
    with pytest.raises(RuntimeError, match="call configure again"):
        soft(torch.ones(2, 3), _l([0, 1]))
    with pytest.raises(
        ValueError, match="'margin' parameter of LargeMarginSoftmaxLoss must be"
    ):
        LargeMarginSoftmaxLoss(margin=2.5)
    # An integral float is an integer margin.
    assert (
        LargeMarginSoftmaxLoss(margin=3.0)
        .configure(3, 3)(torch.ones(2, 3), _l([0, 1]))
        .isfinite()
    )


def test_forward_does_not_modify_inputs():
    loss = _configured(SphereFaceLoss(), P)
    x, labels = _t(X), _l(Y)
    x_before, labels_before = x.clone(), labels.clone()
    loss(x, labels, BatchHardMiner()(x, labels))
    assert torch.equal(x, x_before) and torch.equal(labels, labels_before)


@pytest.mark.parametrize("cls", [ProxyAnchorLoss, SubCenterArcFaceLoss, SoftTripleLoss])
def test_pickle_deepcopy_state_dict_and_dtype(cls):
    torch.manual_seed(0)
    loss = cls().configure(4, 3)
    x = torch.tensor(X, dtype=torch.float32)
    expected = loss(x, _l(Y)).item()
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert other.proxies is not loss.proxies
        assert torch.equal(other.proxies, loss.proxies)
        assert other(x, _l(Y)).item() == expected
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    fresh = cls().configure(4, 3)
    fresh.load_state_dict(torch.load(buffer))
    assert fresh(x, _l(Y)).item() == expected
    # .to(dtype) moves the parameter; float64 embeddings on float32 proxies
    # are cast inside forward and the gradient still reaches the parameter.
    x64 = torch.tensor(X, dtype=torch.float64)
    value = loss(x64, _l(Y))
    assert value.dtype == torch.float64
    value.backward()
    assert loss.proxies.grad.dtype == torch.float32
    assert torch.count_nonzero(loss.proxies.grad) > 0
    assert loss.double().proxies.dtype == torch.float64


def test_clone_gives_an_unconfigured_copy_with_the_same_params():
    loss = SoftTripleLoss(num_classes=4, embedding_size=3, la=7.0, tau=0.2)
    loss.configure()
    copy_ = clone(loss)
    assert copy_.get_params() == loss.get_params()
    assert list(copy_.parameters()) == []
    assert copy_.configure().proxies.shape == loss.proxies.shape
    assert ProxyAnchorLoss(distance=LpDistance()).get_params()["distance__power"] == 1


def test_base_configure_is_a_no_op():
    for loss in (ContrastiveLoss(), TripletMarginLoss(), NCALoss()):
        assert loss.configure(3, 4) is loss
        assert list(loss.parameters()) == []


def test_proxy_losses_train_a_separable_problem():
    # A few optimiser steps on learnable proxies lower every loss.
    torch.manual_seed(0)
    x = torch.tensor(X, dtype=torch.float32)
    for cls in ALL_PROXY_LOSSES:
        loss = cls().configure(4, 3)
        first = loss(x, _l(Y))
        for _ in range(5):
            loss.zero_grad()
            loss(x, _l(Y)).backward()
            with torch.no_grad():
                loss.proxies -= 0.05 * loss.proxies.grad
        assert loss(x, _l(Y)).item() < first.item(), cls.__name__


@pytest.mark.parametrize(
    "distance", [LpDistance(), DotProductSimilarity(normalize_embeddings=True)]
)
def test_other_distances(distance):
    # ProxyAnchor with a distance, NormalizedSoftmax with a similarity.
    d = np.array([[np.linalg.norm(unit(x) - unit(p)) for p in P] for x in X])
    if isinstance(distance, LpDistance):
        loss = _configured(ProxyAnchorLoss(margin=0.2, alpha=4.0, distance=distance), P)
        expected = 0.0
        for c in range(N_CLASSES):
            pos = [np.exp(4.0 * (d[i, c] - 0.2)) for i in range(7) if Y[i] == c]
            neg = [np.exp(-4.0 * (d[i, c] + 0.2)) for i in range(7) if Y[i] != c]
            expected += np.log1p(sum(pos)) / 3 + np.log1p(sum(neg)) / N_CLASSES
    else:
        loss = _configured(NormalizedSoftmaxLoss(temperature=0.4, distance=distance), P)
        expected = np_normalized_softmax(X, P, Y, 0.4)
    np.testing.assert_allclose(loss(_t(X), _l(Y)).item(), expected, rtol=1e-10)


# ---------------------------------------------------- agreement with pml
def _pml_pairs(pml_losses, n_classes, dim):
    size = {"num_classes": n_classes, "embedding_size": dim}
    rows = ("proxies", lambda p: p)
    cols = ("W", lambda p: p.reshape(-1, dim).T)
    fc = ("fc", lambda p: p.reshape(-1, dim).T)
    return [
        ("ProxyNCA", ProxyNCALoss(), pml_losses.ProxyNCALoss(**size), rows),
        (
            "ProxyNCA-s",
            ProxyNCALoss(softmax_scale=4.0),
            pml_losses.ProxyNCALoss(softmax_scale=4.0, **size),
            rows,
        ),
        ("ProxyAnchor", ProxyAnchorLoss(), pml_losses.ProxyAnchorLoss(**size), rows),
        (
            "ProxyAnchor-p",
            ProxyAnchorLoss(margin=0.3, alpha=8.0),
            pml_losses.ProxyAnchorLoss(margin=0.3, alpha=8.0, **size),
            rows,
        ),
        (
            "NormalizedSoftmax",
            NormalizedSoftmaxLoss(),
            pml_losses.NormalizedSoftmaxLoss(**size),
            cols,
        ),
        (
            "LargeMargin",
            LargeMarginSoftmaxLoss(),
            pml_losses.LargeMarginSoftmaxLoss(**size),
            cols,
        ),
        (
            "LargeMargin-3",
            LargeMarginSoftmaxLoss(margin=3, scale=2.0),
            pml_losses.LargeMarginSoftmaxLoss(margin=3, scale=2.0, **size),
            cols,
        ),
        ("SphereFace", SphereFaceLoss(), pml_losses.SphereFaceLoss(**size), cols),
        ("CosFace", CosFaceLoss(), pml_losses.CosFaceLoss(**size), cols),
        ("ArcFace", ArcFaceLoss(), pml_losses.ArcFaceLoss(**size), cols),
        (
            "ArcFace-p",
            ArcFaceLoss(margin=40.0, scale=10.0),
            pml_losses.ArcFaceLoss(margin=40.0, scale=10.0, **size),
            cols,
        ),
        (
            "SubCenterArcFace",
            SubCenterArcFaceLoss(),
            pml_losses.SubCenterArcFaceLoss(**size),
            cols,
        ),
        ("SoftTriple", SoftTripleLoss(), pml_losses.SoftTripleLoss(**size), fc),
        (
            "SoftTriple-p",
            SoftTripleLoss(centers_per_class=3, la=10.0, gamma=0.5, margin=0.2),
            pml_losses.SoftTripleLoss(
                centers_per_class=3, la=10.0, gamma=0.5, margin=0.2, **size
            ),
            fc,
        ),
    ]


def _batch(seed, n=24, d=6, n_classes=5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, n_classes - 1, (n,), generator=gen)
    labels[-1] = n_classes - 1  # a class of size one
    return x, labels


def _value_and_grads(loss, params, x, labels):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels)
    value.backward()
    grads = [p.grad.numpy().copy() for p in params]
    return value.item(), x.grad.numpy(), grads


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_proxy_losses_match_pml(seed):
    import pytorch_metric_learning.losses as pml_losses

    x, labels = _batch(seed)
    torch.manual_seed(seed)
    for name, ours, theirs, (attr, to_pml) in _pml_pairs(pml_losses, 5, 6):
        ours.configure(5, 6)
        ours.double()
        theirs.double()
        getattr(theirs, attr).data = to_pml(ours.proxies.detach()).clone()
        v1, g1, (p1,) = _value_and_grads(ours, [ours.proxies], x, labels)
        v2, g2, (p2,) = _value_and_grads(theirs, [getattr(theirs, attr)], x, labels)
        assert v1 > 0, name
        np.testing.assert_allclose(v1, v2, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10, err_msg=name)
        p1 = to_pml(torch.from_numpy(p1)).numpy()
        np.testing.assert_allclose(p1, p2, rtol=1e-7, atol=1e-10, err_msg=name)


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_nca_matches_pml(seed, scale):
    import pytorch_metric_learning.distances as pml_distances
    import pytorch_metric_learning.losses as pml_losses

    x, labels = _batch(seed)
    for ours, theirs in (
        (NCALoss(scale), pml_losses.NCALoss(softmax_scale=scale)),
        (
            NCALoss(scale, distance=CosineSimilarity()),
            pml_losses.NCALoss(
                softmax_scale=scale, distance=pml_distances.CosineSimilarity()
            ),
        ),
    ):
        v1, g1, _ = _value_and_grads(ours, [], x, labels)
        v2, g2, _ = _value_and_grads(theirs, [], x, labels)
        assert v1 > 0
        np.testing.assert_allclose(v1, v2, rtol=1e-9)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)


@pytest.mark.pml
def test_mined_weights_match_pml_where_the_conventions_agree():
    # NormalizedSoftmax, CosFace, SoftTriple weight every position of the
    # tuple by count / max count and average over the batch, like pml.
    import pytorch_metric_learning.losses as pml_losses

    x, labels = _batch(3)
    triplets = (
        torch.tensor([0, 0, 4]),
        torch.tensor([5, 7, 9]),
        torch.tensor([1, 2, 3]),
    )
    torch.manual_seed(0)
    pairs = [
        p
        for p in _pml_pairs(pml_losses, 5, 6)
        if p[0] in ("NormalizedSoftmax", "CosFace", "SoftTriple-p")
    ]
    for name, ours, theirs, (attr, to_pml) in pairs:
        ours.configure(5, 6)
        ours.double()
        theirs.double()
        getattr(theirs, attr).data = to_pml(ours.proxies.detach()).clone()
        v1 = ours(x, labels, triplets).item()
        v2 = theirs(x, labels, triplets).item()
        np.testing.assert_allclose(v1, v2, rtol=1e-9, err_msg=name)
