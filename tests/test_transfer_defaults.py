"""The default embedders on classes never seen in training, on two small tasks.

One task whose input geometry is poor (latent classes drowned in correlated
high-variance distractor features: the PCA start retrieves almost nothing,
and training from a random start pays), and one whose start is good, with only five
classes (digits, trained on 5-9, retrieving among 0-4: training away from the
start loses). The default ``anchor_weight="auto"`` must learn in the first
and keep the start in the second, choosing by validation in both. The full
measurement, with the tasks where the choice is close, is
``benchmarks/transfer_defaults.py``.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from sklearn_dml import TripletEmbedder
from sklearn_dml.metrics import map_at_r_score

FAST = dict(hidden_layer_sizes=(64,), max_iter=20, random_state=0)


def _distractor_task(seed=0, n_classes=24, per_class=20):
    """8-d latent classes mixed into 12 features, plus 60 features driven by 6
    nuisance factors of larger variance; half of the classes seen."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, 8))
    y = np.repeat(np.arange(n_classes), per_class)
    latent = centres[y] + 0.3 * rng.standard_normal((len(y), 8))
    informative = latent @ rng.standard_normal((8, 12)) / np.sqrt(8)
    nuisance = 3.0 * rng.standard_normal((len(y), 6)) @ rng.standard_normal((6, 60))
    X = np.hstack([informative, nuisance + rng.standard_normal((len(y), 60))])
    seen = y < n_classes // 2
    return X[seen], y[seen], X[~seen], y[~seen]


def _digits_task():
    X, y = load_digits(return_X_y=True)
    seen = y >= 5
    return X[seen][::2], y[seen][::2], X[~seen], y[~seen]


def _unseen_map(estimator, task):
    X_seen, y_seen, X_unseen, y_unseen = task
    pipe = make_pipeline(StandardScaler(), estimator).fit(X_seen, y_seen)
    return map_at_r_score(pipe.transform(X_unseen), y_unseen), pipe[-1]


def _start_map(task, n_components):
    X_seen, y_seen, X_unseen, y_unseen = task
    start = make_pipeline(StandardScaler(), PCA(n_components), Normalizer())
    return map_at_r_score(start.fit(X_seen, y_seen).transform(X_unseen), y_unseen)


@pytest.fixture(scope="module")
def distractors():
    return _distractor_task()


def test_default_learns_away_from_a_poor_start(distractors):
    default, fitted = _unseen_map(TripletEmbedder(n_components=16, **FAST), distractors)
    anchored, _ = _unseen_map(
        TripletEmbedder(n_components=16, anchor_weight=None, **FAST), distractors
    )
    pca_unanchored, _ = _unseen_map(
        TripletEmbedder(n_components=16, anchor_weight=0, **FAST), distractors
    )
    # the validation chose to learn, from a random start
    assert fitted.anchor_weight_ == 0.0 and fitted.backbone_init_ == "random"
    assert default > _start_map(distractors, 16) + 0.15
    assert default > anchored + 0.05
    # The PCA start's leading axes are the distractors': even unanchored,
    # a network trained from there transfers far worse than the free one.
    assert default > pca_unanchored + 0.15


def test_default_keeps_a_good_start_with_few_classes():
    task = _digits_task()
    default, fitted = _unseen_map(TripletEmbedder(n_components=32, **FAST), task)
    unanchored, _ = _unseen_map(
        TripletEmbedder(n_components=32, anchor_weight=0, **FAST), task
    )
    # Five classes: chosen by validation on held-out pairs of them.
    assert fitted.anchor_weight_ == 10.0
    assert fitted.anchor_selection_[10.0] > fitted.anchor_selection_[0.0]
    assert default >= _start_map(task, 32) - 0.02
    assert default > unanchored + 0.05
