"""Learning-rate schedules and gradient clipping of the training engine."""

import math

import numpy as np
import pytest
import torch

from sklearn_dml import TripletEmbedder
from sklearn_dml.training.engine import warmup_cosine_factor

KW = dict(n_components=4, hidden_layer_sizes=(8,), random_state=0, anchor_weight=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    return rng.randn(120, 6), np.repeat(np.arange(4), 30)


def _reference_factor(step, n_steps):
    # Independent statement of the schedule: linear warm-up over the first
    # tenth of the steps, then a half cosine from 1 to 0.
    warm = max(1, round(0.1 * n_steps))
    if step < warm:
        return (step + 1) / warm
    t = (step + 1 - warm) / (n_steps - warm)
    return (1 + math.cos(math.pi * t)) / 2


@pytest.mark.parametrize("n_steps", [1, 7, 50])
def test_warmup_cosine_factor_matches_its_definition(n_steps):
    got = [warmup_cosine_factor(s, n_steps) for s in range(n_steps)]
    expected = [_reference_factor(s, n_steps) for s in range(n_steps)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert got[-1] == pytest.approx(0.0, abs=1e-12) or n_steps == 1


def test_warmup_cosine_reaches_the_optimizer(data):
    est = TripletEmbedder(
        max_iter=5, batch_size=40, learning_rate_schedule="warmup_cosine", **KW
    ).fit(*data)
    steps_per_epoch = 3  # 120 samples in batches of 40
    n_steps = 5 * steps_per_epoch
    rates = [record["learning_rate"] for record in est.history_]
    expected = [
        1e-3 * _reference_factor(steps_per_epoch * (e + 1) - 1 + 1, n_steps)
        if steps_per_epoch * (e + 1) < n_steps
        else 0.0
        for e in range(5)
    ]
    np.testing.assert_allclose(rates, expected, atol=1e-12)


def test_constant_schedule_keeps_the_rate(data):
    est = TripletEmbedder(max_iter=3, learning_rate_init=3e-3, **KW).fit(*data)
    assert [r["learning_rate"] for r in est.history_] == [3e-3] * 3


def test_a_callable_schedule_gets_the_number_of_steps(data):
    seen = []

    def one_cycle(optimizer, n_steps):
        seen.append(n_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=1e-2, total_steps=n_steps
        )

    est = TripletEmbedder(
        max_iter=4, batch_size=40, learning_rate_schedule=one_cycle, **KW
    ).fit(*data)
    assert seen == [12]
    rates = [r["learning_rate"] for r in est.history_]
    assert max(rates) > 1e-3 and rates[-1] < rates[1]  # up, then down


def test_a_callable_must_return_a_scheduler(data):
    est = TripletEmbedder(max_iter=1, learning_rate_schedule=lambda o, n: 3, **KW)
    with pytest.raises(TypeError, match="must return a learning-rate scheduler"):
        est.fit(*data)
    assert not hasattr(est, "backbone_")


def test_warm_start_schedules_from_the_new_rate(data):
    params = dict(max_iter=4, batch_size=40, warm_start=True, **KW)
    est = TripletEmbedder(learning_rate_schedule="warmup_cosine", **params)
    est.fit(*data)
    est.set_params(learning_rate_init=1e-2).fit(*data)
    # The second run's schedule follows the new rate, not the first run's.
    second = [r["learning_rate"] for r in est.history_[4:]]
    expected = [1e-2 * _reference_factor(3 * (e + 1), 12) for e in range(3)]
    np.testing.assert_allclose(second[:3], expected, rtol=1e-9)


def _frozen(optimizer, n_steps):
    # A zero learning rate throughout: the fitted weights are the initial ones.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.0)


def _weight_change(data, **params):
    common = dict(max_iter=3, optimizer="sgd", learning_rate_init=0.1, **KW)
    trained = TripletEmbedder(**common, **params).fit(*data)
    initial = TripletEmbedder(**common, learning_rate_schedule=_frozen).fit(*data)
    return sum(
        float((a - b).detach().abs().sum())
        for a, b in zip(
            trained.backbone_.parameters(), initial.backbone_.parameters(), strict=True
        )
    )


def test_gradient_clipping_bounds_the_steps(data):
    free = _weight_change(data)
    clipped = _weight_change(data, max_grad_norm=1e-6)
    assert free > 1e-2
    assert clipped < 1e-3 * free


@pytest.mark.parametrize(
    "params, message",
    [
        ({"max_grad_norm": 0}, "max_grad_norm"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"learning_rate_schedule": "cosine"}, "learning_rate_schedule"),
    ],
)
def test_invalid_values_are_refused(params, message, data):
    with pytest.raises(ValueError, match=message):
        TripletEmbedder(max_iter=1, **KW, **params).fit(*data)
