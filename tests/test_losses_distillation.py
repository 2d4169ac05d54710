"""Relational distillation losses (``losses._distillation``): RKD distance and angle against NumPy."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sklearn_dml.losses import _distillation
from sklearn_dml.losses._distillation import RKDAngleLoss, RKDDistanceLoss

from .loss_references import assert_zero_value_with_zero_grad, t64

# The references loop over pairs and triplets (Huber by cases, angles from
# explicit vectors).
S = np.random.default_rng(3).normal(size=(6, 2))
T = np.random.default_rng(5).normal(size=(6, 4))


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


@pytest.mark.parametrize("delta", [1.0, 0.05])
def test_rkd_losses_match_numpy(delta):
    got_d = RKDDistanceLoss(delta=delta)(t64(S), t64(T)).item()
    got_a = RKDAngleLoss(delta=delta)(t64(S), t64(T)).item()
    exp_d, exp_a = np_rkd_distance(S, T, delta), np_rkd_angle(S, T, delta)
    assert exp_d > 0 and exp_a > 0
    np.testing.assert_allclose(got_d, exp_d, rtol=1e-10)
    np.testing.assert_allclose(got_a, exp_a, rtol=1e-10)


def test_rkd_angle_chunks_give_the_same_value(monkeypatch):
    s, t = t64(S, requires_grad=True), t64(T)
    whole = RKDAngleLoss()(s, t)
    (grad_whole,) = torch.autograd.grad(whole, s)
    monkeypatch.setattr(_distillation, "_ANGLE_CHUNK_CELLS", 30)  # one vertex a chunk
    chunked = RKDAngleLoss()(s, t)
    (grad_chunked,) = torch.autograd.grad(chunked, s)
    np.testing.assert_allclose(chunked.item(), whole.item(), rtol=1e-12)
    np.testing.assert_allclose(grad_chunked, grad_whole, rtol=1e-10)


@pytest.mark.parametrize("cls", [RKDDistanceLoss, RKDAngleLoss])
def test_rkd_gradcheck_teacher_detached_and_invariances(cls):
    s, t = t64(S, requires_grad=True), t64(T, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: cls(delta=0.3)(e, t), (s,))
    cls()(s, t).backward()
    assert t.grad is None and torch.isfinite(s.grad).all()
    # a student that is a scaled, rotated, shifted copy of the teacher: 0
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    student = t64(3.0 * T @ rot + 1.5)
    np.testing.assert_allclose(cls()(student, t64(T)).item(), 0.0, atol=1e-12)


@pytest.mark.parametrize("cls", [RKDDistanceLoss, RKDAngleLoss])
def test_rkd_edge_cases_and_validation(cls):
    # too small a batch: zero with zero gradient
    for n in (0, 1, 2) if cls is RKDAngleLoss else (0, 1):
        s = t64(S[:n], requires_grad=True)
        assert_zero_value_with_zero_grad(cls()(s, t64(T[:n])), [s])
    # coincident points (and a collapsed student): finite gradients
    s = t64(np.vstack([S[:3], S[:3]]), requires_grad=True)
    cls()(s, t64(T)).backward()
    assert torch.isfinite(s.grad).all()
    s = t64(np.zeros((4, 2)), requires_grad=True)
    value = cls()(s, t64(T[:4]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()
    with pytest.raises(ValueError, match="student has 6 rows but teacher has 5"):
        cls()(t64(S), t64(T[:5]))
    with pytest.raises(ValueError, match="teacher must be a 2-D tensor"):
        cls()(t64(S), t64(T[0]))
    with pytest.raises(TypeError, match="student must be a floating point"):
        cls()(torch.ones(3, 2, dtype=torch.long), t64(T[:3]))
    with pytest.raises(ValueError, match=f"'delta' parameter of {cls.__name__}"):
        cls(delta=0)
    loss = cls(delta=0.5)
    assert clone(loss).get_params() == {"delta": 0.5}
    assert pickle.loads(pickle.dumps(loss)).delta == 0.5
    assert list(loss.parameters()) == []
