"""Saving and loading embedders without pickle (sklearn_dml.persistence)."""

import os

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from sklearn_dml import (
    ArcFaceEmbedder,
    DeepMetricEmbedder,
    ProxyAnchorEmbedder,
    RKDEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sklearn_dml.backbones import ResidualMLP
from sklearn_dml.losses import MultiSimilarityLoss
from sklearn_dml.persistence import FORMAT, load, save

KW = dict(n_components=6, hidden_layer_sizes=(16,), max_iter=2, random_state=0)


@pytest.fixture(scope="module")
def data(tiny):
    X, y = tiny
    return X[:150], y[:150]


CASES = {
    "triplet": lambda: TripletEmbedder(anchor_weight=None, **KW),
    "proxy_anchor": lambda: ProxyAnchorEmbedder(anchor_weight=2.5, **KW),
    "generic_component": lambda: DeepMetricEmbedder(
        loss=MultiSimilarityLoss(alpha=3.0), anchor_weight=0, **KW
    ),
    "supcon_nested": lambda: SupConEmbedder(nested_dims=(2, 4), **KW),
    "arcface": lambda: ArcFaceEmbedder(**KW),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_loaded_embedder_embeds_and_trains_on_like_the_saved_one(
    case, data, tmp_path
):
    X, y = data
    est = CASES[case]().fit(X, y)
    path = tmp_path / "model.pt"
    save(est, path)
    again = load(path)
    assert type(again) is type(est)
    assert again.get_params().keys() == est.get_params().keys()
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    np.testing.assert_array_equal(again.classes_, est.classes_)
    assert again.history_ == est.history_
    # The loss's learned state and the optimizer's moments came back too:
    # training on from either gives the same network.
    for model in (est, again):
        model.set_params(warm_start=True, max_iter=1).fit(X, y)
    np.testing.assert_allclose(again.transform(X), est.transform(X), atol=1e-6)


def test_string_labels_and_their_dtype_survive(data, tmp_path):
    X, y = data
    labels = np.array([f"class-{v}" for v in y])
    est = TripletEmbedder(**KW).fit(X, labels)
    save(est, tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert again.classes_.dtype == est.classes_.dtype
    assert again.classes_.tolist() == est.classes_.tolist()


def test_the_file_holds_only_tensors_and_plain_data(data, tmp_path):
    X, y = data
    save(TripletEmbedder(**KW).fit(X, y), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == FORMAT and payload["class"] == "TripletEmbedder"


class _RunsCode:
    """Unpickling this would create a directory: a stand-in for malicious code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_a_file_with_code_in_it_is_refused_without_running_it(tmp_path):
    target = str(tmp_path / "created-by-unpickling")
    torch.save(
        {"format": FORMAT, "class": "TripletEmbedder", "x": _RunsCode(target)},
        tmp_path / "evil.pt",
    )
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported"):
        load(tmp_path / "evil.pt")
    assert not os.path.exists(target)


def test_only_the_packages_components_are_built_from_a_file(data, tmp_path):
    X, y = data
    save(
        DeepMetricEmbedder(loss=MultiSimilarityLoss(), **KW).fit(X, y),
        tmp_path / "m.pt",
    )
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["params"]["loss"]["__component__"] = "os.system"
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="not a component of sklearn_dml"):
        load(tmp_path / "tampered.pt")
    payload["class"] = "Popen"
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="not an sklearn_dml embedder"):
        load(tmp_path / "tampered.pt")


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: TripletEmbedder(
                backbone=ResidualMLP(64, 4), **{**KW, "n_components": 4}
            ),
            "torch module",
        ),
        (
            lambda: TripletEmbedder(
                learning_rate_schedule=lambda o, n: torch.optim.lr_scheduler.LambdaLR(
                    o, lambda s: 1.0
                ),
                **KW,
            ),
            "callable",
        ),
    ],
)
def test_what_is_code_is_refused_and_nothing_is_written(make, message, data, tmp_path):
    X, y = data
    est = make().fit(X, y)
    path = tmp_path / "existing.pt"
    path.write_bytes(b"previous content")
    with pytest.raises(ValueError, match=message):
        save(est, path)
    assert path.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["existing.pt"]


def test_a_teacher_estimator_is_refused(data, tmp_path):
    X, y = data
    teacher = TripletEmbedder(**KW).fit(X, y)
    student = RKDEmbedder(teacher=teacher, **KW).fit(X, y)
    with pytest.raises(ValueError, match="teacher"):
        save(student, tmp_path / "m.pt")


def test_an_unfitted_embedder_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        save(TripletEmbedder(), tmp_path / "m.pt")


def test_a_foreign_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a file written by"):
        load(tmp_path / "other.pt")
