"""NMI and AMI of a k-means clustering of the embeddings.

Expected values come from the brute-force references of
``metric_references.py``.
"""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score
from threadpoolctl import threadpool_limits

from sklearn_dml.metrics import (
    ami_score,
    nmi_score,
)

from .metric_references import brute_nmi, random_data


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: KMeans and t-SNE spin badly on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


def test_nmi_and_ami_match_kmeans_and_the_entropy_formula():
    X, y = random_data(seed=8, n=90, d=3, n_classes=3)
    X = X + 3.0 * y[:, None]  # partly separated classes
    clusters = KMeans(n_clusters=3, n_init=4, random_state=1).fit_predict(X)
    assert nmi_score(X, y, n_init=4, random_state=1) == pytest.approx(
        brute_nmi(y, clusters), rel=1e-10
    )
    assert ami_score(X, y, n_init=4, random_state=1) == pytest.approx(
        adjusted_mutual_info_score(y, clusters), rel=1e-10
    )


def test_nmi_ami_perfect_clusters_with_string_labels():
    y = np.repeat(["a", "b", "c", "d"], 6)
    X = np.repeat(np.arange(4) * 50.0, 6)[:, None] + np.tile(np.arange(6), 4)[:, None]
    X = np.hstack([X, -X])
    assert nmi_score(X, y, random_state=0) == pytest.approx(1.0)
    assert ami_score(X, y, random_state=0) == pytest.approx(1.0)


def test_ami_is_near_zero_for_unrelated_labels():
    X, y = random_data(seed=9, n=200, d=2, n_classes=3)
    assert abs(ami_score(X, y, n_init=2, random_state=0)) < 0.05
    assert nmi_score(X, y, n_init=2, random_state=0) < 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": [0, 0, 0, 0]}, "at least 2 classes"),
        ({"n_init": 0}, "n_init must be"),
        ({"average_method": "median"}, "average_method must be"),
        ({"labels": [0, 1]}, "labels has 2 entries"),
    ],
)
def test_clustering_errors(kwargs, message):
    arguments = {"embeddings": np.arange(8.0).reshape(4, 2), "labels": [0, 0, 1, 1]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nmi_score(**arguments)
