"""metric-learn 0.7.0 on current scikit-learn, for comparisons only.

metric-learn 0.7.0 passes ``force_all_finite`` to scikit-learn's validators,
an argument renamed ``ensure_all_finite`` in scikit-learn 1.6 and removed
since, so each of its estimators raises ``TypeError`` unpatched.
:func:`load_metric_learn` imports it and wraps the two validators its
``_util`` module calls so that the old argument name is translated. The
package is an optional test and benchmark dependency, never a runtime one.
"""

import functools
import importlib

__all__ = ["load_metric_learn"]


def _translate_finite_argument(validator):
    @functools.wraps(validator)
    def wrapper(*args, **kwargs):
        if "force_all_finite" in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return validator(*args, **kwargs)

    wrapper._metric_learn_compat = True
    return wrapper


def load_metric_learn():
    """Import metric-learn, patched for current scikit-learn; None when absent."""
    try:
        metric_learn = importlib.import_module("metric_learn")
    except ImportError:
        return None
    util = importlib.import_module("metric_learn._util")
    for name in ("check_array", "check_X_y"):
        validator = getattr(util, name)
        if not getattr(validator, "_metric_learn_compat", False):
            setattr(util, name, _translate_finite_argument(validator))
    return metric_learn
