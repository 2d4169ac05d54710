"""The anchoring weight of the default backbone: explicit, the method's, or chosen."""

import numpy as np
import pytest

from sklearn_dml import ArcFaceEmbedder, NPairsEmbedder, TripletEmbedder
from sklearn_dml.backbones import ResidualMLP

KW = dict(n_components=4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)


@pytest.fixture(scope="module")
def six_classes():
    rng = np.random.RandomState(0)
    return rng.randn(120, 5), np.repeat(np.arange(6), 20)


@pytest.fixture(scope="module")
def ten_classes():
    rng = np.random.RandomState(0)
    return rng.randn(200, 5), np.repeat(np.arange(10), 20)


@pytest.mark.parametrize(
    "cls, params, expected",
    [
        (TripletEmbedder, {"anchor_weight": None}, 10.0),
        (TripletEmbedder, {"anchor_weight": 0}, 0.0),
        (TripletEmbedder, {"anchor_weight": 2.5}, 2.5),
        (TripletEmbedder, {"nested_dims": (2,), "anchor_weight": None}, 0.0),
        (TripletEmbedder, {"nested_dims": (2,), "anchor_weight": 3}, 3.0),
        (ArcFaceEmbedder, {}, 0.0),
        (ArcFaceEmbedder, {"anchor_weight": "auto"}, 0.0),  # nothing to choose
        (ArcFaceEmbedder, {"anchor_weight": 1}, 1.0),
        (NPairsEmbedder, {}, 3.0),  # the method's own, lighter weight
    ],
)
def test_the_weight_reaches_the_backbone(cls, params, expected, six_classes):
    est = cls(**KW, **params).fit(*six_classes)
    assert est.anchor_weight_ == expected
    assert est.backbone_.anchor_weight == expected
    assert est.anchor_selection_ is None


def test_auto_trains_both_candidates_on_half_the_classes_and_keeps_the_better(
    ten_classes, monkeypatch
):
    X, y = ten_classes
    fits = []
    original_fit = TripletEmbedder._fit

    def recording_fit(self, X_fit, y_fit):
        fits.append((self.anchor_weight, np.unique(y_fit).tolist()))
        return original_fit(self, X_fit, y_fit)

    def score_by_weight(self, X_score, y_score):
        # Unanchored candidates score higher: "auto" must pick 0.
        return 0.9 if self.anchor_weight == 0 else 0.5

    monkeypatch.setattr(TripletEmbedder, "_fit", recording_fit)
    monkeypatch.setattr(TripletEmbedder, "score", score_by_weight)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    candidates = fits[1:]  # the first call is the outer fit
    assert sorted(w for w, _ in candidates) == [0.0, 0.0, 10.0, 10.0]
    for _, classes in candidates:
        assert len(classes) == 5  # half of the ten classes
    halves = {tuple(c) for _, c in candidates}
    assert len(halves) == 2 and set(sum(map(list, halves), [])) == set(range(10))
    assert est.anchor_selection_ == {0.0: 0.9, 10.0: 0.5}
    assert est.anchor_weight_ == 0.0 and est.backbone_.anchor_weight == 0.0
    assert est.anchor_weight == "auto"  # the parameter is untouched


def test_auto_prefers_the_method_weight_on_a_tie(ten_classes, monkeypatch):
    monkeypatch.setattr(TripletEmbedder, "score", lambda self, X, y: 0.7)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(*ten_classes)
    assert est.anchor_weight_ == 10.0


def test_auto_keeps_the_method_weight_with_few_classes_or_a_user_backbone(
    six_classes, ten_classes, monkeypatch
):
    # Nine classes are too few to choose even when unanchoring would score higher.
    monkeypatch.setattr(
        TripletEmbedder,
        "score",
        lambda self, X, y: 0.9 if self.anchor_weight == 0 else 0.5,
    )
    X, y = ten_classes
    few = TripletEmbedder(anchor_weight="auto", **KW).fit(X[y < 9], y[y < 9])
    assert few.anchor_weight_ == 10.0 and few.anchor_selection_ is None
    chosen = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    assert chosen.anchor_weight_ == 0.0
    X, y = six_classes
    user = TripletEmbedder(
        anchor_weight="auto", backbone=ResidualMLP(5, 4, anchor_weight=0.0), **KW
    ).fit(X, y)
    assert user.anchor_weight_ is None and user.anchor_selection_ is None


def test_a_warm_start_honours_a_changed_weight(six_classes):
    est = TripletEmbedder(warm_start=True, anchor_weight=None, **KW).fit(*six_classes)
    est.set_params(anchor_weight=1.5).fit(*six_classes)
    assert est.anchor_weight_ == 1.5 and est.backbone_.anchor_weight == 1.5


def test_partial_fit_makes_no_choice(six_classes):
    est = TripletEmbedder(anchor_weight="auto", **KW).partial_fit(*six_classes)
    assert est.anchor_weight_ == 10.0 and est.anchor_selection_ is None
