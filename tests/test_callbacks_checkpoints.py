"""Callbacks during training, checkpoints and resuming from them."""

import numpy as np
import pytest
import torch

from sklearn_dml import ContrastiveEmbedder, TripletEmbedder
from sklearn_dml.callbacks import Checkpoint
from sklearn_dml.persistence import load, save

PARAMS = dict(
    n_components=4,
    hidden_layer_sizes=(8,),
    batch_size=32,
    anchor_weight=None,
    random_state=0,
)


@pytest.fixture(scope="module")
def data(tiny):
    X, y = tiny
    return X[:96], y[:96]


class Recorder:
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def on_train_begin(self, model):
        self.events.append(("begin", model.n_iter_))

    def on_epoch_end(self, model, record):
        self.events.append(("epoch", record["epoch"], model.n_iter_))
        self.embedding = model.transform(np.eye(64)[:2])
        return record["epoch"] == self.stop_at

    def on_train_end(self, model):
        self.events.append(("end", model.n_iter_))


def test_hooks_are_called_with_the_model_trained_so_far(data):
    X, y = data
    recorder = Recorder()
    est = TripletEmbedder(max_iter=3, callbacks=[recorder], **PARAMS).fit(X, y)
    assert recorder.events == [
        ("begin", 0),
        ("epoch", 1, 1),
        ("epoch", 2, 2),
        ("epoch", 3, 3),
        ("end", 3),
    ]
    # The view of the last epoch embeds as the fitted model.
    np.testing.assert_allclose(recorder.embedding, est.transform(np.eye(64)[:2]))
    assert est.callbacks == [recorder]


def test_returning_true_stops_training(data):
    X, y = data
    est = TripletEmbedder(max_iter=5, callbacks=[Recorder(stop_at=2)], **PARAMS)
    assert est.fit(X, y).n_iter_ == 2


def test_a_failing_callback_leaves_the_fitted_estimator_as_it_was(data):
    X, y = data
    est = TripletEmbedder(max_iter=1, **PARAMS).fit(X, y)
    before = est.transform(X[:3])

    class Failing:
        def on_epoch_end(self, model, record):
            raise RuntimeError("disk full")

    est.set_params(callbacks=[Failing()], warm_start=True)
    with pytest.raises(RuntimeError, match="disk full"):
        est.fit(X, y)
    assert est.n_iter_ == 1
    np.testing.assert_array_equal(est.transform(X[:3]), before)


@pytest.mark.parametrize("resume", ["warm_start", "partial_fit"])
def test_k_epochs_checkpoint_and_the_rest_equal_one_run(data, tmp_path, resume):
    X, y = data
    path = tmp_path / "epoch{epoch}.pt"
    checkpoint = Checkpoint(path, every=2)
    full = TripletEmbedder(max_iter=3, callbacks=[checkpoint], **PARAMS).fit(X, y)
    assert [p.rsplit("/", 1)[-1] for p in checkpoint.saved_] == [
        "epoch2.pt",
        "epoch3.pt",
    ]
    resumed = load(tmp_path / "epoch2.pt")
    assert resumed.n_iter_ == 2 and resumed.callbacks is None
    if resume == "warm_start":
        resumed.set_params(warm_start=True, max_iter=1).fit(X, y)
    else:
        resumed.partial_fit(X, y)
    assert resumed.n_iter_ == 3
    np.testing.assert_allclose(
        resumed.transform(X), full.transform(X), rtol=0, atol=1e-6
    )
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]


def test_a_resumed_run_needs_the_optimizer_state(data, tmp_path):
    # The check above fails without the optimizer moments in the checkpoint.
    X, y = data
    full = TripletEmbedder(max_iter=2, **PARAMS).fit(X, y)
    part = TripletEmbedder(max_iter=1, **PARAMS).fit(X, y)
    save(part, tmp_path / "m.pt")
    resumed = load(tmp_path / "m.pt")
    resumed._optimizer_state = None
    resumed.set_params(warm_start=True).fit(X, y)
    assert not np.allclose(resumed.transform(X), full.transform(X), atol=1e-6)


def test_cross_batch_memory_resumes_with_its_queue(data, tmp_path):
    X, y = data
    params = {**PARAMS, "cross_batch_memory": 48}
    checkpoint = Checkpoint(tmp_path / "xbm.pt", every=1, at_end=False)
    full = ContrastiveEmbedder(max_iter=2, callbacks=[checkpoint], **params)
    full.fit(X, y)
    resumed = load(tmp_path / "xbm.pt")  # the last epoch: 2
    assert resumed.n_iter_ == 2
    torch.testing.assert_close(
        resumed.loss_.memory_embeddings, full.loss_.memory_embeddings
    )
    first = ContrastiveEmbedder(max_iter=1, callbacks=[checkpoint], **params)
    first.fit(X, y)
    again = load(tmp_path / "xbm.pt").set_params(warm_start=True, max_iter=1)
    np.testing.assert_allclose(
        again.fit(X, y).transform(X), full.transform(X), rtol=0, atol=1e-6
    )


def test_save_leaves_the_callbacks_out(data, tmp_path):
    X, y = data
    est = TripletEmbedder(max_iter=1, callbacks=[Recorder()], **PARAMS).fit(X, y)
    save(est, tmp_path / "m.pt")
    assert load(tmp_path / "m.pt").callbacks is None
    with pytest.raises(ValueError, match="every"):
        Checkpoint(tmp_path / "m.pt", every=0)
