"""Keras' ``Callback``: the hooks fit calls, with Keras' names and arguments.

Reading device state every step would force a GPU sync, so the trainer calls ``on_batch_end`` only when
some callback overrides it; ``on_progress`` (running loss and accuracy) comes a few times a second instead,
and costs nothing when no callback wants it.
"""
from __future__ import annotations


class Callback:
    """Keras' ``Callback()``: override the hooks you need; ``self.model`` and ``self.params`` are set by fit."""

    wants_progress = False
    chief_only = False  # True: prints or writes files, so a distributed fit runs it on rank 0 alone

    def __init__(self):
        self.params = {}
        self.model = None

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
