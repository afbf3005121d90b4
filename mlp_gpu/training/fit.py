"""The fit / evaluate / predict loops.

``fit`` is two parts: ``prepare_fit`` (argument checks, the validation split, the device data sets,
workspaces and step runner, gathered in a ``FitRun``) and ``run_epochs`` (the epoch loop and its
callbacks). The loop talks to three objects, the places to extend it:

- ``DeviceData``: a data set resident on the device, the step gathers its batches from it (rows, gather,
  cursor); ``parts`` yields it once per pass. A ``streaming.StreamedData`` (a data set the backend does
  not keep resident: a memmap, an h5py dataset, a PyDataset) yields its parts one after another, each
  with the same ``rows``, ``gather`` and ``cursor``;
- ``PartRunner``: runs training steps on a part, ``run(part, first, count)``; ``block`` is how many it
  takes per call;
- ``FitRun.plan``: the data-parallel plan (``distributed.parallel.FitPlan``): which rows this rank
  takes, the gradient all-reduce between backward and update, the sums reduced at epoch ends, who
  prints and writes. With one process (the single engine) every hook is a no-op.

One training step is gather → forward → loss → backward → update → advance, all on preallocated
buffers; the host reads the running sums (``Sums``) only at the end of an epoch, when the progress
bar refreshes, or every step when a callback asks for ``on_batch_end``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from .._checks import check_int, check_number
from ..callbacks.base import CallbackList, History
from ..callbacks.monitor import TerminateOnNaN
from ..callbacks.progress import _fmt
from ..data.sources import BatchSource, ChunkedSource, Source, _is_batch_source, as_source
from ..distributed.parallel import FitPlan
from ..data.placement import keeps_resident, place
from ..utils import EXAMPLE_EPOCHS, draw_seed
from .steps import DeviceData, PartRunner, Sums, _step_blocks, evaluate_data

log = logging.getLogger("mlp_gpu")
EVAL_BATCH = 1024  # rows per forward pass in evaluate/predict: results do not depend on it
ON_NAN = ("continue", "raise")  # fit(on_nan=...): Keras goes on with a nan loss; "raise" stops


class TrainingDiverged(FloatingPointError):
    """With ``fit(on_nan="raise")``: the training loss became NaN or infinite; the message names the
    epoch and step. (By default fit goes on, as Keras does, and the History records nan.)

    ``history`` holds the epochs completed before it; checkpoints written at their ends keep finite weights.
    """

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


def build_for_data(model, x) -> None:
    """Keras' deferred build from the first data, whatever holds it (an array, a source, a PyDataset)."""
    if model.built:
        return
    if isinstance(x, BatchSource):
        x = x.dataset
    if isinstance(x, ChunkedSource):
        x = x.x
    elif _is_batch_source(x):
        batch = x[0]
        x = batch if isinstance(batch, np.ndarray) else batch[0]
    model.build_for_data(x)


def bound_source(model, x, y=None, arg="x", y_arg="y", need_y=True) -> Source:
    """(x, y) as a data source (``data_sources.as_source``), checked against the model (built from it if need be)."""
    source = as_source(x, y, arg, y_arg)
    build_for_data(model, source)
    return source.bind(model, arg, need_y)


def device_data(model, source, batch_size, what, resident=None, rows=None):
    """A DeviceData (of the source's ``rows``, a slice, if given), or a StreamedData when the backend does not
    keep the source resident (``resident`` None: the backend decides); logged."""
    be = model.backend

    def make_resident(x, y):
        return DeviceData(be, x, y) if rows is None else DeviceData(be, x[rows], y[rows])

    return place(model, source, batch_size, what, make_resident, resident)


