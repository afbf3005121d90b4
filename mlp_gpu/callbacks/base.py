"""Callbacks with Keras names and hooks, the History they fill, and the progress bar.

Reading device state every step would force a GPU sync, so the trainer calls
``on_batch_end`` only when some callback overrides it; ``on_progress`` (running
loss and accuracy) comes a few times a second instead, and costs nothing when
no callback wants it.
"""
from __future__ import annotations

import logging
from pathlib import Path


log = logging.getLogger("mlp_gpu")


class Callback:
    wants_progress = False
    chief_only = False  # True: prints or writes files, so a distributed fit runs it on rank 0 alone

    def set_model(self, model):
        self.model = model

    def set_params(self, params: dict):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_progress(self, step, logs): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...

    # Keras 3's names; as in Keras, the train-batch hooks call the older on_batch_* by default.
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def _overrides(self, *hooks) -> bool:
        return any(getattr(type(self), h) is not getattr(Callback, h) for h in hooks)

    @property
    def wants_batch_begin(self) -> bool:
        return self._overrides("on_batch_begin", "on_train_batch_begin")

    @property
    def wants_batch_end(self) -> bool:
        return self._overrides("on_batch_end", "on_train_batch_end")


# Keras hooks fit never calls here: validation and predict run on the device without per-batch host
# reads. A callback that overrides one is refused rather than silently never called.
UNCALLED_HOOKS = ("on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
                  "on_predict_batch_begin", "on_predict_batch_end")


def _check_callback(cb):
    if not isinstance(cb, Callback):
        raise TypeError(f"callbacks: expected mlp_gpu Callback objects, got {type(cb).__name__}")
    for hook in UNCALLED_HOOKS:
        if hasattr(type(cb), hook) and getattr(type(cb), hook) is not getattr(Callback, hook, None):
            raise ValueError(f"callbacks: {type(cb).__name__}.{hook} would never be called: mlp_gpu's fit "
                             "calls on_(train_)batch_begin/end, on_epoch_*, on_train_* and on_test_begin/end "
                             f"(once per validation pass), not {hook}")


class History(Callback):
    """Per-epoch logs: ``history.history["val_accuracy"][-1]``, ``history.epoch``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path) -> Path:
        """Write loss and accuracy curves, training against validation, as a PNG; return its path."""
        from ..plots import plot_history

        return plot_history(self, path)


class CallbackList:
    """Calls each hook on every callback, in order: the user's, then History (then the progress bar)."""

    def __init__(self, callbacks, model, history):
        if isinstance(callbacks, Callback):  # Keras accepts a single callback too
            callbacks = [callbacks]
        elif callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of Callback objects, got {type(callbacks).__name__}")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            _check_callback(cb)
        # History after the user's callbacks, as in Keras: keys they add to the logs (learning_rate) are kept.
        self.callbacks = callbacks + [history]
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def append(self, cb):
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

    def on_batch_begin(self, batch):
        for cb in self._batch_begin:
            cb.on_train_batch_begin(batch, {})

    def on_batch_end(self, batch, logs):
        for cb in self._batch_end:
            cb.on_train_batch_end(batch, logs)

    def on_test_begin(self):
        for cb in self.callbacks:
            cb.on_test_begin({})

    def on_test_end(self, logs):
        for cb in self.callbacks:
            cb.on_test_end(logs)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)
        # who takes the per-batch hooks is fixed by now: not asked again every step
        self._batch_begin = [cb for cb in self.callbacks if cb.wants_batch_begin]
        self._batch_end = [cb for cb in self.callbacks if cb.wants_batch_end]

    # Every hook gets a logs dict, as in Keras: a user's hook may take ``logs`` without a default.
    def on_train_begin(self):
        for cb in self.callbacks:
            cb.on_train_begin({})

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(dict(logs or {}))

    def on_epoch_begin(self, epoch):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_progress(self, step, logs):
        for cb in self.callbacks:
            if cb.wants_progress:
                cb.on_progress(step, logs)


class LambdaCallback(Callback):
    """Keras' callback made of functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Each function takes the arguments of the hook it replaces (``epoch, logs``; ``batch, logs``; ``logs``).
    """

    HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
             "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
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
