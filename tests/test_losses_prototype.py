"""Prototype losses (``losses._prototype``): Proto-Triplet, prototypical, angular
prototypical, ICNN and the ICNN score."""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.distances import CosineSimilarity, LpDistance
from sklearn_dml.losses._prototype import (
    AngularPrototypicalLoss,
    ICNNLoss,
    ProtoTripletLoss,
    PrototypicalLoss,
)
from sklearn_dml.metrics import icnn_score

from .loss_references import X, Y, t64, unit

# The references loop over samples, neighbours and classes in plain NumPy
# (distances from explicit coordinate differences, neighbours by a Python
# sort on (distance, index)), an independent route from the vectorised torch
# code and from the chunked kNN search.

# The shared batch plus a sample of a fourth class.
X8 = np.vstack([X, [[-0.9, -0.3, 0.1]]])
Y8 = np.array([*Y, 3])  # classes 2 and 3 are singletons
Y_FULL_8 = [0, 0, 0, 1, 1, 2, 2, 1]  # every class has at least two samples
RAW = LpDistance(normalize_embeddings=False)


def _dist(a, b):
    return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b)))


# ------------------------------------------------------------ references
def _maybe_unit(v, normalize):
    return unit(v) if normalize else v


def proto_triplet_ref(x, y, margin, anchors=None, normalize=False):
    # Prototypes are means of the embeddings as given; the distance then
    # L2-normalises both sides when ``normalize`` (LpDistance's default).
    classes = sorted(set(y.tolist()))
    protos = {c: _maybe_unit(x[y == c].mean(axis=0), normalize) for c in classes}
    terms = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if y[j] == y[i] and j != i]
        if not same or (anchors is not None and i not in anchors):
            continue
        positive = _maybe_unit(np.mean([x[j] for j in same], axis=0), normalize)
        xi = _maybe_unit(x[i], normalize)
        d_pos = _dist(xi, positive)
        for c in classes:
            if c != y[i]:
                terms.append(max(0.0, d_pos - _dist(xi, protos[c]) + margin))
    return float(np.mean(terms)) if terms else 0.0


def _cosine_dist(a, b):
    dot = sum(u * v for u, v in zip(a, b))
    return 1.0 - dot / (
        math.sqrt(sum(u * u for u in a)) * math.sqrt(sum(v * v for v in b))
    )


def icnn_ref(x, y, k, dist=_dist):
    n = len(x)
    k = min(k, n - 1)
    m = min(k + 1, n - 1)
    d = [[dist(x[i], x[j]) for j in range(n)] for i in range(n)]
    rels, others, purities = [], [], []
    for i in range(n):
        order = sorted((j for j in range(n) if j != i), key=lambda j: (d[i][j], j))
        found = order[:m]
        other_d = [d[i][j] for j in found if y[j] != y[i]]
        d_minus = min(other_d) if other_d else math.inf
        near = order[:k]
        rho = max(d_minus, max(d[i][j] for j in near))
        same = [j for j in near if y[j] == y[i]]
        diff = [j for j in near if y[j] != y[i]]
        if same:
            ok = math.isfinite(rho) and rho > 0
            rels.append(np.mean([d[i][j] / rho if ok else 0.0 for j in same]))
        if diff:
            others.append([d[i][j] for j in diff])
        purities.append(len(same) / k)
    intra = 1.0 - np.mean(rels) if rels else 0.0
    if others:
        top = max(max(row) for row in others)
        top = top if top > 0 else 1.0
        inter = np.mean([np.mean([v / top for v in row]) for row in others])
    else:
        inter = 1.0
    return ((intra + inter) / 2 + np.mean(purities)) / 2


# ------------------------------------------------------------ Proto-Triplet
@pytest.mark.parametrize("margin", [0.0, 0.05, 0.5])
def test_proto_triplet_matches_numpy(margin):
    value = ProtoTripletLoss(margin=margin)(t64(X8), torch.tensor(Y8))
    assert value.item() == pytest.approx(
        proto_triplet_ref(X8, Y8, margin, normalize=True)
    )
    raw = ProtoTripletLoss(margin=margin, distance=RAW)(t64(X8), torch.tensor(Y8))
    assert raw.item() == pytest.approx(proto_triplet_ref(X8, Y8, margin))
    assert raw.item() > 0


