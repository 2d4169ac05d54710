"""Checks run over losses of several families at once: NumPy values, gradients, edge cases, pml."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml._tuples import get_all_pairs_indices, get_all_triplets_indices
from sklearn_dml.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from sklearn_dml.losses._batch_softmax import NPairsLoss, NTXentLoss, SupConLoss
from sklearn_dml.losses._classification import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    NormalizedSoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from sklearn_dml.losses._pair import (
    AngularLoss,
    CircleLoss,
    ContrastiveLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    SignalToNoiseRatioContrastiveLoss,
    TripletMarginLoss,
    TupletMarginLoss,
)
from sklearn_dml.losses._proxy import ProxyAnchorLoss, ProxyNCALoss, SoftTripleLoss
from sklearn_dml.losses._ranking import FastAPLoss, HistogramLoss
from sklearn_dml.losses._regularizers import CenterLoss
from sklearn_dml.miners import MultiSimilarityMiner, TripletMarginMiner

from .loss_references import (
    N_CLASSES,
    PROXIES,
    PROXY_CENTERS,
    X_TILTED,
    Y_FULL,
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
    np_cross_entropy,
    np_margin,
    np_margin_softmax,
    np_matrix,
    np_mean,
    np_weights,
    partners,
    random_labels_batch,
    t64,
    unit,
    value_and_grads,
    with_proxies,
)

# "Tuple losses" below take mined pairs or triplets (the pair, batch-softmax
# and ranking families); "proxy losses" learn vectors for each class
# (the proxy and classification families).


# ------------------------------------------- tuple loss references
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


# ------------------------------------------- proxy loss references
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


# ------------------------------------------ tuple losses: values vs NumPy
# (name, factory, numpy reference) on the batch (X_TILTED, labels)
VALUE_CASES = [
    (
        "circle",
        lambda: CircleLoss(m=0.25, gamma=4.0),
        lambda y: np_circle(X_TILTED, y, 0.25, 4.0),
    ),
    ("circle80", lambda: CircleLoss(), lambda y: np_circle(X_TILTED, y, 0.4, 80.0)),
    (
        "gls",
        lambda: GeneralizedLiftedStructureLoss(1.2, 0.1),
        lambda y: np_gls(X_TILTED, y, 1.2, 0.1),
    ),
    (
        "lifted",
        lambda: LiftedStructureLoss(1.2, 0.1),
        lambda y: np_lifted(X_TILTED, y, 1.2, 0.1),
    ),
    ("npairs", NPairsLoss, lambda y: np_npairs(X_TILTED, y)),
    ("ntxent", lambda: NTXentLoss(0.3), lambda y: np_ntxent(X_TILTED, y, 0.3)),
    ("supcon", lambda: SupConLoss(0.3), lambda y: np_supcon(X_TILTED, y, 0.3)),
    (
        "snr",
        lambda: SignalToNoiseRatioContrastiveLoss(0.3, 1.5),
        lambda y: np_snr_contrastive(X_TILTED, y, 0.3, 1.5),
    ),
    (
        "margin",
        lambda: MarginLoss(0.2, beta=1.0),
        lambda y: np_margin(X_TILTED, y, 0.2, 1.0),
    ),
    (
        "tuplet",
        lambda: TupletMarginLoss(10.0, 8.0),
        lambda y: np_tuplet(X_TILTED, y, 10.0, 8.0),
    ),
    ("fastap", lambda: FastAPLoss(num_bins=5), lambda y: np_fastap(X_TILTED, y, 5)),
    ("angular", lambda: AngularLoss(35), lambda y: np_angular(X_TILTED, y, 35)),
    (
        "histogram",
        lambda: HistogramLoss(n_bins=7),
        lambda y: np_histogram(X_TILTED, y, 7),
    ),
]


@pytest.mark.parametrize("labels", [Y, Y_FULL], ids=["singleton", "full"])
@pytest.mark.parametrize("name, factory, reference", VALUE_CASES, ids=lambda c: c)
def test_value_matches_numpy(name, factory, reference, labels):
    expected = reference(labels)
    assert expected > 0
    got = factory()(t64(X_TILTED), l64(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# ---------------------------------------------- tuple losses: gradients
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
    x = t64(X_TILTED, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, l64(labels)), (x,))


def test_gradcheck_learnable_parameters():
    torch.manual_seed(1)
    margin = configured(MarginLoss(0.2, nu=0.1, learn_beta=True, per_class_beta=True))
    centers = configured(CenterLoss())
    x = t64(X_TILTED, requires_grad=True)

    assert torch.autograd.gradcheck(lambda e: margin(e, l64(Y)), (x,))
    betas = margin.betas
    value = margin(t64(X_TILTED), l64(Y))
    (grad,) = torch.autograd.grad(value, betas)
    eps = 1e-6
    numeric = np.zeros(3)
    base = betas.detach().numpy().copy()
    for c in range(3):
        for sign in (1, -1):
            shifted = base.copy()
            shifted[c] += sign * eps
            numeric[c] += sign * np_margin(
                X_TILTED, Y, 0.2, shifted, nu=0.1, mode="class"
            )
    np.testing.assert_allclose(grad.numpy(), numeric / (2 * eps), rtol=1e-6, atol=1e-9)
    assert torch.autograd.gradcheck(lambda e: centers(e, l64(Y)), (x,))
    (grad,) = torch.autograd.grad(centers(t64(X_TILTED), l64(Y)), centers.centers)
    c = centers.centers.detach().numpy()
    expected = np.zeros_like(c)
    for i, y in enumerate(Y):
        expected[y] += (c[y] - X_TILTED[i]) / len(Y)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12)


# ---------------------------------------------- tuple losses: edge cases
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
        configured(MarginLoss(nu=0.1, learn_beta=True, per_class_beta=True), 7),
        TupletMarginLoss(),
        FastAPLoss(),
        AngularLoss(),
        HistogramLoss(),
    ]


@pytest.mark.parametrize("loss", _zero_case_losses(), ids=lambda m: type(m).__name__)
def test_degenerate_batches_give_zero(loss):
    empty = torch.zeros(0, dtype=torch.long)
    assert_zero_with_zero_grad(loss, t64(X_TILTED[:1]), l64([0]))  # one sample
    assert_zero_with_zero_grad(loss, t64(X_TILTED), l64(Y), (empty, empty, empty))
    assert_zero_with_zero_grad(
        loss, t64(X_TILTED), l64(Y), (empty, empty, empty, empty)
    )
    if isinstance(loss, SignalToNoiseRatioContrastiveLoss):
        return  # contrastive: negative pairs alone (or positives alone) count
    assert_zero_with_zero_grad(loss, t64(X_TILTED), l64(list(range(7))))  # no positives
    if not isinstance(loss, NPairsLoss):  # N-pairs needs no negative pair
        assert_zero_with_zero_grad(loss, t64(X_TILTED), l64([1] * 7))  # one class


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
    x = torch.tensor(np.vstack([X_TILTED, X_TILTED[:2]]) * 50, dtype=torch.float32)
    x.requires_grad_(True)
    value = loss(x, l64(Y + [0, 0]))
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad).all()


# ------------------------------------- tuple losses: indices tuples, miners
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

# Each loss with the batch it is checked on.
ALL_TUPLES_CASES = [
    (loss, X)
    for loss in (ContrastiveLoss(), TripletMarginLoss(), MultiSimilarityLoss())
] + [(loss, X_TILTED) for loss in TUPLE_LOSSES]


@pytest.mark.parametrize(
    "loss, x",
    ALL_TUPLES_CASES,
    ids=[type(loss).__name__ for loss, _ in ALL_TUPLES_CASES],
)
def test_all_tuples_given_equal_none(loss, x):
    # No singleton class: every anchor has a positive, so all triplets cover
    # all pairs too.
    labels = l64(Y_FULL)
    expected = loss(t64(x), labels).item()
    for tup in (get_all_pairs_indices(labels), get_all_triplets_indices(labels)):
        np.testing.assert_allclose(
            loss(t64(x), labels, tup).item(), expected, rtol=1e-12
        )


def test_mined_tuples_restrict_the_loss():
    x, labels = t64(X_TILTED), l64(Y)
    triplets = TripletMarginMiner(margin=0.3)(x, labels)
    as_list = list(zip(*(t.tolist() for t in triplets)))
    assert 0 < len(as_list) < len(get_all_triplets_indices(labels)[0])
    got = MarginLoss(0.2, beta=1.0)(x, labels, triplets).item()
    expected = np_margin(X_TILTED, Y, 0.2, 1.0, triplets=as_list)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Pairs: the margin loss counts every (positive pair, negative pair) of an
    # anchor as a triplet, without building them.
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    pos = list(zip(pairs[0].tolist(), pairs[1].tolist()))
    neg = list(zip(pairs[2].tolist(), pairs[3].tolist()))
    combos = [(a, p, n) for a, p in pos for b, n in neg if a == b]
    assert combos
    got = MarginLoss(0.2, beta=1.0)(x, labels, pairs).item()
    np.testing.assert_allclose(got, np_margin(X_TILTED, Y, 0.2, 1.0, triplets=combos))
    # NT-Xent: an anchor's negatives are its mined negative pairs only.
    s = np_matrix(X_TILTED, "cos") / 0.3
    terms = []
    for a, p in pos:
        den = np.exp(s[a, p]) + sum(np.exp(s[a, n]) for b, n in neg if b == a)
        terms.append(-np.log(np.exp(s[a, p]) / den))
    got = NTXentLoss(0.3)(x, labels, pairs).item()
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-10)


# ----------------------------- learned parameters: margin and center loss
def test_configure_contract():
    for loss in (CenterLoss(), MarginLoss(learn_beta=True)):
        with pytest.raises(RuntimeError, match=r"call configure\(num_classes"):
            loss(t64(X_TILTED), l64(Y))
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


def test_learned_parameters_copy_pickle_and_move():
    torch.manual_seed(0)
    loss = CenterLoss(distance=LpDistance(power=2, normalize_embeddings=False))
    loss.configure(3, 3)
    margin = MarginLoss(learn_beta=True, per_class_beta=True).configure(3)
    for module, name in ((loss, "centers"), (margin, "betas")):
        learned = getattr(module, name).detach().clone()
        for copied in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert torch.equal(getattr(copied, name), learned)
            assert isinstance(getattr(copied, name), torch.nn.Parameter)
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        buffer.seek(0)
        fresh = clone(module)
        assert getattr(fresh, name, None) is None  # clone is unconfigured
        fresh.configure(3, 3)
        fresh.load_state_dict(torch.load(buffer))
        assert torch.equal(getattr(fresh, name), learned)
        moved = copy.deepcopy(module).to(torch.float64)
        assert getattr(moved, name).dtype == torch.float64
        assert [n for n, _ in module.named_parameters()] == [name]


def test_label_and_size_errors():
    loss = CenterLoss().configure(2, 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        loss(t64(X_TILTED), l64(Y))
    with pytest.raises(ValueError, match="embeddings have 2 dimensions"):
        loss(torch.zeros(3, 2), l64([0, 1, 1]))
    margin = MarginLoss(learn_beta=True, per_class_beta=True).configure(2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        margin(t64(X_TILTED), l64(Y))


# ----------------------------- tuple losses: invalid distances, parameters
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


def test_inputs_are_not_mutated():
    x, labels = t64(X_TILTED), l64(Y)
    before_x, before_l = x.clone(), labels.clone()
    pairs = get_all_pairs_indices(labels)
    saved = [t.clone() for t in pairs]
    for loss in TUPLE_LOSSES:
        loss(x, labels, pairs)
    assert torch.equal(x, before_x) and torch.equal(labels, before_l)
    assert all(torch.equal(a, b) for a, b in zip(pairs, saved))


# ------------------------------------------------- tuple losses vs pml
@pytest.fixture(scope="module")
def pml():
    return import_pml()


def _tuple_pml_pairs(pml):
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
    for name, ours, theirs, singleton in _tuple_pml_pairs(pml):
        x, labels = balanced_batch(seed, singleton=singleton)
        try:
            assert_same(ours, theirs, x, labels)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from err


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_mined_pairs_match_pml(pml, seed):
    import pytorch_metric_learning.miners  # noqa: F401

    x, labels = balanced_batch(seed, singleton=False)
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
        assert_same(ours, theirs, x, labels, pairs)
    for ours, theirs in [
        (MarginLoss(0.2, beta=1.0), P.MarginLoss(0.2, beta=1.0)),
        (HistogramLoss(32), P.HistogramLoss(n_bins=32)),
    ]:
        for tup in (triplets, pairs):
            try:
                assert_same(ours, theirs, x, labels, tup)
            except AssertionError as err:
                raise AssertionError(
                    f"{type(ours).__name__} {len(tup)}: {err}"
                ) from err


# ------------------------------------------ proxy losses: values vs NumPy
# Each case: (id, loss factory, proxies, NumPy reference(x, labels, w)), on the
# batch (X, labels).
PROXY_CASES = [
    (
        "proxy_nca",
        lambda: ProxyNCALoss(softmax_scale=3.0),
        PROXIES,
        lambda x, y, w: np_proxy_nca(x, PROXIES, y, 3.0, w),
    ),
    (
        "proxy_anchor",
        lambda: ProxyAnchorLoss(margin=0.1, alpha=8.0),
        PROXIES,
        lambda x, y, w: np_proxy_anchor(x, PROXIES, y, 0.1, 8.0, w),
    ),
    (
        "normalized_softmax",
        lambda: NormalizedSoftmaxLoss(temperature=0.3),
        PROXIES,
        lambda x, y, w: np_normalized_softmax(x, PROXIES, y, 0.3, w),
    ),
    (
        "lsoftmax",
        lambda: LargeMarginSoftmaxLoss(margin=3, scale=1.5),
        PROXIES,
        lambda x, y, w: np_margin_softmax(x, PROXIES, y, "lsoftmax", 3, 1.5, w),
    ),
    (
        "sphereface",
        lambda: SphereFaceLoss(margin=4, scale=2.0),
        PROXIES,
        lambda x, y, w: np_margin_softmax(x, PROXIES, y, "sphereface", 4, 2.0, w),
    ),
    (
        "cosface",
        lambda: CosFaceLoss(margin=0.3, scale=5.0),
        PROXIES,
        lambda x, y, w: np_margin_softmax(x, PROXIES, y, "cosface", 0.3, 5.0, w),
    ),
    (
        "arcface",
        lambda: ArcFaceLoss(margin=25.0, scale=6.0),
        PROXIES,
        lambda x, y, w: np_margin_softmax(x, PROXIES, y, "arcface", 25.0, 6.0, w),
    ),
    (
        "subcenter_arcface",
        lambda: SubCenterArcFaceLoss(margin=25.0, scale=6.0, sub_centers=3),
        PROXY_CENTERS,
        lambda x, y, w: np_margin_softmax(
            x, PROXY_CENTERS, y, "subcenter", 25.0, 6.0, w
        ),
    ),
    (
        "soft_triple",
        lambda: SoftTripleLoss(centers_per_class=3, la=5.0, gamma=0.5, margin=0.1),
        PROXY_CENTERS,
        lambda x, y, w: np_soft_triple(x, PROXY_CENTERS, y, 5.0, 0.5, 0.1, 0.0, w),
    ),
    (
        "soft_triple_tau",
        lambda: SoftTripleLoss(
            centers_per_class=3, la=5.0, gamma=0.5, margin=0.1, tau=0.3
        ),
        PROXY_CENTERS,
        lambda x, y, w: np_soft_triple(x, PROXY_CENTERS, y, 5.0, 0.5, 0.1, 0.3, w),
    ),
]
PROXY_CASE_IDS = [c[0] for c in PROXY_CASES]


@pytest.mark.parametrize(
    "name, factory, proxies, reference", PROXY_CASES, ids=PROXY_CASE_IDS
)
@pytest.mark.parametrize("labels", [Y, Y_SINGLETON])
def test_proxy_losses_match_numpy(name, factory, proxies, reference, labels):
    loss = with_proxies(factory(), proxies)
    expected = reference(X, labels, None)
    assert expected > 0
    got = loss(t64(X), l64(labels)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize(
    "name, factory, proxies, reference", PROXY_CASES, ids=PROXY_CASE_IDS
)
def test_proxy_losses_weight_mined_samples(name, factory, proxies, reference):
    loss = with_proxies(factory(), proxies)
    x, labels = t64(X), l64(Y)
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


# ------------------------------------- proxy losses: gradients, edge cases
@pytest.mark.parametrize(
    "name, factory, proxies, reference", PROXY_CASES, ids=PROXY_CASE_IDS
)
def test_gradcheck_embeddings_and_proxies(name, factory, proxies, reference):
    loss = with_proxies(factory(), proxies)
    labels = l64(Y_SINGLETON)

    def func(x, p):
        return torch.func.functional_call(loss, {"proxies": p}, (x, labels))

    inputs = (t64(X, requires_grad=True), t64(proxies, requires_grad=True))
    assert torch.autograd.gradcheck(func, inputs, fast_mode=True)


@pytest.mark.parametrize(
    "name, factory, proxies, reference", PROXY_CASES, ids=PROXY_CASE_IDS
)
def test_empty_indices_tuple_gives_zero(name, factory, proxies, reference):
    loss = with_proxies(factory(), proxies)
    empty = torch.zeros(0, dtype=torch.long)
    assert_zero_with_zero_grad(loss, t64(X), l64(Y), (empty, empty, empty))
    assert_zero_with_zero_grad(loss, t64(X), l64(Y), (empty,) * 4)


@pytest.mark.parametrize(
    "name, factory, proxies, reference", PROXY_CASES, ids=PROXY_CASE_IDS
)
def test_one_class_batch_and_single_sample(name, factory, proxies, reference):
    # Other proxies still act as negatives: a positive, finite loss.
    loss = with_proxies(factory(), proxies)
    for labels in ([2] * len(X), [1]):
        x = t64(X[: len(labels)], requires_grad=True)
        value = loss(x, l64(labels))
        value.backward()
        np.testing.assert_allclose(
            value.item(), reference(X[: len(labels)], labels, None), rtol=1e-10
        )
        assert torch.isfinite(x.grad).all()


# ------------------------------------ proxy losses: configure and parameters
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
        loss(t64(X), l64(Y))


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
        loss(torch.zeros(2, 3), l64([0, 3]))
    with pytest.raises(ValueError, match="got values from -1 to 0"):
        loss(torch.zeros(2, 3), l64([-1, 0]))
    with pytest.raises(ValueError, match="embeddings have 4 columns but CosFaceLoss"):
        loss(torch.zeros(2, 4), l64([0, 1]))
    with pytest.raises(ValueError, match="embeddings must be a 2-D tensor"):
        loss(torch.zeros(3), l64([0, 0, 1]))
    soft = SoftTripleLoss(centers_per_class=2).configure(3, 3)
    soft.set_params(centers_per_class=4)
    with pytest.raises(RuntimeError, match="call configure again"):
        soft(torch.ones(2, 3), l64([0, 1]))
    with pytest.raises(
        ValueError, match="'margin' parameter of LargeMarginSoftmaxLoss must be"
    ):
        LargeMarginSoftmaxLoss(margin=2.5)
    # An integral float is an integer margin.
    assert (
        LargeMarginSoftmaxLoss(margin=3.0)
        .configure(3, 3)(torch.ones(2, 3), l64([0, 1]))
        .isfinite()
    )


@pytest.mark.parametrize("cls", [ProxyAnchorLoss, SubCenterArcFaceLoss, SoftTripleLoss])
def test_pickle_deepcopy_state_dict_and_dtype(cls):
    torch.manual_seed(0)
    loss = cls().configure(4, 3)
    x = torch.tensor(X, dtype=torch.float32)
    expected = loss(x, l64(Y)).item()
    for other in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert other.proxies is not loss.proxies
        assert torch.equal(other.proxies, loss.proxies)
        assert other(x, l64(Y)).item() == expected
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    fresh = cls().configure(4, 3)
    fresh.load_state_dict(torch.load(buffer))
    assert fresh(x, l64(Y)).item() == expected
    # .to(dtype) moves the parameter; float64 embeddings on float32 proxies
    # are cast inside forward and the gradient still reaches the parameter.
    x64 = torch.tensor(X, dtype=torch.float64)
    value = loss(x64, l64(Y))
    assert value.dtype == torch.float64
    value.backward()
    assert loss.proxies.grad.dtype == torch.float32
    assert torch.count_nonzero(loss.proxies.grad) > 0
    assert loss.double().proxies.dtype == torch.float64


def test_proxy_losses_train_a_separable_problem():
    # A few optimiser steps on learnable proxies lower every loss.
    torch.manual_seed(0)
    x = torch.tensor(X, dtype=torch.float32)
    for cls in ALL_PROXY_LOSSES:
        loss = cls().configure(4, 3)
        first = loss(x, l64(Y))
        for _ in range(5):
            loss.zero_grad()
            loss(x, l64(Y)).backward()
            with torch.no_grad():
                loss.proxies -= 0.05 * loss.proxies.grad
        assert loss(x, l64(Y)).item() < first.item(), cls.__name__


@pytest.mark.parametrize(
    "distance", [LpDistance(), DotProductSimilarity(normalize_embeddings=True)]
)
def test_other_distances(distance):
    # ProxyAnchor with a distance, NormalizedSoftmax with a similarity.
    d = np.array([[np.linalg.norm(unit(x) - unit(p)) for p in PROXIES] for x in X])
    if isinstance(distance, LpDistance):
        loss = with_proxies(
            ProxyAnchorLoss(margin=0.2, alpha=4.0, distance=distance), PROXIES
        )
        expected = 0.0
        for c in range(N_CLASSES):
            pos = [np.exp(4.0 * (d[i, c] - 0.2)) for i in range(7) if Y[i] == c]
            neg = [np.exp(-4.0 * (d[i, c] + 0.2)) for i in range(7) if Y[i] != c]
            expected += np.log1p(sum(pos)) / 3 + np.log1p(sum(neg)) / N_CLASSES
    else:
        loss = with_proxies(
            NormalizedSoftmaxLoss(temperature=0.4, distance=distance), PROXIES
        )
        expected = np_normalized_softmax(X, PROXIES, Y, 0.4)
    np.testing.assert_allclose(loss(t64(X), l64(Y)).item(), expected, rtol=1e-10)


# ------------------------------------------------- proxy losses vs pml
# Deliberate differences from pytorch-metric-learning (pml), not compared:
#
# * ``indices_tuple``: an empty tuple gives a zero loss (pml: "no tuple");
#   ProxyNCALoss weights every position of the tuple (pml: anchors only);
#   ProxyAnchorLoss multiplies the exponentials by ``w`` (pml: ``e^(w - 1)``).
# * NCALoss / ProxyNCALoss keep rows whose probability underflows (pml drops
#   them); ArcFaceLoss has a finite gradient at ``cos = 1`` (pml: inf/NaN).
# * ArcFaceLoss / SoftTripleLoss take no ``distance`` (cosine only); SoftTriple
#   keeps ``gamma`` as given (pml stores ``1 / gamma``) and adds the paper's
#   ``tau`` regulariser (default 0, as pml).
def _proxy_pml_pairs(pml_losses, n_classes, dim):
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


@pytest.mark.pml
@pytest.mark.parametrize("seed", [0, 1])
def test_proxy_losses_match_pml(seed):
    import pytorch_metric_learning.losses as pml_losses

    x, labels = random_labels_batch(seed)
    torch.manual_seed(seed)
    for name, ours, theirs, (attr, to_pml) in _proxy_pml_pairs(pml_losses, 5, 6):
        ours.configure(5, 6)
        ours.double()
        theirs.double()
        getattr(theirs, attr).data = to_pml(ours.proxies.detach()).clone()
        v1, g1, (p1,) = value_and_grads(ours, x, labels, params=[ours.proxies])
        v2, g2, (p2,) = value_and_grads(
            theirs, x, labels, params=[getattr(theirs, attr)]
        )
        assert v1 > 0, name
        np.testing.assert_allclose(v1, v2, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10, err_msg=name)
        p1 = to_pml(torch.from_numpy(p1)).numpy()
        np.testing.assert_allclose(p1, p2, rtol=1e-7, atol=1e-10, err_msg=name)


@pytest.mark.pml
def test_mined_weights_match_pml_where_the_conventions_agree():
    # NormalizedSoftmax, CosFace, SoftTriple weight every position of the
    # tuple by count / max count and average over the batch, like pml.
    import pytorch_metric_learning.losses as pml_losses

    x, labels = random_labels_batch(3)
    triplets = (
        torch.tensor([0, 0, 4]),
        torch.tensor([5, 7, 9]),
        torch.tensor([1, 2, 3]),
    )
    torch.manual_seed(0)
    pairs = [
        p
        for p in _proxy_pml_pairs(pml_losses, 5, 6)
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