# ---- fit: preparation ---------------------------------------------------------------------------
@dataclass
class FitRun:
    """What fit prepared before the first epoch; the epoch loop reads only this."""

    train: DeviceData         # or a streaming.StreamedData
    val: DeviceData | None    # likewise
    val_ws: object            # the validation Workspace, or None
    val_rows: int             # validation rows over all ranks (each rank holds its share in val)
    sums: Sums
    runner: PartRunner
    batch_size: int
    epochs: int
    initial_epoch: int
    shuffle: bool
    seed: int                 # epoch k visits rows in an order that depends only on (seed, k)
    plan: FitPlan             # the data-parallel plan (see the module docstring)

    def parts(self, epoch: int):
        """The training data's parts for this epoch, their rows in an order that depends only on (seed, epoch)."""
        if self.train.streamed:
            return self.train.parts(self.seed, epoch, self.shuffle)
        return self.train.parts(self.epoch_order(epoch))

    def epoch_order(self, epoch: int):
        """This rank's host permutation of the training rows for this epoch, or None to keep the order."""
        if not self.shuffle and self.plan.single:
            return None
        rows = self.train.rows
        order = np.random.default_rng([self.seed, epoch]).permutation(rows) if self.shuffle else np.arange(rows)
        return self.plan.local_order(order)


def _validation_source(model, validation_data) -> Source:
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) != 2:
            raise ValueError("validation_data: expected a tuple (x_val, y_val) or a data source")
        return bound_source(model, *validation_data, arg="validation_data[0]", y_arg="validation_data[1]")
    if isinstance(validation_data, Source) or _is_batch_source(validation_data):
        return bound_source(model, validation_data, arg="validation_data")
    raise ValueError("validation_data: expected a tuple (x_val, y_val) or a data source (a PyDataset-like batch "
                     f"source), got {type(validation_data).__name__}")


def checked_fit_data(model, x, y, validation_split=0.0, validation_data=None):
    """Check x, y and the validation arguments; return bound data sources (training, validation or None)."""
    source = bound_source(model, x, y)
    check_number(validation_split, "validation_split", 0, 1, high_open=True)
    if validation_data is not None:
        return source, _validation_source(model, validation_data)
    if validation_split > 0:
        if not isinstance(source, ChunkedSource):
            raise ValueError("validation_split: only for arrays, memmaps and h5py datasets, not a "
                             f"{source.describe}; pass validation_data")
        n_val = int(source.rows * validation_split)  # Keras takes the last rows, before shuffling
        if n_val == 0 or n_val == source.rows:
            raise ValueError(f"validation_split={validation_split} leaves {source.rows - n_val} training "
                             f"and {n_val} validation rows of {source.rows}; both must be at least 1")
        return source.split(n_val, model)
    return source, None


def _check_optimizer_fits(model) -> None:
    """One optimizer object compiled into two models holds the state of the last one compiled: say so
    instead of failing inside the update with NumPy's broadcast message."""
    state = getattr(model.optimizer, "state", None)
    if state is not None and state.shape[-1] != model.params.size:
        raise ValueError(f"optimizer: this {type(model.optimizer).__name__} holds state for {state.shape[-1]:,} "
                         f"parameters, but model {model.name!r} has {model.params.size:,}: it was compiled into "
                         "another model since; give each model its own optimizer object, or compile this model again")


