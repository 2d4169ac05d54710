"""Save and load fitted embedders as tensors and plain data, without pickle.

``pickle`` (and ``joblib``) work on every estimator of the package, but
unpickling a file runs whatever code the file names: never unpickle a model
from a source you do not trust. :func:`save` writes a fitted embedder in a
format that carries no code: the estimator's parameters as plain data
(numbers, strings, tuples, lists, dicts; the package's own components, such
as a loss given to :class:`~sklearn_dml.DeepMetricEmbedder`, by class name
and parameters), the weights of the network and of the loss as tensors, and
the other fitted attributes as plain data. :func:`load` reads it with
``torch.load(weights_only=True)``, which refuses anything else, accepts only
class names of the package, rebuilds the network from the parameters and
loads the weights into it.

What cannot be written as plain data is refused by :func:`save` with an
error that says why: a user ``backbone`` module, a callable parameter (a
learning-rate schedule function), another estimator as a parameter (a
distillation teacher). Use pickle for those, from trusted sources only.
The ``callbacks`` parameter is not written (callbacks act during training;
they are no part of the model): the loaded estimator has
``callbacks=None``. :class:`~sklearn_dml.callbacks.Checkpoint` writes this
format during training, with the optimizer state and the epoch count, so
that ``load`` and a ``warm_start`` fit (or ``partial_fit``) resume it.

Examples
--------
>>> import tempfile, os
>>> import numpy as np
>>> from sklearn.datasets import load_digits
>>> from sklearn_dml import TripletEmbedder
>>> from sklearn_dml.persistence import load, save
>>> X, y = load_digits(return_X_y=True)
>>> emb = TripletEmbedder(n_components=8, max_iter=2, anchor_weight=None,
...                       random_state=0).fit(X[:300] / 16, y[:300])
>>> path = os.path.join(tempfile.mkdtemp(), "triplet.pt")
>>> save(emb, path)
>>> again = load(path)
>>> bool(np.array_equal(again.transform(X[:5] / 16), emb.transform(X[:5] / 16)))
True
"""

import importlib
import numbers
import os
import tempfile

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import embedders
from .training.distributed import is_main_process

__all__ = ["load", "save"]

#: The format tag written in every file; :func:`load` refuses other tags.
FORMAT = "sklearn-dml/1"

#: Modules whose public classes may appear, by name, in a saved file.
_COMPONENT_MODULES = (
    "sklearn_dml.losses",
    "sklearn_dml.miners",
    "sklearn_dml.distances",
    "sklearn_dml.mixup",
)

#: Parameters not written: training-time hooks, not part of the model (the
#: loaded estimator has their default, ``None``).
_UNSAVED_PARAMETERS = ("callbacks",)

#: Private fitted state written beside the public attributes.
_PRIVATE_ATTRIBUTES = ("_classes_declared", "_rng_state", "_grad_scaler_state")

#: Fitted attributes rebuilt from the parameters and the saved weights.
_MODULE_ATTRIBUTES = ("backbone_", "loss_", "miner_")


class _Refused(ValueError):
    pass