def test_proto_triplet_with_a_similarity_flips_the_comparison():
    x = X8
    loss = ProtoTripletLoss(margin=0.1, distance=CosineSimilarity())
    value = loss(t64(X8), torch.tensor(Y8)).item()
    classes = sorted(set(Y8.tolist()))
    terms = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if Y8[j] == Y8[i] and j != i]
        if not same:
            continue
        pos = np.mean(x[same], axis=0)
        xi = x[i] / np.linalg.norm(x[i])
        s_pos = xi @ pos / np.linalg.norm(pos)
        for c in classes:
            if c != Y8[i]:
                proto = x[Y8 == c].mean(axis=0)
                s_neg = xi @ proto / np.linalg.norm(proto)
                terms.append(max(0.0, s_neg - s_pos + 0.1))
    assert value == pytest.approx(np.mean(terms))


def test_proto_triplet_mined_anchors_only():
    triplets = (
        torch.tensor([0, 3, 3]),
        torch.tensor([1, 4, 6]),
        torch.tensor([5, 0, 7]),
    )
    loss = ProtoTripletLoss(margin=0.3, distance=RAW)
    value = loss(t64(X8), torch.tensor(Y8), triplets).item()
    assert value == pytest.approx(proto_triplet_ref(X8, Y8, 0.3, anchors={0, 3}))
    assert value != pytest.approx(proto_triplet_ref(X8, Y8, 0.3))
    empty = tuple(torch.tensor([], dtype=torch.long) for _ in range(3))
    assert loss(t64(X8), torch.tensor(Y8), empty).item() == 0.0


def test_proto_triplet_gradcheck():
    loss = ProtoTripletLoss(margin=0.4)
    labels = torch.tensor(Y8)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (t64(X8, True),))


@pytest.mark.parametrize(
    "labels", [[0] * 8, list(range(8))], ids=["one-class", "all-singletons"]
)
def test_proto_triplet_without_valid_triplet_is_an_attached_zero(labels):
    x = t64(X8, True)
    value = ProtoTripletLoss(margin=0.5)(x, torch.tensor(labels))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_proto_triplet_rejects_negative_margin():
    with pytest.raises(ValueError, match="'margin' parameter of ProtoTripletLoss"):
        ProtoTripletLoss(margin=-0.1)


# ------------------------------------------------------------ Prototypical
def prototypical_ref(x, y, temperature, normalize=True, power=2):
    classes = sorted(set(y.tolist()))
    terms = []
    for i in range(len(x)):
        same = [j for j in range(len(x)) if y[j] == y[i] and j != i]
        if not same or len(classes) < 2:
            continue
        xi = _maybe_unit(x[i], normalize)
        logits = []
        for c in classes:
            members = same if c == y[i] else [j for j in range(len(x)) if y[j] == c]
            proto = _maybe_unit(np.mean([x[j] for j in members], axis=0), normalize)
            logits.append(-(_dist(xi, proto) ** power) / temperature)
        own = classes.index(y[i])
        top = max(logits)
        log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
        terms.append(log_norm - logits[own])
    return float(np.mean(terms)) if terms else 0.0


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_prototypical_matches_numpy(temperature):
    value = PrototypicalLoss(temperature=temperature)(t64(X8), torch.tensor(Y8)).item()
    assert value == pytest.approx(prototypical_ref(X8, Y8, temperature))
    raw = PrototypicalLoss(temperature=temperature, distance=RAW)
    value = raw(t64(X8), torch.tensor(Y8)).item()
    assert value == pytest.approx(prototypical_ref(X8, Y8, temperature, False, 1))


def test_prototypical_gradcheck_and_edges():
    loss = PrototypicalLoss(temperature=0.5)
    labels = torch.tensor(Y8)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (t64(X8, True),))
    for edge in ([0] * 8, list(range(8))):
        x = t64(X8, True)
        value = loss(x, torch.tensor(edge))
        assert value.item() == 0.0
        value.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="'temperature' parameter of PrototypicalLoss"):
        PrototypicalLoss(temperature=0)


# ------------------------------------------------------ Angular prototypical
def angular_prototypical_ref(x, y, w, b):
    """Query = the last sample of each class with two or more, in batch order."""
    y = list(y)
    classes = [c for c in sorted(set(y)) if y.count(c) >= 2]
    if len(classes) < 2:
        return 0.0
    queries, prototypes = [], []
    for c in classes:
        members = [i for i in range(len(x)) if y[i] == c]
        queries.append(x[members[-1]])
        prototypes.append(np.mean([x[i] for i in members[:-1]], axis=0))
    terms = []
    for j, q in enumerate(queries):
        logits = [w * float(unit(q) @ unit(p)) + b for p in prototypes]
        top = max(logits)
        log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
        terms.append(log_norm - logits[j])
    return float(np.mean(terms))


def authors_angular_prototypical(x, w, b):
    """The authors' tensor form: x of shape (speakers, utterances, dim), the
    first utterance the query, the mean of the others the prototype."""
    query, prototype = unit(x[:, 0]), unit(x[:, 1:].mean(axis=1))
    logits = w * query @ prototype.T + b
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(np.diag(log_softmax)))


