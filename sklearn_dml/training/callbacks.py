"""Running the user's callbacks at the start, the end of each epoch and the end.

A callback is any object with some of the methods ``on_train_begin(model)``,
``on_epoch_end(model, record)`` and ``on_train_end(model)`` (in the spirit of
skorch's). ``model`` is a view of the estimator as trained so far: a shallow
copy whose fitted attributes (``backbone_``, ``loss_``, ``n_iter_``,
``history_``, the optimizer state) describe the current weights, so that
``transform``, ``score`` and :func:`sklearn_dml.persistence.save` work on it;
it shares the modules being trained, which callbacks must not change.
``record`` is the epoch's entry of ``history_``. ``on_epoch_end`` returning
``True`` stops training after that epoch (the model trained so far is kept);
an exception raised by a callback ends the fit with that error, leaving the
estimator as it was.
"""

__all__ = ["CallbackRunner"]


class CallbackRunner:
    """Calls the callbacks' hooks with a view built by ``view(state, optimizer)``."""

    def __init__(self, callbacks, view):
        self.callbacks = list(callbacks)
        self.view = view

    def _call(self, hook, state, optimizer, *args):
        model, stop = None, False
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is None:
                continue
            if model is None:
                model = self.view(state, optimizer)
            stop = method(model, *args) is True or stop
        return stop

    def train_begin(self, state, optimizer):
        self._call("on_train_begin", state, optimizer)

    def epoch_end(self, state, optimizer, record):
        """Call ``on_epoch_end``; True when a callback asks to stop."""
        return self._call("on_epoch_end", state, optimizer, dict(record))

    def train_end(self, state, optimizer):
        self._call("on_train_end", state, optimizer)