def prepare_fit(model, x, y, batch_size=32, epochs=1, validation_split=0.0, validation_data=None,
                shuffle=True, initial_epoch=0, seed=None, distribute=None) -> FitRun:
    """Check the arguments, split off validation rows, put the data on the device (or set up its
    streaming), make the workspaces.

    With several ranks: check they agree, take rank 0's seed, weights and optimizer state.
    """
    model._require_compiled("fit")
    _check_optimizer_fits(model)
    batch_size = check_int(batch_size, "batch_size", 1)
    epochs = check_int(epochs, "epochs", 0)
    initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
    source, val_source = checked_fit_data(model, x, y, validation_split, validation_data)
    model._claim_layers()  # its shared layers' weights as another model left them (models/sharing.py)
    be = model.backend
    resident = keeps_resident(be, source)
    val_resident = val_source is None or keeps_resident(be, val_source)
    val_rows = 0 if val_source is None else val_source.rows
    plan = FitPlan(distribute, batch_size, source.rows)
    plan.check_same_everywhere(rows=source.rows, validation_rows=val_rows, batch_size=batch_size, epochs=epochs,
                               initial_epoch=initial_epoch, parameters=model.params.size,
                               streamed=not resident, validation_streamed=not val_resident)
    if not plan.single:  # the same on every rank (checked just above): all raise, none waits
        _refuse_streamed_ranks(plan, ("x", source, resident), ("validation_data", val_source, val_resident))
    if seed is None:
        seed = draw_seed()
    seed = plan.agree_seed(seed)
    plan.broadcast_state(model)
    model.fit_seed = seed  # saved in checkpoints: epoch k's order depends only on (seed, k)
    train = device_data(model, source, batch_size, "fit", resident)
    # each rank evaluates its share of the validation rows; the sums are reduced
    val = None if val_source is None else device_data(model, val_source, EVAL_BATCH, "validation", val_resident,
                                                      plan.validation_share(val_rows))
    sums = Sums(model, None if plan.single else plan)
    runner = PartRunner(model, train, batch_size, sums, plan)
    val_ws = model.workspace(max(1, val.step_rows(EVAL_BATCH))) if val is not None else None
    return FitRun(train, val, val_ws, val_rows, sums, runner, batch_size, epochs, initial_epoch, bool(shuffle),
                  seed, plan)


def _refuse_streamed_ranks(plan, *data_sets) -> None:
    """A distributed fit takes resident data only: every rank holds the data set and takes its rows of each step."""
    for arg, source, resident in data_sets:
        if source is not None and not resident:
            raise ValueError(f"{arg}: a distributed fit ({plan.size} ranks) needs its data resident on every rank, "
                             f"but this {source.describe} is streamed (a batch source, "
                             "resident=False, or more than the backend keeps resident); train it on one process "
                             "(distribute='single'), or pass arrays that fit")


def _check_verbose(verbose):
    verbose = 1 if verbose == "auto" else verbose
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def fit(model, x, y, batch_size=32, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, initial_epoch=0, seed=None, on_nan="continue", distribute=None):
    """Train the model; return a History of loss/metrics (and val_*) per epoch. See Sequential.fit.

    ``distribute``: data-parallel training over the ranks of ``mlp_gpu.distributed`` (None: the engine
    chosen from how the program was started, one process by default; an engine name, a Communicator
    or a ``distributed.DataParallel``).
    """
    model._require_compiled("fit")
    verbose = _check_verbose(verbose)
    if on_nan not in ON_NAN:
        raise ValueError(f"on_nan: expected one of {ON_NAN}, got {on_nan!r}")
    epochs = example_epochs(epochs, initial_epoch)
    run = prepare_fit(model, x, y, batch_size, epochs, validation_split, validation_data, shuffle,
                      initial_epoch, seed, distribute)
    with run.plan.fail_together():  # several ranks: an exception on one ends them all, never a hang
        return run_epochs(model, run, callbacks, verbose, on_nan)


def example_epochs(epochs, initial_epoch):
    """``epochs``, or fewer where $MLP_GPU_EXAMPLE_EPOCHS caps the epochs each fit trains (the test that runs
    the documentation's examples sets it); a cap that applies is logged as a warning, never silent."""
    cap = os.environ.get(EXAMPLE_EPOCHS, "").strip()
    if not cap or not isinstance(epochs, int) or not isinstance(initial_epoch, int):
        return epochs  # fit's own checks report a bad epochs or initial_epoch
    cap = check_int(int(cap) if cap.isdigit() else cap, EXAMPLE_EPOCHS, 1)
    if epochs - initial_epoch > cap:
        log.warning("%s=%d: fit trains %d of its %d epochs", EXAMPLE_EPOCHS, cap, cap, epochs - initial_epoch)
        return initial_epoch + cap
    return epochs


