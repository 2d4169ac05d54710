"""Declarative parameter constraints, checked once before any state changes.

Every estimator and component states what each of its parameters accepts in
a ``_parameter_constraints`` table, in the style of scikit-learn's developer
guide: the name of a parameter maps to a list of constraints, any of which
may be satisfied. A constraint is one of

- an :class:`Interval` of integers or reals (NaN, infinities and booleans are
  never inside one);
- :class:`StrOptions` (a set of strings) or :class:`Options` (any values);
- a type, or a tuple of types (``torch.nn.Module``), checked with
  ``isinstance``; booleans are not integers here;
- ``None`` (the value ``None``);
- the strings ``"boolean"`` (``bool`` or ``numpy.bool_``),
  ``"random_state"`` (``None``, an integer in ``[0, 2**32 - 1]`` or a
  ``numpy.random.RandomState``), ``"callable"``, ``"array-like"``;
- :class:`HasMethods` (an object with the named methods);
- any object with ``is_satisfied_by(value)`` and a ``__str__`` that describes
  what it accepts (e.g. :class:`TupleOf`).

:func:`validate_params` raises :class:`InvalidParameterError`, a
``ValueError`` and a ``TypeError`` at once, whose message names the
parameter, its owner, what is accepted and the value received.
"""

import math
import numbers

import numpy as np

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "TupleOf",
    "validate_params",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter value outside its constraints (both a ValueError and a TypeError)."""


def _is_real_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class Interval:
    """Numbers of one kind between two bounds.

    Parameters
    ----------
    kind : {numbers.Integral, numbers.Real}
        ``Integral`` accepts integers only; ``Real`` accepts any real number.
        Booleans, NaN and infinities are rejected by both.
    left, right : float or None
        The bounds; ``None`` leaves that side open.
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    def __init__(self, kind, left, right, *, closed):
        if kind not in (numbers.Integral, numbers.Real):
            raise ValueError("Interval kind must be numbers.Integral or numbers.Real.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(
                f"Interval closed must be left/right/both/neither, got {closed!r}."
            )
        self.kind = kind
        self.left = left
        self.right = right
        self.closed = closed

    def is_satisfied_by(self, value):
        if not _is_real_number(value) or not isinstance(value, self.kind):
            return False
        if not math.isfinite(value):
            return False
        if self.left is not None:
            inside = (
                value >= self.left
                if self.closed in ("left", "both")
                else value > self.left
            )
            if not inside:
                return False
        if self.right is not None:
            inside = (
                value <= self.right
                if self.closed in ("right", "both")
                else value < self.right
            )
            if not inside:
                return False
        return True

    def __str__(self):
        kind = "an int" if self.kind is numbers.Integral else "a finite float"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        lb = "[" if self.closed in ("left", "both") and self.left is not None else "("
        rb = "]" if self.closed in ("right", "both") and self.right is not None else ")"
        return f"{kind} in the range {lb}{left}, {right}{rb}"


class Options:
    """One of a fixed set of values (compared with ``==`` and of the given type)."""

    def __init__(self, kind, options):
        self.kind = kind
        self.options = options

    def is_satisfied_by(self, value):
        return isinstance(value, self.kind) and any(
            type(value) is type(option) and value == option for option in self.options
        )

    def __str__(self):
        return "one of " + ", ".join(repr(o) for o in sorted(self.options, key=repr))


class StrOptions(Options):
    """One of a set of strings."""

    def __init__(self, options):
        super().__init__(str, set(options))

    def __str__(self):
        return "a str among " + ", ".join(repr(o) for o in sorted(self.options))


class HasMethods:
    """An object with the named methods (e.g. ``["fit", "transform"]``)."""

    def __init__(self, methods):
        self.methods = [methods] if isinstance(methods, str) else list(methods)

    def is_satisfied_by(self, value):
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self):
        return "an object implementing " + ", ".join(repr(m) for m in self.methods)


