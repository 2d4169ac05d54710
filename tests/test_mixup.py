"""Metrix mixup: soft-label losses, the mixing, the engine term, the estimators.

The soft-label losses are checked against NumPy loops written from the
formulas of the Notes sections (sample by sample, pair by pair), an
independent route from the vectorised torch code; with one-hot labels they
must reproduce the plain losses exactly.
"""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_dml import (
    ContrastiveEmbedder,
    DeepMetricEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    TripletEmbedder,
)
from sklearn_dml.backbones._mlp import MLP, ResidualMLP
from sklearn_dml.distances import LpDistance
from sklearn_dml.losses import (
    ContrastiveLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SignalToNoiseRatioContrastiveLoss,
    TripletMarginLoss,
)
from sklearn_dml.metrics import utilization_loss
from sklearn_dml.mixup import Metrix, mix_batch

# A hand-built batch: 6 clean samples of 3 classes, 4 mixed samples.
EMB = np.array(
    [
        [1.0, 0.2, -0.1],
        [0.8, 0.5, 0.3],
        [-0.2, 1.0, 0.4],
        [0.1, 0.7, -0.6],
        [-0.5, 0.3, 1.0],
        [0.4, -0.4, 0.9],
    ]
)
LAB = np.array([0, 0, 1, 1, 2, 2])
MIX = np.array(
    [
        [0.9, 0.6, 0.2],
        [-0.3, 0.6, 0.7],
        [0.2, 0.2, 0.2],
        [0.5, -0.1, 0.4],
    ]
)
# Soft labels: a 0/1 mix at 0.3, a 1/2 mix at 0.8, a pure class 2, a 0/2 mix.
TGT = np.array(
    [
        [0.3, 0.7, 0.0],
        [0.0, 0.8, 0.2],
        [0.0, 0.0, 1.0],
        [0.6, 0.0, 0.4],
    ]
)
N_CLASSES = 3
PROXIES = np.array([[1.0, 0.0, 0.1], [0.0, 1.0, -0.2], [0.2, -0.3, 1.0]])


