"""Random shapes, dtypes, labels and hyper-parameters against three embedders.

Every call either succeeds with finite output or raises a ValueError or
TypeError whose message names the problem; a fitted estimator is unchanged
by any call that fails.
"""

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sklearn_dml import ProxyAnchorEmbedder, SupConEmbedder, TripletEmbedder

EMBEDDERS = [TripletEmbedder, ProxyAnchorEmbedder, SupConEmbedder]
SMALL = dict(n_components=4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
REFERENCE_X = np.random.RandomState(0).rand(24, 5)
REFERENCE_Y = np.repeat(np.arange(4), 6)

ODD_VALUES = [math.nan, math.inf, -math.inf, -1, 0, True, "x", None, 2.5, 1e30]
PARAMETERS = {
    "n_components": [1, 3] + ODD_VALUES,
    "hidden_layer_sizes": [(), (4,), (0,), 4, "x"],
    "max_iter": [1, 2] + ODD_VALUES,
    "batch_size": [2, 7, 64] + ODD_VALUES,
    "samples_per_class": [1, 3] + ODD_VALUES,
    "learning_rate_init": [1e-3, 10.0] + ODD_VALUES,
    "weight_decay": [0.0, 0.1] + ODD_VALUES,
    "early_stopping": [False, True, 1, "yes"],
    "validation_fraction": [0.3, 0.5] + ODD_VALUES,
    "validation_split": ["stratified", "class_disjoint", "x"],
    "normalize_embeddings": [True, False, "no"],
    "optimizer": ["adam", "sgd", "adamw", "lbfgs"],
    "device": ["cpu", "auto", "CPU", 3],
    "energy_confusion": [0.0, 0.5] + ODD_VALUES,
}
OWN = {
    TripletEmbedder: {"margin": [0.1] + ODD_VALUES, "mining": ["all", "hard", "x"]},
    ProxyAnchorEmbedder: {
        "margin": [0.1] + ODD_VALUES,
        "alpha": [16] + ODD_VALUES,
        "loss_learning_rate": [None, 0.01] + ODD_VALUES,
    },
    SupConEmbedder: {"temperature": [0.1] + ODD_VALUES},
}
# Words of a useful error: the parameter, or what is wrong with the data.
DATA_WORDS = ("feature", "sample", "class", "label", "X", "y", "float32", "finite")


@st.composite
def arrays(draw, n_features=None):
    # Mostly usable sizes, sometimes the degenerate ones.
    # Usable sizes first (hypothesis favours and shrinks towards the first
    # values), the degenerate ones last.
    n = draw(st.sampled_from([20, 12, 30, 2, 1, 0]))
    d = n_features if n_features is not None else draw(st.sampled_from([3, 6, 1, 0]))
    kind = draw(
        st.sampled_from(["float64"] * 5 + ["float32", "int64", "nan", "huge", "str"])
    )
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    X = rng.randn(n, d)
    if kind == "nan" and X.size:
        X[rng.randint(n), rng.randint(d)] = np.nan
    elif kind == "huge":
        X = X * 1e39
    elif kind == "str":
        X = X.astype(str)
    return X.astype(kind) if kind in ("float32", "int64") else X


@st.composite
def labels(draw, n):
    kind = draw(
        st.sampled_from(["int"] * 4 + ["str", "float", "one", "mixed", "continuous"])
    )
    k = draw(st.integers(1, 6))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    y = rng.randint(0, k, size=n)
    if kind == "str":
        return np.array([f"c{v}" for v in y])
    if kind == "float":
        return y.astype(float)
    if kind == "one":
        return np.zeros(n, dtype=int)
    if kind == "mixed":
        return np.array(
            [str(v) if i % 2 else int(v) for i, v in enumerate(y)], dtype=object
        )
    if kind == "continuous":
        return rng.rand(n)
    return y


def _n_valid(values):
    """How many leading values of a list are valid on their own."""
    return (
        next((i for i, v in enumerate(values) if v is ODD_VALUES[0]), len(values)) or 1
    )


def _names_the_problem(exc, params):
    message = str(exc)
    return bool(message) and (
        any(name in message for name in params) or any(w in message for w in DATA_WORDS)
    )


def _check_outcome(call, params):
    """Run ``call``; a failure must be a ValueError/TypeError naming the problem."""
    try:
        return call(), None
    except (ValueError, TypeError) as exc:
        assert _names_the_problem(exc, params), f"{type(exc).__name__}: {exc}"
        return None, exc


@pytest.fixture(scope="module")
def fitted():
    return {cls: cls(**SMALL).fit(REFERENCE_X, REFERENCE_Y) for cls in EMBEDDERS}


@pytest.mark.parametrize("cls", EMBEDDERS, ids=lambda c: c.__name__)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fit_succeeds_with_finite_output_or_fails_cleanly(cls, fitted, data):
    space = {**PARAMETERS, **OWN[cls]}
    chosen = data.draw(
        st.lists(st.sampled_from(sorted(space)), max_size=3, unique=True), label="names"
    )
    # Half the time only values that are valid on their own (listed first).
    valid = data.draw(st.booleans(), label="valid values")
    params = {
        name: data.draw(
            st.sampled_from(
                space[name][: _n_valid(space[name])] if valid else space[name]
            ),
            label=name,
        )
        for name in chosen
    }
    X = data.draw(arrays(), label="X")
    y = data.draw(labels(len(X)), label="y")
    est = copy.deepcopy(fitted[cls])
    before = est.transform(REFERENCE_X)
    torch.set_num_threads(1)
    try:
        est.set_params(**params)
    except (ValueError, TypeError) as exc:  # only for unknown names: none here
        pytest.fail(f"set_params raised {exc}")
    result, error = _check_outcome(lambda: est.fit(X, y), [*params, "warm_start"])
    event("fit failed" if error is not None else "fit succeeded")
    if error is None:
        Z = est.transform(X)
        assert Z.shape == (len(X), est._n_features_out) and np.isfinite(Z).all()
    else:
        # The failed call left the fitted model as it was (the parameters are
        # the user's: put the fitted ones back to embed as before).
        est.set_params(**{k: fitted[cls].get_params()[k] for k in params})
        np.testing.assert_array_equal(est.transform(REFERENCE_X), before)
        assert est.n_features_in_ == REFERENCE_X.shape[1]


@pytest.mark.parametrize("cls", EMBEDDERS, ids=lambda c: c.__name__)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_transform_and_partial_fit_on_random_input(cls, fitted, data):
    est = copy.deepcopy(fitted[cls])
    before = est.transform(REFERENCE_X)
    n_features = data.draw(st.sampled_from([None, REFERENCE_X.shape[1]]), label="d")
    X = data.draw(arrays(n_features), label="X")
    Z, error = _check_outcome(lambda: est.transform(X), [])
    if error is None:
        assert Z.shape == (len(X), 4) and np.isfinite(Z).all()
    y = data.draw(labels(len(X)), label="y")
    _, error = _check_outcome(lambda: est.partial_fit(X, y), [])
    if error is not None:
        np.testing.assert_array_equal(est.transform(REFERENCE_X), before)
