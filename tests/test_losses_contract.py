"""Pair/tuple losses, CenterLoss and SNRDistance against NumPy loops and pml."""

import copy
import io
import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml._tuples import get_all_pairs_indices, get_all_triplets_indices
from sklearn_dml.distances import (
    CosineSimilarity,
    DotProductSimilarity,
    LpDistance,
    SNRDistance,
)
from sklearn_dml.losses import _pair
from sklearn_dml.losses._batch_softmax import NPairsLoss, NTXentLoss, SupConLoss
from sklearn_dml.losses._pair import (
    AngularLoss,
    CircleLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    SignalToNoiseRatioContrastiveLoss,
    TupletMarginLoss,
)
from sklearn_dml.losses._ranking import FastAPLoss, HistogramLoss
from sklearn_dml.losses._regularizers import CenterLoss
from sklearn_dml.miners import MultiSimilarityMiner, TripletMarginMiner

# A hand-built batch: three classes, the last one a single sample.
X = np.array(
    [
        [1.0, 0.2, -0.1],
        [0.8, 0.5, 0.3],
        [0.9, -0.4, 0.2],
        [-0.2, 1.0, 0.4],
        [0.1, 0.7, -0.6],
        [-0.5, 0.3, 1.0],
        [0.4, 0.5, 0.3],
    ]
)
Y = [0, 0, 0, 1, 1, 2, 1]
Y_FULL = [0, 0, 0, 1, 1, 2, 2]  # every class has two samples or more


# ---------------------------------------------------------------- references
def unit(x):
    return x / np.sqrt((x**2).sum(axis=1, keepdims=True))


def np_matrix(x, kind):
    n = len(x)
    out = np.zeros((n, n))
    u = unit(x)
    for i in range(n):
        for j in range(n):
            if kind == "lp":
                out[i, j] = np.sqrt(np.sum((u[i] - u[j]) ** 2))
            elif kind == "sq":
                out[i, j] = np.sum((u[i] - u[j]) ** 2)
            elif kind == "cos":
                out[i, j] = u[i] @ u[j]
            elif kind == "dot":
                out[i, j] = x[i] @ x[j]
            elif kind == "snr":
                out[i, j] = np.var(u[i] - u[j], ddof=1) / np.var(u[i], ddof=1)
    return out


def partners(labels):
    n = len(labels)
    pos = [[j for j in range(n) if j != i and labels[j] == labels[i]] for i in range(n)]
    neg = [[j for j in range(n) if labels[j] != labels[i]] for i in range(n)]
    return pos, neg


def mean_nonzero(values):
    values = [v for v in values if v > 0]
    return sum(values) / len(values) if values else 0.0


def np_circle(x, labels, m, gamma, frozen_x=None):
    s = np_matrix(x, "cos")
    f = np_matrix(x if frozen_x is None else frozen_x, "cos")
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        if not pos[i] or not neg[i]:
            continue
        total = 0.0
        for p in pos[i]:
            for n in neg[i]:
                ap = max(0.0, 1 + m - f[i, p])
                an = max(0.0, f[i, n] + m)
                total += np.exp(
                    gamma * an * (s[i, n] - m) - gamma * ap * (s[i, p] - 1 + m)
                )
        terms.append(np.log1p(total))
    return mean_nonzero(terms)


def np_gls(x, labels, neg_margin, pos_margin):
    d = np_matrix(x, "lp")
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        if pos[i] and neg[i]:
            a = np.log(sum(np.exp(d[i, p] - pos_margin) for p in pos[i]))
            b = np.log(sum(np.exp(neg_margin - d[i, n]) for n in neg[i]))
            terms.append(max(0.0, a + b))
    return sum(terms) / len(terms)


def np_lifted(x, labels, neg_margin, pos_margin):
    d = np_matrix(x, "lp")
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        for j in pos[i]:
            total = sum(np.exp(neg_margin - d[i, k]) for k in neg[i])
            total += sum(np.exp(neg_margin - d[j, k]) for k in neg[j])
            terms.append(max(0.0, np.log(total) + d[i, j] - pos_margin) ** 2)
    return sum(terms) / (2 * len(terms))


def np_npairs(x, labels):
    s = np_matrix(x, "dot")
    pos, _ = partners(labels)
    chosen = {}
    for i in range(len(x)):
        if pos[i] and labels[i] not in chosen:
            chosen[labels[i]] = (i, pos[i][0])
    pairs = [chosen[c] for c in sorted(chosen)]
    total = 0.0
    for a, p in pairs:
        logits = np.array([s[a, q] for _, q in pairs])
        total += -(s[a, p] - np.log(np.sum(np.exp(logits))))
    return total / len(pairs)