def _t(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _proxy_loss(loss, dtype=torch.float64):
    loss = loss.configure(N_CLASSES, 3).to(dtype)
    with torch.no_grad():
        loss.proxies.copy_(_t(PROXIES, dtype))
    return loss


# ----------------------------------------------------------- NumPy formulas
def _np_contrastive(emb, lab, mix, tgt, pos_margin, neg_margin):
    e, m = _unit(emb), _unit(mix)
    pos_sum = neg_sum = 0.0
    pos_n = neg_n = 0
    for a in range(len(e)):
        for k in range(len(m)):
            d = np.sqrt(((e[a] - m[k]) ** 2).sum())
            wp = tgt[k, lab[a]]
            tp, tn = max(d - pos_margin, 0.0), max(neg_margin - d, 0.0)
            pos_sum += wp * tp
            neg_sum += (1 - wp) * tn
            pos_n += wp > 0 and tp > 0
            neg_n += (1 - wp) > 0 and tn > 0
    return pos_sum / max(pos_n, 1) + neg_sum / max(neg_n, 1)


def _np_multi_similarity(emb, lab, mix, tgt, alpha, beta, base):
    e, m = _unit(emb), _unit(mix)
    total = 0.0
    for a in range(len(e)):
        pos = neg = 0.0
        for k in range(len(m)):
            s = e[a] @ m[k]
            wp = tgt[k, lab[a]]
            pos += wp * np.exp(-alpha * (s - base))
            neg += (1 - wp) * np.exp(beta * (s - base))
        total += np.log1p(pos) / alpha + np.log1p(neg) / beta
    return total / len(e)


def _np_proxy_anchor(mix, tgt, proxies, alpha, margin):
    m, p = _unit(mix), _unit(proxies)
    pos_total = neg_total = 0.0
    n_with_pos = 0
    for c in range(len(p)):
        pos = neg = 0.0
        for k in range(len(m)):
            s = m[k] @ p[c]
            pos += tgt[k, c] * np.exp(-alpha * (s - margin))
            neg += (1 - tgt[k, c]) * np.exp(alpha * (s + margin))
        pos_total += np.log1p(pos)
        neg_total += np.log1p(neg)
        n_with_pos += bool((tgt[:, c] > 0).any())
    return pos_total / n_with_pos + neg_total / len(p)


def _np_soft_xent(logits, tgt):
    total = 0.0
    for k in range(len(logits)):
        z = logits[k]
        log_p = z - np.log(np.exp(z).sum())
        total -= sum(tgt[k, c] * log_p[c] for c in range(len(z)) if tgt[k, c] > 0)
    return total / len(logits)


def _np_proxy_nca(mix, tgt, proxies, scale):
    m, p = _unit(mix), _unit(proxies)
    logits = np.array(
        [
            [-scale * ((m[k] - p[c]) ** 2).sum() for c in range(len(p))]
            for k in range(len(m))
        ]
    )
    return _np_soft_xent(logits, tgt)


def _np_normalized_softmax(mix, tgt, proxies, temperature):
    logits = _unit(mix) @ _unit(proxies).T / temperature
    return _np_soft_xent(logits, tgt)


SOFT_CASES = [
    (
        "contrastive",
        lambda: ContrastiveLoss(pos_margin=0.1, neg_margin=1.2),
        lambda: _np_contrastive(EMB, LAB, MIX, TGT, 0.1, 1.2),
    ),
    (
        "multi_similarity",
        lambda: MultiSimilarityLoss(alpha=2.0, beta=5.0, base=0.5),
        lambda: _np_multi_similarity(EMB, LAB, MIX, TGT, 2.0, 5.0, 0.5),
    ),
    (
        "proxy_anchor",
        lambda: _proxy_loss(ProxyAnchorLoss(margin=0.1, alpha=4.0)),
        lambda: _np_proxy_anchor(MIX, TGT, PROXIES, 4.0, 0.1),
    ),
    (
        "proxy_nca",
        lambda: _proxy_loss(ProxyNCALoss(softmax_scale=3.0)),
        lambda: _np_proxy_nca(MIX, TGT, PROXIES, 3.0),
    ),
    (
        "normalized_softmax",
        lambda: _proxy_loss(NormalizedSoftmaxLoss(temperature=0.5)),
        lambda: _np_normalized_softmax(MIX, TGT, PROXIES, 0.5),
    ),
]


@pytest.mark.parametrize("name, make, reference", SOFT_CASES)
def test_soft_forward_matches_numpy_formula(name, make, reference):
    value = make().soft_forward(_t(EMB), _t(LAB, torch.long), _t(MIX), _t(TGT))
    np.testing.assert_allclose(value.item(), reference(), rtol=1e-10)


@pytest.mark.parametrize("name, make, reference", SOFT_CASES)
def test_soft_forward_gradcheck(name, make, reference):
    loss = make()
    emb = _t(EMB).requires_grad_(True)
    mix = _t(MIX).requires_grad_(True)
    labels = _t(LAB, torch.long)
    assert torch.autograd.gradcheck(
        lambda e, m: loss.soft_forward(e, labels, m, _t(TGT)), (emb, mix)
    )
    if hasattr(loss, "proxies"):
        out = loss.soft_forward(emb, labels, mix, _t(TGT))
        (grad,) = torch.autograd.grad(out, loss.proxies)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    "loss",
    [
        ContrastiveLoss(pos_margin=0.1, neg_margin=1.2),
        MultiSimilarityLoss(alpha=2.0, beta=5.0, base=0.5),
        SignalToNoiseRatioContrastiveLoss(neg_margin=1.5),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_pair_weights_from_labels_give_the_plain_loss_exactly(loss):
    # 0/1 pair weights from the labels (diagonal excluded) are the plain loss.
    emb, labels = _t(EMB), _t(LAB, torch.long)
    distance = loss._get_distance()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(LAB), dtype=torch.bool)
    pos_w = (same & ~eye).to(emb.dtype)
    neg_w = (~same).to(emb.dtype)
    soft = loss._weighted_pairs(distance(emb), pos_w, neg_w, distance)
    assert torch.equal(soft, loss(emb, labels))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProxyAnchorLoss(margin=0.1, alpha=4.0),
        lambda: ProxyNCALoss(softmax_scale=3.0),
        lambda: NormalizedSoftmaxLoss(temperature=0.5),
    ],
)
def test_proxy_one_hot_targets_give_the_plain_loss_exactly(make):
    loss = _proxy_loss(make())
    emb, labels = _t(EMB), _t(LAB, torch.long)
    one_hot = torch.nn.functional.one_hot(labels, N_CLASSES).to(emb.dtype)
    soft = loss.soft_forward(emb, labels, emb, one_hot)
    torch.testing.assert_close(soft, loss(emb, labels), rtol=0, atol=1e-15)


