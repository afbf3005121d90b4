"""Callbacks with Keras names and hooks, the History they fill, and the progress bar.

Reading device state every step would force a GPU sync, so the trainer calls
``on_batch_end`` only when some callback overrides it; ``on_progress`` (running
loss and accuracy) comes a few times a second instead, and costs nothing when
no callback wants it.
"""
from __future__ import annotations

import csv
import inspect
import logging
import math
import os
import string
import sys
from pathlib import Path

import numpy as np

from ._checks import check_int, check_number

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
        from .plots import plot_history

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


def _fmt(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgressBar(Callback):
    """verbose=1: a tqdm bar per epoch with ETA, samples/s and running metrics; verbose=2: a line per epoch."""

    chief_only = True

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
            self.bar.set_postfix_str(_fmt(logs or {}), refresh=False)  # close() draws the final state once
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {_fmt(logs or {})}", file=self.file, flush=True)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Keras 3's rules).

    ``baseline``: an improvement resets the patience only when it also beats the baseline.
    ``start_from_epoch``: epochs before it are not monitored (a warm-up). With ``restore_best_weights``
    the best epoch's weights are put back at the end of training, whether or not it stopped early.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
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


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) after each epoch or every ``save_freq`` batches, atomically.

    Keras 3's arguments. ``filepath`` may hold format fields: ``"ckpt-{epoch:02d}-{val_loss:.3f}.h5"``
    (and ``{batch}`` with an integer ``save_freq``); its folder is created when first needed. With
    ``save_best_only`` a file is written only when ``monitor`` beats the best so far (at first
    ``initial_value_threshold``, if given). A full save records the completed epochs and the seed, so
    ``--resume`` continues exactly. An integer ``save_freq`` reads the device every batch (slower).
    """

    chief_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        self.filepath = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else filepath
        if not isinstance(self.filepath, str):
            raise TypeError(f"ModelCheckpoint(filepath): expected a str or path, got {type(filepath).__name__}")
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.filepath) if name is not None]
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): not a valid template ({exc})") from None
        if any(not name or name[0].isdigit() for name in fields):
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): fields need names, such as {{epoch:02d}}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint(save_freq): expected 'epoch' or an int >= 1 (batches), "
                             f"got {save_freq!r}")
        self.monitor, self.save_best_only, self.save_weights_only = monitor, save_best_only, save_weights_only
        self.verbose = check_int(verbose, "ModelCheckpoint(verbose)", 0)
        self.sign = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.save_freq = save_freq
        self.best = (None if initial_value_threshold is None
                     else check_number(initial_value_threshold, "ModelCheckpoint(initial_value_threshold)"))
        self.saved: list[str] = []
        self._batches_since_save, self._epoch = 0, 0

    @property
    def wants_batch_end(self) -> bool:
        return self.save_freq != "epoch"

    def on_train_begin(self, logs=None):
        """Fail before training, not after the first epoch, on a template or monitor fit will never fill."""
        logged = getattr(self, "params", {}).get("metrics")
        if logged is None:
            return
        if self.save_best_only:
            _check_monitor(self, "ModelCheckpoint")
        try:
            self.filepath.format(epoch=1, batch=1, **{name: 0.5 for name in logged})
        except KeyError as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): field {{{exc.args[0]}}} is never "
                             f"logged by this fit; it logs epoch and {', '.join(logged)}") from None
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"ModelCheckpoint(filepath={self.filepath!r}): {exc}") from None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch, batch, logs):
        if not self.model.weights_finite():  # a diverged run (fit goes on, as Keras) never reaches a file
            log.warning("ModelCheckpoint: the weights after epoch %d are not finite; not saved, files on disk "
                        "keep the last finite weights", epoch + 1)
            return
        fields = dict(logs, epoch=epoch + 1) if batch is None else dict(logs, epoch=epoch + 1, batch=batch + 1)
        path = self.filepath.format(**fields)
        if self.save_best_only and not self._improved(epoch, logs, batch is None):
            return
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)  # records model.epochs_done, which fit sets before the epoch-end hooks
        self.saved.append(path)

    def _improved(self, epoch, logs, epoch_end) -> bool:
        if self.monitor not in logs:
            if epoch_end:
                raise KeyError(f"ModelCheckpoint(monitor={self.monitor!r}): not among the logged "
                               f"metrics {sorted(logs)}")
            return True  # batch logs hold no validation metrics: Keras saves then too
        current = float(logs[self.monitor])
        if not _improves(self.sign, current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
            return False
        if self.verbose > 0:
            best = "None" if self.best is None else f"{self.best:.5f}"
            print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}")
        self.best = current
        return True


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then each logged metric) to a CSV file, flushed each epoch."""

    chief_only = True

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = Path(filename), separator, append
        if not self.filename.parent.is_dir():
            raise FileNotFoundError(f"CSVLogger(filename): folder {str(self.filename.parent)!r} does not exist")
        self.keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and self.filename.exists() and self.filename.stat().st_size > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = csv.writer(self.file, delimiter=self.separator)
        self.keys = None
        self.header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not self.header_written:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [logs.get(k, "") for k in self.keys])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class TerminateOnNaN(Callback):
    """Stop training quietly when the loss becomes NaN or infinite (without it, fit raises
    TrainingDiverged). Checked at each progress refresh and epoch end, not per step: that would
    sync the GPU every step.
    """

    wants_progress = True

    def _check(self, logs, where):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            log.warning("TerminateOnNaN: loss is %s %s; stopping", loss, where)
            self.model.stop_training = True
            self.stopped = where

    def on_progress(self, step, logs):
        self._check(logs, f"by step {step} of epoch {self.epoch + 1}")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"at the end of epoch {epoch + 1}")


def _positional_count(fn) -> int | None:
    """How many positional arguments ``fn`` takes (None: unknown, or any number)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start from ``schedule(epoch, lr) -> new lr``, or from
    ``schedule(epoch)`` as Keras also accepts (the book's ``exponential_decay_fn(epoch)``)."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler(schedule): expected a callable, got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose
        self._takes_lr = _positional_count(schedule) != 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # as Keras: the History gets a "learning_rate" column
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, float(self.model.optimizer.learning_rate)) if self._takes_lr else self.schedule(epoch)
        self.model.optimizer.learning_rate = check_number(lr, "LearningRateScheduler: the schedule's result", 0,
                                                          low_open=True)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by ``min_delta``
    for ``patience`` epochs; then wait ``cooldown`` epochs; never below ``min_lr`` (Keras' rules).
    One host write of the rate per reduction: a captured graph reads it from the device."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        self.factor = check_number(factor, "ReduceLROnPlateau(factor)", 0, 1, high_open=True)
        self.patience = check_int(patience, "ReduceLROnPlateau(patience)", 0)
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau(cooldown)", 0)
        self.monitor, self.verbose = monitor, verbose
        self.min_delta = abs(check_number(min_delta, "ReduceLROnPlateau(min_delta)"))
        self.min_lr = float(min_lr)
        self.sign = _monitor_mode(monitor, mode, "ReduceLROnPlateau")

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        lr = logs["learning_rate"] = float(optimizer.learning_rate)  # one device read per epoch
        if self.monitor not in logs:
            log.warning("ReduceLROnPlateau: monitor %r is not among the logged metrics %s", self.monitor,
                        sorted(logs))
            return
        value = logs[self.monitor]
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(self.sign, value, self.best, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and lr > np.float32(self.min_lr):
                new_lr = max(lr * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


from .tensorboard import TensorBoard  # noqa: E402,F401  (after Callback, which it extends)


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