@pytest.mark.parametrize("init_scale, init_bias", [(10.0, -5.0), (3.0, 0.0)])
def test_angular_prototypical_matches_numpy(init_scale, init_bias):
    loss = AngularPrototypicalLoss(init_scale, init_bias).configure()
    for labels in (Y8, Y_FULL_8):  # with and without singleton classes
        value = loss(t64(X8), torch.tensor(labels)).item()
        expected = angular_prototypical_ref(X8, labels, init_scale, init_bias)
        assert value == pytest.approx(expected, rel=1e-10)
        assert value > 0


def test_angular_prototypical_matches_the_authors_tensor_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 4))  # 5 speakers, 3 utterances each
    # Batch order: the support utterances first, every query at the end.
    order = [(s, u) for u in (1, 2, 0) for s in range(5)]
    batch = np.array([x[s, u] for s, u in order])
    labels = torch.tensor([s for s, _ in order])
    loss = AngularPrototypicalLoss(init_scale=7.0, init_bias=-2.0).configure()
    value = loss(t64(batch), labels).item()
    assert value == pytest.approx(authors_angular_prototypical(x, 7.0, -2.0))


def test_angular_prototypical_gradients():
    loss = AngularPrototypicalLoss().configure().double()
    labels = torch.tensor(Y_FULL_8)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (t64(X8, True),))
    loss(t64(X8), labels).backward()
    # The scale is learned; the bias shifts every logit alike and cancels.
    assert loss.scale.grad.abs().item() > 1e-6
    assert loss.bias.grad is None


def test_angular_prototypical_edges_and_errors():
    loss = AngularPrototypicalLoss().configure()
    for labels in ([0] * 8, list(range(8)), [0, 0, 1, 2, 3, 4, 5, 6]):
        x = t64(X8, True)
        value = loss(x, torch.tensor(labels))
        assert value.item() == 0.0
        value.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(RuntimeError, match="call configure"):
        AngularPrototypicalLoss()(t64(X8), torch.tensor(Y8))
    with pytest.raises(ValueError, match="does not use mined tuples"):
        loss(t64(X8), torch.tensor(Y8), (torch.tensor([0]),) * 3)
    with pytest.raises(ValueError, match="'init_scale' parameter"):
        AngularPrototypicalLoss(init_scale=0.0)
    with pytest.raises(ValueError, match="'distance' parameter"):
        AngularPrototypicalLoss(distance=LpDistance())
    assert not hasattr(clone(loss), "scale")  # clone: unconfigured


def test_angular_prototypical_query_is_the_last_sample_of_its_class():
    # Moving a sample to the end of the batch makes it its class's query.
    loss = AngularPrototypicalLoss().configure()
    labels = np.array(Y_FULL_8)
    order = np.r_[np.delete(np.arange(8), 0), 0]
    moved = loss(t64(X8[order]), torch.tensor(labels[order])).item()
    assert moved == pytest.approx(
        angular_prototypical_ref(X8[order], labels[order], 10.0, -5.0)
    )
    assert moved != pytest.approx(loss(t64(X8), torch.tensor(labels)).item())


# ------------------------------------------------------------ ICNN loss
@pytest.mark.parametrize("k", [1, 2, 4, 7, 50])
def test_icnn_loss_matches_numpy(k):
    value = ICNNLoss(n_neighbors=k, distance=RAW)(t64(X8), torch.tensor(Y8)).item()
    assert value == pytest.approx(-math.log(icnn_ref(X8, Y8, k)))
    normed = ICNNLoss(n_neighbors=k)(t64(X8), torch.tensor(Y8)).item()
    assert normed == pytest.approx(-math.log(icnn_ref(unit(X8), Y8, k)))


def test_icnn_loss_is_minus_log_of_the_score():
    value = ICNNLoss(n_neighbors=3, distance=RAW)(t64(X8), torch.tensor(Y8)).item()
    assert value == pytest.approx(-math.log(icnn_score(X8, Y8, n_neighbors=3)))


def test_icnn_loss_gradcheck():
    loss = ICNNLoss(n_neighbors=3)
    labels = torch.tensor(Y8)
    x = t64(X8, True)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,))
    loss(x, labels).backward()
    assert x.grad.abs().sum() > 0