def test_pair_one_hot_targets_score_anchor_mixed_pairs():
    # One-hot soft labels make the mixed samples plain positives/negatives.
    loss = ContrastiveLoss(pos_margin=0.1, neg_margin=1.2)
    mix_labels = np.array([0, 1, 2, 2])
    one_hot = np.eye(N_CLASSES)[mix_labels]
    value = loss.soft_forward(_t(EMB), _t(LAB, torch.long), _t(MIX), _t(one_hot))
    np.testing.assert_allclose(
        value.item(), _np_contrastive(EMB, LAB, MIX, one_hot, 0.1, 1.2), rtol=1e-10
    )


def test_soft_forward_rejects_bad_input_and_unsupported_losses():
    emb, labels = _t(EMB), _t(LAB, torch.long)
    with pytest.raises(TypeError, match="TripletMarginLoss does not support soft"):
        TripletMarginLoss().soft_forward(emb, labels, _t(MIX), _t(TGT))
    loss = ContrastiveLoss()
    with pytest.raises(ValueError, match="mixed_targets has 3 rows for 4"):
        loss.soft_forward(emb, labels, _t(MIX), _t(TGT[:3]))
    with pytest.raises(ValueError, match="only 2 class columns"):
        loss.soft_forward(emb, labels, _t(MIX), _t(TGT[:, :2]))
    with pytest.raises(ValueError, match="mixed_embeddings have 2 columns"):
        loss.soft_forward(emb, labels, _t(MIX[:, :2]), _t(TGT))
    proxy = _proxy_loss(ProxyAnchorLoss())
    with pytest.raises(ValueError, match="4 class columns but ProxyAnchorLoss has 3"):
        proxy.soft_forward(emb, labels, _t(MIX), _t(np.c_[TGT, np.zeros(4)]))


# ----------------------------------------------------------------- mixing
def test_mix_batch_pairs_classes_and_labels():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    torch.manual_seed(0)
    first, second, lam, targets = mix_batch(labels, 5, alpha=2.0)
    assert first.tolist() == list(range(8))
    assert (labels[first] != labels[second]).all()
    assert ((lam > 0) & (lam < 1)).all()
    expected = np.zeros((8, 5))
    for k in range(8):
        expected[k, int(labels[first[k]])] += float(lam[k])
        expected[k, int(labels[second[k]])] += 1 - float(lam[k])
    np.testing.assert_allclose(targets.numpy(), expected, rtol=1e-6)


def test_mix_batch_lambda_follows_beta_and_partners_are_uniform():
    labels = torch.tensor([0] * 50 + [1] * 25 + [2] * 25)
    torch.manual_seed(0)
    lams, partners = [], []
    for _ in range(40):
        first, second, lam, _ = mix_batch(labels, 3, alpha=8.0)
        lams.append(lam)
        partners.append(labels[second[:50]])
    lam = torch.cat(lams).double()
    # Beta(8, 8): mean 1/2, variance 1/68.
    assert abs(lam.mean().item() - 0.5) < 0.01
    assert abs(lam.var().item() - 1 / 68) < 0.002
    # Class-0 samples draw their partner among 50 others: half of class 1.
    share = (torch.cat(partners) == 1).double().mean().item()
    assert abs(share - 0.5) < 0.03


def test_mix_batch_single_class_batch_has_no_mix():
    first, second, lam, targets = mix_batch(torch.tensor([3, 3, 3]), 4, 2.0)
    assert first.numel() == second.numel() == lam.numel() == 0
    assert targets.shape == (0, 4)


