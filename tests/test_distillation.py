"""Relational distillation (RKDEmbedder) and mutual learning (MutualLearningEmbedder).

The objectives are checked against NumPy loops over pairs and triplets
(Huber by cases, angles from explicit vectors), an independent route from
the vectorised torch code; gradients with ``gradcheck`` in float64.
"""

import copy
import itertools

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from sklearn_dml import (
    ContrastiveEmbedder,
    MutualLearningEmbedder,
    RKDEmbedder,
    TripletEmbedder,
)
from sklearn_dml.losses import (
    MutualLearningLoss,
    RKDLoss,
    TripletMarginLoss,
)


def _huber(a, b, delta=1.0):
    r = abs(a - b)
    return 0.5 * r * r if r <= delta else delta * (r - 0.5 * delta)


def np_rkd_distance(s, t):
    n = len(s)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    ds = {p: np.sqrt(((s[p[0]] - s[p[1]]) ** 2).sum()) for p in pairs}
    dt = {p: np.sqrt(((t[p[0]] - t[p[1]]) ** 2).sum()) for p in pairs}
    ms, mt = np.mean(list(ds.values())), np.mean(list(dt.values()))
    return np.mean([_huber(ds[p] / ms, dt[p] / mt) for p in pairs])


def _cos_at(u, i, j, k):
    a, b = u[i] - u[j], u[k] - u[j]
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def np_rkd_angle(s, t):
    n = len(s)
    terms = [
        _huber(_cos_at(s, i, j, k), _cos_at(t, i, j, k))
        for i, j, k in itertools.permutations(range(n), 3)
    ]
    return np.mean(terms)


def np_triplet_all(e, y, margin):
    """Triplet loss over every triplet, averaged over the violating ones."""
    terms = []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a != p and y[a] == y[p] and y[n] != y[a]:
            d_ap = np.linalg.norm(e[a] - e[p])
            d_an = np.linalg.norm(e[a] - e[n])
            terms.append(max(0.0, d_ap - d_an + margin))
    terms = np.array(terms)
    return terms[terms > 0].mean() if (terms > 0).any() else 0.0


