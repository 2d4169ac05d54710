"""Proxy losses (``losses._proxy``): Proxy-Anchor, SoftTriple and mean-field losses against NumPy."""

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.base import clone
from torch.func import functional_call

from sklearn_dml.distances import LpDistance
from sklearn_dml.losses._proxy import (
    MeanFieldClassWiseMultiSimilarityLoss,
    MeanFieldContrastiveLoss,
    ProxyAnchorLoss,
    SoftTripleLoss,
)

from .loss_references import (
    N_CLASSES,
    PROXIES,
    TRIPLETS,
    X,
    Y,
    assert_zero_value_with_zero_grad,
    cosine,
    l64,
    np_weights,
    t64,
    unit,
    with_proxies,
)

# The mean fields of the mean-field losses (class 3 has no sample in Y).
MEAN_FIELDS = np.random.default_rng(11).normal(size=(N_CLASSES, 3))


# ------------------------------------------------------------ proxy losses
def test_proxy_anchor_without_negatives_counts_only_the_positive_part():
    # A single proxy: no negatives at all, the negative part is exactly 0.
    proxies = PROXIES[:1]
    loss = with_proxies(ProxyAnchorLoss(margin=0.1, alpha=8.0), proxies)
    labels = [0] * len(X)
    got = loss(t64(X), l64(labels)).item()
    expected = np.log1p(
        sum(np.exp(-8.0 * (unit(x) @ unit(proxies[0]) - 0.1)) for x in X)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_zero_loss_keeps_float32_graph_to_the_proxies():
    loss = ProxyAnchorLoss().configure(4, 3)
    empty = torch.zeros(0, dtype=torch.long)
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value = loss(x, l64(Y), (empty, empty, empty))
    assert value.dtype == torch.float32 and value.grad_fn is not None
    value.backward()
    assert loss.proxies.grad is not None and torch.count_nonzero(loss.proxies.grad) == 0


def test_clone_gives_an_unconfigured_copy_with_the_same_params():
    loss = SoftTripleLoss(num_classes=4, embedding_size=3, la=7.0, tau=0.2)
    loss.configure()
    copy_ = clone(loss)
    assert copy_.get_params() == loss.get_params()
    assert list(copy_.parameters()) == []
    assert copy_.configure().proxies.shape == loss.proxies.shape
    assert ProxyAnchorLoss(distance=LpDistance()).get_params()["distance__power"] == 1


# ------------------------------------------------------- mean-field losses
# The references loop over samples and classes (cosines from explicit dot
# products).
def np_mf_contrastive(x, proxies, y, pos_m, neg_m, reg, power, w):
    n, n_classes = len(x), len(proxies)
    total = 0.0
    for i in range(n):
        term = 0.0
        for c in range(n_classes):
            d = 1.0 - cosine(x[i], proxies[c])
            if c == y[i]:
                term += max(d - pos_m, 0.0)
            else:
                term += max(neg_m - d, 0.0)
        total += w[i] * term
    penalty = 0.0
    for c in range(n_classes):
        for k in range(n_classes):
            if k != c:
                gap = neg_m - (1.0 - cosine(proxies[c], proxies[k]))
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
            w[i] * np.exp(scale * (cosine(x[i], proxies[k]) - base)) for i in members[c]
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
                z = beta * (cosine(proxies[c], proxies[k]) - base)
                penalty += (np.logaddexp(0.0, z) / beta) ** power
    return (
        pos / (alpha * len(batch))
        + neg / (beta * len(batch))
        + reg * penalty / n_classes
    )


MF_CASES = [
    (
        "mf_contrastive",
        lambda: MeanFieldContrastiveLoss(pos_margin=0.05, neg_margin=1.1),
        lambda x, y, w: np_mf_contrastive(x, MEAN_FIELDS, y, 0.05, 1.1, 0.0, 2, w),
    ),
    (
        "mf_contrastive_reg",
        lambda: MeanFieldContrastiveLoss(
            pos_margin=0.0, neg_margin=1.2, mf_reg=0.7, mf_power=1.5
        ),
        lambda x, y, w: np_mf_contrastive(x, MEAN_FIELDS, y, 0.0, 1.2, 0.7, 1.5, w),
    ),
    (
        "mf_cwms",
        lambda: MeanFieldClassWiseMultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.3),
        lambda x, y, w: np_mf_cwms(x, MEAN_FIELDS, y, 2.0, 10.0, 0.3, 0.0, 2, w),
    ),
    (
        "mf_cwms_reg",
        lambda: MeanFieldClassWiseMultiSimilarityLoss(
            alpha=0.5, beta=4.0, base=-0.2, mf_reg=0.3, mf_power=3
        ),
        lambda x, y, w: np_mf_cwms(x, MEAN_FIELDS, y, 0.5, 4.0, -0.2, 0.3, 3, w),
    ),
]
MF_IDS = [case[0] for case in MF_CASES]


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
@pytest.mark.parametrize("tuple_", [None, TRIPLETS], ids=["all", "mined"])
def test_mean_field_losses_match_numpy(name, factory, reference, tuple_):
    loss = with_proxies(factory(), MEAN_FIELDS)
    got = loss(t64(X), l64(Y), tuple_).item()
    expected = reference(X, Y, np_weights(tuple_, len(X)))
    assert expected > 0
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
def test_mean_field_gradcheck(name, factory, reference):
    loss = factory()
    loss.configure(N_CLASSES, 3)

    def fn(x, proxies):
        return functional_call(loss, {"proxies": proxies}, (x, l64(Y)))

    x, proxies = t64(X, requires_grad=True), t64(MEAN_FIELDS, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, proxies))


