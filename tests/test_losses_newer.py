"""Mean-field, TCM and relational distillation losses against NumPy loops.

The references loop over samples, classes, pairs and triplets in plain
NumPy (cosines from explicit dot products, Huber by cases), an independent
route from the vectorised torch code under test.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.base import clone
from torch.func import functional_call

from sklearn_dml.losses import _distillation
from sklearn_dml.losses._classification import EquiangularBasisLoss
from sklearn_dml.losses._distillation import RKDAngleLoss, RKDDistanceLoss
from sklearn_dml.losses._proxy import (
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
)
from sklearn_dml.losses._regularizers import TCMRegularizer
from sklearn_dml.miners import BatchHardMiner

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
Y = [0, 0, 0, 1, 1, 2, 1]  # class 3 of the 4 mean fields has no sample
N_CLASSES = 4
P = np.random.default_rng(11).normal(size=(N_CLASSES, 3))
TRIPLETS = (
    torch.tensor([0, 0, 3, 1]),
    torch.tensor([1, 2, 4, 0]),
    torch.tensor([3, 5, 0, 6]),
)


def _t(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _l(labels):
    return torch.tensor(labels, dtype=torch.long)


def _configured(loss, proxies=P):
    proxies = np.asarray(proxies)
    loss.configure(proxies.shape[0], proxies.shape[1])
    loss.double()
    with torch.no_grad():
        loss.proxies.copy_(torch.from_numpy(proxies))
    return loss


# ---------------------------------------------------------------- references
def cos(u, v):
    return float(np.dot(u, v) / np.sqrt(np.dot(u, u) * np.dot(v, v)))


def np_weights(indices_tuple, n):
    if indices_tuple is None:
        return np.ones(n)
    counts = np.zeros(n)
    for t in indices_tuple:
        for i in t.tolist():
            counts[i] += 1
    return counts / counts.max()


def np_mf_contrastive(x, proxies, y, pos_m, neg_m, reg, power, w):
    n, n_classes = len(x), len(proxies)
    total = 0.0
    for i in range(n):
        term = 0.0
        for c in range(n_classes):
            d = 1.0 - cos(x[i], proxies[c])
            if c == y[i]:
                term += max(d - pos_m, 0.0)
            else:
                term += max(neg_m - d, 0.0)
        total += w[i] * term
    penalty = 0.0
    for c in range(n_classes):
        for k in range(n_classes):
            if k != c:
                gap = neg_m - (1.0 - cos(proxies[c], proxies[k]))
                penalty += max(gap, 0.0) ** power
    return total / n + reg * penalty / n_classes


def np_mf_cwms(x, proxies, y, alpha, beta, base, reg, power, w):
    n_classes = len(proxies)
    members = {c: [i for i in range(len(x)) if y[i] == c] for c in range(n_classes)}
    batch = [c for c in range(n_classes) if sum(w[i] for i in members[c]) > 0]

    def mean_field_sum(c, k, scale):
        if c not in batch:
            return 0.0
        values = [
            w[i] * np.exp(scale * (cos(x[i], proxies[k]) - base)) for i in members[c]
        ]
        return sum(values) / len(members[c])

    pos = sum(np.log1p(mean_field_sum(c, c, -alpha)) for c in batch)
    neg = 0.0
    for c in range(n_classes):
        for k in range(c + 1, n_classes):
            neg += np.log1p(mean_field_sum(c, k, beta) + mean_field_sum(k, c, beta))
    penalty = 0.0
    for c in range(n_classes):
        for k in range(n_classes):
            if k != c:
                z = beta * (cos(proxies[c], proxies[k]) - base)
                penalty += (np.logaddexp(0.0, z) / beta) ** power
    return (
        pos / (alpha * len(batch))
        + neg / (beta * len(batch))
        + reg * penalty / n_classes
    )


def np_tcm(x, y, m_plus, m_minus, lam_plus, lam_minus, pairs=None):
    n = len(x)
    if pairs is None:
        pos = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
        neg = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
    else:
        pos, neg = pairs
    hard_pos = [m_plus - cos(x[i], x[j]) for i, j in pos if cos(x[i], x[j]) <= m_plus]
    hard_neg = [cos(x[i], x[j]) - m_minus for i, j in neg if cos(x[i], x[j]) >= m_minus]
    value = 0.0
    if hard_pos:
        value += lam_plus * np.mean(hard_pos)
    if hard_neg:
        value += lam_minus * np.mean(hard_neg)
    return value


def huber(a, b, delta):
    r = abs(a - b)
    return 0.5 * r * r if r <= delta else delta * (r - 0.5 * delta)


def np_rkd_distance(s, t, delta):
    n = len(s)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    ds = {p: np.linalg.norm(s[p[0]] - s[p[1]]) for p in pairs}
    dt = {p: np.linalg.norm(t[p[0]] - t[p[1]]) for p in pairs}
    mu_s, mu_t = np.mean(list(ds.values())), np.mean(list(dt.values()))
    return np.mean([huber(ds[p] / mu_s, dt[p] / mu_t, delta) for p in pairs])


def np_angle(u, i, j, k):
    a, b = u[i] - u[j], u[k] - u[j]
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def np_rkd_angle(s, t, delta):
    n = len(s)
    terms = [
        huber(np_angle(s, i, j, k), np_angle(t, i, j, k), delta)
        for i in range(n)
        for j in range(n)
        for k in range(n)
        if len({i, j, k}) == 3
    ]
    return np.mean(terms)


def _zero_with_zero_grad(value, tensors):
    assert value.ndim == 0 and value.item() == 0.0
    value.backward()
    for t in tensors:
        assert t.grad is None or (
            torch.isfinite(t.grad).all() and torch.count_nonzero(t.grad) == 0
        )


# ----------------------------------------------------------- mean field
MF_CASES = [
    (
        "mf_contrastive",
        lambda: MeanFieldContrastiveLoss(pos_margin=0.05, neg_margin=1.1),
        lambda x, y, w: np_mf_contrastive(x, P, y, 0.05, 1.1, 0.0, 2, w),
    ),
    (
        "mf_contrastive_reg",
        lambda: MeanFieldContrastiveLoss(
            pos_margin=0.0, neg_margin=1.2, mf_reg=0.7, mf_power=1.5
        ),
        lambda x, y, w: np_mf_contrastive(x, P, y, 0.0, 1.2, 0.7, 1.5, w),
    ),
    (
        "mf_cwms",
        lambda: MeanFieldClassWiseMultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.3),
        lambda x, y, w: np_mf_cwms(x, P, y, 2.0, 10.0, 0.3, 0.0, 2, w),
    ),
    (
        "mf_cwms_reg",
        lambda: MeanFieldClassWiseMultiSimilarityLoss(
            alpha=0.5, beta=4.0, base=-0.2, mf_reg=0.3, mf_power=3
        ),
        lambda x, y, w: np_mf_cwms(x, P, y, 0.5, 4.0, -0.2, 0.3, 3, w),
    ),
]
MF_IDS = [case[0] for case in MF_CASES]


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
@pytest.mark.parametrize("tuple_", [None, TRIPLETS], ids=["all", "mined"])
def test_mean_field_losses_match_numpy(name, factory, reference, tuple_):
    loss = _configured(factory())
    got = loss(_t(X), _l(Y), tuple_).item()
    expected = reference(X, Y, np_weights(tuple_, len(X)))
    assert expected > 0
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
def test_mean_field_gradcheck(name, factory, reference):
    loss = factory()
    loss.configure(N_CLASSES, 3)

    def fn(x, proxies):
        return functional_call(loss, {"proxies": proxies}, (x, _l(Y)))

    x, proxies = _t(X, requires_grad=True), _t(P, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, proxies))


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
def test_mean_field_edge_batches(name, factory, reference):
    loss = _configured(factory())
    # one-class batch, singleton class, single sample: finite, as NumPy
    for labels in ([1] * 7, [0, 0, 1, 1, 2, 2, 3], [2]):
        x = _t(X[: len(labels)], requires_grad=True)
        value = loss(x, _l(labels))
        value.backward()
        np.testing.assert_allclose(
            value.item(),
            reference(X[: len(labels)], labels, np.ones(len(labels))),
            rtol=1e-10,
        )
        assert torch.isfinite(x.grad).all() and torch.isfinite(loss.proxies.grad).all()
        loss.zero_grad()
    # an empty tuple: zero, zero gradients to embeddings and mean fields
    empty = torch.zeros(0, dtype=torch.long)
    x = _t(X, requires_grad=True)
    _zero_with_zero_grad(loss(x, _l(Y), (empty,) * 3), [x, loss.proxies])


def test_mean_field_parameters_receive_gradients_and_train():
    torch.manual_seed(0)
    x = torch.tensor(X, dtype=torch.float32)
    for loss in (
        MeanFieldContrastiveLoss(mf_reg=0.5, neg_margin=0.9),
        MeanFieldClassWiseMultiSimilarityLoss(alpha=1.0, beta=5.0, mf_reg=0.1),
    ):
        loss.configure(N_CLASSES, 3)
        first = loss(x, _l(Y))
        first.backward()
        grad = loss.proxies.grad
        assert torch.count_nonzero(grad[:3]) > 0
        for _ in range(5):
            loss.zero_grad()
            loss(x, _l(Y)).backward()
            with torch.no_grad():
                loss.proxies -= 0.1 * loss.proxies.grad
        assert loss(x, _l(Y)).item() < first.item()


def test_absent_mean_field_is_pushed_only_when_a_sample_is_within_margin():
    # Mean field 3 has no sample in the batch: it only acts as a negative.
    for margin in (0.1, 1.9):
        loss = _configured(MeanFieldContrastiveLoss(neg_margin=margin))
        loss(_t(X), _l(Y)).backward()
        within = any(1.0 - cos(x, P[3]) < margin for x in X)
        assert (torch.count_nonzero(loss.proxies.grad[3]) > 0) == within
    assert within  # the wide margin reaches it


def test_mf_cwms_large_beta_does_not_overflow_in_float32():
    # exp(400 * 1.2) overflows float32 (and float64); the log-space sums do not
    loss = MeanFieldClassWiseMultiSimilarityLoss(beta=400.0, base=-0.2)
    loss.configure(N_CLASSES, 3)
    with torch.no_grad():
        loss.proxies.copy_(torch.tensor(P, dtype=torch.float32))
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value = loss(x, _l(Y))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    # reference in log space (scipy logsumexp), float64
    members = {c: [i for i in range(7) if Y[i] == c] for c in range(N_CLASSES)}
    batch = [0, 1, 2]

    def log_n(c, k):
        if c not in batch:
            return -np.inf
        z = [400.0 * (cos(X[i], P[k]) + 0.2) for i in members[c]]
        return logsumexp(z) - np.log(len(members[c]))

    pos = 0.0
    for c in batch:
        z = [-0.01 * (cos(X[i], P[c]) + 0.2) for i in members[c]]
        pos += np.logaddexp(0.0, logsumexp(z) - np.log(len(members[c])))
    neg = sum(
        logsumexp([0.0, log_n(c, k), log_n(k, c)])
        for c in range(N_CLASSES)
        for k in range(c + 1, N_CLASSES)
    )
    expected = pos / (0.01 * 3) + neg / (400.0 * 3)
    np.testing.assert_allclose(value.item(), expected, rtol=1e-5)


def test_mean_field_configure_pickle_deepcopy_clone():
    torch.manual_seed(4)
    a = MeanFieldClassWiseMultiSimilarityLoss(beta=20.0).configure(4, 3)
    torch.manual_seed(4)
    b = MeanFieldClassWiseMultiSimilarityLoss(beta=20.0).configure(4, 3)
    assert torch.equal(a.proxies, b.proxies)
    assert [p is a.proxies for p in a.parameters()] == [True]
    x = torch.tensor(X, dtype=torch.float32)
    expected = a(x, _l(Y)).item()
    for other in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert other.proxies is not a.proxies
        assert other(x, _l(Y)).item() == expected
    fresh = clone(a)
    assert fresh.get_params() == a.get_params()
    assert list(fresh.parameters()) == []
    assert set(MeanFieldContrastiveLoss().get_params()) == {
        "embedding_size",
        "mf_power",
        "mf_reg",
        "neg_margin",
        "num_classes",
        "pos_margin",
    }
    with pytest.raises(RuntimeError, match=r"call loss.configure\(num_classes"):
        MeanFieldContrastiveLoss()(x, _l(Y))


def test_mean_field_validates_hyperparameters_and_inputs():
    x = torch.tensor(X, dtype=torch.float32)
    with pytest.raises(
        ValueError, match="'alpha' parameter of MeanFieldClassWiseMultiSimilarityLoss"
    ):
        MeanFieldClassWiseMultiSimilarityLoss(alpha=0.0)
    with pytest.raises(ValueError, match="'mf_reg' parameter of MeanFieldContrastive"):
        MeanFieldContrastiveLoss(mf_reg=-1.0)
    with pytest.raises(TypeError, match="'neg_margin' parameter of MeanFieldContras"):
        MeanFieldContrastiveLoss(neg_margin="0.3")
    with pytest.raises(ValueError, match=r"labels must be class indices in 0 \.\. 3"):
        MeanFieldContrastiveLoss().configure(4, 3)(x, _l([0, 1, 2, 3, 4, 0, 0]))
    labels = _l(Y)
    before = x.clone(), labels.clone()
    MeanFieldContrastiveLoss().configure(4, 3)(x, labels, TRIPLETS)
    assert torch.equal(x, before[0]) and torch.equal(labels, before[1])


# ------------------------------------------------------------------- TCM
def test_tcm_matches_numpy():
    x, y = X, Y
    got = TCMRegularizer(0.8, 0.1, 2.0, 0.5)(_t(x), _l(y)).item()
    expected = np_tcm(x, y, 0.8, 0.1, 2.0, 0.5)
    assert expected > 0
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # a mined triplet tuple: its distinct positive and negative pairs
    pos = sorted({(a, p) for a, p in zip(TRIPLETS[0].tolist(), TRIPLETS[1].tolist())})
    neg = sorted({(a, n) for a, n in zip(TRIPLETS[0].tolist(), TRIPLETS[2].tolist())})
    got = TCMRegularizer(0.8, 0.1, 2.0, 0.5)(_t(x), _l(y), TRIPLETS).item()
    np.testing.assert_allclose(got, np_tcm(x, y, 0.8, 0.1, 2.0, 0.5, (pos, neg)))


def test_tcm_gradcheck_and_zero_cases():
    x = _t(X, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda e: TCMRegularizer(0.8, 0.1, 2.0, 0.5)(e, _l(Y)), (x,)
    )
    # margins no pair violates: zero with zero gradient
    loss = TCMRegularizer(margin_plus=-1.5, margin_minus=1.5)
    _zero_with_zero_grad(loss(x, _l(Y)), [x])
    # one-class batch (no negatives) and all-distinct labels (no positives)
    for labels in ([0] * 7, list(range(7))):
        x = _t(X, requires_grad=True)
        value = TCMRegularizer()(x, _l(labels))
        np.testing.assert_allclose(value.item(), np_tcm(X, labels, 0.9, 0.5, 1, 1))
        value.backward()
        assert torch.isfinite(x.grad).all()
    x = _t(X[:1], requires_grad=True)
    _zero_with_zero_grad(TCMRegularizer()(x, _l([0])), [x])


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
    from sklearn_dml.losses import ContrastiveLoss

    x = _t(X, requires_grad=True)
    total = ContrastiveLoss()(x, _l(Y)) + 0.5 * TCMRegularizer()(x, _l(Y))
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


# ------------------------------------------------------------------- RKD
S = np.random.default_rng(3).normal(size=(6, 2))
T = np.random.default_rng(5).normal(size=(6, 4))


@pytest.mark.parametrize("delta", [1.0, 0.05])
def test_rkd_losses_match_numpy(delta):
    got_d = RKDDistanceLoss(delta=delta)(_t(S), _t(T)).item()
    got_a = RKDAngleLoss(delta=delta)(_t(S), _t(T)).item()
    exp_d, exp_a = np_rkd_distance(S, T, delta), np_rkd_angle(S, T, delta)
    assert exp_d > 0 and exp_a > 0
    np.testing.assert_allclose(got_d, exp_d, rtol=1e-10)
    np.testing.assert_allclose(got_a, exp_a, rtol=1e-10)


def test_rkd_angle_chunks_give_the_same_value(monkeypatch):
    s, t = _t(S, requires_grad=True), _t(T)
    whole = RKDAngleLoss()(s, t)
    (grad_whole,) = torch.autograd.grad(whole, s)
    monkeypatch.setattr(_distillation, "_ANGLE_CHUNK_CELLS", 30)  # one vertex a chunk
    chunked = RKDAngleLoss()(s, t)
    (grad_chunked,) = torch.autograd.grad(chunked, s)
    np.testing.assert_allclose(chunked.item(), whole.item(), rtol=1e-12)
    np.testing.assert_allclose(grad_chunked, grad_whole, rtol=1e-10)


@pytest.mark.parametrize("cls", [RKDDistanceLoss, RKDAngleLoss])
def test_rkd_gradcheck_teacher_detached_and_invariances(cls):
    s, t = _t(S, requires_grad=True), _t(T, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: cls(delta=0.3)(e, t), (s,))
    cls()(s, t).backward()
    assert t.grad is None and torch.isfinite(s.grad).all()
    # a student that is a scaled, rotated, shifted copy of the teacher: 0
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    student = _t(3.0 * T @ rot + 1.5)
    np.testing.assert_allclose(cls()(student, _t(T)).item(), 0.0, atol=1e-12)


@pytest.mark.parametrize("cls", [RKDDistanceLoss, RKDAngleLoss])
def test_rkd_edge_cases_and_validation(cls):
    # too small a batch: zero with zero gradient
    for n in (0, 1, 2) if cls is RKDAngleLoss else (0, 1):
        s = _t(S[:n], requires_grad=True)
        _zero_with_zero_grad(cls()(s, _t(T[:n])), [s])
    # coincident points (and a collapsed student): finite gradients
    s = _t(np.vstack([S[:3], S[:3]]), requires_grad=True)
    cls()(s, _t(T)).backward()
    assert torch.isfinite(s.grad).all()
    s = _t(np.zeros((4, 2)), requires_grad=True)
    value = cls()(s, _t(T[:4]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()
    with pytest.raises(ValueError, match="student has 6 rows but teacher has 5"):
        cls()(_t(S), _t(T[:5]))
    with pytest.raises(ValueError, match="teacher must be a 2-D tensor"):
        cls()(_t(S), _t(T[0]))
    with pytest.raises(TypeError, match="student must be a floating point"):
        cls()(torch.ones(3, 2, dtype=torch.long), _t(T[:3]))
    with pytest.raises(ValueError, match=f"'delta' parameter of {cls.__name__}"):
        cls(delta=0)
    loss = cls(delta=0.5)
    assert clone(loss).get_params() == {"delta": 0.5}
    assert pickle.loads(pickle.dumps(loss)).delta == 0.5
    assert list(loss.parameters()) == []


# ------------------------------------------------------------------- EBV
def np_ebv(x, basis, y, temperature, w):
    terms = []
    for i in range(len(x)):
        logits = np.array([cos(x[i], b) / temperature for b in basis])
        terms.append(logsumexp(logits) - logits[y[i]])
    return sum(wi * ti for wi, ti in zip(w, terms)) / len(x)


def test_ebv_vectors_are_unit_and_nearly_orthogonal():
    loss = EquiangularBasisLoss(max_cosine=0.5, max_iter=3000).configure(10, 4)
    basis = loss.basis_vectors.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(basis, axis=1), 1.0, rtol=1e-6)
    worst = max(
        abs(cos(basis[i], basis[j])) for i in range(10) for j in range(10) if i != j
    )
    np.testing.assert_allclose(loss.max_cosine_reached_, worst, rtol=1e-5)
    assert worst <= 0.5 + 1e-4
    # as many dimensions as classes: close to an orthonormal basis
    loss = EquiangularBasisLoss(max_cosine=0.002).configure(5, 5)
    gram = loss.basis_vectors.numpy() @ loss.basis_vectors.numpy().T
    assert np.abs(gram - np.eye(5)).max() <= 0.0021


def test_ebv_generation_step_is_gradient_descent_on_the_penalty():
    # One step from the seeded start, against autograd on the penalty (a
    # step that lowers the largest |cos|, so it is the iterate kept).
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(6, 3, generator=gen, dtype=torch.float32)
    start = start / start.norm(dim=1, keepdim=True)
    w = start.clone().requires_grad_(True)
    gram = w @ w.T
    off = ~torch.eye(6, dtype=torch.bool)
    torch.relu(gram[off].abs() - 0.1).sum().backward()
    expected = start - 0.02 * w.grad
    expected = expected / expected.norm(dim=1, keepdim=True)

    def worst(v):
        return (v @ v.T)[off].abs().max().item()

    assert worst(expected) < worst(start)
    loss = EquiangularBasisLoss(
        max_cosine=0.1, max_iter=1, learning_rate=0.02, random_state=3
    ).configure(6, 3)
    np.testing.assert_allclose(loss.basis_vectors, expected, rtol=1e-5, atol=1e-6)


def test_ebv_seeding():
    def make(seed):
        loss = EquiangularBasisLoss(max_iter=50, random_state=seed)
        return loss.configure(4, 3).basis_vectors

    a, b, c = make(3), make(3), make(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(1)
    d = make(None)
    torch.manual_seed(1)
    e = make(None)
    assert torch.equal(d, e)


@pytest.mark.parametrize("tuple_", [None, TRIPLETS], ids=["all", "mined"])
def test_ebv_loss_matches_numpy_and_gradcheck(tuple_):
    loss = EquiangularBasisLoss(temperature=0.3, max_cosine=0.4)
    loss = loss.configure(N_CLASSES, 3).double()
    basis = loss.basis_vectors.numpy()
    got = loss(_t(X), _l(Y), tuple_).item()
    expected = np_ebv(X, basis, Y, 0.3, np_weights(tuple_, len(X)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    x = _t(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, _l(Y), tuple_), (x,))


def test_ebv_edge_cases_buffer_and_errors():
    loss = EquiangularBasisLoss(max_cosine=0.4).configure(N_CLASSES, 3)
    assert list(loss.parameters()) == []
    assert set(loss.state_dict()) == {"basis_vectors"}
    for labels in ([2] * 7, [1]):
        x = torch.tensor(X[: len(labels)], requires_grad=True)
        value = loss(x, _l(labels))
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    empty = torch.zeros(0, dtype=torch.long)
    x = _t(X, requires_grad=True)
    _zero_with_zero_grad(loss(x, _l(Y), (empty,) * 3), [x])
    x32 = torch.tensor(X, dtype=torch.float32)
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert torch.equal(other.basis_vectors, loss.basis_vectors)
        assert other(x32, _l(Y)).item() == loss(x32, _l(Y)).item()
    fresh = clone(loss)
    assert fresh.get_params() == loss.get_params()
    with pytest.raises(RuntimeError, match=r"call loss.configure\(num_classes"):
        fresh(x32, _l(Y))
    with pytest.raises(ValueError, match=r"labels must be class indices in 0 \.\. 3"):
        loss(x32, _l([0, 1, 2, 3, 4, 0, 0]))
    with pytest.raises(ValueError, match="embeddings have 2 columns"):
        loss(x32[:, :2], _l(Y))
    with pytest.raises(
        ValueError, match="'random_state' parameter of EquiangularBasisLoss"
    ):
        EquiangularBasisLoss(random_state="a")
    with pytest.raises(
        ValueError, match="'max_iter' parameter of EquiangularBasisLoss"
    ):
        EquiangularBasisLoss(max_iter=-1)
    with pytest.raises(ValueError, match="'temperature' parameter of EquiangularBasis"):
        EquiangularBasisLoss(temperature=0)