def fit_header(model, run: FitRun) -> str:
    """What fit prints once before its first epoch under verbose=1: the backend and why it was chosen, and
    where each data set lives (resident or streamed)."""
    placements = [run.train.placement] + ([run.val.placement] if run.val is not None else [])
    return f"backend {model.backend.name} ({model.backend.chosen_because})\n" + "; ".join(placements)


# ---- fit: the epoch loop ------------------------------------------------------------------------
def _train_epoch(model, run: FitRun, cbs: CallbackList, epoch: int) -> dict:
    """One pass over the training rows, a part at a time; return its logs. Host reads only where callbacks ask."""
    runner, sums, plan = run.runner, run.sums, run.plan
    sums.reset()
    per_batch, progress = cbs.wants_batch_end, cbs.wants_progress
    batch_begin = cbs.wants_batch_begin
    block = 1 if per_batch or batch_begin else runner.block
    next_refresh = time.monotonic() + 0.25
    done = seen = 0  # steps and this rank's rows so far: logs without a collective
    with contextlib.closing(_step_blocks(runner, run.parts(epoch), block)) as blocks:
        for part, first, count, rows in blocks:
            if plan.warming_up(epoch * runner.steps + done):
                plan.warm_up(model.optimizer, epoch * runner.steps + done)
            if batch_begin:
                cbs.on_batch_begin(done)
            runner.run(part, first, count)
            done, seen = done + count, seen + rows
            if per_batch:  # a host read every step: only when a callback asked for it
                cbs.on_batch_end(done - 1, sums.logs(seen, local=True))
            if progress and done // 16 > (done - count) // 16 and time.monotonic() >= next_refresh:
                cbs.on_progress(done, sums.logs(seen, local=True))
                next_refresh = time.monotonic() + 0.25
            if plan.stop_mid_epoch(model.stop_training):
                break
    return sums.logs(plan.rows_trained(seen))  # the rows trained: all of them unless a callback stopped the epoch


def run_epochs(model, run: FitRun, callbacks=None, verbose=1, on_nan="continue") -> History:
    """The epoch loop: train, validate, call the callbacks; return the History.

    A non-finite epoch loss is logged once; with ``on_nan="continue"`` (Keras' behaviour) training goes
    on and the History records ``nan`` (ModelCheckpoint skips non-finite weights); with ``"raise"``
    the loop stops before any callback sees the epoch and raises TrainingDiverged after
    ``on_train_end`` (quietly returning the History when a TerminateOnNaN callback is present).
    """
    plan = run.plan
    if not plan.is_chief:  # rank 0 alone prints and writes files
        verbose = 0
        callbacks = [cb for cb in callbacks or [] if not cb.chief_only]
    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model)
    history = cbs.history
    if verbose == 1:
        print(fit_header(model, run), flush=True)
    cbs.set_params({"epochs": run.epochs, "steps": run.runner.steps, "samples": run.train.rows,
                    "batch_size": run.batch_size, "verbose": verbose, "do_validation": run.val is not None,
                    "metrics": run.sums.names(run.val is not None)})
    model.stop_training = False
    model.history = history
    diverged = None
    model._initial_epoch = None
    cbs.on_train_begin()
    initial_epoch = run.initial_epoch
    if model._initial_epoch is not None:  # BackupAndRestore resumed a run: its epoch and its shuffle seed
        initial_epoch, run.seed, model._initial_epoch = model._initial_epoch, model.fit_seed, None
    plan.start_learning_rate(model.optimizer)
    try:
        for epoch in range(initial_epoch, run.epochs):
            cbs.on_epoch_begin(epoch)
            logs = _train_epoch(model, run, cbs, epoch)
            if not math.isfinite(logs["loss"]) and diverged is None:
                diverged = _divergence(model, run, epoch, logs["loss"], history, on_nan)
                if on_nan == "raise":  # stop before callbacks can see the non-finite weights
                    model.stop_training = True
                    break
            if run.val is not None:
                cbs.on_test_begin()
                val_logs = evaluate_data(model, run.val, run.val_ws, run.sums, run.val_rows)
                cbs.on_test_end(dict(val_logs))
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            with _interrupt_deferred():  # a Ctrl-C here must not cut a checkpoint save short
                model.epochs_done = epoch + 1
                cbs.on_epoch_end(epoch, logs)
            model.stop_training = plan.agree_stop(model.stop_training)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        if not plan.single:  # the other ranks wait in a collective: fit's fail_together ends them all
            raise
        # Ctrl-C: keep what finished. The epoch in flight is dropped from the History; checkpoints
        # written at earlier epoch ends stay as they were.
        log.warning("fit interrupted; returning the History of %d completed epochs", len(history.epoch))
    plan.end_learning_rate(model.optimizer)
    if history.epoch:  # as Keras' fit: the moving averages (use_ema) become the weights
        model.optimizer.finalize_variable_values(model.params)
    cbs.on_train_end()
    if diverged is not None and on_nan == "raise" and not any(isinstance(cb, TerminateOnNaN) for cb in cbs.callbacks):
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


