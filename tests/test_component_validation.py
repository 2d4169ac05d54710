"""Declarative validation of the components (losses, miners, distances, Metrix).

Every component class exported by :mod:`sklearn_dml.losses`,
:mod:`sklearn_dml.miners`, :mod:`sklearn_dml.distances` and
:mod:`sklearn_dml.mixup` declares a constraint for each ``__init__``
parameter; the table is checked once the object is built and by
``set_params`` (before anything changes), and never by ``forward``.
"""

import inspect
import math
from numbers import Real

import pytest
import torch

from sklearn_dml import distances, losses, miners, mixup
from sklearn_dml._param_validation import Interval, InvalidParameterError
from sklearn_dml._params import ParamsMixin

MODULES = (losses, miners, distances, mixup)

COMPONENTS = sorted(
    {
        getattr(module, name)
        for module in MODULES
        for name in module.__all__
        if inspect.isclass(getattr(module, name))
        and issubclass(getattr(module, name), ParamsMixin)
    },
    key=lambda cls: (cls.__module__, cls.__name__),
)
IDS = [cls.__name__ for cls in COMPONENTS]

# Arguments of the components whose constructor has required parameters.
REQUIRED = {
    losses.CombinedLoss: lambda: {"losses": [losses.TripletMarginLoss()]},
    losses.CrossBatchMemoryLoss: lambda: {"loss": losses.ContrastiveLoss()},
    losses.MatryoshkaLoss: lambda: {
        "loss": losses.TripletMarginLoss(),
        "nested_dims": (2,),
    },
    losses.MutualLearningLoss: lambda: {"loss": losses.TripletMarginLoss()},
    losses.ProcSimLoss: lambda: {"loss": losses.ContrastiveLoss()},
}

# Base classes: built and validated like the others, but without a forward.
ABSTRACT = {losses.BaseMetricLoss, miners.BaseMiner, distances.BaseDistance}

BAD_NUMBERS = [float("nan"), float("inf"), -float("inf"), True]


def _build(cls, **params):
    return cls(**{**REQUIRED.get(cls, dict)(), **params})


def _interval_only(constraints):
    """Whether a parameter is constrained by Intervals only (plus maybe None)."""
    intervals = [c for c in constraints if isinstance(c, Interval)]
    others = [c for c in constraints if c is not None and not isinstance(c, Interval)]
    return bool(intervals) and not others


INTERVAL_PARAMS = [
    (cls, name)
    for cls in COMPONENTS
    for name, constraints in cls._parameter_constraints.items()
    if name in cls._get_param_names() and _interval_only(constraints)
]


def test_every_exported_component_is_covered():
    names = {cls.__name__ for cls in COMPONENTS}
    assert {"TripletMarginLoss", "BatchHardMiner", "LpDistance", "Metrix"} <= names
    assert len(INTERVAL_PARAMS) > 50


# ------------------------------------------------------- (a) the tables
@pytest.mark.parametrize("cls", COMPONENTS, ids=IDS)
def test_every_init_parameter_has_a_constraint(cls):
    params = set(cls._get_param_names())
    table = set(cls._parameter_constraints)
    assert params - table == set(), (
        f"{cls.__name__}: no constraint for {params - table}"
    )
    assert table - params == set(), (
        f"{cls.__name__}: stale constraints {table - params}"
    )
    for name, constraints in cls._parameter_constraints.items():
        assert isinstance(constraints, list) and constraints, (cls.__name__, name)


@pytest.mark.parametrize("cls", COMPONENTS, ids=IDS)
def test_defaults_are_valid_and_signature_is_kept(cls):
    required = REQUIRED.get(cls, dict)()
    signature = inspect.signature(cls.__init__)
    named = sorted(p for p in signature.parameters if p != "self")
    assert named == cls._get_param_names()
    without_default = {
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.default is inspect.Parameter.empty
    }
    assert without_default == set(required), cls.__name__
    component = cls(**required)
    component._validate_params()
    assert set(component.get_params(deep=False)) == set(cls._get_param_names())


# ------------------------------------------- (b) NaN, infinities, booleans
@pytest.mark.parametrize(
    "cls, name", INTERVAL_PARAMS, ids=[f"{c.__name__}-{n}" for c, n in INTERVAL_PARAMS]
)
@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=["nan", "inf", "-inf", "True"])
def test_interval_parameters_reject_nan_inf_and_bool(cls, name, bad):
    message = f"The '{name}' parameter of {cls.__name__} must be"
    with pytest.raises(InvalidParameterError, match=message):
        _build(cls, **{name: bad})
    component = _build(cls)
    before = component.get_params(deep=False)
    with pytest.raises(InvalidParameterError, match=message):
        component.set_params(**{name: bad})
    after = component.get_params(deep=False)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value, f"set_params changed {key} before failing"


def test_a_failed_set_params_changes_no_parameter_at_all():
    loss = losses.TripletMarginLoss(margin=0.3)
    with pytest.raises(InvalidParameterError, match="'swap' parameter"):
        # margin is valid, swap is not: neither is set.
        loss.set_params(margin=0.5, swap="yes")
    assert loss.margin == 0.3 and loss.swap is False
    # A nested value is checked against the outer component's constraint too.
    angular = losses.AngularLoss(distance=distances.LpDistance())
    with pytest.raises(InvalidParameterError, match="'distance' parameter of Angular"):
        angular.set_params(distance__power=2)
    assert angular.distance.power == 1
    with pytest.raises(InvalidParameterError, match="'p' parameter of LpDistance"):
        angular.set_params(distance__p=float("nan"))
    assert angular.distance.p == 2
    angular.set_params(alpha=30)
    assert angular.alpha == 30


