"""Parameters of the estimators: declared once, explicit everywhere, validated at fit."""

import ast
import inspect
import math
import pydoc
from numbers import Integral
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

import sklearn_dml
from sklearn_dml._param_validation import Interval, InvalidParameterError, TupleOf
from sklearn_dml.base import SHARED_PARAMETERS, BaseDeepMetricLearner

EMBEDDERS = [
    getattr(sklearn_dml, name)
    for name in sklearn_dml.__all__
    if isinstance(getattr(sklearn_dml, name), type)
    and issubclass(getattr(sklearn_dml, name), BaseDeepMetricLearner)
    and getattr(sklearn_dml, name) is not BaseDeepMetricLearner
]
ids = [cls.__name__ for cls in EMBEDDERS]


@pytest.mark.parametrize("cls", EMBEDDERS, ids=ids)
def test_signature_is_own_parameters_then_every_shared_one(cls):
    params = list(inspect.signature(cls).parameters.values())
    own = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    shared = [p for p in params if p.kind is p.KEYWORD_ONLY]
    assert [p.name for p in own] == list(cls._method_parameters)
    assert [p.name for p in shared] == list(SHARED_PARAMETERS)
    for p in shared:
        assert p.default == SHARED_PARAMETERS[p.name].default, p.name
    assert len(params) == len(own) + len(shared)  # no *args, no **kwargs
    est = cls()
    assert list(est.get_params(deep=False)) == sorted(p.name for p in params)
    assert clone(est).get_params(deep=False) == est.get_params(deep=False)


@pytest.mark.parametrize("cls", EMBEDDERS, ids=ids)
def test_every_shared_parameter_is_documented_once_with_its_default(cls):
    doc = inspect.getdoc(cls)
    for name, param in SHARED_PARAMETERS.items():
        heads = [line for line in doc.splitlines() if line.startswith(f"{name} : ")]
        assert len(heads) == 1, name
        assert heads[0].endswith(f"default={param.default!r}".replace("'", '"')), heads
    for name in cls._method_parameters:
        assert any(line.startswith(f"{name} : ") for line in doc.splitlines()), name


def test_help_and_positional_calls_see_the_real_signature():
    cls = sklearn_dml.TripletEmbedder
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert "margin=0.0961" in text and "random_state=None" in text
    est = cls(0.2, "hard", n_components=8)
    assert (est.margin, est.mining, est.n_components) == (0.2, "hard", 8)
    with pytest.raises(TypeError):
        cls(0.2, "hard", 8)  # shared parameters are keyword-only
    with pytest.raises(TypeError):
        cls(nonsense=1)


def test_no_embedder_writes_its_own_init():
    sources = (Path(sklearn_dml.__file__).parent / "embedders").glob("*.py")
    written = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            # The embedders on the shared base get a generated __init__;
            # TLDREmbedder (label-free) is a standalone estimator.
            cls = (
                getattr(sklearn_dml, node.name, None)
                if isinstance(node, ast.ClassDef)
                else None
            )
            if cls is not None and not issubclass(
                cls, sklearn_dml.BaseDeepMetricLearner
            ):
                continue
            if isinstance(node, ast.ClassDef) and node.name.endswith("Embedder"):
                if any(
                    isinstance(f, ast.FunctionDef) and f.name == "__init__"
                    for f in node.body
                ):
                    written.append(node.name)
    assert written == []


def test_a_subclass_must_constrain_each_parameter_it_declares():
    with pytest.raises(TypeError, match="declares no constraints for"):

        class Unchecked(sklearn_dml.TripletEmbedder):
            _method_parameters = {"margin": 0.1, "mining": "all", "extra": 1}

    with pytest.raises(TypeError, match="redeclares shared parameters"):

        class Clash(sklearn_dml.TripletEmbedder):
            _method_parameters = {"max_iter": 3}
            _parameter_constraints = {
                "max_iter": [Interval(Integral, 1, None, closed="left")]
            }


def _numeric_parameters(cls):
    """Parameters whose every constraint is an Interval (or None)."""
    out = []
    for name, constraints in cls._parameter_constraints.items():
        kinds = [c for c in constraints if c is not None]
        if kinds and all(isinstance(c, Interval) for c in kinds):
            out.append(name)
    return out


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    return rng.rand(40, 5), np.repeat(np.arange(4), 10)


@pytest.mark.parametrize("cls", EMBEDDERS, ids=ids)
def test_nan_inf_and_bool_are_rejected_naming_the_parameter(cls, data):
    names = _numeric_parameters(cls)
    assert len(names) >= len(_numeric_parameters(BaseDeepMetricLearner))
    for name in names:
        for bad in (math.nan, math.inf, True):
            est = cls(**{name: bad})
            with pytest.raises(
                InvalidParameterError, match=f"'{name}' parameter of {cls.__name__}"
            ):
                est.fit(*data)
            fitted = [
                k for k in vars(est) if k.endswith("_") and not k.startswith("__")
            ]
            assert fitted == [], (name, bad)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"optimizer": "ADAM"}, "'optimizer' parameter"),
        ({"validation_split": "random"}, "'validation_split' parameter"),
        ({"device": "CPU"}, "'device' parameter"),
        ({"device": "tpu"}, "'device' parameter"),
        ({"device": 3}, "'device' parameter"),
        ({"normalize_embeddings": "no"}, "'normalize_embeddings' parameter"),
        ({"warm_start": "no"}, "'warm_start' parameter"),
        ({"early_stopping": 1}, "'early_stopping' parameter"),
        ({"n_components": True}, "'n_components' parameter"),
        ({"hidden_layer_sizes": (16, 0)}, "'hidden_layer_sizes' parameter"),
        ({"hidden_layer_sizes": 16}, "'hidden_layer_sizes' parameter"),
        ({"random_state": -1}, "'random_state' parameter"),
        ({"mixup": "everywhere"}, "'mixup' parameter"),
        ({"anchor_weight": math.nan}, "'anchor_weight' parameter"),
        ({"anchor_weight": -1.0}, "'anchor_weight' parameter"),
        ({"anchor_weight": "AUTO"}, "'anchor_weight' parameter"),
        ({"anchor_weight": True}, "'anchor_weight' parameter"),
    ],
)
def test_shared_parameters_are_checked_at_fit(params, match, data):
    est = sklearn_dml.TripletEmbedder(max_iter=1, **params)
    with pytest.raises(InvalidParameterError, match=match):
        est.fit(*data)


def test_a_failed_refit_leaves_a_fitted_estimator_usable(data):
    X, y = data
    est = sklearn_dml.TripletEmbedder(n_components=4, max_iter=1, random_state=0)
    Z = est.fit(X, y).transform(X)
    est.set_params(margin=math.nan)
    with pytest.raises(InvalidParameterError):
        est.fit(X[:, :3], y)
    np.testing.assert_array_equal(est.transform(X), Z)
    assert est.n_features_in_ == 5


def test_tuple_constraint_describes_itself():
    c = TupleOf(Interval(Integral, 1, None, closed="left"))
    assert c.is_satisfied_by((1, 2)) and c.is_satisfied_by(())
    assert not c.is_satisfied_by((1, 0)) and not c.is_satisfied_by((1, True))
    assert "tuple" in str(c)