def test_feature_mixing_interpolates_the_first_hidden_layer():
    torch.manual_seed(0)
    net = ResidualMLP(5, 3, hidden_layer_sizes=(7, 6), init="random").double()
    with torch.no_grad():  # a non-zero branch, so the hidden layer matters
        for p in net.branch.parameters():
            p.normal_()
    x = torch.randn(4, 5, dtype=torch.float64)
    first, second = torch.tensor([0, 1, 3]), torch.tensor([2, 0, 1])
    lam = torch.tensor([1.0, 0.0, 0.3], dtype=torch.float64)
    out = net.forward_mixed_features(x, first, second, lam)
    torch.testing.assert_close(out[0], net(x[:1])[0])
    torch.testing.assert_close(out[1], net(x[:1])[0])
    # Independent computation of the third row from the weights.
    lin1, lin2, lin3 = net.branch[0], net.branch[2], net.branch[4]
    h = 0.3 * torch.relu(lin1(x[3])) + 0.7 * torch.relu(lin1(x[1]))
    z = net.skip(0.3 * x[3] + 0.7 * x[1]) + lin3(torch.relu(lin2(h)))
    torch.testing.assert_close(out[2], z / z.norm())


# -------------------------------------------------------------- estimators
X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_SMALL, Y_SMALL = X_DIGITS[:200], Y_DIGITS[:200]
SMALL = {"n_components": 4, "hidden_layer_sizes": (8,), "max_iter": 2}


@pytest.mark.parametrize("mixup", ["embedding", "input", "feature"])
def test_same_random_state_same_embedding_with_mixup(mixup):
    a = ContrastiveEmbedder(mixup=mixup, random_state=3, **SMALL).fit(X_SMALL, Y_SMALL)
    b = ContrastiveEmbedder(mixup=mixup, random_state=3, **SMALL).fit(X_SMALL, Y_SMALL)
    plain = ContrastiveEmbedder(random_state=3, **SMALL).fit(X_SMALL, Y_SMALL)
    np.testing.assert_array_equal(a.transform(X_SMALL), b.transform(X_SMALL))
    assert not np.allclose(a.transform(X_SMALL), plain.transform(X_SMALL))
    # The recorded loss is clean + mixed, above the plain loss at the start.
    assert a.loss_curve_[0] > plain.loss_curve_[0]


def test_mixup_in_proxy_loss_estimators_and_custom_losses():
    emb = ProxyAnchorEmbedder(mixup=Metrix(alpha=1.0), random_state=0, **SMALL)
    assert emb.fit(X_SMALL, Y_SMALL).transform(X_SMALL[:3]).shape == (3, 4)
    custom = DeepMetricEmbedder(
        loss=NormalizedSoftmaxLoss(), mixup="input", random_state=0, **SMALL
    )
    assert np.isfinite(custom.fit(X_SMALL, Y_SMALL).loss_curve_).all()
    first = MultiSimilarityEmbedder(mixup="embedding", random_state=0, **SMALL)
    first.partial_fit(X_SMALL, Y_SMALL).partial_fit(X_SMALL, Y_SMALL)
    assert first.n_iter_ == 2


def test_mixup_parameters_are_tunable_and_never_mutated():
    metrix = Metrix(on="input", alpha=1.0, weight=0.5)
    before = copy.deepcopy(metrix.get_params())
    emb = ContrastiveEmbedder(mixup=metrix, random_state=0, **SMALL)
    params = emb.get_params()
    assert params["mixup__alpha"] == 1.0 and params["mixup__on"] == "input"
    cloned = clone(emb)
    assert cloned.mixup is not metrix and cloned.mixup.get_params() == before
    emb.fit(X_SMALL, Y_SMALL)
    assert metrix.get_params() == before
    search = GridSearchCV(
        ContrastiveEmbedder(mixup=Metrix(), random_state=0, **SMALL),
        {"mixup__alpha": [0.5, 4.0]},
        cv=2,
    ).fit(X_SMALL, Y_SMALL)
    assert search.best_params_["mixup__alpha"] in (0.5, 4.0)


def _metrix_assigned(**attributes):
    """A Metrix whose attributes were assigned directly (not validated)."""
    metrix = Metrix()
    for name, value in attributes.items():
        setattr(metrix, name, value)
    return metrix


_BAD_METRIX = [
    ({"on": "hidden"}, "'on' parameter of Metrix must be a str among .*got 'hidden'"),
    ({"alpha": 0}, r"'alpha' parameter of Metrix must be .*\(0, inf\); got 0 "),
    ({"weight": -1.0}, "'weight' parameter of Metrix must be .*; got -1.0 "),
    ({"alpha": True}, "'alpha' parameter of Metrix must be .*; got True "),
    ({"alpha": float("nan")}, "'alpha' parameter of Metrix must be .*; got nan "),
]


