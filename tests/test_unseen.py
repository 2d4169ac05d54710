"""Unseen-class retrieval: the defaults against raw features on held-out classes."""

import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.preprocessing import StandardScaler

from sklearn_dml import (
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sklearn_dml.backbones._mlp import ResidualMLP
from sklearn_dml.datasets import split_classes
from sklearn_dml.metrics import map_at_r_score

# Epochs of the guard test (the default is 50; fewer keep the test cheap).

# Epochs of the guard test (the default is 50; fewer keep the test cheap).
MAX_ITER = 20


def _unseen_digits(seen=(0, 1, 2, 3, 4)):
    """Standardised digits of the ``seen`` classes (training) and of the others
    (unseen), and the unseen MAP@R of the raw standardised features."""
    X, y = load_digits(return_X_y=True)
    X_seen, y_seen, X_new, y_new = split_classes(X, y, seen_classes=list(seen))
    scaler = StandardScaler().fit(X_seen)
    X_seen, X_new = scaler.transform(X_seen), scaler.transform(X_new)
    return X_seen, y_seen, X_new, y_new, map_at_r_score(X_new, y_new)


def test_default_embedder_does_not_lose_to_raw_features_on_unseen_digits():
    # The guard of the default (user_guide/unseen_classes.rst): trained on
    # digits 0-4, the default embedder retrieves digits 5-9 at least as well
    # as the raw standardised features; without the anchoring it does not.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits()
    params = dict(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb = TripletEmbedder(**params).fit(X_seen, y_seen)
    assert emb.backbone_.anchor_weight > 0
    assert map_at_r_score(emb.transform(X_new), y_new) >= raw
    loose = ResidualMLP(64, 64, anchor_weight=0.0, normalize_embeddings=False)
    unanchored = TripletEmbedder(backbone=loose, **params).fit(X_seen, y_seen)
    assert map_at_r_score(unanchored.transform(X_new), y_new) < raw


@pytest.mark.parametrize(
    "embedder, previous",
    [
        # The margins that fit the PCA start (0.5 / 1.2) against the previous
        # ones (0.2652 / 0.513, where no negative pair starts within the margin).
        (ContrastiveEmbedder, {"pos_margin": 0.2652, "neg_margin": 0.513}),
        (SupConEmbedder, None),
        (MultiSimilarityEmbedder, None),
    ],
)
def test_other_defaults_do_not_lose_to_raw_features_on_unseen_digits(
    embedder, previous
):
    # user_guide/unseen_classes.rst: these defaults retrieve unseen digits at
    # least as well as the raw features; the previous contrastive margins
    # lose to them.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits()
    params = dict(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb = embedder(**params).fit(X_seen, y_seen)
    assert map_at_r_score(emb.transform(X_new), y_new) >= raw
    if previous is not None:
        old = embedder(**previous, **params).fit(X_seen, y_seen)
        assert map_at_r_score(old.transform(X_new), y_new) < raw


@pytest.mark.parametrize("embedder", [TripletEmbedder, ProxyAnchorEmbedder])
def test_defaults_beat_raw_features_when_trained_on_the_other_digits(embedder):
    # user_guide/unseen_classes.rst: trained on digits 5-9, the triplet and
    # proxy-anchor defaults retrieve digits 0-4 better than the raw features
    # (on the 0-4 / 5-9 split they only tie); scikit-learn's NCA does not.
    X_seen, y_seen, X_new, y_new, raw = _unseen_digits(seen=(5, 6, 7, 8, 9))
    emb = embedder(max_iter=MAX_ITER, random_state=0, device="cpu")
    emb.fit(X_seen, y_seen)
    assert map_at_r_score(emb.transform(X_new), y_new) > raw + 0.01
    nca = NeighborhoodComponentsAnalysis(max_iter=MAX_ITER, random_state=0)
    nca.fit(X_seen, y_seen)
    assert map_at_r_score(nca.transform(X_new), y_new) < raw + 0.01
