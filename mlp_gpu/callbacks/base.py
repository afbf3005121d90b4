"""The History fit returns, the CallbackList that calls every callback's hooks in order, and
LambdaCallback; the hooks themselves are in callback.py."""
from __future__ import annotations

import logging
from pathlib import Path

from ..plots import plot_history
from .callback import Callback, _check_callback
from .progress import ProgbarLogger, ProgressBar


log = logging.getLogger("mlp_gpu")


class History(Callback):
    """Per-epoch logs: ``history.history["val_accuracy"][-1]``, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path) -> Path:
        """Write loss and accuracy curves, training against validation, as a PNG; return its path."""
        return plot_history(self, path)


class CallbackList(Callback):
    """Calls each hook on every callback, in order: the user's, then History, then the progress bar.

    Keras' signature: ``add_history`` / ``add_progbar`` append a History / ProgbarLogger unless one is
    among ``callbacks`` already; ``params`` go to every callback's ``set_params``. A single Callback is
    taken as a list of one, as in Keras.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        for arg, value in (("add_history", add_history), ("add_progbar", add_progbar)):
            if not isinstance(value, bool):
                raise TypeError(f"CallbackList({arg}): expected True or False, got {type(value).__name__}")
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        elif callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of Callback objects, got {type(callbacks).__name__}")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            _check_callback(cb)
        # History after the user's callbacks, as in Keras: keys they add to the logs (learning_rate) are kept.
        self.callbacks = callbacks
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgressBar) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self._batch_begin = self._batch_end = None
        self.set_model(model)
        if params:
            self.set_params(params)

    def set_model(self, model):
        self.model = model
        if model is None:
            return
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def append(self, cb):
        """Add a callback at the end; a second progress bar (fit's, after a user's ProgbarLogger) is dropped."""
        if isinstance(cb, ProgressBar) and any(isinstance(other, ProgressBar) for other in self.callbacks):
            return
        _check_callback(cb)
        cb.set_model(self.model)
        self.callbacks.append(cb)

    @property
    def wants_progress(self):
        return any(cb.wants_progress for cb in self.callbacks)

    @property
    def wants_batch_begin(self):
        return any(cb.wants_batch_begin for cb in self.callbacks)

    @property
    def wants_batch_end(self):
        return any(cb.wants_batch_end for cb in self.callbacks)

    def set_params(self, params):
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)
        # who takes the per-batch hooks is fixed by now: not asked again every step
        self._batch_begin = [cb for cb in self.callbacks if cb.wants_batch_begin]
        self._batch_end = [cb for cb in self.callbacks if cb.wants_batch_end]

    def _takers(self, which):
        takers = self._batch_begin if which == "begin" else self._batch_end
        if takers is None:  # no set_params yet: ask now
            return [cb for cb in self.callbacks if getattr(cb, f"wants_batch_{which}")]
        return takers

    # Every hook gets a logs dict, as in Keras: a user's hook may take ``logs`` without a default.
    def on_batch_begin(self, batch, logs=None):
        for cb in self._takers("begin"):
            cb.on_train_batch_begin(batch, dict(logs or {}))

    def on_batch_end(self, batch, logs=None):
        for cb in self._takers("end"):
            cb.on_train_batch_end(batch, logs if logs is not None else {})

    on_train_batch_begin, on_train_batch_end = on_batch_begin, on_batch_end

    def on_test_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_test_begin(dict(logs or {}))

    def on_test_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_test_end(logs if logs is not None else {})

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(dict(logs or {}))

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(dict(logs or {}))

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}  # one dict for all: a key a callback adds reaches History
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_progress(self, step, logs):
        for cb in self.callbacks:
            if cb.wants_progress:
                cb.on_progress(step, logs)

    def __iter__(self):
        return iter(self.callbacks)


class LambdaCallback(Callback):
    """Keras' callback made of functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Each function takes the arguments of the hook it replaces (``epoch, logs``; ``batch, logs``; ``logs``).
    """

    HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
             "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for hook, fn in given.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback({hook}): expected a function, got {type(fn).__name__}")
        self.__dict__.update(kwargs)
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)

    # Given as functions (or as Keras' older on_batch_* names through kwargs), on the instance.
    @property
    def wants_batch_begin(self) -> bool:
        return bool({"on_train_batch_begin", "on_batch_begin"} & self.__dict__.keys())

    @property
    def wants_batch_end(self) -> bool:
        return bool({"on_train_batch_end", "on_batch_end"} & self.__dict__.keys())