def _divergence(model, run: FitRun, epoch, loss, history, on_nan):
    step = int(run.sums.read(local=True)[Sums.FINITE_STEPS]) + 1
    message = (f"training diverged: the loss became {loss} at epoch {epoch + 1}, step {step} of {run.runner.steps} "
               f"(learning rate {model.optimizer.learning_rate:g}); the model's weights are no longer finite. "
               "Lower the learning rate. Checkpoints already on disk keep the last finite weights.")
    if on_nan == "raise":
        log.error(message)
    else:
        log.warning("%s Training goes on, as in Keras (ModelCheckpoint skips non-finite weights); "
                    "fit(on_nan='raise') stops with TrainingDiverged instead.", message)
    return TrainingDiverged(message, history)


def evaluate(model, x, y=None, batch_size=EVAL_BATCH, verbose=0, return_dict=False):
    """Mean loss (and accuracy) over (x, y) or a data source: a float, a [loss, accuracy] list, or a dict."""
    model._require_compiled("evaluate")
    batch_size = check_int(batch_size, "batch_size", 1)
    data = device_data(model, bound_source(model, x, y), batch_size, "evaluate")
    model._claim_layers()
    logs = evaluate_data(model, data, model.workspace(data.step_rows(batch_size)), Sums(model))
    if verbose:
        print(_fmt(logs))
    if return_dict:
        return logs
    return logs["loss"] if len(logs) == 1 else list(logs.values())


def predict(model, x, batch_size=EVAL_BATCH, verbose=0, training=False):
    """Outputs of the last layer (class probabilities for softmax) as a host float32 array, in row order.
    ``training``: the layers run as in training (``model(x, training=True)``; Dropout drops)."""
    batch_size = check_int(batch_size, "batch_size", 1)
    data = device_data(model, bound_source(model, x, need_y=False), batch_size, "predict")
    model._claim_layers()
    be = model.backend
    ws = model.workspace(data.step_rows(batch_size))
    widths = getattr(model, "output_widths", [model.output_units])  # a graph may have several outputs
    outs = [np.empty((data.rows, w), model.dtype) for w in widths]
    done = 0
    with contextlib.closing(data.parts()) as parts:
        for part in parts:
            for start in range(0, part.rows, ws.rows):
                view = ws.view(min(ws.rows, part.rows - start))
                part.gather(view)
                result = model.forward(view.x, view, training=training)
                for out, r in zip(outs, result if len(outs) > 1 else [result]):
                    out[done:done + view.rows] = be.to_host(r)
                be.advance(part.cursor, view.rows)
                done += view.rows
    outs = [out if done == len(out) else out[:done] for out in outs]  # a PyDataset's batches may be shorter
    return outs[0] if len(outs) == 1 else outs