def test_icnn_loss_one_class_batch_scores_perfectly():
    x = t64(X8, True)
    value = ICNNLoss()(x, torch.zeros(8, dtype=torch.long))
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_icnn_loss_singletons_and_tiny_batches():
    labels = torch.arange(8)
    value = ICNNLoss(n_neighbors=2, distance=RAW)(t64(X8), labels).item()
    assert value == pytest.approx(-math.log(icnn_ref(X8, labels.numpy(), 2)))
    assert math.isfinite(value) and value > math.log(4) - 1e-12  # score <= 1/4
    single = t64(X8[:1], True)
    assert ICNNLoss()(single, torch.tensor([0])).item() == 0.0
    two = ICNNLoss(n_neighbors=5, distance=RAW)(t64(X8[:2]), torch.tensor([0, 1]))
    assert two.item() == pytest.approx(-math.log(icnn_ref(X8[:2], [0, 1], 5)))


def test_icnn_loss_errors():
    labels = torch.tensor(Y8)
    with pytest.raises(ValueError, match="does not use mined tuples"):
        ICNNLoss()(t64(X8), labels, (torch.tensor([0]),) * 3)
    with pytest.raises(ValueError, match="'n_neighbors' parameter of ICNNLoss"):
        ICNNLoss(n_neighbors=0)
    with pytest.raises(
        ValueError, match="'distance' parameter of ICNNLoss .*is_inverted=False"
    ):
        ICNNLoss(distance=CosineSimilarity())


def test_losses_clone_with_params():
    loss = clone(ICNNLoss(n_neighbors=3, distance=RAW))
    assert loss.n_neighbors == 3 and loss.distance.normalize_embeddings is False
    assert clone(ProtoTripletLoss(margin=0.2)).margin == 0.2


# ------------------------------------------------------------ ICNN score
@pytest.mark.parametrize("k", [1, 3, 6])
def test_icnn_score_matches_numpy(k):
    assert icnn_score(X8, Y8, n_neighbors=k) == pytest.approx(icnn_ref(X8, Y8, k))
    labels = np.array(["a", "a", "a", "b", "b", "c", "b", "d"])
    assert icnn_score(X8, labels, n_neighbors=k) == pytest.approx(icnn_ref(X8, Y8, k))


def test_icnn_score_cosine_metric():
    value = icnn_score(X8, Y8, n_neighbors=3, metric="cosine")
    assert value == pytest.approx(icnn_ref(X8, Y8, 3, dist=_cosine_dist))
    assert value != pytest.approx(icnn_score(X8, Y8, n_neighbors=3))


def test_icnn_score_breaks_ties_by_index():
    # Point 0 has three neighbours at distance 1: indices 1 (its class),
    # 2 and 3 (other classes); k = 1 must pick index 1.
    pts = np.array(
        [[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [6.0, 5.0]]
    )
    labels = np.array([0, 0, 1, 1, 1, 0])
    value = icnn_score(pts, labels, n_neighbors=1)
    assert value == pytest.approx(icnn_ref(pts, labels, 1))
    # The same points listed in another order pick another tied neighbour,
    # so the rule matters: moving index 2 first changes the score.
    perm = np.array([2, 0, 1, 3, 4, 5])
    moved = icnn_score(pts[perm], labels[perm], n_neighbors=1)
    assert moved == pytest.approx(icnn_ref(pts[perm], labels[perm], 1))
    assert moved != pytest.approx(value)


def test_icnn_score_chunking_does_not_change_the_result():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(600, 5))
    labels = rng.integers(0, 6, size=600)
    full = icnn_score(pts, labels)
    assert icnn_score(pts, labels, chunk_size=7) == pytest.approx(full, abs=1e-12)
    small = rng.normal(size=(40, 5))
    small_labels = rng.integers(0, 3, size=40)
    assert icnn_score(small, small_labels, n_neighbors=5) == pytest.approx(
        icnn_ref(small, small_labels, 5)
    )


def test_icnn_score_bounds():
    sep = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 0.0], [5.0, 0.1]])
    # Same-class neighbour at 0.1, nearest other class at 5: 1 - 0.02 / 4.
    assert icnn_score(sep, [0, 0, 1, 1], n_neighbors=1) == pytest.approx(0.995)
    assert icnn_score(sep, [0, 0, 0, 0]) == pytest.approx(1.0)
    assert icnn_score(sep, [0, 1, 0, 1], n_neighbors=1) <= 0.25


def test_icnn_score_errors():
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        icnn_score(X8, Y8, n_neighbors=0)
    with pytest.raises(ValueError, match="metric must be one of"):
        icnn_score(X8, Y8, metric="manhattan")
    with pytest.raises(ValueError, match="at least 2 samples"):
        icnn_score(X8[:1], Y8[:1])
    with pytest.raises(ValueError, match="labels has 3 entries"):
        icnn_score(X8, Y8[:3])