def _unit(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


S = _unit(np.random.default_rng(0).normal(size=(7, 3)))
T = _unit(np.random.default_rng(1).normal(size=(7, 5)))
E2 = _unit(np.random.default_rng(2).normal(size=(7, 3)))
E3 = _unit(np.random.default_rng(3).normal(size=(7, 3)))
Y = [0, 0, 1, 1, 2, 2, 0]


def _t(x, grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    keep = y < 5
    return (X[keep][:150] / 16).astype(np.float32), y[keep][:150]


# ------------------------------------------------------------ components
def test_rkd_loss_matches_numpy_and_gradcheck():
    got = RKDLoss(distance_weight=1.0, angle_weight=2.0)(_t(S), _t(T)).item()
    expected = np_rkd_distance(S, T) + 2.0 * np_rkd_angle(S, T)
    assert expected > 0
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    only_d = RKDLoss(distance_weight=0.5, angle_weight=0.0)(_t(S), _t(T)).item()
    np.testing.assert_allclose(only_d, 0.5 * np_rkd_distance(S, T), rtol=1e-10)
    teacher = _t(T)
    assert torch.autograd.gradcheck(
        lambda s: RKDLoss()(s, teacher), (_t(S, grad=True),)
    )
    with pytest.raises(ValueError, match="'angle_weight' parameter of RKDLoss"):
        RKDLoss(angle_weight=-1)


@pytest.mark.parametrize("n_temporal", [0, 1])
def test_mutual_learning_loss_matches_numpy(n_temporal):
    margin = 0.2
    blocks = [S, E2] + ([E3] if n_temporal else [])
    loss = MutualLearningLoss(
        TripletMarginLoss(margin=margin),
        n_models=2,
        n_temporal=n_temporal,
        distance_weight=1.0,
        angle_weight=2.0,
    )
    got = loss(_t(np.hstack(blocks)), torch.tensor(Y)).item()
    expected = 0.0
    for k in range(2):
        peers = [b for j, b in enumerate(blocks) if j != k]
        rkd = [
            np_rkd_distance(blocks[k], p) + 2 * np_rkd_angle(blocks[k], p)
            for p in peers
        ]
        expected += np_triplet_all(blocks[k], Y, margin) + np.mean(rkd)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_mutual_learning_gradient_is_each_members_own_term():
    """Peers are detached: the gradient of block k is that of its own term."""
    loss = MutualLearningLoss(TripletMarginLoss(margin=0.2), n_models=2)
    labels = torch.tensor(Y)
    both = _t(np.hstack([S, E2]), grad=True)
    (grad,) = torch.autograd.grad(loss(both, labels), both)
    peer = _t(E2)

    def own_term(block):
        return TripletMarginLoss(margin=0.2)(block, labels) + RKDLoss()(block, peer)

    s = _t(S, grad=True)
    (expected,) = torch.autograd.grad(own_term(s), s)
    np.testing.assert_allclose(grad[:, :3].numpy(), expected.numpy(), rtol=1e-10)
    assert torch.autograd.gradcheck(own_term, (_t(S, grad=True),))


def test_mutual_learning_loss_errors():
    loss = MutualLearningLoss(TripletMarginLoss(), n_models=2)
    with pytest.raises(ValueError, match="do not split into n_models"):
        loss(_t(np.hstack([S, E2[:, :2]])), torch.tensor(Y))
    with pytest.raises(ValueError, match="without indices_tuple"):
        loss(_t(np.hstack([S, E2])), torch.tensor(Y), (torch.tensor([0]),) * 3)
    with pytest.raises(ValueError, match="'n_models' parameter of MutualLearningLoss"):
        MutualLearningLoss(TripletMarginLoss(), n_models=0)
    with pytest.raises(TypeError, match="'loss' parameter of MutualLearningLoss"):
        MutualLearningLoss("triplet")


# ------------------------------------------------------------ RKDEmbedder
SMALL = {
    "n_components": 4,
    "hidden_layer_sizes": (16,),
    "max_iter": 2,
    "batch_size": 20,
}


@pytest.fixture(scope="module")
def fitted_teacher(digits):
    X, y = digits
    return TripletEmbedder(
        n_components=16, hidden_layer_sizes=(32,), max_iter=3, random_state=0
    ).fit(X, y)


def test_rkd_student_never_mutates_a_fitted_teacher(digits, fitted_teacher):
    X, y = digits
    teacher = fitted_teacher
    before = copy.deepcopy(teacher.backbone_.state_dict())
    emb_before = teacher.transform(X)
    student = RKDEmbedder(teacher, random_state=0, **SMALL).fit(X, y)
    assert student.teacher_ is teacher
    after = teacher.backbone_.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    np.testing.assert_array_equal(teacher.transform(X), emb_before)
    assert student.transform(X).shape == (150, 4)


def test_rkd_distillation_lowers_the_relational_loss(digits, fitted_teacher):
    X, y = digits
    teacher = fitted_teacher
    student = RKDEmbedder(teacher, random_state=0, **{**SMALL, "max_iter": 8})
    student.fit(X, y)
    assert student.loss_curve_[-1] < student.loss_curve_[0]
    # The student's relations are closer to the teacher's than PCA's are.
    rkd = RKDLoss()
    t = torch.tensor(teacher.transform(X[:64]))
    s = torch.tensor(student.transform(X[:64]))
    pca = torch.tensor(PCA(4).fit(X).transform(X[:64]), dtype=torch.float32)
    assert rkd(s, t).item() < rkd(pca, t).item()


def test_rkd_unfitted_teacher_is_cloned_and_fitted(digits):
    X, y = digits
    teacher = ContrastiveEmbedder(n_components=8, max_iter=2)
    student = RKDEmbedder(teacher, random_state=0, **SMALL).fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(teacher)  # the object passed in stays untouched
    assert student.teacher_ is not teacher
    check_is_fitted(student.teacher_)
    assert student.teacher_.random_state is not None  # seeded from the student
    default = RKDEmbedder(random_state=0, **SMALL).fit(X, y)
    assert isinstance(default.teacher_, TripletEmbedder)
    assert default.teacher_.n_components == 64


def test_rkd_frozen_teacher_survives_clone(digits, fitted_teacher):
    X, y = digits
    teacher = fitted_teacher
    student = clone(RKDEmbedder(FrozenEstimator(teacher), random_state=0, **SMALL))
    student.fit(X, y)
    assert student.teacher_.estimator is teacher


def test_rkd_is_reproducible_and_works_with_pca_teacher(digits):
    X, y = digits
    teacher = PCA(n_components=10).fit(X)
    a = RKDEmbedder(teacher, random_state=3, **SMALL).fit(X, y).transform(X)
    b = RKDEmbedder(teacher, random_state=3, **SMALL).fit(X, y).transform(X)
    np.testing.assert_array_equal(a, b)
    c = RKDEmbedder(teacher, random_state=4, **SMALL).fit(X, y).transform(X)
    assert not np.array_equal(a, c)


def test_rkd_early_stopping_and_partial_fit(digits, fitted_teacher):
    X, y = digits
    teacher = fitted_teacher
    est = RKDEmbedder(teacher, early_stopping=True, random_state=0, **SMALL)
    assert est.fit(X, y).best_validation_score_ is not None
    est = RKDEmbedder(teacher, random_state=0, **SMALL)
    est.partial_fit(X, y).partial_fit(X, y)
    assert est.n_iter_ == 2 and est.teacher_ is teacher


def test_rkd_refuses_training_options_without_metric_loss(digits, monkeypatch):
    # The base class refuses every option until it is implemented; without that
    # placeholder, the student still refuses them when metric_weight=0.
    from sklearn_dml.base import BaseDeepMetricLearner

    monkeypatch.setattr(BaseDeepMetricLearner, "_check_training_options", lambda s: 0)
    X, y = digits
    with pytest.raises(ValueError, match="mixup modify the metric loss"):
        RKDEmbedder(PCA(4).fit(X), mixup="embedding", **SMALL).fit(X, y)


def test_rkd_errors(digits, fitted_teacher):
    X, y = digits
    teacher = fitted_teacher
    with pytest.raises(ValueError, match="fitted on 64 features but X has 10"):
        RKDEmbedder(teacher, **SMALL).fit(X[:, :10], y)
    with pytest.raises(TypeError, match="'teacher' parameter"):
        RKDEmbedder(teacher="pca", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="all 0: nothing to train"):
        RKDEmbedder(teacher, distance_weight=0, angle_weight=0, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="'angle_weight' parameter"):
        RKDEmbedder(teacher, angle_weight=-1, **SMALL).fit(X, y)
    flat = FunctionTransformer(lambda Z: Z[:, 0]).fit(X)
    with pytest.raises(ValueError, match="must return a 2-D array with one row"):
        RKDEmbedder(flat, **SMALL).fit(X, y)


# ------------------------------------------------- MutualLearningEmbedder
def test_single_member_cohort_is_a_triplet_embedder(digits):
    X, y = digits
    one = MutualLearningEmbedder(n_models=1, random_state=0, **SMALL).fit(X, y)
    ref = TripletEmbedder(random_state=0, **SMALL).fit(X, y)
    np.testing.assert_allclose(one.transform(X), ref.transform(X), atol=1e-6)
    np.testing.assert_allclose(one.loss_curve_, ref.loss_curve_, rtol=1e-5)


def test_cohort_members_ensemble_and_temporal_copies(digits):
    X, y = digits
    est = MutualLearningEmbedder(
        n_models=3,
        feature_dropout=0.2,
        ema_decay=0.5,
        ensemble=True,
        random_state=0,
        **SMALL,
    ).fit(X, y)
    cohort = est.backbone_
    Z = est.transform(X)
    assert Z.shape == (150, 12)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        members = [m(torch.tensor(X)).numpy() for m in cohort.members]
    np.testing.assert_allclose(Z, np.hstack(members) / np.sqrt(3), atol=1e-6)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # diversity
    assert all(not p.requires_grad for p in cohort.temporal.parameters())
    for avg, member in zip(cohort.temporal, cohort.members):
        p_avg, p = next(avg.parameters()), next(member.parameters())
        assert not torch.equal(p_avg, p)
    est.set_params(ensemble=False, n_models=2, ema_decay=None)
    np.testing.assert_allclose(
        est.fit(X, y).transform(X).shape, (150, 4)
    )  # member 0 only


def test_cohort_is_reproducible(digits):
    X, y = digits
    params = {"n_models": 2, "feature_dropout": 0.1, "random_state": 1, **SMALL}
    a = MutualLearningEmbedder(**params).fit(X, y).transform(X)
    b = MutualLearningEmbedder(**params).fit(X, y).transform(X)
    np.testing.assert_array_equal(a, b)


def test_cohort_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match="does not support nested_dims"):
        MutualLearningEmbedder(nested_dims=(2,), **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="'feature_dropout' parameter"):
        MutualLearningEmbedder(feature_dropout=1.0, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="'ema_decay' parameter"):
        MutualLearningEmbedder(ema_decay=1.0, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="'n_models' parameter"):
        MutualLearningEmbedder(n_models=0, **SMALL).fit(X, y)