def _encode(value, where):
    """Plain data (and tensors) for ``value``; raise _Refused otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Number):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUSO":
            raise _Refused(f"{where}: arrays of dtype {value.dtype} are not supported")
        return {
            "__ndarray__": [_encode(v, where) for v in value.ravel().tolist()],
            "dtype": value.dtype.str if value.dtype.kind != "O" else "object",
            "shape": list(value.shape),
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {
            "__dict__": [
                (_encode(k, where), _encode(v, where)) for k, v in value.items()
            ]
        }
    module = type(value).__module__.split(".")
    owner = ".".join(module[:2])
    if owner in _COMPONENT_MODULES and hasattr(value, "get_params"):
        name = type(value).__name__
        if name in getattr(importlib.import_module(owner), "__all__", ()):
            params = value.get_params(deep=False)
            return {
                "__component__": f"{owner}.{name}",
                "params": {k: _encode(v, f"{where}.{k}") for k, v in params.items()},
            }
    if isinstance(value, torch.nn.Module):
        raise _Refused(
            f"{where} is a torch module ({type(value).__name__}); its code cannot "
            "be stored as data. Keep the default backbone, or pickle the "
            "estimator (from trusted sources only)"
        )
    if callable(value):
        raise _Refused(f"{where} is a callable ({value!r}), which is code")
    raise _Refused(f"{where} of type {type(value).__name__} is not plain data")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    if "__ndarray__" in value:
        dtype = object if value["dtype"] == "object" else np.dtype(value["dtype"])
        flat = [_decode(v) for v in value["__ndarray__"]]
        out = np.empty(len(flat), dtype=dtype)
        out[:] = flat
        return out.reshape(value["shape"])
    if "__component__" in value:
        owner, _, name = value["__component__"].rpartition(".")
        module = importlib.import_module(owner) if owner in _COMPONENT_MODULES else None
        if module is None or name not in getattr(module, "__all__", ()):
            raise ValueError(
                f"The file names the class {value['__component__']!r}, which is not "
                "a component of sklearn_dml; refusing to load it."
            )
        params = {k: _decode(v) for k, v in value["params"].items()}
        return getattr(module, name)(**params)
    return value


def save(estimator, path):
    """Write a fitted embedder to ``path`` as tensors and plain data.

    Parameters
    ----------
    estimator : BaseDeepMetricLearner
        A fitted embedder of the package.
    path : str or os.PathLike
        File to write (replaced atomically: a failed save leaves an existing
        file untouched). In a data-parallel run (a process group of
        several processes), only rank 0 writes: on the other ranks ``save``
        checks the estimator and returns without writing.

    Raises
    ------
    ValueError
        When a parameter or fitted attribute cannot be written as plain data
        (a user backbone module, a callable, another estimator); the message
        names it. Nothing is written then. ``callbacks`` is not written (the
        loaded estimator has ``callbacks=None``).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml import TripletEmbedder
    >>> from sklearn_dml.persistence import save
    >>> X, y = load_iris(return_X_y=True)
    >>> emb = TripletEmbedder(n_components=2, max_iter=1, random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.pt")
    >>> save(emb, path)
    >>> os.path.exists(path)
    True
    """
    _write_payload(_embedder_payload(estimator), path)


def _embedder_payload(estimator):
    """The plain-data payload :func:`save` writes for a fitted embedder.

    Shared with other savers of the package (an index holding its
    embedder); raises ValueError as :func:`save` does.
    """
    name = type(estimator).__name__
    if name not in embedders.__all__ or type(estimator) is not getattr(embedders, name):
        raise ValueError(
            f"save writes the embedders of sklearn_dml; got {type(estimator)!r}. "
            "Pickle other estimators (from trusted sources only)."
        )
    check_is_fitted(estimator, "backbone_")
    try:
        params = {
            k: _encode(v, f"parameter {k!r}")
            for k, v in estimator.get_params(deep=False).items()
            if k not in _UNSAVED_PARAMETERS
        }
        fitted = {
            k: _encode(v, f"fitted attribute {k!r}")
            for k, v in vars(estimator).items()
            if k.endswith("_") and not k.startswith("_") and k not in _MODULE_ATTRIBUTES
        }
        optimizer_state = _encode(
            getattr(estimator, "_optimizer_state", None), "the optimizer state"
        )
        private = {
            k: _encode(getattr(estimator, k), k)
            for k in _PRIVATE_ATTRIBUTES
            if hasattr(estimator, k)
        }
    except _Refused as exc:
        raise ValueError(f"{name} cannot be saved without pickle: {exc}.") from None
    payload = {
        "format": FORMAT,
        "class": name,
        "params": params,
        "fitted": fitted,
        "optimizer_state": optimizer_state,
        "private": private,
        "backbone_state": {
            k: v.detach().cpu().clone()
            for k, v in estimator.backbone_.state_dict().items()
        },
        "loss_state": {
            k: v.detach().cpu().clone() for k, v in estimator.loss_.state_dict().items()
        },
    }
    return payload


def _write_payload(payload, path):
    """``torch.save`` a payload to ``path`` atomically (a failure leaves no file).

    In a data-parallel run only rank 0 writes; the other ranks return.
    """
    if not is_main_process():
        return
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read an embedder written by :func:`save`; no code from the file runs.

    The file is read with ``torch.load(weights_only=True)`` (tensors and
    plain data only); the class and any component are looked up by name
    among the package's public classes; the network and the loss are built
    from the saved parameters, then given the saved weights.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`save`.

    Returns
    -------
    estimator : BaseDeepMetricLearner
        The fitted embedder, on the CPU, ready for ``transform``, ``score``,
        the pair API, and further training with ``warm_start`` or
        ``partial_fit``.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_dml import TripletEmbedder
    >>> from sklearn_dml.persistence import load, save
    >>> X, y = load_iris(return_X_y=True)
    >>> emb = TripletEmbedder(n_components=2, max_iter=1, random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.pt")
    >>> save(emb, path)
    >>> load(path).transform(X[:3]).shape
    (3, 2)
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{os.fspath(path)!r} is not a file written by sklearn_dml.persistence.save "
            f"(format {FORMAT!r})."
        )
    return _embedder_from_payload(payload)


def _embedder_from_payload(payload):
    """The fitted embedder of a payload made by :func:`_embedder_payload`."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"Not an embedder payload of format {FORMAT!r}.")
    name = payload["class"]
    if name not in embedders.__all__:
        raise ValueError(
            f"The file names the class {name!r}, not an sklearn_dml embedder."
        )
    cls = getattr(embedders, name)
    estimator = cls(**{k: _decode(v) for k, v in payload["params"].items()})
    for key, value in payload["fitted"].items():
        setattr(estimator, key, _decode(value))
    with torch.random.fork_rng(devices=[]):
        shape = estimator._sample_shape()
        features = shape[0] if len(shape) == 1 else shape
        backbone = estimator._build_backbone(features)
        backbone.load_state_dict(payload["backbone_state"])
        n_out = estimator._probe_backbone(backbone, features)
        n_classes = len(estimator.classes_)
        loss, miner = estimator._build_loss(n_classes, n_out)
        loss = estimator._compose_loss(loss, backbone, n_out)
        if hasattr(loss, "configure"):
            loss.configure(n_classes, n_out)
    loss.load_state_dict(payload["loss_state"])
    estimator.backbone_ = backbone.eval()
    estimator.loss_ = loss.eval()
    estimator.miner_ = miner
    estimator._n_features_out = n_out
    for key, value in payload.get("private", {}).items():
        if key in _PRIVATE_ATTRIBUTES:
            setattr(estimator, key, _decode(value))
    estimator._optimizer_state = _decode(payload["optimizer_state"])
    estimator._trained_with = {
        "architecture": estimator._architecture(),
        "backbone": estimator.backbone,
        "optimizer": estimator.optimizer,
    }
    return estimator
