"""ECAML energy confusion and ProcSim confidence weighting.

Every formula is checked against a NumPy loop over samples, pairs or
triplets (an independent route from the vectorised torch code), gradients
with ``torch.autograd.gradcheck`` in float64, and the estimator options for
validation, exactness at weight 0 and reproducibility.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import lambertw as scipy_lambertw
from scipy.special import logsumexp
from sklearn.datasets import load_digits

from sklearn_dml import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    TripletEmbedder,
)
from sklearn_dml.losses import (
    ArcFaceLoss,
    CircleLoss,
    CombinedLoss,
    ContrastiveLoss,
    EnergyConfusionRegularizer,
    MultiSimilarityLoss,
    ProcSimLoss,
    ProcSimWeighting,
    TripletMarginLoss,
)
from sklearn_dml.losses._wrappers import lambertw

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
W = np.array([1.0, 0.5, 2.0, 0.0, 1.5, 0.7, 1.2])  # one zero weight
TRIPLETS = (
    torch.tensor([0, 0, 3, 1, 4]),
    torch.tensor([1, 2, 4, 0, 6]),
    torch.tensor([3, 5, 0, 6, 2]),
)


def _t(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


def _l(labels):
    return torch.tensor(labels, dtype=torch.long)


def _invalid_after_construction(component, **attributes):
    """A component whose attributes were assigned directly (no validation)."""
    for name, value in attributes.items():
        setattr(component, name, value)
    return component


def _unit(x):
    x = np.asarray(x, dtype=float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------ references
def _ec_reference(x, y, pairs=None):
    x, n = np.asarray(x), len(y)
    if pairs is None:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if y[i] != y[j]]
    if not pairs:
        return 0.0
    energies = [0.5 * np.sum((x[i] - x[j]) ** 2) for i, j in pairs]
    return math.log(np.mean(energies))


def _pairs(y, triplets=None):
    n = len(y)
    if triplets is None:
        pos = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
        neg = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
        return pos, neg
    a, p, ng = (t.tolist() for t in triplets)
    pos = sorted({(i, j) for i, j in zip(a, p)})
    neg = sorted({(i, j) for i, j in zip(a, ng)})
    return pos, neg


def _contrastive_reference(x, y, w, triplets=None, pos_margin=0.0, neg_margin=1.0):
    x = _unit(x)
    pos, neg = _pairs(y, triplets)

    def part(pairs, term):
        num = den = 0.0
        for i, j in pairs:
            t = term(np.linalg.norm(x[i] - x[j]))
            if t > 0:
                num += w[i] * w[j] * t
                den += w[i] * w[j]
        return num / den if den > 0 else 0.0

    return part(pos, lambda d: max(d - pos_margin, 0.0)) + part(
        neg, lambda d: max(neg_margin - d, 0.0)
    )


def _ms_reference(x, y, w, triplets=None, alpha=2.0, beta=10.0, base=0.5):
    x = _unit(x)
    s = x @ x.T
    pos, neg = _pairs(y, triplets)
    total = 0.0
    for i in range(len(y)):
        p_terms = [
            math.log(w[j]) - alpha * (s[i, j] - base)
            for a, j in pos
            if a == i and w[j] > 0
        ]
        n_terms = [
            math.log(w[j]) + beta * (s[i, j] - base)
            for a, j in neg
            if a == i and w[j] > 0
        ]
        li = logsumexp([0.0] + p_terms) / alpha + logsumexp([0.0] + n_terms) / beta
        total += w[i] * li
    return total / np.sum(w)


def _triplet_reference(x, y, w, triplets=None, margin=0.1):
    x = _unit(x)
    n = len(y)
    if triplets is None:
        trips = [
            (a, p, q)
            for a in range(n)
            for p in range(n)
            for q in range(n)
            if a != p and y[a] == y[p] and y[a] != y[q]
        ]
    else:
        trips = list(zip(*(t.tolist() for t in triplets)))
    num = den = 0.0
    for a, p, q in trips:
        t = np.linalg.norm(x[a] - x[p]) - np.linalg.norm(x[a] - x[q]) + margin
        if t > 0:
            num += w[a] * w[p] * w[q] * t
            den += w[a] * w[p] * w[q]
    return num / den if den > 0 else 0.0


WEIGHTED = [
    ("contrastive", lambda: ContrastiveLoss(), _contrastive_reference),
    (
        "multi_similarity",
        lambda: MultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.5),
        _ms_reference,
    ),
    ("triplet", lambda: TripletMarginLoss(margin=0.1), _triplet_reference),
]


# ---------------------------------------------------------- energy confusion
@pytest.mark.parametrize("tuple_", [False, True])
def test_energy_confusion_matches_numpy(tuple_):
    triplets = TRIPLETS if tuple_ else None
    pairs = sorted(set(zip(*(t.tolist() for t in (TRIPLETS[0], TRIPLETS[2])))))
    value = EnergyConfusionRegularizer()(_t(X), _l(Y), triplets)
    expected = _ec_reference(X, Y, pairs if tuple_ else None)
    assert value.item() == pytest.approx(expected, rel=1e-10)


def test_energy_confusion_gradcheck_and_no_negative_pair():
    reg = EnergyConfusionRegularizer()
    assert torch.autograd.gradcheck(lambda e: reg(e, _l(Y)), (_t(X, True),))
    emb = _t(X[:3], True)
    value = reg(emb, _l([1, 1, 1]))
    value.backward()
    assert value.item() == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))
    assert reg.get_params() == {}


def test_energy_confusion_in_combined_loss():
    combined = CombinedLoss([ContrastiveLoss(), EnergyConfusionRegularizer()], [1, 0.3])
    combined.configure(3, 3)
    emb, labels = _t(X), _l(Y)
    expected = ContrastiveLoss()(emb, labels) + 0.3 * _ec_reference(X, Y)
    assert combined(emb, labels).item() == pytest.approx(expected.item(), rel=1e-10)


# ---------------------------------------------------------- sample weights
@pytest.mark.parametrize("tuple_", [False, True])
@pytest.mark.parametrize("name, factory, reference", WEIGHTED)
def test_weighted_losses_match_numpy(name, factory, reference, tuple_):
    triplets = TRIPLETS if tuple_ else None
    value = factory()(_t(X), _l(Y), triplets, sample_weight=_t(W))
    assert value.item() == pytest.approx(reference(X, Y, W, triplets), rel=1e-9)


@pytest.mark.parametrize("tuple_", [False, True])
@pytest.mark.parametrize("name, factory, reference", WEIGHTED)
def test_unit_weights_give_the_plain_loss(name, factory, reference, tuple_):
    triplets = TRIPLETS if tuple_ else None
    loss = factory()
    plain = loss(_t(X), _l(Y), triplets)
    ones = loss(_t(X), _l(Y), triplets, sample_weight=torch.ones(len(Y)))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name, factory, reference", WEIGHTED)
def test_weighted_losses_gradcheck_and_zero_weights(name, factory, reference):
    loss = factory()
    weights = _t(W)
    assert torch.autograd.gradcheck(
        lambda e: loss(e, _l(Y), None, sample_weight=weights), (_t(X, True),)
    )
    emb = _t(X, True)
    value = loss(emb, _l(Y), sample_weight=torch.zeros(len(Y)))
    value.backward()
    assert value.item() == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))


def test_sample_weight_errors():
    with pytest.raises(TypeError, match="CircleLoss does not accept sample_weight"):
        CircleLoss()(_t(X), _l(Y), sample_weight=torch.ones(len(Y)))
    with pytest.raises(ValueError, match="one weight per embedding"):
        ContrastiveLoss()(_t(X), _l(Y), sample_weight=torch.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        ContrastiveLoss()(_t(X), _l(Y), sample_weight=-torch.ones(len(Y)))


# ---------------------------------------------------------------- ProcSim
def test_lambertw_matches_scipy():
    z = np.concatenate([[-1 / math.e + 1e-12], np.linspace(-0.36, 20, 200), [1e3]])
    ours = lambertw(torch.tensor(z)).numpy()
    np.testing.assert_allclose(ours, scipy_lambertw(z).real, rtol=1e-9, atol=1e-6)
    assert lambertw(torch.tensor([-1.0])).item() == pytest.approx(-1.0)  # clipped


PROXIES = np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.2], [-0.3, 0.2, 1.0]])


def _weighting(**params):
    weighting = ProcSimWeighting(**params).configure(3, 3).double()
    with torch.no_grad():
        weighting.proxies.copy_(_t(PROXIES))
        weighting._initialized.fill_(True)
    return weighting


def _confidence_reference(x, y, threshold, regularization):
    x, p = _unit(x), _unit(PROXIES)
    out = []
    for i, c in enumerate(y):
        d = [np.sum((x[i] - p[k]) ** 2) for k in range(len(p))]
        ell = d[c] / min(d[k] for k in range(len(p)) if k != c)
        beta = (ell - threshold) / regularization
        # W(-1/e) = -1; scipy rounds just below the branch point to NaN.
        w = -1.0 if beta <= -2 / math.e else scipy_lambertw(beta / 2).real
        out.append(math.exp(-w))
    return np.array(out)


@pytest.mark.parametrize("threshold, regularization", [(1.0, 0.5), (0.6, 2.0)])
def test_procsim_confidence_matches_numpy(threshold, regularization):
    weighting = _weighting(threshold=threshold, regularization=regularization)
    sigma = weighting.confidence(_t(X), _l(Y)).numpy()
    np.testing.assert_allclose(
        sigma, _confidence_reference(X, Y, threshold, regularization), rtol=1e-9
    )
    # The confidence minimises the SuperLoss objective in sigma.
    ell = weighting.normalized_distance(_t(X), _l(Y)).numpy()
    for e, s in zip(ell, sigma):
        if (e - threshold) / regularization <= -2 / math.e:
            assert s == pytest.approx(math.e)  # clipped: no interior minimum
            continue

        def objective(v, e=e):
            return (e - threshold) * v + regularization * math.log(v) ** 2

        assert objective(s) <= min(objective(s * 1.01), objective(s / 1.01))


def test_procsim_down_weights_a_flipped_label():
    weighting = _weighting()
    emb = _t(PROXIES[[0, 1, 2, 0]])
    sigma = weighting.confidence(emb, _l([0, 1, 2, 1]))  # the last is mislabelled
    assert sigma[:3].min() > 1.0 > sigma[3]


def test_procsim_proxy_loss_matches_numpy_and_trains_only_proxies():
    weighting = _weighting(proxy_scale=5.0)
    emb = _t(X, True)
    sigma = weighting.confidence(emb, _l(Y))
    value = weighting.proxy_loss(emb, _l(Y), sigma)
    x, p, s = _unit(X), _unit(PROXIES), sigma.numpy()
    ce = [-(5 * x[i] @ p[c] - logsumexp(5 * x[i] @ p.T)) for i, c in enumerate(Y)]
    assert value.item() == pytest.approx(np.sum(s * ce) / np.sum(s), rel=1e-9)
    value.backward()
    assert emb.grad is None and weighting.proxies.grad.abs().sum() > 0
    assert weighting(emb, _l(Y)).item() == pytest.approx(value.item())


def test_procsim_initializes_proxies_from_the_first_training_batch():
    torch.manual_seed(0)
    weighting = ProcSimWeighting().configure(4, 3).double()
    weighting.train()
    weighting.confidence(_t(X), _l(Y))
    x = _unit(X)
    for c in range(3):
        mean = x[np.array(Y) == c].mean(axis=0)
        np.testing.assert_allclose(
            weighting.proxies[c].detach().numpy(), mean / np.linalg.norm(mean)
        )
    assert bool(weighting._initialized)


def test_procsim_loss_is_weighted_base_plus_proxy_loss():
    torch.manual_seed(0)
    loss = ProcSimLoss(MultiSimilarityLoss(), ProcSimWeighting(proxy_scale=4.0))
    loss.configure(3, 3)
    loss = loss.double().eval()
    with torch.no_grad():
        loss.weighting_.proxies.copy_(_t(PROXIES))
        loss.weighting_._initialized.fill_(True)
    emb, labels = _t(X), _l(Y)
    sigma = loss.weighting_.confidence(emb, labels)
    expected = MultiSimilarityLoss()(emb, labels, sample_weight=sigma)
    expected = expected + loss.weighting_.proxy_loss(emb, labels, sigma)
    assert loss(emb, labels).item() == pytest.approx(expected.item(), rel=1e-12)
    # The confidences are constants of the backward pass (and the proxy loss
    # sees detached embeddings): the gradient is the weighted base loss's.
    emb = _t(X, True)
    (grad,) = torch.autograd.grad(loss(emb, labels), emb)
    emb2 = _t(X, True)
    MultiSimilarityLoss()(emb2, labels, sample_weight=sigma).backward()
    torch.testing.assert_close(grad, emb2.grad)


def test_procsim_component_errors():
    for bad in (0, -1.0, float("nan"), float("inf"), True, "a"):
        with pytest.raises(
            ValueError, match="'regularization' parameter of ProcSimWeighting"
        ):
            ProcSimWeighting(regularization=bad)
    # configure re-checks values assigned directly since construction
    weighting = _invalid_after_construction(ProcSimWeighting(), regularization=0)
    with pytest.raises(ValueError, match="'regularization' parameter"):
        weighting.configure(3, 3)
    with pytest.raises(RuntimeError, match="has no proxies yet"):
        ProcSimWeighting().confidence(_t(X), _l(Y))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        _weighting().confidence(_t(X), _l([0, 1, 5, 0, 1, 2, 1]))
    with pytest.raises(
        ValueError, match="'loss' parameter of ProcSimLoss .*supports_sample_weight"
    ):
        ProcSimLoss(ArcFaceLoss())
    with pytest.raises(ValueError, match="'weighting' parameter of ProcSimLoss"):
        ProcSimLoss(ContrastiveLoss(), weighting="yes")


# ------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


SMALL = dict(max_iter=2, hidden_layer_sizes=(16,), n_components=8, random_state=0)


@pytest.mark.parametrize(
    "cls", [ContrastiveEmbedder, MultiSimilarityEmbedder, TripletEmbedder]
)
def test_options_off_are_the_plain_estimator(cls, digits):
    X, y = digits
    plain = cls(**SMALL).fit(X, y).transform(X)
    off = cls(energy_confusion=0.0, procsim=None, **SMALL).fit(X, y).transform(X)
    np.testing.assert_array_equal(plain, off)


@pytest.mark.parametrize(
    "params", [{"energy_confusion": 0.3}, {"procsim": True}], ids=["ec", "procsim"]
)
def test_options_change_training_and_are_reproducible(params, digits):
    X, y = digits
    plain = MultiSimilarityEmbedder(**SMALL).fit(X, y).transform(X)
    first = MultiSimilarityEmbedder(**params, **SMALL).fit(X, y)
    second = MultiSimilarityEmbedder(**params, **SMALL).fit(X, y)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    assert not np.allclose(first.transform(X), plain)


def test_procsim_estimator_uses_a_copy_and_wraps_the_loss(digits):
    X, y = digits
    weighting = ProcSimWeighting(regularization=0.3)
    est = ContrastiveEmbedder(procsim=weighting, **SMALL).fit(X, y)
    assert not hasattr(weighting, "proxies")  # the user's object is untouched
    assert isinstance(est.loss_, ProcSimLoss)
    assert est.loss_.weighting_.regularization == 0.3
    assert est.loss_.weighting_.proxies.shape == (10, 8)
    assert bool(est.loss_.weighting_._initialized)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1", None])
def test_energy_confusion_rejects_bad_values(bad, digits):
    X, y = digits
    with pytest.raises(ValueError, match="'energy_confusion' parameter"):
        TripletEmbedder(energy_confusion=bad, **SMALL).fit(X, y)


def test_energy_confusion_needs_an_output_linear_layer(digits):
    X, y = digits
    # 8 outputs, but from pooling: no Linear layer with 8 output features.
    backbone = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.AdaptiveAvgPool1d(8)
    )
    with pytest.raises(ValueError, match="final Linear layer"):
        TripletEmbedder(backbone=backbone, energy_confusion=0.1, **SMALL).fit(X, y)
    est = TripletEmbedder(backbone=backbone, **SMALL).fit(X, y)  # fine without
    assert est.transform(X[:2]).shape == (2, 8)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"procsim": "yes"}, "'procsim' parameter"),
        (
            {"procsim": _invalid_after_construction(ProcSimWeighting(), threshold=-1)},
            "'threshold' parameter of ProcSimWeighting",
        ),
        ({"procsim": True, "loss": ArcFaceLoss()}, "ArcFaceLoss does not"),
        (
            {"procsim": True, "loss": CombinedLoss([ContrastiveLoss()])},
            "CombinedLoss does not",
        ),
    ],
)
def test_procsim_rejects_bad_values_before_training(params, match, digits):
    X, y = digits
    est = DeepMetricEmbedder(**params, **SMALL)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "backbone_")


def test_procsim_partial_fit_needs_every_class_and_keeps_proxies(digits):
    X, y = digits
    est = MultiSimilarityEmbedder(procsim=True, **SMALL)
    est.partial_fit(X[:150], y[:150], classes=np.arange(10))
    proxies = est.loss_.weighting_.proxies.detach().clone()
    est.partial_fit(X[150:], y[150:])
    assert est.loss_.weighting_.proxies.shape == (10, 8)
    assert not torch.equal(est.loss_.weighting_.proxies.detach(), proxies)
    fresh = MultiSimilarityEmbedder(procsim=True, warm_start=True, **SMALL)
    fresh.fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match="learns one parameter per class"):
        fresh.fit(X, y)
