"""Scikit-learn style parameter access for plain-torch components.

Losses, miners and distances are ``torch.nn.Module`` objects, not scikit-learn
estimators, but they are passed to estimators as hyper-parameters
(``DeepMetricEmbedder(loss=TripletMarginLoss(margin=0.1))``). To make
``clone`` re-create them and ``GridSearchCV`` tune their own hyper-parameters
(``loss__margin``), they expose ``get_params`` / ``set_params`` built, like
scikit-learn's, from the names of their ``__init__`` arguments, each stored
unchanged under the same attribute name.
"""

import inspect
import math
import numbers


def is_positive_finite(value):
    """Whether ``value`` is a real number (not a bool), finite and > 0.

    The check of the components' positive hyper-parameters; each caller
    raises its own message.
    """
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class ParamsMixin:
    """Give a component ``get_params``/``set_params`` and a readable repr."""

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

        Parameters
        ----------
        **params : dict
            Parameter names mapped to their new values.

        Returns
        -------
        self : object
            This component.
        """
        valid = self._get_param_names()
        nested = {}
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
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def extra_repr(self):
        # torch.nn.Module.__repr__ calls this; show the hyper-parameters.
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._get_param_names())
