"""Fixed-seed fits whose embeddings pin the package's training behaviour.

``tests/test_reference_embeddings.py`` refits each case below and compares
its embeddings with ``tests/data/reference_embeddings.npz``. The file was
recorded before the package was reorganised by concept, so the test proves
that the reorganisation changed no result. A deliberate change of training
behaviour (a new default, a different optimisation step) re-records it:

    python tests/reference_fits.py

Each case fits on the first 300 rows of scikit-learn's digits scaled to
[0, 1], with a small network and two epochs, on one torch thread (results on
the CPU depend on the thread count).
"""

import sys

import numpy as np
import torch
from sklearn.datasets import load_digits

import sklearn_dml as dml
from sklearn_dml.losses import ProxyAnchorLoss

SMALL = dict(n_components=8, hidden_layer_sizes=(32,), max_iter=2, random_state=0)


def cases():
    """Name -> unfitted estimator, each exercising another part of training."""
    return {
        "generic_proxy_anchor": dml.DeepMetricEmbedder(loss=ProxyAnchorLoss(), **SMALL),
        "triplet": dml.TripletEmbedder(**SMALL),
        "triplet_early_stopping": dml.TripletEmbedder(
            early_stopping=True, validation_fraction=0.2, **SMALL
        ),
        "contrastive_procsim": dml.ContrastiveEmbedder(procsim=True, **SMALL),
        "multi_similarity_mixup": dml.MultiSimilarityEmbedder(
            mixup="embedding", **SMALL
        ),
        "proxy_anchor": dml.ProxyAnchorEmbedder(**SMALL),
        "supcon_nested": dml.SupConEmbedder(nested_dims=(2, 4), **SMALL),
        "arcface_energy_confusion": dml.ArcFaceEmbedder(energy_confusion=0.5, **SMALL),
        "soft_triple": dml.SoftTripleEmbedder(**SMALL),
        "tcm": dml.TCMEmbedder(**SMALL),
        "equiangular": dml.EquiangularBasisEmbedder(**SMALL),
        "icnn": dml.ICNNEmbedder(**SMALL),
        "rkd": dml.RKDEmbedder(**SMALL),
        "mutual_learning": dml.MutualLearningEmbedder(**SMALL),
        "hedged": dml.HedgedInstanceEmbedder(**SMALL),
        "nca": dml.NCAEmbedder(**SMALL),
        "linear_sgd": dml.TripletEmbedder(
            n_components=8,
            hidden_layer_sizes=(),
            optimizer="sgd",
            max_iter=2,
            random_state=0,
        ),
    }


def data():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def embeddings(name, estimator):
    """Fit on one torch thread and embed the training rows."""
    X, y = data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return estimator.fit(X, y).transform(X)
    finally:
        torch.set_num_threads(threads)


def record(path):
    out = {name: embeddings(name, est) for name, est in cases().items()}
    np.savez_compressed(path, **out)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "tests/data/reference_embeddings.npz"
    for name, Z in record(target).items():
        print(f"{name:28s} {Z.shape} finite={np.isfinite(Z).all()}")
