"""A fit completes or changes nothing; interrupted training keeps a whole model.

Each test is a defect found by trying the package as a new user would, on
the first 300 digits scaled to [0, 1].
"""

import copy
import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_dml import DeepMetricEmbedder, ProxyAnchorEmbedder, TripletEmbedder
from sklearn_dml.losses import TripletMarginLoss
from sklearn_dml.training import engine

KW = dict(n_components=8, hidden_layer_sizes=(32,), max_iter=1, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _fitted_state(est):
    """What a fit stored (not the parameters), for comparing before and after."""
    out = {}
    params = est.get_params(deep=False)
    for key, value in vars(est).items():
        if key in params:
            continue
        if isinstance(value, torch.nn.Module):
            out[key] = {k: v.clone() for k, v in value.state_dict().items()}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        other = after[key]
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, torch.Tensor) for v in value.values())
        ):
            assert value.keys() == other.keys(), key
            for k in value:
                assert torch.equal(value[k], other[k]), (key, k)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other)
        elif key in ("history_", "_optimizer_state", "_trained_with"):
            continue  # nested tensors; compared through the weights and n_iter_
        else:
            assert value == other or value is other, key


# 1. A failed refit leaves the fitted estimator as it was.
@pytest.mark.parametrize("n_components, output", [(8, "default"), (16, "pandas")])
def test_failed_refit_leaves_the_estimator_usable(data, n_components, output):
    X, y = data
    est = TripletEmbedder(**{**KW, "n_components": n_components})
    est.set_output(transform=output)
    est.fit(X, y)
    Z = np.asarray(est.transform(X))
    before = _fitted_state(est)
    est.set_params(early_stopping=True, validation_split="class_disjoint")
    with pytest.raises(ValueError, match="at least 4 classes"):
        est.fit(X[:, :10], y % 3)
    _assert_same_state(before, _fitted_state(est))
    out = est.transform(X)
    np.testing.assert_array_equal(np.asarray(out), Z)
    if output == "pandas":
        assert isinstance(out, pd.DataFrame) and out.shape[1] == n_components
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :10])


