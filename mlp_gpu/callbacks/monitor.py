"""Callbacks that watch a logged value: ``EarlyStopping`` with Keras' stopping rules, ``TerminateOnNaN``, and
the one 'did the monitor improve?' rule that EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share."""
from __future__ import annotations

import logging

import math


from .._checks import check_int, check_number
from .base import Callback

log = logging.getLogger("mlp_gpu")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Keras 3's rules).

    ``baseline``: an improvement resets the patience only when it also beats the baseline.
    ``start_from_epoch``: epochs before it are not monitored (a warm-up). With ``restore_best_weights``
    the best epoch's weights are put back at the end of training, whether or not it stopped early.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience = monitor, check_int(patience, "EarlyStopping(patience)", 0)
        self.min_delta = abs(check_number(min_delta, "EarlyStopping(min_delta)"))
        self.verbose = check_int(verbose, "EarlyStopping(verbose)", 0)
        self.sign = _monitor_mode(monitor, mode, "EarlyStopping")
        self.baseline = None if baseline is None else check_number(baseline, "EarlyStopping(baseline)")
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int(start_from_epoch, "EarlyStopping(start_from_epoch)", 0)
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        _check_monitor(self, "EarlyStopping")
        self.best, self.best_epoch, self.best_weights = None, 0, None
        self.wait, self.stopped_epoch = 0, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise KeyError(f"EarlyStopping(monitor={self.monitor!r}): not among the logged "
                           f"metrics {sorted(logs or {})}")
        current = float(logs[self.monitor])
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if _improves(self.sign, current, self.best, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or _improves(self.sign, current, self.baseline, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _check_monitor(callback, who):
    """Before training: ``monitor`` must be among the names fit will log (``params["metrics"]``)."""
    logged = getattr(callback, "params", {}).get("metrics")
    if logged is not None and callback.monitor not in logged:
        raise ValueError(f"{who}(monitor={callback.monitor!r}): this fit logs only {logged}"
                         + ("; pass validation_data or validation_split" if callback.monitor.startswith("val_")
                            else ""))


def _improves(sign, value, best, min_delta=0.0) -> bool:
    """Keras' rule for every monitoring callback: better than ``best`` (None: anything) by more than
    ``min_delta``, in the direction ``sign`` (1: lower is better, -1: higher)."""
    return best is None or sign * (value - best) + min_delta < 0


def _monitor_mode(monitor, mode, who):
    if not isinstance(monitor, str):
        raise TypeError(f"{who}(monitor): expected the name of a logged metric, such as 'val_loss', "
                        f"got {type(monitor).__name__} {monitor!r}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}(mode): expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return 1.0 if mode == "min" else -1.0


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite: quietly (``model.stop_training``, the other
    callbacks' ``on_train_end`` still run; without this callback ``fit(on_nan="raise")`` raises
    TrainingDiverged) or, with ``raise_error=True``, by raising RuntimeError at once, as Keras does.
    Checked at each progress refresh and epoch end, not per step: that would sync the GPU every step.
    """

    wants_progress = True

    def __init__(self, raise_error: bool = False):
        super().__init__()
        if not isinstance(raise_error, bool):
            raise TypeError(f"TerminateOnNaN(raise_error): expected True or False, got {raise_error!r}")
        self.raise_error = raise_error
        self.epoch = 0
        self.stopped = None

    def _check(self, logs, where):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered {where}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            log.warning("TerminateOnNaN: loss is %s %s; stopping", loss, where)
            self.model.stop_training = True
            self.stopped = where

    def on_progress(self, step, logs):
        self._check(logs, f"by step {step} of epoch {self.epoch + 1}")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"at the end of epoch {epoch + 1}")