@pytest.mark.parametrize(
    "mixup, message",
    [
        (
            "manifold",
            "'mixup' parameter of .* must be None, a str among .*'input'.*got 'manifold'",
        ),
        (0.5, "'mixup' parameter of .*got 0.5 of type float"),
    ]
    + [(_metrix_assigned(**params), message) for params, message in _BAD_METRIX],
)
def test_bad_mixup_values_are_rejected_in_fit(mixup, message):
    with pytest.raises(ValueError, match=message):
        ContrastiveEmbedder(mixup=mixup, **SMALL).fit(X_SMALL, Y_SMALL)


@pytest.mark.parametrize("params, message", _BAD_METRIX)
def test_bad_metrix_values_are_rejected_when_set(params, message):
    with pytest.raises(ValueError, match=message):
        Metrix(**params)
    metrix = Metrix(alpha=1.0)
    with pytest.raises(ValueError, match=message):
        metrix.set_params(**params)
    assert metrix.get_params() == Metrix(alpha=1.0).get_params()


def test_mixup_rejected_before_training_when_unsupported():
    with pytest.raises(
        ValueError,
        match="mixup is supported by .*ProxyAnchorLoss.*"
        "TripletEmbedder trains TripletMarginLoss",
    ):
        TripletEmbedder(mixup="embedding", **SMALL).fit(X_SMALL, Y_SMALL)
    user = MLP(64, 4, hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="on='feature' mixes the first hidden layer"):
        ContrastiveEmbedder(backbone=user, mixup="feature", **SMALL).fit(
            X_SMALL, Y_SMALL
        )
    with pytest.raises(ValueError, match="user backbone or no hidden layer"):
        ContrastiveEmbedder(
            mixup="feature", n_components=4, hidden_layer_sizes=(), max_iter=1
        ).fit(X_SMALL, Y_SMALL)
    # A user backbone works with input and embedding mixup.
    emb = ContrastiveEmbedder(backbone=user, mixup="input", **SMALL)
    assert emb.fit(X_SMALL, Y_SMALL).transform(X_SMALL[:2]).shape == (2, 4)


def test_warm_start_checks_mixup_again():
    emb = TripletEmbedder(warm_start=True, **SMALL).fit(X_SMALL, Y_SMALL)
    emb.set_params(mixup="input")
    with pytest.raises(ValueError, match="mixup is supported by"):
        emb.fit(X_SMALL, Y_SMALL)
    assert emb.n_iter_ == 2


# ---------------------------------------------------------------- metric
def test_utilization_loss_matches_brute_force():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(40, 5)), rng.normal(size=(13, 5))
    d = np.sqrt(((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(utilization_loss(test, train), d.min(axis=1).mean())
    cos = 1 - _unit(test) @ _unit(train).T
    np.testing.assert_allclose(
        utilization_loss(test, train, metric="cosine"), cos.min(axis=1).mean()
    )
    # A query set inside the reference set is at distance 0.
    assert utilization_loss(train[:5], train) == 0.0


def test_utilization_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="metric must be 'euclidean' or 'cosine'"):
        utilization_loss(np.ones((2, 2)), np.ones((2, 2)), metric="l1")
    with pytest.raises(ValueError, match="embeddings have 2 features but"):
        utilization_loss(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="embeddings must have at least one sample"):
        utilization_loss(np.ones((0, 2)), np.ones((2, 2)))


def test_lp_distance_of_two_sets_is_used_for_pairs():
    # soft_forward compares anchors with mixed samples, not the batch with itself.
    loss = ContrastiveLoss(pos_margin=0.0, neg_margin=2.0, distance=LpDistance())
    emb, labels = _t(EMB[:2]), _t(LAB[:2], torch.long)
    far = _t([[-1.0, -0.2, 0.1]])  # the opposite of the first anchor
    value = loss.soft_forward(emb, labels, far, _t([[1.0, 0.0, 0.0]]))
    d0 = 2.0
    d1 = np.linalg.norm(_unit(EMB[1:2]) - _unit(-EMB[0:1]))
    np.testing.assert_allclose(value.item(), (d0 + d1) / 2, rtol=1e-12)
