"""The anchoring weight of the default backbone: explicit, the method's, or chosen."""

import numpy as np
import pytest
import torch

from sklearn_dml import (
    ArcFaceEmbedder,
    MeanFieldContrastiveEmbedder,
    NPairsEmbedder,
    TripletEmbedder,
    base,
)
from sklearn_dml.backbones import ResidualMLP
from sklearn_dml.base import (
    _anchor_validation_groups,
    _class_subsample,
    _closed_split,
)
from sklearn_dml.persistence import load, save

KW = dict(n_components=4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)


@pytest.fixture(scope="module")
def six_classes():
    rng = np.random.RandomState(0)
    return rng.randn(120, 5), np.repeat(np.arange(6), 20)


@pytest.fixture
def fits(monkeypatch):
    """The ``(anchor_weight, classes)`` of every ``TripletEmbedder`` fit, in order."""
    recorded = []
    original_fit = TripletEmbedder._fit

    def recording_fit(self, X_fit, y_fit):
        recorded.append((self.anchor_weight, np.unique(y_fit).tolist()))
        return original_fit(self, X_fit, y_fit)

    monkeypatch.setattr(TripletEmbedder, "_fit", recording_fit)
    return recorded


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
        (NPairsEmbedder, {"anchor_weight": None}, 3.0),  # its own, lighter weight
        (MeanFieldContrastiveEmbedder, {"anchor_weight": None}, 3.0),
    ],
)
def test_the_weight_reaches_the_backbone(cls, params, expected, six_classes):
    est = cls(**KW, **params).fit(*six_classes)
    assert est.anchor_weight_ == expected
    assert est.backbone_.anchor_weight == expected
    assert est.anchor_selection_ is None


def test_auto_trains_both_candidates_on_half_the_classes_and_keeps_the_better(
    ten_classes, fits, monkeypatch
):
    X, y = ten_classes

    def score_by_weight(self, X_score, y_score):
        # Unanchored candidates score higher: "auto" must pick 0.
        return 0.9 if self.anchor_weight == 0 else 0.5

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


def test_the_free_candidate_and_its_refit_start_from_random_weights(
    ten_classes, monkeypatch, tmp_path
):
    built = []
    original_build = TripletEmbedder._build_backbone

    def recording_build(self, n_features, X=None):
        net = original_build(self, n_features, X)
        built.append((net.anchor_weight, net.init))
        return net

    monkeypatch.setattr(TripletEmbedder, "_build_backbone", recording_build)
    monkeypatch.setattr(
        TripletEmbedder,
        "score",
        lambda self, X, y: 0.9 if self.anchor_weight == 0 else 0.5,
    )
    X, y = ten_classes
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    # The unanchored candidates start from random weights, the anchored ones
    # from PCA; the refit on all the data starts where the winner did.
    assert sorted(built[:4]) == [(0.0, "random")] * 2 + [(10.0, "pca")] * 2
    assert built[4:] == [(0.0, "random")]
    assert est.backbone_init_ == "random" and est.backbone_.init == "random"
    saved = tmp_path / "free.sdml"
    save(est, saved)
    loaded = load(saved)
    assert loaded.backbone_init_ == "random"
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    # A number (0 included) keeps the PCA start, and so does a choice of
    # the method's weight.
    built.clear()
    assert TripletEmbedder(anchor_weight=0, **KW).fit(X, y).backbone_init_ == "pca"
    assert built == [(0.0, "pca")]
    monkeypatch.setattr(TripletEmbedder, "score", lambda self, X, y: 0.5)
    assert TripletEmbedder(anchor_weight="auto", **KW).fit(X, y).backbone_init_ == "pca"


def test_auto_prefers_the_method_weight_on_a_tie(ten_classes, monkeypatch):
    monkeypatch.setattr(TripletEmbedder, "score", lambda self, X, y: 0.7)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(*ten_classes)
    assert est.anchor_weight_ == 10.0