def np_ntxent(x, labels, t):
    s = np_matrix(x, "cos") / t
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        for p in pos[i]:
            den = np.exp(s[i, p]) + sum(np.exp(s[i, n]) for n in neg[i])
            terms.append(-np.log(np.exp(s[i, p]) / den))
    return np.mean(terms)


def np_supcon(x, labels, t):
    s = np_matrix(x, "cos") / t
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        if pos[i]:
            den = sum(np.exp(s[i, k]) for k in pos[i] + neg[i])
            terms.append(-np.mean([s[i, p] - np.log(den) for p in pos[i]]))
    return mean_nonzero(terms)


def np_snr_contrastive(x, labels, pos_margin, neg_margin):
    d = np_matrix(x, "snr")
    pos, neg = partners(labels)
    p_terms = [max(0.0, d[i, p] - pos_margin) for i in range(len(x)) for p in pos[i]]
    n_terms = [max(0.0, neg_margin - d[i, n]) for i in range(len(x)) for n in neg[i]]
    return mean_nonzero(p_terms) + mean_nonzero(n_terms)


def np_margin(x, labels, margin, beta, nu=0.0, mode=None, triplets=None):
    """mode: None (fixed beta), "global" or "class" (beta indexed by class)."""
    d = np_matrix(x, "lp")
    pos, neg = partners(labels)
    if triplets is None:
        triplets = [(a, p, n) for a in range(len(x)) for p in pos[a] for n in neg[a]]
    total, count, reg = 0.0, 0, 0.0
    for a, p, n in triplets:
        b = beta[labels[a]] if mode == "class" else (beta if mode is None else beta[0])
        hp = max(0.0, d[a, p] - b + margin)
        hn = max(0.0, b - d[a, n] + margin)
        total += hp + hn
        count += int(hp > 0) + int(hn > 0)
        reg += b
    value = total / count if count else 0.0
    if mode == "class" and count:
        value += nu * reg / count
    if mode == "global":
        value += nu * beta[0]
    return value


def np_tuplet(x, labels, margin_deg, scale):
    s = np_matrix(x, "cos")
    pos, neg = partners(labels)
    terms = []
    for i in range(len(x)):
        for p in pos[i]:
            shifted = np.cos(np.arccos(s[i, p]) - np.radians(margin_deg))
            terms.append(
                np.log1p(sum(np.exp(scale * (s[i, n] - shifted)) for n in neg[i]))
            )
    return np.mean(terms)


def np_fastap(x, labels, num_bins):
    d = np_matrix(x, "sq")
    pos, neg = partners(labels)
    width = 4.0 / num_bins
    nodes = np.linspace(0.0, 4.0, num_bins + 1)
    terms = []
    for i in range(len(x)):
        if not pos[i]:
            continue
        h_pos = np.zeros(num_bins + 1)
        h_all = np.zeros(num_bins + 1)
        for j in pos[i] + neg[i]:
            pulse = np.maximum(0.0, 1 - np.abs(d[i, j] - nodes) / width)
            h_all += pulse
            if j in pos[i]:
                h_pos += pulse
        c_pos, c_all = np.cumsum(h_pos), np.cumsum(h_all)
        ap = sum(
            h_pos[r] * c_pos[r] / c_all[r] for r in range(num_bins + 1) if h_pos[r] > 0
        )
        terms.append(1 - ap / len(pos[i]))
    return np.mean(terms)


def np_angular(x, labels, alpha_deg):
    u = unit(x)
    t2 = np.tan(np.radians(alpha_deg)) ** 2
    pos, neg = partners(labels)
    terms = []
    for a in range(len(x)):
        for p in pos[a]:
            total = 0.0
            for n in neg[a]:
                total += np.exp(
                    4 * t2 * (u[a] + u[p]) @ u[n] - 2 * (1 + t2) * u[a] @ u[p]
                )
            terms.append(np.log1p(total))
    return np.mean(terms)


def np_histogram(x, labels, n_bins):
    s = np_matrix(x, "cos")
    pos, neg = partners(labels)
    width = 2.0 / n_bins
    nodes = -1.0 + width * np.arange(n_bins + 1)
    pos_vals, neg_vals = [], []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if labels[i] == labels[j] and neg[i]:
                pos_vals.append(s[i, j])
            elif labels[i] != labels[j] and (pos[i] or pos[j]):
                neg_vals.append(s[i, j])

    def density(values):
        h = np.zeros(n_bins + 1)
        for v in values:
            h += np.maximum(0.0, 1 - np.abs(v - nodes) / width)
        return h / len(values)

    return float(np.sum(density(neg_vals) * np.cumsum(density(pos_vals))))


