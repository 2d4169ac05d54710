"""The training engine: the loop, early stopping, targets, inference."""

import numpy as np
import pytest
import torch

from sklearn_dml import TripletEmbedder
from sklearn_dml.backbones import ResidualMLP
from sklearn_dml.losses import ContrastiveLoss
from sklearn_dml.training import engine
from sklearn_dml.training.objective import MetricLossTerm

from .test_training_objective import config


def test_engine_gives_back_the_start_when_every_epoch_scores_worse():
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 4).astype(np.float32), np.repeat(np.arange(4), 10)
    net = ResidualMLP(4, 4, hidden_layer_sizes=(8,), init="identity")
    start = {k: v.clone() for k, v in net.state_dict().items()}
    calls = []

    def falling_score(embeddings, labels):
        calls.append(1)
        return 1.0 / len(calls)  # the start scores 1, every epoch less

    state = engine.TrainingState(backbone=net, loss=ContrastiveLoss(), miner=None)
    cfg = config(
        [MetricLossTerm()],
        max_iter=3,
        batch_size=8,
        learning_rate_init=0.1,
        n_iter_no_change=5,
    )
    engine.fit(state, cfg, X, y, validation=(X, y), score_func=falling_score)
    assert len(calls) == 4  # the start, then three epochs
    assert state.best_validation_score == 1.0
    for key, value in state.backbone.state_dict().items():
        assert torch.equal(value, start[key]), key


def test_engine_rejects_targets_of_the_wrong_length():
    X = np.random.RandomState(0).rand(150, 6)
    y = np.repeat(np.arange(5), 30)
    state = engine.TrainingState(torch.nn.Linear(6, 3), ContrastiveLoss(), None)
    with pytest.raises(ValueError, match="targets has 3 rows but X has 150"):
        engine.fit(state, config([MetricLossTerm()]), X, y, targets=np.zeros((3, 2)))


def test_history_records_the_mean_of_each_term_per_epoch():
    X = np.random.RandomState(0).rand(120, 6)
    y = np.repeat(np.arange(6), 20)
    est = TripletEmbedder(
        n_components=4, hidden_layer_sizes=(8,), max_iter=3, random_state=0
    ).fit(X, y)
    assert [rec["epoch"] for rec in est.history_] == [1, 2, 3]
    for rec in est.history_:
        assert set(rec["terms"]) == {"metric", "anchor"}
        assert rec["loss"] == pytest.approx(sum(rec["terms"].values()), rel=1e-5)
    # The anchor starts at zero (the PCA start) and grows as training moves away.
    assert est.history_[-1]["terms"]["anchor"] > 0
    assert est.loss_curve_ == [rec["loss"] for rec in est.history_]


def test_engine_trains_and_leaves_the_models_on_the_cpu_in_eval_mode():
    X = np.random.RandomState(0).rand(60, 5)
    y = np.repeat(np.arange(3), 20)
    net = torch.nn.Linear(5, 3)
    before = net.weight.detach().clone()
    state = engine.TrainingState(net, ContrastiveLoss(), None)
    engine.fit(state, config([MetricLossTerm()], max_iter=2, batch_size=12), X, y)
    assert state.n_iter == 2 and len(state.history) == 2
    assert not torch.equal(before, net.weight)
    assert not net.training
    assert net.weight.device.type == "cpu"
    assert state.optimizer_state is not None


def test_embed_is_batched_and_restores_the_training_mode():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    net.train()
    X = np.random.RandomState(0).rand(25, 4)
    out = engine.embed(net, X, batch_size=7)
    assert out.dtype == np.float32 and out.shape == (25, 3)
    with torch.no_grad():
        expected = net.eval()(torch.tensor(X, dtype=torch.float32)).numpy()
    # float32 products of 7 rows against all 25 may round differently
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    net.train()
    engine.embed(net, X)
    assert net.training