def test_auto_with_few_classes_holds_out_groups_that_cover_every_class(
    six_classes, fits, monkeypatch
):
    # Six classes are too few for halves: three pairs are held out in turn,
    # each candidate trained on the other four classes.
    X, y = six_classes
    held_scores = {0.0: [0.9, 0.7, 0.4], 10.0: [0.5, 0.5, 0.5]}

    def score_by_weight(self, X_score, y_score):
        if set(np.unique(y_score)) <= set(self.classes_):
            return 1.0  # a blend's score on the candidate's training samples
        assert set(np.unique(y_score)).isdisjoint(self.classes_)
        # the group: the candidate's training classes, in the order of the
        # free candidates' fits (the first three after the estimator's own)
        group = [c for _, c in fits[1:4]].index(self.classes_.tolist())
        return held_scores[self.anchor_weight][group]

    monkeypatch.setattr(TripletEmbedder, "score", score_by_weight)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    candidates = fits[1:]
    assert sorted(w for w, _ in candidates) == [0.0] * 3 + [10.0] * 3
    held = [set(range(6)) - set(c) for _, c in candidates]
    assert all(len(h) == 2 for h in held)
    assert set().union(*held) == set(range(6))
    # No anchoring has the better mean (2/3 against 0.5) but loses the third
    # group: with few classes the start is kept unless every group prefers
    # to learn away from it.
    assert est.anchor_selection_ == pytest.approx({0.0: 2 / 3, 10.0: 0.5})
    assert est.anchor_weight_ == 10.0
    held_scores[0.0][2] = 0.6
    fits.clear()
    assert TripletEmbedder(anchor_weight="auto", **KW).fit(X, y).anchor_weight_ == 0


def test_with_few_classes_the_first_group_preferring_the_start_decides(
    six_classes, fits, monkeypatch
):
    # The free network must win on every group: once one prefers the
    # anchored candidate, the free network of the other groups is not fitted.
    X, y = six_classes
    free_scores = iter([0.4, 0.9, 0.9])

    def score(self, X_score, y_score):
        if set(np.unique(y_score)) <= set(self.classes_):
            return 1.0
        return next(free_scores) if self.anchor_weight == 0 else 0.5

    monkeypatch.setattr(TripletEmbedder, "score", score)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    assert [w for w, _ in fits[1:]] == [10.0] * 3 + [0.0]  # one free fit
    assert est.anchor_weight_ == 10.0
    assert est.anchor_selection_ == {0.0: 0.4, 10.0: 0.5}


@pytest.mark.parametrize("n_classes", range(5, 13))
def test_the_validation_groups_hold_out_every_class_and_leave_enough_to_train(
    n_classes,
):
    classes = np.arange(n_classes) * 3  # labels need not be 0..n-1
    groups = _anchor_validation_groups(classes, seed=n_classes)
    held = [set(g.tolist()) for g in groups]
    assert set().union(*held) == set(classes.tolist())
    assert all(len(h) == len(g) for h, g in zip(held, groups))  # no repeats
    if n_classes >= 10:
        assert len(groups) == 2 and held[0].isdisjoint(held[1])
    else:
        assert len(groups) == 3
    for h in held:
        assert len(h) >= 2 and n_classes - len(h) >= 3


def test_auto_keeps_the_method_weight_with_four_classes_or_a_user_backbone(
    six_classes, monkeypatch
):
    monkeypatch.setattr(
        TripletEmbedder,
        "score",
        lambda self, X, y: 0.9 if self.anchor_weight == 0 else 0.5,
    )
    X, y = six_classes
    few = TripletEmbedder(anchor_weight="auto", **KW).fit(X[y < 4], y[y < 4])
    assert few.anchor_weight_ == 10.0 and few.anchor_selection_ is None
    chosen = TripletEmbedder(anchor_weight="auto", **KW).fit(X[y < 5], y[y < 5])
    assert chosen.anchor_weight_ == 0.0
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


def test_the_class_subsample_keeps_every_class_in_proportion():
    y = np.repeat(np.arange(6), [10, 20, 40, 80, 3, 2])
    held = np.isin(y, [1, 2, 3, 4, 5])
    rows = np.flatnonzero(held)
    assert np.array_equal(_class_subsample(y, held, 500, seed=0), rows)  # small
    sub = _class_subsample(y, held, 29, seed=0)
    assert set(sub.tolist()) <= set(rows.tolist()) and len(set(sub.tolist())) == len(
        sub
    )
    counts = {c: int((y[sub] == c).sum()) for c in range(1, 6)}
    # a fifth of each class, and never fewer than two
    assert counts == {1: 4, 2: 8, 3: 16, 4: 2, 5: 2}
    assert not np.array_equal(sub, _class_subsample(y, held, 29, seed=1))


def test_the_closed_split_leaves_out_a_fifth_of_each_class_and_keeps_two(
    monkeypatch,
):
    y = np.repeat(np.arange(5), [20, 10, 5, 3, 1])
    rows = np.flatnonzero(y != 0)[::-1]  # any order; class 0 not among them
    train, closed = _closed_split(y, rows, seed=0)
    assert np.intersect1d(train, closed).size == 0
    assert np.array_equal(np.union1d(train, closed), np.sort(rows))
    left_out = {c: int((y[closed] == c).sum()) for c in range(5)}
    # a fifth (at least two, while two stay to train on); none of a class
    # with fewer than four samples
    assert left_out == {0: 0, 1: 2, 2: 2, 3: 0, 4: 0}
    assert not np.array_equal(closed, _closed_split(y, rows, seed=1)[1])
    monkeypatch.setattr(base, "AUTO_CLOSED_SCORE_MAX_SAMPLES", 2)
    assert len(_closed_split(y, rows, seed=0)[1]) == 4  # at least two per class