def test_messages_name_the_parameter_the_owner_and_the_value():
    with pytest.raises(InvalidParameterError) as info:
        losses.TripletMarginLoss(margin=float("nan"))
    assert str(info.value) == (
        "The 'margin' parameter of TripletMarginLoss must be a finite float in the "
        "range (-inf, inf); got nan of type float."
    )
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


# ------------------------------------- construction validates exactly once
def test_construction_validates_once_after_the_outermost_init(monkeypatch):
    calls = []
    original = ParamsMixin._validate_params

    def counting(self):
        calls.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(ParamsMixin, "_validate_params", counting)

    class ShiftedTripletLoss(losses.TripletMarginLoss):
        _parameter_constraints = {
            **losses.TripletMarginLoss._parameter_constraints,
            "shift": [Interval(Real, 0, None, closed="left")],
        }

        def __init__(self, shift=0.0, margin=0.05, distance=None):
            # The parent's __init__ runs before ``shift`` exists: validating
            # there would fail on the half-built object.
            super().__init__(margin=margin, distance=distance)
            self.shift = shift

    loss = ShiftedTripletLoss(shift=1.0)
    assert calls == ["ShiftedTripletLoss"]
    assert list(inspect.signature(ShiftedTripletLoss.__init__).parameters) == [
        "self",
        "shift",
        "margin",
        "distance",
    ]
    assert loss.get_params(deep=False) == {
        "distance": None,
        "margin": 0.05,
        "shift": 1.0,
    }
    with pytest.raises(InvalidParameterError, match="'shift' parameter of Shifted"):
        ShiftedTripletLoss(shift=-1.0)
    calls.clear()
    losses.SphereFaceLoss()  # inherits its parent's __init__
    distances.CosineSimilarity()  # its __init__ calls the parent's
    assert calls == ["SphereFaceLoss", "CosineSimilarity"]


def test_a_subclass_parameter_without_a_constraint_is_reported():
    class Undeclared(losses.ContrastiveLoss):
        def __init__(self, scale=1.0, distance=None):
            super().__init__(distance=distance)
            self.scale = scale

    with pytest.raises(
        RuntimeError, match="Undeclared declares no constraint.*'scale'"
    ):
        Undeclared()


def test_configure_revalidates_values_assigned_directly():
    loss = losses.ProxyAnchorLoss()
    loss.alpha = -1.0  # bypasses set_params
    with pytest.raises(InvalidParameterError, match="'alpha' parameter of ProxyAnchor"):
        loss.configure(3, 4)
    with pytest.raises(
        InvalidParameterError, match="'num_classes' parameter of CenterLoss.configure"
    ):
        losses.CenterLoss().configure(num_classes=True, embedding_size=4)


# ------------------------------------------------ (c) forward never checks
EMBEDDINGS = torch.randn(9, 4, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
MIXED_LOSS = losses.ContrastiveLoss()  # the loss of Metrix's mixed samples


def _one_batch(component):
    """Run the component's per-batch computation once."""
    if isinstance(component, distances.BaseDistance):
        component(EMBEDDINGS)
        component.pairwise(EMBEDDINGS, EMBEDDINGS.flip(0))
    elif isinstance(component, miners.BaseMiner):
        component(EMBEDDINGS, LABELS)
    elif isinstance(component, mixup.Metrix):
        plan = mixup.MixupPlan(component, n_classes=3, normalize=True)
        plan.mixed_loss(None, MIXED_LOSS, EMBEDDINGS, LABELS, EMBEDDINGS)
    elif isinstance(
        component,
        (losses.RKDLoss, losses.RKDDistanceLoss, losses.RKDAngleLoss),
    ):
        component(EMBEDDINGS, EMBEDDINGS[:, :2])
    elif isinstance(component, losses.BarlowTwinsLoss):  # two views of a batch
        component(EMBEDDINGS, EMBEDDINGS.flip(0))
    else:
        component(EMBEDDINGS, LABELS)


def _ready(cls):
    component = _build(cls)
    if hasattr(component, "configure") and not isinstance(component, mixup.Metrix):
        component = component.configure(3, 4) or component
    return component


@pytest.mark.parametrize(
    "cls",
    [c for c in COMPONENTS if c not in ABSTRACT],
    ids=[c.__name__ for c in COMPONENTS if c not in ABSTRACT],
)
def test_forward_does_not_validate(cls, monkeypatch):
    component = _ready(cls)
    _one_batch(component)  # anything built lazily is built now
    calls = []

    def counting(original):
        def wrapper(self, *args, **kwargs):
            calls.append(type(self).__name__)
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        ParamsMixin, "_validate_params", counting(ParamsMixin._validate_params)
    )
    monkeypatch.setattr(
        ParamsMixin, "_check_param_values", counting(ParamsMixin._check_param_values)
    )
    for _ in range(2):
        _one_batch(component)
    assert calls == [], f"{cls.__name__} validated during forward: {calls}"


def test_an_attribute_assigned_after_construction_is_not_checked_by_forward():
    loss = losses.TripletMarginLoss()
    loss.margin = float("nan")  # invalid, but only set_params/configure check
    value = loss(EMBEDDINGS, LABELS)
    assert math.isnan(value.item()) or value.item() == 0.0
    miner = miners.TripletMarginMiner()
    miner.margin = float("inf")
    a, _, _ = miner(EMBEDDINGS, LABELS)
    assert a.numel() > 0
