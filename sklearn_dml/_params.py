"""Scikit-learn style parameter access for plain-torch components.

Losses, miners and distances are ``torch.nn.Module`` objects, not scikit-learn
estimators, but they are passed to estimators as hyper-parameters
(``DeepMetricEmbedder(loss=TripletMarginLoss(margin=0.1))``). To make
``clone`` re-create them and ``GridSearchCV`` tune their own hyper-parameters
(``loss__margin``), they expose ``get_params`` / ``set_params`` built, like
scikit-learn's, from the names of their ``__init__`` arguments, each stored
unchanged under the same attribute name.

Every component states what its parameters accept in a
``_parameter_constraints`` table (see :mod:`sklearn_dml._param_validation`).
The table is checked once the component is built, by ``set_params`` before
anything changes, and by ``configure``; never by ``forward``, so a training
step pays nothing for it.
"""

import copy
import functools
import inspect

from sklearn.base import clone

from ._param_validation import validate_params


def fresh_component(component):
    """A new, untrained copy of a component (``clone`` for ours, deepcopy otherwise)."""
    if hasattr(component, "get_params"):
        return clone(component)
    return copy.deepcopy(component)


def _validating_init(init):
    """Wrap a component's ``__init__`` to validate once the object is built.

    Only the ``__init__`` of the object's own class (the outermost one)
    validates: a subclass calling ``super().__init__`` is checked after its
    own attributes are set, never half-built. ``functools.wraps`` keeps the
    signature that ``get_params`` reads.
    """

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self).__init__ is __init__:
            self._validate_params()
            self._post_init()

    __init__._validates_params = True
    return __init__


class ParamsMixin:
    """Give a component ``get_params``/``set_params``, validation and a readable repr.

    A subclass lists every ``__init__`` parameter in ``_parameter_constraints``
    (merging its parent's table: ``{**Parent._parameter_constraints,
    "margin": [...]}``); checks that involve several parameters go in
    ``_check_param_relations``.
    """

    #: Parameter name -> list of constraints (see ``_param_validation``).
    _parameter_constraints = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_validates_params", False):
            cls.__init__ = _validating_init(init)

    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        if init is object.__init__:
            return []
        signature = inspect.signature(init)
        names = []
        for p in signature.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise RuntimeError(
                    f"{cls.__name__}.__init__ must list its parameters explicitly "
                    "(no *args or **kwargs) so that clone and set_params work."
                )
            names.append(p.name)
        return sorted(names)

    def _validate_params(self):
        """Check the current parameters; raise ``InvalidParameterError`` if one is invalid.

        Runs once at the end of construction, in :meth:`set_params` (on the
        new values, before they are set) and in ``configure``.
        """
        self._check_param_values(self.get_params(deep=False))

    def _check_param_values(self, params):
        """Validate ``params`` (name -> value), every one of this component's."""
        validate_params(self._parameter_constraints, params, type(self).__name__)
        self._check_param_relations(params)

    def _check_param_relations(self, params):
        """Checks that involve several parameters (each already passed its own).

        Raise ``InvalidParameterError`` naming the parameter at fault; the
        default checks nothing.
        """

    def _post_init(self):
        """Build state that needs valid parameters (called after validation at construction)."""

    def get_params(self, deep=True):
        """Return the constructor parameters of this component.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of nested components (for example the
            ``distance`` of a loss) as ``distance__<name>``.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for key, sub in value.get_params(deep=True).items():
                    out[f"{name}__{key}"] = sub
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters, nested ones with ``<component>__<name>``.

        The new values are validated together with the unchanged ones before
        anything is set: an invalid value raises ``InvalidParameterError``
        and leaves the component as it was.

        Parameters
        ----------
        **params : dict
            Parameter names mapped to their new values.

        Returns
        -------
        self : object
            This component.
        """
        if not params:
            return self
        valid = self._get_param_names()
        direct, nested = {}, {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}. "
                    f"Valid parameters are: {valid}."
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                direct[name] = value
        merged = self.get_params(deep=False)
        merged.update(direct)
        for name, sub_params in nested.items():
            # A copy of the nested component takes the new values first, so
            # that this component's own constraint on it is checked too.
            trial = fresh_component(merged[name])
            trial.set_params(**sub_params)
            merged[name] = trial
        self._check_param_values(merged)
        for name, value in direct.items():
            setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def extra_repr(self):
        # torch.nn.Module.__repr__ calls this; show the hyper-parameters.
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._get_param_names())