class TupleOf:
    """A tuple or list whose every item satisfies ``item`` (e.g. an Interval).

    ``min_length`` is the smallest accepted length (0 allows an empty one).
    """

    def __init__(self, item, *, min_length=0):
        self.item = item
        self.min_length = min_length

    def is_satisfied_by(self, value):
        return (
            isinstance(value, (tuple, list))
            and len(value) >= self.min_length
            and all(self.item.is_satisfied_by(v) for v in value)
        )

    def __str__(self):
        least = f" of at least {self.min_length} items" if self.min_length else ""
        return f"a tuple{least} whose items are each {self.item}"


class _Named:
    def __init__(self, name, test, text):
        self.name = name
        self.test = test
        self.text = text

    def is_satisfied_by(self, value):
        return self.test(value)

    def __str__(self):
        return self.text


def _is_random_state(value):
    if value is None or isinstance(value, np.random.RandomState):
        return True
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, np.bool_))
        and 0 <= value <= 2**32 - 1
    )


_NAMED = {
    "boolean": _Named("boolean", lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "random_state": _Named(
        "random_state",
        _is_random_state,
        "None, an int in [0, 2**32 - 1] or a numpy.random.RandomState",
    ),
    "callable": _Named("callable", callable, "a callable"),
    "array-like": _Named(
        "array-like",
        lambda v: hasattr(v, "__len__") or hasattr(v, "__array__"),
        "an array-like",
    ),
}


class _IsNone:
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class _InstanceOf:
    def __init__(self, kind):
        self.kind = kind

    def is_satisfied_by(self, value):
        if isinstance(value, (bool, np.bool_)) and not (
            self.kind is bool or (isinstance(self.kind, tuple) and bool in self.kind)
        ):
            return False
        return isinstance(value, self.kind)

    def __str__(self):
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        names = [_public_name(k) for k in kinds]
        return "an instance of " + " or ".join(names)


def _public_name(kind):
    """Where users import ``kind`` from: private submodules left out."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    if kind.__module__.startswith("torch.nn.modules"):
        return f"torch.nn.{kind.__qualname__}"
    parts = [p for p in kind.__module__.split(".") if not p.startswith("_")]
    return ".".join([*parts, kind.__qualname__])


def make_constraint(spec):
    """Turn one entry of a constraints list into an object with ``is_satisfied_by``."""
    if spec is None:
        return _IsNone()
    if isinstance(spec, str):
        try:
            return _NAMED[spec]
        except KeyError:
            raise ValueError(f"Unknown constraint {spec!r}.") from None
    if isinstance(spec, type) or (
        isinstance(spec, tuple) and all(isinstance(k, type) for k in spec)
    ):
        return _InstanceOf(spec)
    if hasattr(spec, "is_satisfied_by"):
        return spec
    raise ValueError(f"Unknown constraint {spec!r}.")


def _describe(constraints):
    texts = [str(c) for c in constraints]
    if len(texts) == 1:
        return texts[0]
    return ", ".join(texts[:-1]) + " or " + texts[-1]


def validate_params(constraints, params, owner):
    """Check ``params`` (name -> value) against ``constraints`` (name -> list).

    Parameters
    ----------
    constraints : dict
        Parameter name mapped to a list of constraints (any may hold), or to
        the string ``"no_validation"``.
    params : dict
        Parameter name mapped to its value; every name needs a constraint.
    owner : str
        The class name used in the error message.

    Raises
    ------
    InvalidParameterError
        On the first parameter that satisfies none of its constraints.
    """
    for name, value in params.items():
        if name not in constraints:
            raise RuntimeError(
                f"{owner} declares no constraint for its parameter {name!r}."
            )
        entry = constraints[name]
        if entry == "no_validation":
            continue
        checks = [make_constraint(c) for c in entry]
        if any(c.is_satisfied_by(value) for c in checks):
            continue
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {_describe(checks)}; "
            f"got {value!r} of type {type(value).__name__}."
        )
