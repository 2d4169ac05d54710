"""Callbacks for the deep embedders' ``callbacks`` parameter.

A callback is any object with some of the methods ``on_train_begin(model)``,
``on_epoch_end(model, record)`` and ``on_train_end(model)``; ``model`` is
the estimator as trained so far and ``record`` the epoch's entry of
``history_``; ``on_epoch_end`` returning ``True`` stops training (see
:mod:`sklearn_dml.training.callbacks`). This module holds the ready-made
ones.
"""

import os

from .persistence import save

__all__ = ["Checkpoint"]


class Checkpoint:
    """Save the model every ``every`` epochs, to resume training from the file.

    Writes :func:`sklearn_dml.persistence.save`'s format (weights as tensors,
    parameters as plain data, read back with ``torch.load(weights_only=True)``
    by :func:`~sklearn_dml.persistence.load`, which runs no code from the
    file), with the optimizer state (and, with ``mixed_precision="float16"``
    on CUDA, the gradient scaler's loss scale), the epoch count ``n_iter_``
    and ``history_``. To resume, load the file and continue with
    ``warm_start=True`` and ``fit`` (``max_iter`` more epochs) or with
    ``partial_fit``. The file also holds the random streams of training
    (the batch sampler's and torch's CPU generator, which draws dropout
    masks and mixup), which the first training call after ``load``
    continues: ``k`` epochs, a checkpoint, and ``n - k`` more epochs give
    the model of ``n`` epochs, to float precision (with the default
    ``learning_rate_schedule="constant"``, whose rates do not depend on the
    length of a fit, and without early stopping, whose hold-out and best
    weights belong to one fit). The CUDA generator is not saved.

    Parameters
    ----------
    path : str or os.PathLike
        File to write; ``"{epoch}"`` in it is replaced by the epoch count
        (one file per checkpoint), otherwise each checkpoint replaces the
        last (atomically: an interrupted write leaves the previous one).
    every : int, default=1
        Save after every ``every``-th epoch (counted over the estimator's
        life, as ``n_iter_``).
    at_end : bool, default=True
        Also save when training ends, whatever the epoch.

    Attributes
    ----------
    saved_ : list of str
        The files written, in order.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_dml import TripletEmbedder
    >>> from sklearn_dml.callbacks import Checkpoint
    >>> from sklearn_dml.persistence import load
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X[:300] / 16
    >>> path = os.path.join(tempfile.mkdtemp(), "epoch{epoch}.pt")
    >>> checkpoint = Checkpoint(path, every=2)
    >>> emb = TripletEmbedder(n_components=8, max_iter=3, anchor_weight=None,
    ...                       callbacks=[checkpoint], random_state=0)
    >>> _ = emb.fit(X, y[:300])
    >>> [os.path.basename(p) for p in checkpoint.saved_]
    ['epoch2.pt', 'epoch3.pt']
    >>> resumed = load(checkpoint.saved_[0]).set_params(warm_start=True, max_iter=1)
    >>> resumed.fit(X, y[:300]).n_iter_
    3
    """

    def __init__(self, path, every=1, at_end=True):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every must be a positive int, got {every!r}.")
        self.path = path
        self.every = every
        self.at_end = at_end
        self.saved_ = []

    def _save(self, model):
        path = os.fspath(self.path).replace("{epoch}", str(model.n_iter_))
        save(model, path)
        if not self.saved_ or self.saved_[-1] != path:
            self.saved_.append(path)

    def on_epoch_end(self, model, record):
        """Save after every ``every``-th epoch."""
        if record["epoch"] % self.every == 0:
            self._save(model)

    def on_train_end(self, model):
        """Save the final model (``at_end=True``) unless just saved."""
        if self.at_end and model.n_iter_ % self.every != 0:
            self._save(model)