class _InterruptAt(torch.nn.Module):
    """A triplet loss that raises KeyboardInterrupt at its ``at``-th call."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls, self.inner = at, 0, TripletMarginLoss(margin=0.1)

    def forward(self, embeddings, labels, indices_tuple=None):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner(embeddings, labels, indices_tuple)


def _interrupting(at, **params):
    return DeepMetricEmbedder(loss=_InterruptAt(at), **{**KW, **params})


# 7. Ctrl-C during a first fit keeps the model trained so far, with a warning.
def test_interrupted_first_fit_keeps_the_epochs_done(data):
    X, y = data
    est = _interrupting(at=7, max_iter=5, batch_size=100)  # 3 steps an epoch
    with pytest.warns(UserWarning, match="interrupted.*2 epochs"):
        est.fit(X, y)
    assert est.n_iter_ == 2 and len(est.history_) == 2 == len(est.loss_curve_)
    assert np.isfinite(est.transform(X)).all()
    # The kept model is the one after two epochs, not the start.
    start = DeepMetricEmbedder(loss=TripletMarginLoss(margin=0.1), **KW)
    assert not np.allclose(
        est.transform(X), start.set_params(max_iter=1).fit(X, y).transform(X)
    )


# 1 and 7. Ctrl-C during a warm-start fit: every attribute moves together.
def test_interrupted_warm_start_updates_every_attribute_together(data):
    X, y = data
    est = DeepMetricEmbedder(loss=TripletMarginLoss(margin=0.1), **KW)
    est.set_params(warm_start=True, batch_size=100).fit(X, y)
    pairs = np.stack([X[:20], X[20:40]], axis=1)
    est.calibrate_threshold(pairs, y[:20] == y[20:40])
    weights = {k: v.clone() for k, v in est.backbone_.state_dict().items()}
    est.set_params(loss=_InterruptAt(at=5), max_iter=3)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X, y)
    assert est.n_iter_ == 2 and len(est.history_) == 2  # 1 before + 1 completed
    assert not hasattr(est, "threshold_")  # it belonged to the old embedding
    assert any(
        not torch.equal(v, est.backbone_.state_dict()[k]) for k, v in weights.items()
    )
    step = est._optimizer_state["state"][0]["step"]
    assert int(step) > 3  # the optimizer state moved on with the weights


def test_interrupt_before_training_changes_nothing(data, monkeypatch):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    before = _fitted_state(est)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X[:, :20], y)
    _assert_same_state(before, _fitted_state(est))


# 2. warm_start and partial_fit honour what is well defined, refuse the rest.
def test_warm_start_honours_learning_rate_weight_decay_and_loss_parameters(data):
    X, y = data
    est = ProxyAnchorEmbedder(warm_start=True, **KW).fit(X, y)
    proxies = est.loss_.proxies.detach().clone()
    est.set_params(
        learning_rate_init=0.05, weight_decay=1e-3, margin=0.3, loss_learning_rate=0.2
    )
    est.fit(X, y)
    groups = est._optimizer_state["param_groups"]
    assert [g["lr"] for g in groups] == [0.05, 0.2]
    assert [g["weight_decay"] for g in groups] == [1e-3, 1e-3]
    assert est.loss_.margin == 0.3
    assert not torch.equal(proxies, est.loss_.proxies.detach())  # trained further
    assert int(est._optimizer_state["state"][0]["step"]) > 3  # moments carried


@pytest.mark.parametrize(
    "change",
    [
        {"n_components": 16},
        {"hidden_layer_sizes": (8,)},
        {"normalize_embeddings": False},
        {"backbone": torch.nn.Linear(64, 8)},
        {"optimizer": "sgd"},
    ],
    ids=lambda c: next(iter(c)),
)
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_resuming_with_another_architecture_or_optimizer_is_refused(data, change, how):
    X, y = data
    est = TripletEmbedder(warm_start=True, **KW).fit(X, y)
    before = _fitted_state(est)
    est.set_params(**change)
    with pytest.raises(ValueError, match=f"{next(iter(change))}.*(changed|differs)"):
        est.fit(X, y) if how == "warm_start" else est.partial_fit(X, y)
    _assert_same_state(before, _fitted_state(est))


def test_a_change_of_loss_shape_is_refused(data):
    X, y = data
    from sklearn_dml import SubCenterArcFaceEmbedder

    est = SubCenterArcFaceEmbedder(warm_start=True, **KW).fit(X, y)
    est.set_params(sub_centers=2)
    with pytest.raises(ValueError, match="learned parameters"):
        est.fit(X, y)


# 3. Inputs beyond float32, and embeddings never NaN without an error.
def test_values_beyond_float32_are_refused_with_the_cause(data):
    X, y = data
    with pytest.raises(ValueError, match="beyond the float32 range"):
        TripletEmbedder(**KW).fit(X * 1e39, y)
    est = TripletEmbedder(**KW).fit(X, y)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        est.transform(X * 1e39)


def test_overflowing_embeddings_raise_instead_of_nan(data):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    with pytest.raises(ValueError, match="not finite"):
        est.transform(X[:50] * 3e38)
    pairs = np.stack([X[:5] * 3e38, X[5:10]], axis=1)
    est.calibrate_threshold(np.stack([X[:20], X[20:40]], axis=1), y[:20] == y[20:40])
    with pytest.raises(ValueError, match="not finite"):
        est.predict_pairs(pairs)


# 4. NaN, infinite and boolean hyper-parameters (see test_estimator_parameters.py
# for every numeric parameter of every embedder).
@pytest.mark.parametrize(
    "params",
    [
        {"margin": math.nan},
        {"tol": math.nan},
        {"normalize_embeddings": "no"},
        {"warm_start": "no"},
        {"n_components": True},
        {"device": "CPU"},
        {"device": "tpu"},
        {"device": 3},
        {"device": "mps"},
        {"device": "meta"},
    ],
    ids=lambda p: f"{next(iter(p))}={next(iter(p.values()))!r}",
)
def test_bad_hyper_parameters_fail_before_any_state_change(data, params):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    before = _fitted_state(est)
    est.set_params(**params)
    with pytest.raises(ValueError, match=f"'{next(iter(params))}' parameter"):
        est.fit(X, y)
    _assert_same_state(before, _fitted_state(est))


def test_calibrate_threshold_refuses_a_nan_beta(data):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    with pytest.raises(ValueError, match="'beta' parameter"):
        est.calibrate_threshold(
            np.stack([X[:20], X[20:40]], axis=1),
            y[:20] == y[20:40],
            strategy="f_beta",
            beta=math.nan,
        )
    assert not hasattr(est, "threshold_")


# 5. Labels of another type, mixed labels.
def test_partial_fit_refuses_labels_of_another_type(data):
    X, y = data
    est = TripletEmbedder(**KW).partial_fit(X, y.astype(str))
    with pytest.raises(ValueError, match="string"):
        est.partial_fit(X, y)
    assert len(est.classes_) == 10
    with pytest.raises(ValueError, match="string"):
        est.set_params(warm_start=True).fit(X, y)


def test_mixed_label_types_get_a_clear_error(data):
    X, y = data
    mixed = np.array(
        [str(v) if i % 2 else int(v) for i, v in enumerate(y)], dtype=object
    )
    with pytest.raises(ValueError, match="mixes string labels"):
        TripletEmbedder(**KW).fit(X, mixed)


# 6 and 8. Devices: fitted models live on the CPU and embed anywhere.
def test_a_model_fitted_for_cuda_embeds_on_a_cpu_only_machine(data, monkeypatch):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    Z = est.transform(X)
    est.set_params(device="cuda")  # as if unpickled from a GPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), Z)
    assert next(restored.backbone_.parameters()).device.type == "cpu"


def test_training_stays_on_its_device_through_validation(data, monkeypatch):
    """Recorded ``.to()`` moves of the backbone: one there, one back, none between."""
    X, y = data
    moves = []
    original = torch.nn.Module.to

    def recording_to(module, *args, **kwargs):
        if type(module).__name__ == "ResidualMLP":
            moves.append(str(args[0]) if args else str(kwargs))
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recording_to)
    TripletEmbedder(
        early_stopping=True, anchor_weight=None, **{**KW, "max_iter": 3}
    ).fit(X, y)
    assert moves == ["cpu", "cpu"]  # to the training device, then back: no more


def test_embedding_on_another_device_leaves_the_fitted_model_alone(data, monkeypatch):
    X, y = data
    est = TripletEmbedder(**KW).fit(X, y)
    moved = []
    original = torch.nn.Module.to
    monkeypatch.setattr(
        torch.nn.Module,
        "to",
        lambda m, *a, **k: moved.append(m) or original(m, *a, **k),
    )
    # As if the inference device were another one: a copy is moved, never the
    # fitted backbone itself.
    monkeypatch.setattr(engine, "_same_device", lambda a, b: False)
    est.transform(X[:5])
    assert moved and all(m is not est.backbone_ for m in moved)


# 9. Determinism (same seed, same thread count), parameter-free backbones.
def test_same_seed_and_thread_count_give_identical_embeddings(data):
    X, y = data
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = TripletEmbedder(**KW).fit(X, y).transform(X)
        b = TripletEmbedder(**KW).fit(X, y).transform(X)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(a, b)


def test_a_backbone_without_parameters_gets_a_clear_error(data):
    X, y = data
    est = TripletEmbedder(backbone=torch.nn.Identity(), **KW)
    with pytest.raises(ValueError, match="nothing to train"):
        est.fit(X, y)
    assert not hasattr(est, "backbone_")


# 10. Progress a person can read.
def test_verbose_1_is_one_live_line_with_each_term(data, capsys):
    X, y = data
    TripletEmbedder(verbose=1, **{**KW, "max_iter": 3}).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count("\r") == 3
    last = out.split("\r")[-1]
    for piece in ("epoch 3/3", "steps", "metric", "anchor", "elapsed", "left"):
        assert piece in last, piece


def test_verbose_2_is_a_line_per_epoch_with_validation(data, capsys):
    X, y = data
    est = TripletEmbedder(verbose=2, early_stopping=True, **{**KW, "max_iter": 3})
    est.fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch" in line]
    assert len(lines) == 3 and all("val MAP@R" in line for line in lines)


def test_history_records_each_term(data):
    X, y = data
    est = TripletEmbedder(**{**KW, "max_iter": 2}).fit(X, y)
    for record in est.history_:
        assert set(record["terms"]) == {"metric", "anchor"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.DataFrame([r["terms"] for r in est.history_])


def test_a_cohort_cannot_resume_with_another_number_of_members(data):
    from sklearn_dml import MutualLearningEmbedder

    X, y = data
    est = MutualLearningEmbedder(n_models=2, warm_start=True, **KW).fit(X, y)
    est.set_params(n_models=3)
    with pytest.raises(ValueError, match="n_models changed"):
        est.fit(X, y)
    assert len(est.backbone_.members) == 2