def test_auto_scores_both_candidates_on_the_same_bounded_subsample(
    ten_classes, monkeypatch
):
    X, y = ten_classes  # 100 held-out samples in each half
    monkeypatch.setattr(base, "AUTO_SCORE_MAX_SAMPLES", 40)
    scored = []
    original = TripletEmbedder.score

    def recording_score(self, X_held, y_held):
        if set(np.unique(y_held)).isdisjoint(self.classes_):  # held-out classes
            scored.append((self.anchor_weight, X_held.copy()))
        return original(self, X_held, y_held)

    monkeypatch.setattr(TripletEmbedder, "score", recording_score)
    TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    # two halves: the free candidate once each, the anchored one at each share
    n_shares = len(base.AUTO_START_SHARES)
    assert len(scored) == 2 * (1 + n_shares)
    assert all(len(rows) == 40 for _, rows in scored)  # 5 classes x 8
    by_weight = {}
    for weight, rows in scored:
        by_weight.setdefault(weight, []).append(rows)
    unanchored, anchored = by_weight[0.0], by_weight[10.0]
    assert len(anchored) == 2 * n_shares
    assert not np.array_equal(unanchored[0], unanchored[1])
    for rows in unanchored:  # every share on each half's samples
        assert sum(np.array_equal(blend, rows) for blend in anchored) == n_shares


def test_auto_trains_both_candidates_on_the_same_bounded_subsample(
    ten_classes, monkeypatch
):
    X, y = ten_classes  # 100 training samples in each half
    monkeypatch.setattr(base, "AUTO_TRAIN_MAX_SAMPLES", 60)
    trained = []
    original = TripletEmbedder._fit

    def recording_fit(self, X_fit, y_fit):
        trained.append((self.anchor_weight, np.asarray(X_fit).copy(), y_fit.copy()))
        return original(self, X_fit, y_fit)

    monkeypatch.setattr(TripletEmbedder, "_fit", recording_fit)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    candidates, final = trained[1:], trained[0]
    assert len(final[1]) == 200  # the real fit sees all the data
    assert len(candidates) == 4
    for _, X_fit, y_fit in candidates:
        # five training classes, 12 of each of their 20 samples, of which 2
        # are left out to score the blends on the training classes
        assert len(np.unique(y_fit)) == 5 and len(y_fit) == 50
        assert all(np.sum(y_fit == c) == 10 for c in np.unique(y_fit))
        assert len(np.unique(X_fit, axis=0)) == 50
        held = np.setdiff1d(np.arange(10), np.unique(y_fit))
        rows_of = {tuple(row) for row in X[np.isin(y, held)]}
        assert not rows_of & {tuple(row) for row in X_fit}
    by_weight = {}
    for weight, X_fit, _ in candidates:
        by_weight.setdefault(weight, []).append(X_fit)
    assert all(np.array_equal(a, b) for a, b in zip(by_weight[0.0], by_weight[10.0]))
    assert est.anchor_selection_ is not None


def _score_by_share(monkeypatch, held_out, free_score=0.4, closed=None):
    """Scores by candidate and blend: ``held_out`` and ``closed`` map a share
    to the anchored candidate's score on held-out classes and on its own
    training samples (1.0 at every share by default)."""
    original_blended = TripletEmbedder._blended

    def tagged_blended(self, share):
        other = original_blended(self, share)
        other._share_scored = share
        return other

    def score(self, X_score, y_score):
        share = getattr(self, "_share_scored", 0.0)
        if set(np.unique(y_score)) <= set(self.classes_):
            return 1.0 if closed is None else closed[share]
        if self.anchor_weight == 0:
            return free_score
        return held_out[share]

    monkeypatch.setattr(TripletEmbedder, "_blended", tagged_blended)
    monkeypatch.setattr(TripletEmbedder, "score", score)


_GUARD = base.AUTO_BLEND_MAX_CLOSED_LOSS


def _shares(*values):
    return dict(zip(base.AUTO_START_SHARES, values))