def _t(x=X, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _l(labels):
    return torch.tensor(labels, dtype=torch.long)


def _configured(loss, num_classes=3, embedding_size=3):
    loss.configure(num_classes, embedding_size)
    return loss.double()


# ------------------------------------------------------------ values vs NumPy
# (name, factory, numpy reference) on the batch (X, labels)
VALUE_CASES = [
    (
        "circle",
        lambda: CircleLoss(m=0.25, gamma=4.0),
        lambda y: np_circle(X, y, 0.25, 4.0),
    ),
    ("circle80", lambda: CircleLoss(), lambda y: np_circle(X, y, 0.4, 80.0)),
    (
        "gls",
        lambda: GeneralizedLiftedStructureLoss(1.2, 0.1),
        lambda y: np_gls(X, y, 1.2, 0.1),
    ),
    (
        "lifted",
        lambda: LiftedStructureLoss(1.2, 0.1),
        lambda y: np_lifted(X, y, 1.2, 0.1),
    ),
    ("npairs", NPairsLoss, lambda y: np_npairs(X, y)),
    ("ntxent", lambda: NTXentLoss(0.3), lambda y: np_ntxent(X, y, 0.3)),
    ("supcon", lambda: SupConLoss(0.3), lambda y: np_supcon(X, y, 0.3)),
    (
        "snr",
        lambda: SignalToNoiseRatioContrastiveLoss(0.3, 1.5),
        lambda y: np_snr_contrastive(X, y, 0.3, 1.5),
    ),
    ("margin", lambda: MarginLoss(0.2, beta=1.0), lambda y: np_margin(X, y, 0.2, 1.0)),
    (
        "tuplet",
        lambda: TupletMarginLoss(10.0, 8.0),
        lambda y: np_tuplet(X, y, 10.0, 8.0),
    ),
    ("fastap", lambda: FastAPLoss(num_bins=5), lambda y: np_fastap(X, y, 5)),
    ("angular", lambda: AngularLoss(35), lambda y: np_angular(X, y, 35)),
    ("histogram", lambda: HistogramLoss(n_bins=7), lambda y: np_histogram(X, y, 7)),
]


@pytest.mark.parametrize("labels", [Y, Y_FULL], ids=["singleton", "full"])
@pytest.mark.parametrize("name, factory, reference", VALUE_CASES, ids=lambda c: c)
def test_value_matches_numpy(name, factory, reference, labels):
    expected = reference(labels)
    assert expected > 0
    got = factory()(_t(), _l(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_margin_loss_learned_beta_matches_numpy():
    torch.manual_seed(0)
    loss = _configured(MarginLoss(0.1, nu=0.3, learn_beta=True, per_class_beta=True))
    with torch.no_grad():
        loss.betas.copy_(torch.tensor([0.9, 1.1, 1.3], dtype=torch.float64))
    expected = np_margin(X, Y, 0.1, [0.9, 1.1, 1.3], nu=0.3, mode="class")
    np.testing.assert_allclose(loss(_t(), _l(Y)).item(), expected, rtol=1e-10)
    glob = _configured(MarginLoss(0.1, nu=0.3, beta=1.25, learn_beta=True))
    expected = np_margin(X, Y, 0.1, [1.25], nu=0.3, mode="global")
    np.testing.assert_allclose(glob(_t(), _l(Y)).item(), expected, rtol=1e-10)


def test_center_loss_matches_numpy():
    torch.manual_seed(0)
    loss = _configured(CenterLoss())
    centers = loss.centers.detach().numpy()
    expected = np.mean([0.5 * np.sum((X[i] - centers[Y[i]]) ** 2) for i in range(7)])
    np.testing.assert_allclose(loss(_t(), _l(Y)).item(), expected, rtol=1e-12)
    # Restricted to the samples named by a tuple.
    tup = (torch.tensor([0, 3]), torch.tensor([1, 6]), torch.tensor([5, 5]))
    named = [0, 1, 3, 5, 6]
    expected = np.mean([0.5 * np.sum((X[i] - centers[Y[i]]) ** 2) for i in named])
    np.testing.assert_allclose(loss(_t(), _l(Y), tup).item(), expected, rtol=1e-12)
    # A similarity: minus half the mean cosine to the centres.
    cos = CenterLoss(distance=CosineSimilarity()).configure(3, 3).double()
    with torch.no_grad():
        cos.centers.copy_(loss.centers)
    expected = -0.5 * np.mean(
        [unit(X[i : i + 1])[0] @ unit(centers[Y[i] : Y[i] + 1])[0] for i in range(7)]
    )
    np.testing.assert_allclose(cos(_t(), _l(Y)).item(), expected, rtol=1e-12)


def test_snr_distance_matches_numpy():
    expected = np_matrix(X, "snr")
    np.testing.assert_allclose(SNRDistance()(_t()).numpy(), expected, atol=1e-12)
    raw = SNRDistance(normalize_embeddings=False)
    q, r = X[:3], X[3:]
    cross = np.array(
        [[np.var(a - b, ddof=1) / np.var(a, ddof=1) for b in r] for a in q]
    )
    np.testing.assert_allclose(raw(_t(q), _t(r)).numpy(), cross, rtol=1e-12)
    np.testing.assert_allclose(
        raw.pairwise(_t(q), _t(r[:3])).numpy(), np.diag(cross[:, :3]), rtol=1e-12
    )
    assert not np.allclose(cross[:, :3], cross[:, :3].T)  # not symmetric


# -------------------------------------------------------------- gradients
GRAD_CASES = [
    ("gls", GeneralizedLiftedStructureLoss(1.2, 0.1)),
    ("lifted", LiftedStructureLoss(1.2, 0.1)),
    ("npairs", NPairsLoss()),
    ("ntxent", NTXentLoss(0.3)),
    ("supcon", SupConLoss(0.3)),
    ("snr", SignalToNoiseRatioContrastiveLoss(0.3, 1.5)),
    ("margin", MarginLoss(0.2, beta=1.0)),
    ("tuplet", TupletMarginLoss(10.0, 8.0)),
    ("fastap", FastAPLoss(num_bins=5)),
    ("angular", AngularLoss(35)),
    ("histogram", HistogramLoss(n_bins=7)),
    ("gls_cos", GeneralizedLiftedStructureLoss(0.9, 0.2, CosineSimilarity())),
]


@pytest.mark.parametrize("labels", [Y, Y_FULL], ids=["singleton", "full"])
@pytest.mark.parametrize("name, loss", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(name, loss, labels):
    x = _t(requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, _l(labels)), (x,))


def test_gradcheck_learnable_parameters():
    torch.manual_seed(1)
    margin = _configured(MarginLoss(0.2, nu=0.1, learn_beta=True, per_class_beta=True))
    centers = _configured(CenterLoss())
    x = _t(requires_grad=True)

    assert torch.autograd.gradcheck(lambda e: margin(e, _l(Y)), (x,))
    betas = margin.betas
    value = margin(_t(), _l(Y))
    (grad,) = torch.autograd.grad(value, betas)
    eps = 1e-6
    numeric = np.zeros(3)
    base = betas.detach().numpy().copy()
    for c in range(3):
        for sign in (1, -1):
            shifted = base.copy()
            shifted[c] += sign * eps
            numeric[c] += sign * np_margin(X, Y, 0.2, shifted, nu=0.1, mode="class")
    np.testing.assert_allclose(grad.numpy(), numeric / (2 * eps), rtol=1e-6, atol=1e-9)
    assert torch.autograd.gradcheck(lambda e: centers(e, _l(Y)), (x,))
    (grad,) = torch.autograd.grad(centers(_t(), _l(Y)), centers.centers)
    c = centers.centers.detach().numpy()
    expected = np.zeros_like(c)
    for i, y in enumerate(Y):
        expected[y] += (c[y] - X[i]) / len(Y)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12)


def test_circle_gradient_treats_weights_as_constants():
    # The weights alpha are detached (as in the paper), so autograd's gradient
    # is the finite-difference gradient of the loss with alpha frozen at x.
    loss = CircleLoss(m=0.25, gamma=4.0)
    x = _t(requires_grad=True)
    loss(x, _l(Y)).backward()
    numeric = np.zeros_like(X)
    eps = 1e-6
    for idx in np.ndindex(X.shape):
        for sign in (1, -1):
            shifted = X.copy()
            shifted[idx] += sign * eps
            numeric[idx] += sign * np_circle(shifted, Y, 0.25, 4.0, frozen_x=X)
    np.testing.assert_allclose(
        x.grad.numpy(), numeric / (2 * eps), rtol=1e-6, atol=1e-9
    )


# ---------------------------------------------------------- edge cases
def _zero_case_losses():
    torch.manual_seed(0)
    return [
        CircleLoss(),
        GeneralizedLiftedStructureLoss(),
        LiftedStructureLoss(),
        NPairsLoss(),
        NTXentLoss(),
        SupConLoss(),
        SignalToNoiseRatioContrastiveLoss(),
        MarginLoss(),
        _configured(MarginLoss(nu=0.1, learn_beta=True, per_class_beta=True), 7),
        TupletMarginLoss(),
        FastAPLoss(),
        AngularLoss(),
        HistogramLoss(),
    ]


def _assert_zero_with_zero_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    assert value.ndim == 0 and value.requires_grad
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad) == 0
    for param in loss.parameters():
        assert param.grad is None or torch.count_nonzero(param.grad) == 0


@pytest.mark.parametrize("loss", _zero_case_losses(), ids=lambda m: type(m).__name__)
def test_degenerate_batches_give_zero(loss):
    empty = torch.zeros(0, dtype=torch.long)
    _assert_zero_with_zero_grad(loss, _t(X[:1]), _l([0]))  # one sample
    _assert_zero_with_zero_grad(loss, _t(), _l(Y), (empty, empty, empty))
    _assert_zero_with_zero_grad(loss, _t(), _l(Y), (empty, empty, empty, empty))
    if isinstance(loss, SignalToNoiseRatioContrastiveLoss):
        return  # contrastive: negative pairs alone (or positives alone) count
    _assert_zero_with_zero_grad(loss, _t(), _l(list(range(7))))  # no positives
    if not isinstance(loss, NPairsLoss):  # N-pairs needs no negative pair
        _assert_zero_with_zero_grad(loss, _t(), _l([1] * 7))  # one class


def test_npairs_with_one_class_is_zero():
    # One pair, one class: the softmax over a single logit is certain.
    _assert_zero_with_zero_grad(NPairsLoss(), _t(), _l([1] * 7))


@pytest.mark.parametrize(
    "loss",
    [
        CircleLoss(),
        NTXentLoss(0.05),
        SupConLoss(0.05),
        TupletMarginLoss(),
        LiftedStructureLoss(),
        GeneralizedLiftedStructureLoss(),
        AngularLoss(),
        HistogramLoss(),
        FastAPLoss(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_duplicate_embeddings_and_float32_stay_finite(loss):
    # Identical rows (cosine exactly 1, distance 0) and large scales in float32.
    x = torch.tensor(np.vstack([X, X[:2]]) * 50, dtype=torch.float32)
    x.requires_grad_(True)
    value = loss(x, _l(Y + [0, 0]))
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------- indices tuples and miners
TUPLE_LOSSES = [
    CircleLoss(m=0.25, gamma=4.0),
    GeneralizedLiftedStructureLoss(1.2, 0.1),
    LiftedStructureLoss(1.2, 0.1),
    NPairsLoss(),
    NTXentLoss(0.3),
    SupConLoss(0.3),
    SignalToNoiseRatioContrastiveLoss(0.3, 1.5),
    MarginLoss(0.2, beta=1.0),
    TupletMarginLoss(10.0, 8.0),
    FastAPLoss(num_bins=5),
    AngularLoss(35),
    HistogramLoss(n_bins=7),
]


@pytest.mark.parametrize("loss", TUPLE_LOSSES, ids=lambda m: type(m).__name__)
def test_all_tuples_given_equal_none(loss):
    labels = _l(Y_FULL)
    expected = loss(_t(), labels).item()
    for tup in (get_all_pairs_indices(labels), get_all_triplets_indices(labels)):
        np.testing.assert_allclose(loss(_t(), labels, tup).item(), expected, rtol=1e-12)


def test_mined_tuples_restrict_the_loss():
    x, labels = _t(), _l(Y)
    triplets = TripletMarginMiner(margin=0.3)(x, labels)
    as_list = list(zip(*(t.tolist() for t in triplets)))
    assert 0 < len(as_list) < len(get_all_triplets_indices(labels)[0])
    got = MarginLoss(0.2, beta=1.0)(x, labels, triplets).item()
    expected = np_margin(X, Y, 0.2, 1.0, triplets=as_list)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Pairs: the margin loss counts every (positive pair, negative pair) of an
    # anchor as a triplet, without building them.
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    pos = list(zip(pairs[0].tolist(), pairs[1].tolist()))
    neg = list(zip(pairs[2].tolist(), pairs[3].tolist()))
    combos = [(a, p, n) for a, p in pos for b, n in neg if a == b]
    assert combos
    got = MarginLoss(0.2, beta=1.0)(x, labels, pairs).item()
    np.testing.assert_allclose(got, np_margin(X, Y, 0.2, 1.0, triplets=combos))
    # NT-Xent: an anchor's negatives are its mined negative pairs only.
    s = np_matrix(X, "cos") / 0.3
    terms = []
    for a, p in pos:
        den = np.exp(s[a, p]) + sum(np.exp(s[a, n]) for b, n in neg if b == a)
        terms.append(-np.log(np.exp(s[a, p]) / den))
    got = NTXentLoss(0.3)(x, labels, pairs).item()
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-10)


def test_angular_chunks_agree(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    labels = _l(rng.integers(0, 4, size=30))
    whole = AngularLoss(30)(_t(x), labels).item()
    monkeypatch.setattr(_pair, "_ANGULAR_CHUNK_CELLS", 60)  # 2 pairs a chunk
    np.testing.assert_allclose(AngularLoss(30)(_t(x), labels).item(), whole, rtol=1e-12)
    np.testing.assert_allclose(whole, np_angular(x, labels.tolist(), 30), rtol=1e-10)


# ------------------------------------------------ configure and parameters
def test_configure_contract():
    for loss in (CenterLoss(), MarginLoss(learn_beta=True)):
        with pytest.raises(RuntimeError, match=r"call configure\(num_classes"):
            loss(_t(), _l(Y))
        assert list(loss.parameters()) == []
    with pytest.raises(ValueError, match="CenterLoss.configure needs num_classes"):
        CenterLoss(embedding_size=3).configure()
    with pytest.raises(ValueError, match="built with num_classes=4 but configure got"):
        CenterLoss(num_classes=4).configure(3, 3)
    with pytest.raises(
        ValueError, match="'num_classes' parameter of CenterLoss.configure must be"
    ):
        CenterLoss().configure(0, 3)
    with pytest.raises(ValueError, match="MarginLoss.configure needs num_classes"):
        MarginLoss(learn_beta=True, per_class_beta=True).configure()
    # A fixed boundary needs no configure; configure leaves no parameter.
    assert list(MarginLoss().configure(3, 2).parameters()) == []
    # Sizes given to the constructor are enough.
    assert CenterLoss(4, 2).configure().centers.shape == (4, 2)
    glob = MarginLoss(beta=0.7, learn_beta=True).configure()
    assert glob.betas.shape == (1,) and glob.betas.item() == pytest.approx(0.7)


def test_configure_uses_the_callers_random_state():
    torch.manual_seed(3)
    a = CenterLoss().configure(5, 4).centers.detach().clone()
    torch.manual_seed(3)
    b = CenterLoss().configure(5, 4).centers.detach().clone()
    assert torch.equal(a, b)
    assert not torch.equal(a, CenterLoss().configure(5, 4).centers.detach())


def test_learned_parameters_copy_pickle_and_move():
    torch.manual_seed(0)
    loss = CenterLoss(distance=LpDistance(power=2, normalize_embeddings=False))
    loss.configure(3, 3)
    margin = MarginLoss(learn_beta=True, per_class_beta=True).configure(3)
    for module, name in ((loss, "centers"), (margin, "betas")):
        original = getattr(module, name).detach().clone()
        for copied in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert torch.equal(getattr(copied, name), original)
            assert isinstance(getattr(copied, name), torch.nn.Parameter)
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        buffer.seek(0)
        fresh = clone(module)
        assert getattr(fresh, name, None) is None  # clone is unconfigured
        fresh.configure(3, 3)
        fresh.load_state_dict(torch.load(buffer))
        assert torch.equal(getattr(fresh, name), original)
        moved = copy.deepcopy(module).to(torch.float64)
        assert getattr(moved, name).dtype == torch.float64
        assert [n for n, _ in module.named_parameters()] == [name]


def test_label_and_size_errors():
    loss = CenterLoss().configure(2, 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        loss(_t(), _l(Y))
    with pytest.raises(ValueError, match="embeddings have 2 dimensions"):
        loss(torch.zeros(3, 2), _l([0, 1, 1]))
    margin = MarginLoss(learn_beta=True, per_class_beta=True).configure(2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        margin(_t(), _l(Y))


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (CircleLoss, {"distance": LpDistance()}, "'distance' .* with is_inverted=True"),
        (
            TupletMarginLoss,
            {"distance": LpDistance()},
            "'distance' .* CosineSimilarity",
        ),
        (HistogramLoss, {"distance": DotProductSimilarity()}, "CosineSimilarity"),
        (
            FastAPLoss,
            {"distance": LpDistance(p=1)},
            "'distance' parameter of FastAPLoss must be None or a LpDistance with p=2",
        ),
        (AngularLoss, {"distance": LpDistance(power=2)}, "'distance' .*power=1"),
        (
            SignalToNoiseRatioContrastiveLoss,
            {"distance": LpDistance()},
            "'distance' .*SNRDistance",
        ),
        (FastAPLoss, {"num_bins": 0}, "'num_bins' parameter of FastAPLoss must be"),
        (HistogramLoss, {"n_bins": 0}, "'n_bins' parameter of HistogramLoss must be"),
        (HistogramLoss, {"n_bins": 2.5}, "'n_bins' parameter of HistogramLoss must be"),
    ],
)
def test_invalid_distance_or_parameter(cls, params, message):
    # Rejected when the loss is built, not at its first call.
    with pytest.raises(ValueError, match=message):
        cls(**params)
    loss = cls()
    with pytest.raises(ValueError, match=message):
        loss.set_params(**params)
    assert loss.get_params(deep=False) == cls().get_params(deep=False)


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


def test_inputs_are_not_mutated():
    x, labels = _t(), _l(Y)
    before_x, before_l = x.clone(), labels.clone()
    pairs = get_all_pairs_indices(labels)
    saved = [t.clone() for t in pairs]
    for loss in TUPLE_LOSSES:
        loss(x, labels, pairs)
    assert torch.equal(x, before_x) and torch.equal(labels, before_l)
    assert all(torch.equal(a, b) for a, b in zip(pairs, saved))


# ------------------------------------------------------------- vs pml
@pytest.fixture(scope="module")
def pml():
    import pytorch_metric_learning.distances
    import pytorch_metric_learning.losses

    return pytorch_metric_learning


def _batch(seed, n=24, d=6, n_classes=4, singleton=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=gen)]
    if singleton:
        labels[-1] = n_classes  # a class of size one
    return x, labels


def _value_and_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, indices_tuple)
    value.backward()
    return value.item(), x.grad.numpy()


def _assert_same(ours, theirs, x, labels, indices_tuple=None, project=False):
    v1, g1 = _value_and_grad(ours, x, labels, indices_tuple)
    v2, g2 = _value_and_grad(theirs, x, labels, indices_tuple)
    assert v1 > 0
    np.testing.assert_allclose(v1, v2, rtol=1e-9, atol=1e-12)
    if project:  # remove the radial part: ours differentiates through normalize
        u = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
        g2 = g2 - (g2 * u).sum(1, keepdims=True) * u
    np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)


def _pml_pairs(pml):
    P = pml.losses
    D = pml.distances
    return [
        ("circle", CircleLoss(), P.CircleLoss(), True),
        ("circle2", CircleLoss(0.25, 16), P.CircleLoss(m=0.25, gamma=16), True),
        (
            "gls",
            GeneralizedLiftedStructureLoss(0.8, 0.1),
            P.GeneralizedLiftedStructureLoss(0.8, 0.1),
            False,
        ),
        (
            "lifted",
            LiftedStructureLoss(0.8, 0.1),
            P.LiftedStructureLoss(0.8, 0.1),
            True,
        ),
        (
            "npairs",
            NPairsLoss(),
            P.NPairsLoss(distance=D.DotProductSimilarity(normalize_embeddings=False)),
            True,
        ),
        (
            "npairs_cos",
            NPairsLoss(distance=CosineSimilarity()),
            P.NPairsLoss(),
            True,
        ),
        ("ntxent", NTXentLoss(0.2), P.NTXentLoss(0.2), True),
        (
            "ntxent_lp",
            NTXentLoss(0.5, LpDistance()),
            P.NTXentLoss(0.5, distance=D.LpDistance()),
            True,
        ),
        ("supcon", SupConLoss(0.2), P.SupConLoss(0.2), True),
        (
            "snr",
            SignalToNoiseRatioContrastiveLoss(0.2, 1.5),
            P.SignalToNoiseRatioContrastiveLoss(pos_margin=0.2, neg_margin=1.5),
            True,
        ),
        ("margin", MarginLoss(0.2, beta=1.0), P.MarginLoss(0.2, beta=1.0), True),
        (
            "margin_cos",
            MarginLoss(0.1, beta=0.375, distance=CosineSimilarity()),
            P.MarginLoss(0.1, beta=0.375, distance=D.CosineSimilarity()),
            True,
        ),
        ("tuplet", TupletMarginLoss(), P.TupletMarginLoss(), True),
        ("tuplet2", TupletMarginLoss(10.0, 16), P.TupletMarginLoss(10.0, 16), True),
        ("fastap", FastAPLoss(), P.FastAPLoss(), True),
        (
            "fastap_p1",
            FastAPLoss(7, LpDistance()),
            P.FastAPLoss(7, distance=D.LpDistance()),
            True,
        ),
        # pml computes the bin offsets r * delta in float32: bin widths that
        # are powers of two keep that exact, so both agree to float64 rounding.
        ("histogram", HistogramLoss(64), P.HistogramLoss(n_bins=64), True),
        ("histogram8", HistogramLoss(8), P.HistogramLoss(n_bins=8), True),
    ]


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_losses_match_pml(pml, seed):
    for name, ours, theirs, singleton in _pml_pairs(pml):
        x, labels = _batch(seed, singleton=singleton)
        try:
            _assert_same(ours, theirs, x, labels)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from err


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_angular_matches_pml_on_unit_embeddings(pml, seed):
    # pml normalises anchors and positives but not the negatives: on unit-norm
    # input the values agree and the gradients agree up to their radial part.
    x, labels = _batch(seed)
    x = x / x.norm(dim=1, keepdim=True)
    for alpha in (40, 25):
        _assert_same(
            AngularLoss(alpha), pml.losses.AngularLoss(alpha), x, labels, project=True
        )


@pytest.mark.pml
@pytest.mark.parametrize("per_class", [False, True])
def test_margin_learned_beta_matches_pml(pml, per_class):
    x, labels = _batch(2)
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
    _assert_same(ours, theirs, x, labels)
    (g1,) = torch.autograd.grad(ours(x, labels), ours.betas)
    (g2,) = torch.autograd.grad(theirs(x, labels), theirs.beta)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-9)


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_mined_pairs_match_pml(pml, seed):
    import pytorch_metric_learning.miners  # noqa: F401

    x, labels = _batch(seed, singleton=False)
    pairs = MultiSimilarityMiner(0.3)(x, labels)
    triplets = TripletMarginMiner(0.3)(x, labels)
    P = pml.losses
    for ours, theirs in [
        (CircleLoss(0.25, 16), P.CircleLoss(m=0.25, gamma=16)),
        (LiftedStructureLoss(0.8, 0.1), P.LiftedStructureLoss(0.8, 0.1)),
        (NTXentLoss(0.2), P.NTXentLoss(0.2)),
        (SupConLoss(0.2), P.SupConLoss(0.2)),
        (TupletMarginLoss(10.0, 16), P.TupletMarginLoss(10.0, 16)),
        (GeneralizedLiftedStructureLoss(), P.GeneralizedLiftedStructureLoss()),
    ]:
        _assert_same(ours, theirs, x, labels, pairs)
    for ours, theirs in [
        (MarginLoss(0.2, beta=1.0), P.MarginLoss(0.2, beta=1.0)),
        (HistogramLoss(32), P.HistogramLoss(n_bins=32)),
    ]:
        for tup in (triplets, pairs):
            try:
                _assert_same(ours, theirs, x, labels, tup)
            except AssertionError as err:
                raise AssertionError(
                    f"{type(ours).__name__} {len(tup)}: {err}"
                ) from err


@pytest.mark.pml
def test_snr_distance_matches_pml(pml):
    x, _ = _batch(0)
    y, _ = _batch(1)
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


def test_circle_is_finite_for_large_gamma():
    x = _t(X * 10, requires_grad=True)
    value = CircleLoss(m=0.1, gamma=1000.0)(x, _l(Y))
    value.backward()
    assert torch.isfinite(value) and value.item() > 0 and torch.isfinite(x.grad).all()
    assert math.isfinite(np_circle(X, Y, 0.25, 4.0))


def test_npairs_picks_the_same_pairs_whatever_the_tuple_order():
    # The lowest (anchor, positive) pair of each class in row-major order:
    # for the full batch, the first and second sample of the class.
    labels = _l([2, 0, 1, 0, 2, 1, 0, 3])
    x = _t(np.random.default_rng(5).normal(size=(8, 3)))
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
