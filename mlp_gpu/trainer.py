"""The fit / evaluate / predict loops.

One training step is gather → forward → loss → backward → update → advance,
all on preallocated buffers; the host reads the loss and accuracy
accumulators only at the end of an epoch or when the progress bar refreshes.
"""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time

import numpy as np

from . import losses
from .callbacks import CallbackList, History, ProgressBar, TerminateOnNaN

log = logging.getLogger("mlp_gpu")
EVAL_BATCH = 1024  # rows per forward pass in evaluate/predict: results do not depend on it


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and step.

    ``history`` holds the epochs completed before it; checkpoints written at their ends keep finite weights.
    """

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


def _check_int(value, arg, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{arg}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def check_inputs(model, x, arg="x") -> np.ndarray:
    """Return x as (rows, features) in the model's dtype (or uint8 pixels), or raise saying what is wrong."""
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except Exception:
            raise TypeError(f"{arg}: expected an array, got {type(x).__name__}") from None
    x = model.backend.to_host(x) if not isinstance(x, np.ndarray) else x
    shape = tuple(model.input_shape)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{arg}: expected a non-empty array of samples of shape {shape}, got shape {x.shape}")
    if x.shape[1:] != shape and x.shape[1:] != (model.in_dim,):
        raise ValueError(f"{arg}: expected samples of shape {shape} (array shape (rows, "
                         f"{', '.join(map(str, shape))})), got array shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{arg}: expected a numeric array, got dtype {x.dtype}")
    x = x.reshape(x.shape[0], model.in_dim)
    if x.dtype != np.uint8:
        x = np.ascontiguousarray(x, dtype=model.dtype)
        if not np.isfinite(x).all():
            bad = int(np.argmax(~np.isfinite(x).all(axis=1)))
            raise ValueError(f"{arg}: contains NaN or infinity (first in row {bad})")
    return x


class _Batches:
    """Device copies of a data set plus a permutation and a cursor for gather_rows."""

    def __init__(self, model, x, y):
        be = model.backend
        self.rows = x.shape[0]
        self.x = be.asarray(x)
        self.y = be.asarray(y)
        self.perm = be.asarray(np.arange(self.rows, dtype=np.int64))
        self.cursor = be.zeros(1, np.int64)


def _batch_loss(model, ws, data, acc):
    """Gather the batch at the cursor, run the forward pass and the loss (gradient into ws.dz[-1])."""
    be = model.backend
    be.gather_rows(data.x, data.perm, data.cursor, ws.x)
    be.gather_rows(data.y, data.perm, data.cursor, ws.y)
    model.forward(ws.x, ws, logits=True)
    model.loss_and_count(ws, ws.y, acc)


def _train_step(model, ws, data, acc):
    _batch_loss(model, ws, data, acc)
    model.backward(ws.x, ws)
    model.optimizer.update(model.params, model.grads)
    model.backend.advance(data.cursor, ws.rows, model.optimizer.hyper, acc)


def _logs(model, acc, rows, prefix=""):
    loss_sum, correct = model.backend.to_host(acc)[:2]
    logs = {prefix + "loss": float(loss_sum / rows)}
    if model.metrics:
        logs[prefix + "accuracy"] = float(correct / rows)
    return logs


def _evaluate_data(model, data, ws, acc):
    """Loss and metrics over a whole _Batches, in order; one host read at the end."""
    acc[...] = 0
    data.cursor[...] = 0
    for start in range(0, data.rows, ws.rows):
        n = min(ws.rows, data.rows - start)
        _batch_loss(model, ws.view(n) if n < ws.rows else ws, data, acc)
        model.backend.advance(data.cursor, n)
    return _logs(model, acc, data.rows)