def test_auto_blends_the_start_back_when_held_out_classes_prefer_it(
    ten_classes, monkeypatch
):
    X, y = ten_classes
    scores = _shares(0.5, 0.51, 0.53, 0.52, 0.5, 0.49)
    _score_by_share(monkeypatch, scores)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    assert est.anchor_weight_ == 10.0 and est.start_share_ == 0.2
    assert est.start_share_scores_ == scores
    assert est.anchor_selection_ == {0.0: 0.4, 10.0: 0.5}  # unblended
    # The fitted network is the anchored one, blended: its output before
    # normalisation is 0.8 times the trained network's plus 0.2 times the
    # start's.
    monkeypatch.undo()
    trained = TripletEmbedder(anchor_weight=10.0, **KW).fit(X, y).backbone_
    x = torch.as_tensor(X[:7], dtype=torch.float32)
    with torch.no_grad():
        raw = trained.skip(x) + trained.branch(x)
        start = x @ trained._start_weight.T + trained._start_bias
        expected = torch.nn.functional.normalize(0.8 * raw + 0.2 * start, dim=1)
    np.testing.assert_allclose(est.transform(X[:7]), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "held_out, closed, free_score, weight, share",
    [
        # a gain below 0.005
        (_shares(0.5, 0.502, 0.504, 0.503, 0.5, 0.5), None, 0.4, 10.0, 0.0),
        # a tie: the smaller share
        (_shares(0.5, 0.52, 0.52, 0.51, 0.5, 0.5), None, 0.4, 10.0, 0.1),
        # the best blends lose more than the guard on the training classes:
        # the best of those that lose less
        (
            _shares(0.5, 0.51, 0.52, 0.53, 0.56, 0.58),
            _shares(*(0.9 - _GUARD * f for f in (0, 0, 0.5, 0.9, 1.1, 4))),
            0.4,
            10.0,
            0.3,
        ),
        (_shares(0.5, 0.51, 0.52, 0.53, 0.55, 0.56), None, 0.4, 10.0, 0.5),
        # the free network meets the best blend, not the unblended network
        (_shares(0.5, 0.51, 0.52, 0.53, 0.55, 0.56), None, 0.555, 10.0, 0.5),
        (_shares(0.5, 0.51, 0.52, 0.53, 0.53, 0.53), None, 0.555, 0.0, 0.0),
    ],
)
def test_the_blend_must_gain_enough_keep_the_training_classes_and_meet_the_free_network(
    ten_classes, monkeypatch, held_out, closed, free_score, weight, share
):
    _score_by_share(monkeypatch, held_out, free_score, closed)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(*ten_classes)
    assert (est.anchor_weight_, est.start_share_) == (weight, share)
    if weight == 0:
        assert est.backbone_init_ == "random"


def test_blends_that_lose_on_the_training_classes_are_not_scored_on_held_out_ones(
    ten_classes, monkeypatch
):
    # Shares 0.4 and 0.5 lose more than the guard on the left-out samples of
    # the training classes: never chosen, so never scored on held-out classes.
    held_out = _shares(0.5, 0.51, 0.52, 0.53, 0.56, 0.58)
    closed = _shares(*(0.9 - _GUARD * f for f in (0, 0, 0.5, 0.9, 1.1, 4)))
    _score_by_share(monkeypatch, held_out, 0.4, closed)
    scored = []
    score = TripletEmbedder.score

    def recording_score(self, X_score, y_score):
        if not set(np.unique(y_score)) <= set(self.classes_):
            scored.append(getattr(self, "_share_scored", 0.0))
        return score(self, X_score, y_score)

    monkeypatch.setattr(TripletEmbedder, "score", recording_score)
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(*ten_classes)
    assert est.start_share_ == 0.3
    assert sorted(set(scored)) == [0.0, 0.1, 0.2, 0.3]
    assert np.isnan([est.start_share_scores_[s] for s in (0.4, 0.5)]).all()
    assert est.start_share_scores_[0.3] == 0.53


def test_no_blend_when_no_class_can_spare_samples_to_check_it(monkeypatch):
    # Three samples per class: none are left out of the candidates' training
    # to score the blends on the training classes, so none is applied even
    # where the held-out classes prefer it.
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 5), np.repeat(np.arange(10), 3)
    _score_by_share(monkeypatch, _shares(0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
    est = TripletEmbedder(anchor_weight="auto", **KW).fit(X, y)
    assert est.anchor_weight_ == 10.0 and est.start_share_ == 0.0
    # the blends are not even scored on the held-out classes
    assert np.isnan(
        [est.start_share_scores_[s] for s in base.AUTO_START_SHARES[1:]]
    ).all()


def test_no_blend_without_a_choice(six_classes):
    X, y = six_classes
    for params in ({"anchor_weight": None}, {"anchor_weight": 0}):
        est = TripletEmbedder(**KW, **params).fit(X, y)
        assert est.start_share_ == 0.0 and est.start_share_scores_ is None
    few = TripletEmbedder(anchor_weight="auto", **KW).fit(X[y < 4], y[y < 4])
    assert few.start_share_ == 0.0 and few.start_share_scores_ is None
