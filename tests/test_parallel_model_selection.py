"""Model selection over embedders in parallel: joblib's loky and dask backends.

Only library callables cross to the workers (scikit-learn's default scoring,
``torch.get_num_threads``, ``DeepMetricEmbedder.transform``), so nothing
depends on the test module being importable there. One test starts the loky
workers (about 5 s of CPU per worker to import torch): keep the parallel
search checks together in it. The serial references run on one
torch thread, as the loky workers do on two cores, so the results agree to
float rounding.
"""

import os

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed, parallel_config
from numpy.testing import assert_allclose
from sklearn.model_selection import GridSearchCV

from sklearn_dml import DeepMetricEmbedder
from sklearn_dml.losses import TripletMarginLoss
from sklearn_dml.model_selection import ClassDisjointKFold

# A component's parameter: the loss is cloned with the estimator.
GRID = {"loss__margin": [0.05, 0.3]}


@pytest.fixture(scope="module")
def five_classes(tiny):
    X, y = tiny
    keep = y < 5
    return X[keep], y[keep]


def _search(n_jobs):
    return GridSearchCV(
        DeepMetricEmbedder(
            loss=TripletMarginLoss(),
            n_components=4,
            hidden_layer_sizes=(16,),
            max_iter=2,
            random_state=0,
        ),
        GRID,
        cv=ClassDisjointKFold(n_splits=2),
        n_jobs=n_jobs,
    )


def _serial(X, y):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _search(None).fit(X, y)
    finally:
        torch.set_num_threads(threads)


def test_grid_search_on_loky_workers_matches_the_serial_search(five_classes):
    X, y = five_classes
    with parallel_config(backend="loky"):
        parallel = _search(2).fit(X, y)
        # joblib gives each of the 2 workers its share of the cores: torch
        # does not oversubscribe them.
        threads = Parallel(n_jobs=2)(delayed(torch.get_num_threads)() for _ in range(2))
        # A fitted embedder pickles to the workers and embeds there as here.
        fitted = parallel.best_estimator_
        remote = Parallel(n_jobs=2)(
            delayed(DeepMetricEmbedder.transform)(fitted, X[i::2]) for i in range(2)
        )
    assert max(threads) <= max(1, (os.cpu_count() or 1) // 2)
    serial = _serial(X, y)
    assert_allclose(
        parallel.cv_results_["mean_test_score"],
        serial.cv_results_["mean_test_score"],
        rtol=1e-5,
    )
    assert parallel.best_params_ == serial.best_params_
    for i in range(2):
        assert_allclose(remote[i], fitted.transform(X[i::2]), rtol=1e-5, atol=1e-6)
    assert np.isfinite(parallel.cv_results_["mean_test_score"]).all()
    # The estimator's loss object was cloned, never trained itself.
    assert fitted.loss_ is not fitted.loss


def test_grid_search_on_dask_workers_matches_the_serial_search(five_classes):
    distributed = pytest.importorskip("dask.distributed")
    X, y = five_classes
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        with parallel_config(backend="dask"):
            parallel = _search(-1).fit(X, y)
    serial = _serial(X, y)
    assert_allclose(
        parallel.cv_results_["mean_test_score"],
        serial.cv_results_["mean_test_score"],
        rtol=1e-5,
    )
