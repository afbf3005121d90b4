"""Callbacks that set the learning rate: ``LearningRateScheduler`` (a function of the epoch) and
``ReduceLROnPlateau`` (Keras' rules); both write the device slot the next step reads."""
from __future__ import annotations

import logging

import inspect

import numpy as np

from .._checks import check_int, check_number
from .base import Callback
from .monitor import _improves, _monitor_mode

log = logging.getLogger("mlp_gpu")


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
        super().__init__()
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
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:  # Keras takes and ignores any; a misspelt argument is an error here
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}; it takes monitor, factor, "
                            "patience, verbose, mode, min_delta, cooldown and min_lr")
        self.factor = check_number(factor, "ReduceLROnPlateau(factor)", 0, 1, high_open=True)
        self.patience = check_int(patience, "ReduceLROnPlateau(patience)", 0)
        self.cooldown = check_int(cooldown, "ReduceLROnPlateau(cooldown)", 0)
        self.monitor, self.verbose = monitor, verbose
        self.min_delta = abs(check_number(min_delta, "ReduceLROnPlateau(min_delta)"))
        self.min_lr = check_number(min_lr, "ReduceLROnPlateau(min_lr)", 0)
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
