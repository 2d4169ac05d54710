"""Loading pretrained weights from a local file into a user's module."""

import os

import torch

__all__ = ["load_weights"]


def load_weights(module, path, *, strict=True, drop_prefix=None):
    """Load a ``state_dict`` file into ``module`` without running code from it.

    The file is read with ``torch.load(path, map_location="cpu",
    weights_only=True)``, which unpickles tensors and plain containers only,
    so a file from an untrusted source cannot run code. A checkpoint holding
    ``{"state_dict": ...}`` or ``{"model": ...}`` (common for published
    weights) is unwrapped. The module itself is the user's: a torchvision or
    timm model built without weights, or any ``torch.nn.Module``; nothing
    here imports those libraries.

    Parameters
    ----------
    module : torch.nn.Module
        The network to load into (modified in place).
    path : str or os.PathLike
        A file written by ``torch.save(model.state_dict(), path)``.
    strict : bool, default=True
        Require the keys to match exactly; ``False`` loads the matching keys
        and reports the others (e.g. a classification layer replaced by a
        new head).
    drop_prefix : str, default=None
        A prefix removed from the keys that start with it (``"module."``
        for weights saved from ``torch.nn.DataParallel``).

    Returns
    -------
    result : NamedTuple
        ``missing_keys`` and ``unexpected_keys``, as
        :meth:`torch.nn.Module.load_state_dict` returns them.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from sklearn_dml.backbones import load_weights
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.pt")
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    >>> net = torch.nn.Linear(3, 2)
    >>> load_weights(net, path)
    <All keys matched successfully>
    """
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(
            f"{os.fspath(path)!r} holds a {type(state).__name__}, not a state_dict "
            "(a dict of tensors); save weights with torch.save(model.state_dict(), path)."
        )
    if drop_prefix:
        state = {
            (k[len(drop_prefix) :] if k.startswith(drop_prefix) else k): v
            for k, v in state.items()
        }
    return module.load_state_dict(state, strict=strict)
