"""Callbacks with Keras names and hooks, the History they fill, and the progress bar.

Per-step hooks are deliberately absent: reading device state every step would
force a GPU sync. ``on_progress`` is called a few times a second instead.
"""
from __future__ import annotations

import sys

import numpy as np


class Callback:
    wants_progress = False

    def set_model(self, model):
        self.model = model

    def set_params(self, params: dict):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_progress(self, step, logs): ...


class History(Callback):
    """Per-epoch logs: ``history.history["val_accuracy"][-1]``, ``history.epoch``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class CallbackList:
    """Calls each hook on every callback, History first."""

    def __init__(self, callbacks, model, history):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected mlp_gpu Callback objects, got {type(cb).__name__}")
        self.callbacks = [history] + callbacks
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def append(self, cb):
        cb.set_model(self.model)
        self.callbacks.append(cb)

    @property
    def wants_progress(self):
        return any(cb.wants_progress for cb in self.callbacks)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def on_train_begin(self):
        for cb in self.callbacks:
            cb.on_train_begin()

    def on_train_end(self):
        for cb in self.callbacks:
            cb.on_train_end()

    def on_epoch_begin(self, epoch):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_progress(self, step, logs):
        for cb in self.callbacks:
            if cb.wants_progress:
                cb.on_progress(step, logs)


def _fmt(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgressBar(Callback):
    """verbose=1: a tqdm bar per epoch with ETA, samples/s and running metrics; verbose=2: a line per epoch."""

    def __init__(self, verbose=1, file=None):
        self.verbose = verbose
        self.file = file or sys.stdout
        self.wants_progress = verbose == 1
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.params["samples"], unit="sample", unit_scale=True, file=self.file,
                            desc=f"Epoch {epoch + 1}/{self.params['epochs']}", leave=True, dynamic_ncols=True)

    def on_progress(self, step, logs):
        if self.bar is not None:
            self.bar.n = min(step * self.params["batch_size"], self.params["samples"])
            self.bar.set_postfix_str(_fmt(logs), refresh=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.n = self.params["samples"]
            self.bar.set_postfix_str(_fmt(logs or {}), refresh=True)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {_fmt(logs or {})}", file=self.file, flush=True)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the best epoch's weights are put back at the end
    of training, whether or not it stopped early.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", restore_best_weights=False):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping(mode): expected 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping(patience): expected an int >= 0, got {patience!r}")
        self.monitor, self.patience = monitor, patience
        self.min_delta = abs(float(min_delta))
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.sign = 1.0 if mode == "min" else -1.0
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best = np.inf
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise KeyError(f"EarlyStopping(monitor={self.monitor!r}): not among the logged "
                           f"metrics {sorted(logs or {})}")
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
