"""The Mahalanobis interface, exercised through the covariance metric."""

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_dml.mahalanobis import Covariance

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


@parametrize_with_checks([Covariance()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_covariance_matrix_is_the_inverse_covariance():
    M = Covariance().fit(X_IRIS).get_mahalanobis_matrix()
    np.testing.assert_allclose(
        M, np.linalg.inv(np.cov(X_IRIS, rowvar=False)), rtol=1e-8
    )


def test_pair_distance_is_scipys_mahalanobis_distance():
    cov = Covariance().fit(X_IRIS)
    M = np.linalg.inv(np.cov(X_IRIS, rowvar=False))
    pairs = np.stack([X_IRIS[:5], X_IRIS[50:55]], axis=1)
    expected = [mahalanobis(a, b, M) for a, b in pairs]
    np.testing.assert_allclose(cov.pair_distance(pairs), expected, rtol=1e-8)
    np.testing.assert_allclose(cov.pair_score(pairs), -np.asarray(expected), rtol=1e-8)


def test_get_metric_in_knn_matches_transform_then_euclidean():
    cov = Covariance().fit(X_IRIS)
    knn_metric = KNeighborsClassifier(3, metric=cov.get_metric(), algorithm="brute")
    knn_euclid = KNeighborsClassifier(3)
    pred_metric = knn_metric.fit(X_IRIS, Y_IRIS).predict(X_IRIS[::7])
    pred_euclid = knn_euclid.fit(cov.transform(X_IRIS), Y_IRIS).predict(
        cov.transform(X_IRIS[::7])
    )
    np.testing.assert_array_equal(pred_metric, pred_euclid)


def test_transform_keeps_float32():
    cov = Covariance().fit(X_IRIS)
    assert cov.transform(X_IRIS.astype(np.float32)).dtype == np.float32
    assert cov.transform(X_IRIS).dtype == np.float64


def test_failed_refit_leaves_the_fitted_learner_unchanged():
    cov = Covariance().fit(X_IRIS)
    before = cov.components_.copy()
    with pytest.raises(ValueError, match="NaN"):
        cov.fit(np.full((5, 3), np.nan))
    np.testing.assert_array_equal(cov.components_, before)
    assert cov.n_features_in_ == 4


def test_refit_discards_the_calibrated_threshold():
    cov = Covariance().fit(X_IRIS)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, len(X_IRIS), (2, 200))
    pairs = np.stack([X_IRIS[first], X_IRIS[second]], axis=1)
    same = Y_IRIS[first] == Y_IRIS[second]
    cov.calibrate_threshold(pairs, same)
    assert hasattr(cov, "threshold_")
    cov.fit(X_IRIS)
    assert not hasattr(cov, "threshold_")


def test_lbfgs_runs_scipy_with_one_blas_thread(monkeypatch):
    # SciPy's L-BFGS-B works on a vector of n_components x n_features values:
    # extra BLAS threads only spin between its calls and double the fit's CPU
    # time. The limit must hold while the solver runs, and be lifted after.
    from threadpoolctl import threadpool_info

    from sklearn_dml.mahalanobis import LinearNCA, _solvers

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen = []
    real_minimize = _solvers.minimize

    def recording_minimize(*args, **kwargs):
        seen.append(blas_threads())
        return real_minimize(*args, **kwargs)

    monkeypatch.setattr(_solvers, "minimize", recording_minimize)
    before = blas_threads()
    rng = np.random.RandomState(0)
    LinearNCA(n_components=2, max_iter=3, solver="lbfgs", device="cpu").fit(
        rng.randn(30, 3), np.repeat([0, 1, 2], 10)
    )
    assert seen and all(n == 1 for threads in seen for n in threads)
    assert blas_threads() == before