def fit(model, x, y, batch_size=32, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, initial_epoch=0, seed=None):
    """Train the model; return a History of loss/accuracy (and val_*) per epoch. See Sequential.fit."""
    model._require_compiled("fit")
    batch_size = _check_int(batch_size, "batch_size", 1)
    epochs = _check_int(epochs, "epochs", 0)
    initial_epoch = _check_int(initial_epoch, "initial_epoch", 0)
    verbose = 1 if verbose == "auto" else verbose
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    x = check_inputs(model, x)
    y = losses.check_targets(model.loss, y, x.shape[0], model.output_units, model.dtype)
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split: expected a number in [0, 1), got {validation_split!r}")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data: expected a tuple (x_val, y_val)")
        x_val = check_inputs(model, validation_data[0], "validation_data[0]")
        y_val = losses.check_targets(model.loss, validation_data[1], x_val.shape[0], model.output_units, model.dtype)
    elif validation_split > 0:
        n_val = int(x.shape[0] * validation_split)  # Keras takes the last rows, before shuffling
        if n_val == 0 or n_val == x.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves {x.shape[0] - n_val} training "
                             f"and {n_val} validation rows of {x.shape[0]}; both must be at least 1")
        x, x_val, y, y_val = x[:-n_val], x[-n_val:], y[:-n_val], y[-n_val:]
    else:
        x_val = y_val = None

    be = model.backend
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (1 << 63))
    model.fit_seed = seed  # saved in checkpoints: epoch k's order depends only on (seed, k)
    train = _Batches(model, x, y)
    val = _Batches(model, x_val, y_val) if x_val is not None else None
    n = train.rows
    steps = math.ceil(n / batch_size)
    full = model.workspace(min(batch_size, n))
    last = full.view(n - (steps - 1) * batch_size)
    acc = be.zeros(3, np.float64)
    run_full = be.make_runner(lambda: _train_step(model, full, train, acc), full.rows)
    run_last = run_full if last.rows == full.rows else \
        be.make_runner(lambda: _train_step(model, last, train, acc), last.rows)
    val_ws = model.workspace(min(EVAL_BATCH, val.rows)) if val is not None else None

    history = History()
    cbs = CallbackList(callbacks, model, history)
    if verbose:
        cbs.append(ProgressBar(verbose))
    cbs.set_params({"epochs": epochs, "steps": steps, "samples": n, "batch_size": batch_size,
                    "verbose": verbose})
    model.stop_training = False
    model.history = history
    per_batch, progress = cbs.wants_batch_end, cbs.wants_progress
    diverged = None
    cbs.on_train_begin()
    try:
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            if shuffle:
                be.copy_from_host(train.perm, np.random.default_rng([seed, epoch]).permutation(n))
            train.cursor[...] = 0
            acc[...] = 0
            next_refresh = time.monotonic() + 0.25
            for step in range(steps):
                (run_full if step < steps - 1 else run_last)()
                if per_batch:  # a host read every step: only when a callback asked for it
                    cbs.on_batch_end(step, _logs(model, acc, min((step + 1) * batch_size, n)))
                if progress and step & 15 == 15 and time.monotonic() >= next_refresh:
                    cbs.on_progress(step + 1, _logs(model, acc, min((step + 1) * batch_size, n)))
                    next_refresh = time.monotonic() + 0.25
                if model.stop_training:
                    break
            logs = _logs(model, acc, n)
            if not math.isfinite(logs["loss"]):  # stop before callbacks can save non-finite weights
                diverged = _divergence(model, acc, epoch, steps, logs["loss"], history)
                model.stop_training = True
                break
            if val is not None:
                logs.update({"val_" + k: v for k, v in _evaluate_data(model, val, val_ws, acc).items()})
            with _interrupt_deferred():  # a Ctrl-C here must not cut a checkpoint save short
                model.epochs_done = epoch + 1
                cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        # Ctrl-C: keep what finished. The epoch in flight is dropped from the History; checkpoints
        # written at earlier epoch ends stay as they were.
        log.warning("fit interrupted; returning the History of %d completed epochs", len(history.epoch))
    cbs.on_train_end()
    if diverged is not None and not any(isinstance(cb, TerminateOnNaN) for cb in cbs.callbacks):
        raise diverged  # TerminateOnNaN asks for a quiet stop instead
    return history


@contextlib.contextmanager
def _interrupt_deferred():
    """Hold a SIGINT that arrives inside the block until the block is done (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _divergence(model, acc, epoch, steps, loss, history):
    step = int(model.backend.to_host(acc)[2]) + 1  # acc[2]: steps after which the loss was still finite
    message = (f"training diverged: the loss became {loss} at epoch {epoch + 1}, step {step} of {steps} "
               f"(learning rate {model.optimizer.learning_rate:g}); the model's weights are no longer finite. "
               "Lower the learning rate. Checkpoints already on disk keep the last finite weights.")
    log.error(message)
    return TrainingDiverged(message, history)


def evaluate(model, x, y, batch_size=EVAL_BATCH, verbose=0, return_dict=False):
    """Mean loss (and accuracy) over (x, y): a float, a [loss, accuracy] list, or a dict."""
    model._require_compiled("evaluate")
    batch_size = _check_int(batch_size, "batch_size", 1)
    x = check_inputs(model, x)
    y = losses.check_targets(model.loss, y, x.shape[0], model.output_units, model.dtype)
    data = _Batches(model, x, y)
    logs = _evaluate_data(model, data, model.workspace(min(batch_size, data.rows)),
                          model.backend.zeros(3, np.float64))
    if verbose:
        print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
    if return_dict:
        return logs
    return logs["loss"] if len(logs) == 1 else list(logs.values())


def predict(model, x, batch_size=EVAL_BATCH, verbose=0):
    """Outputs of the last layer (class probabilities for softmax) as a host float32 array."""
    model._require_built("predict")
    batch_size = _check_int(batch_size, "batch_size", 1)
    x = check_inputs(model, x)
    be = model.backend
    rows = x.shape[0]
    ws = model.workspace(min(batch_size, rows))
    out = np.empty((rows, model.output_units), model.dtype)
    data = _Batches(model, x, np.zeros(rows, np.int32))
    for start in range(0, rows, ws.rows):
        view = ws.view(min(ws.rows, rows - start))
        be.gather_rows(data.x, data.perm, data.cursor, view.x)
        out[start:start + view.rows] = be.to_host(model.forward(view.x, view))
        be.advance(data.cursor, view.rows)
    return out