@pytest.mark.parametrize("name, factory, reference", MF_CASES, ids=MF_IDS)
def test_mean_field_edge_batches(name, factory, reference):
    loss = with_proxies(factory(), MEAN_FIELDS)
    # one-class batch, singleton class, single sample: finite, as NumPy
    for labels in ([1] * 7, [0, 0, 1, 1, 2, 2, 3], [2]):
        x = t64(X[: len(labels)], requires_grad=True)
        value = loss(x, l64(labels))
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
    x = t64(X, requires_grad=True)
    assert_zero_value_with_zero_grad(loss(x, l64(Y), (empty,) * 3), [x, loss.proxies])


def test_mean_field_parameters_receive_gradients_and_train():
    torch.manual_seed(0)
    x = torch.tensor(X, dtype=torch.float32)
    for loss in (
        MeanFieldContrastiveLoss(mf_reg=0.5, neg_margin=0.9),
        MeanFieldClassWiseMultiSimilarityLoss(alpha=1.0, beta=5.0, mf_reg=0.1),
    ):
        loss.configure(N_CLASSES, 3)
        first = loss(x, l64(Y))
        first.backward()
        grad = loss.proxies.grad
        assert torch.count_nonzero(grad[:3]) > 0
        for _ in range(5):
            loss.zero_grad()
            loss(x, l64(Y)).backward()
            with torch.no_grad():
                loss.proxies -= 0.1 * loss.proxies.grad
        assert loss(x, l64(Y)).item() < first.item()


def test_absent_mean_field_is_pushed_only_when_a_sample_is_within_margin():
    # Mean field 3 has no sample in the batch: it only acts as a negative.
    for margin in (0.1, 1.9):
        loss = with_proxies(MeanFieldContrastiveLoss(neg_margin=margin), MEAN_FIELDS)
        loss(t64(X), l64(Y)).backward()
        within = any(1.0 - cosine(x, MEAN_FIELDS[3]) < margin for x in X)
        assert (torch.count_nonzero(loss.proxies.grad[3]) > 0) == within
    assert within  # the wide margin reaches it


def test_mf_cwms_large_beta_does_not_overflow_in_float32():
    # exp(400 * 1.2) overflows float32 (and float64); the log-space sums do not
    loss = MeanFieldClassWiseMultiSimilarityLoss(beta=400.0, base=-0.2)
    loss.configure(N_CLASSES, 3)
    with torch.no_grad():
        loss.proxies.copy_(torch.tensor(MEAN_FIELDS, dtype=torch.float32))
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value = loss(x, l64(Y))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    # reference in log space (scipy logsumexp), float64
    members = {c: [i for i in range(7) if Y[i] == c] for c in range(N_CLASSES)}
    batch = [0, 1, 2]

    def log_n(c, k):
        if c not in batch:
            return -np.inf
        z = [400.0 * (cosine(X[i], MEAN_FIELDS[k]) + 0.2) for i in members[c]]
        return logsumexp(z) - np.log(len(members[c]))

    pos = 0.0
    for c in batch:
        z = [-0.01 * (cosine(X[i], MEAN_FIELDS[c]) + 0.2) for i in members[c]]
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
    expected = a(x, l64(Y)).item()
    for other in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert other.proxies is not a.proxies
        assert other(x, l64(Y)).item() == expected
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
        MeanFieldContrastiveLoss()(x, l64(Y))


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
        MeanFieldContrastiveLoss().configure(4, 3)(x, l64([0, 1, 2, 3, 4, 0, 0]))
    labels = l64(Y)
    before = x.clone(), labels.clone()
    MeanFieldContrastiveLoss().configure(4, 3)(x, labels, TRIPLETS)
    assert torch.equal(x, before[0]) and torch.equal(labels, before[1])
