"""One training step and what it runs on: the device-resident data (DeviceData), the running sums the
host reads a few times an epoch (Sums), the step itself, and the runner of an epoch's steps over each
data part (PartRunner), which asks the backend for a runner (a CUDA graph on a GPU)."""
from __future__ import annotations

import contextlib
import logging

import numpy as np

from ..backend.base import ACC, ACC_SIZE
from ..backend.base import StepRunner as BaseRunner
from ..distributed.parallel import FitPlan

log = logging.getLogger("mlp_gpu")


class DeviceData:
    """A data set resident on the device: x, y (None for predict), a row permutation and a cursor.

    The step gathers the batch at the cursor (``gather``) and ``backend.advance`` moves the cursor
    on the device, so a captured step needs no host work. A streamed source, holding one chunk at a
    time, offers the same ``rows``, ``parts``, ``gather`` and ``cursor``.
    """

    streamed = False

    def __init__(self, backend, x, y=None):
        self.backend = backend
        self.rows = x.shape[0]
        self.x = backend.asarray(x)
        self.y = None if y is None else backend.asarray(y)
        self.perm = backend.asarray(np.arange(self.rows, dtype=np.int64))
        self.cursor = backend.zeros(1, np.int64)

    def begin_epoch(self, order=None) -> None:
        """Rewind to the first batch; with ``order`` (a host permutation of the rows) visit rows in that order."""
        if order is not None:  # a rank of a distributed fit visits only its share: a prefix of perm
            self.backend.copy_from_host(self.perm[:len(order)], order)
        self.cursor[...] = 0

    def parts(self, order=None):
        """The pass as parts: this whole data set, once, its rows in ``order`` (see ``begin_epoch``)."""
        self.begin_epoch(order)
        yield self

    def buffers(self) -> list:
        return [self]

    def step_rows(self, batch_size: int) -> int:
        return min(batch_size, self.rows)

    def gather(self, ws) -> None:
        """ws.x (and ws.y) <- the ws.rows rows at the cursor; the cursor does not move."""
        self.backend.gather_rows(self.x, self.perm, self.cursor, ws.x)
        if self.y is not None:
            self.backend.gather_rows(self.y, self.perm, self.cursor, ws.y)


class Sums:
    """The running sums of one pass, on the device (float64): what the logs are made of.

    ``buffer`` = [sum of row losses, correct rows, steps after which the summed loss was still
    finite, then each metric's slots but the accuracies' (one, or a confusion metric's counts)]; the
    loss op adds to the first two, ``backend.advance`` counts the third (it names the step a run diverged
    at), ``backend.metric_sum`` or a metric's ``device_sum`` fill the metrics' slots (``model.metric_slots``).
    The host reads them only through ``read``.
    """

    LOSS, CORRECT, FINITE_STEPS = ACC["loss_sum"], ACC["correct"], ACC["finite_steps"]  # shared with the kernels
    SIZE = ACC_SIZE

    def __init__(self, model, plan=None):
        self.model = model
        self.plan = plan
        self.buffer = model.backend.zeros(model.sums_size, np.float64)

    def reset(self) -> None:
        self.buffer[...] = 0

    def read(self, local: bool = False) -> np.ndarray:
        """A host copy; in a distributed fit reduced over the ranks (a collective) unless ``local``."""
        host = self.model.backend.to_host(self.buffer)
        if self.plan is not None and not local:
            host = self.plan.reduce_sums(host, least=(self.FINITE_STEPS,))
        return host

    def names(self, validation: bool) -> list[str]:
        """The keys of each epoch's logs (Keras 2's ``params["metrics"]``), known before training."""
        names = self.model.metrics_names
        return names + ["val_" + name for name in names] if validation else names

    def logs(self, rows: int, local: bool = False) -> dict:
        """Mean loss and each metric over ``rows`` rows (all ranks' unless ``local``): one host read."""
        return self.model.sum_logs(self.read(local), rows)


def _batch_loss(model, ws, data, sums, training=False):
    """Gather the batch at the cursor, run the forward pass and the loss (gradient into ws.dz[-1])."""
    data.gather(ws)
    model.forward(ws.x, ws, logits=True, training=training)
    model.loss_and_count(ws, ws.y, sums)


def _compute_gradients(model, ws, data, sums):
    if ws.rows == 0:  # a rank without rows in a distributed epoch's last step contributes zeros
        model.grads.fill(0)
        return
    _batch_loss(model, ws, data, sums, training=True)
    model.backward(ws.x, ws)


def _apply_gradients(model, ws, data, sums):
    freeze = getattr(model, "_freeze", None)  # frozen layers (models/trainable.py): zero gradient, same weights
    if freeze is not None:
        freeze.before_update(model.params, model.grads)
    model.optimizer.update(model.params, model.grads)
    for layer in model.compute_layers:  # Keras' constraints, after the update (Layer.apply_constraints)
        layer.apply_constraints(model.backend)
    if freeze is not None:  # last: a frozen weight stays exactly as it was, constraint or not
        freeze.after_update(model.params)
    model.backend.advance(data.cursor, ws.rows, model.optimizer.hyper, sums)


def train_step(model, ws, data, sums, sync=None):
    """One step on device buffers only (so it can be captured): gather, forward, loss, backward,
    (the gradient all-reduce ``sync``,) update, advance the cursor and the counters."""
    _compute_gradients(model, ws, data, sums)
    if sync is not None:
        sync()
    _apply_gradients(model, ws, data, sums)


def _step_runner(model, ws, data, sums, sync, max_steps=None):
    """backend.make_runner of one step; with ``sync`` (several ranks) the backend gets the step's parts
    around the all-reduce, otherwise what it needs to build its own fused step."""
    make = model.backend.make_runner
    if getattr(model, "run_eagerly", False):  # Keras' run_eagerly: plain steps, no captured graphs or fused routes
        return BaseRunner(lambda: train_step(model, ws, data, sums, sync))
    uncaptured = [m.name for m in getattr(model, "compiled_metrics", ()) if m.kind == "device"]
    if uncaptured and getattr(model.backend, "graph", False):
        # a confusion metric's counts are array expressions, whose temporaries a captured graph must not allocate
        log.info("step for %d rows: plain steps, not captured (metrics %s sum counts by array expressions)",
                 ws.rows, uncaptured)
        return BaseRunner(lambda: train_step(model, ws, data, sums, sync))
    if sync is None:
        return make(lambda: train_step(model, ws, data, sums), ws.rows, max_steps, model=model, data=data, acc=sums)
    before = lambda: _compute_gradients(model, ws, data, sums)  # noqa: E731
    after = lambda: _apply_gradients(model, ws, data, sums)  # noqa: E731
    return make(lambda: train_step(model, ws, data, sums, sync), ws.rows, max_steps, split=(before, sync, after),
                model=model)  # the model: a backend may see that it cannot capture the step (constraints)


class PartRunner:
    """Runs the training steps of an epoch, a part at a time: ``run(part, first, count)`` runs the part's
    steps first .. first + count - 1. ``block`` is the most steps the loop hands over in one call (the
    loop reads logs and callbacks between calls): the backend's choice, 1 on the CPU; a GPU backend may
    replay one CUDA graph of several steps (CupyBackend(steps_per_graph=...)).

    Each part buffer (a resident data set has one, a streamed one two stages) gets a full-batch runner
    from ``backend.make_runner`` here, before the first epoch; a part's shorter last batch gets a
    one-step runner (made when first met). Given the model, the part and the sums a backend may build
    its own fused step. In a distributed fit (resident data only) the ``plan`` gives this rank's share of
    each step's rows and the all-reduce between backward and update.
    """

    def __init__(self, model, data, batch_size: int, sums: Sums, plan=None):
        self.model, self.sums = model, sums
        self.plan = plan = plan or FitPlan("single", batch_size, data.rows)
        self.streamed = data.streamed
        if data.streamed:  # one process: every part's own batches, its last one maybe shorter
            self.rows_per_step, self.steps, self.rows = data.step_rows(batch_size), data.steps(batch_size), data.rows
        else:
            self.rows_per_step, self.steps, self.rows = plan.full_share[1], plan.steps, plan.local_rows
        self.full = model.workspace(self.rows_per_step)
        self._runners = {}
        last = data.sizes[-1] if data.streamed else None  # the rows of a streamed pass' last part
        steps, rows = (-(-last // self.rows_per_step), last) if data.streamed else (self.steps, self.rows)
        self.block = min(self._runner(part, self.rows_per_step, last=False).block for part in data.buffers())
        for part in data.buffers():  # the pass' last batch too: no capture falls inside the first epoch
            self._runner(part, rows - (steps - 1) * self.rows_per_step, last=True)

    def _runner(self, part, rows, last):
        """The runner of steps of ``rows`` rows on this part's buffers (``last``: a pass's last step)."""
        plan = self.plan
        if last and rows == self.rows_per_step and plan.last_weight == plan.full_weight:
            last = False  # the same step as a full batch
        key = (id(part), rows, last)
        runner = self._runners.get(key)
        if runner is None:
            ws = self.full.view(rows) if last else self.full
            runner = self._runners[key] = _step_runner(self.model, ws, part, self.sums.buffer,
                                                       plan.gradient_sync(self.model, last=last),
                                                       max_steps=1 if last else None)
        return runner

    def part_shape(self, part) -> tuple[int, int]:
        """(steps, rows this rank trains) of one part of the pass."""
        if not self.streamed:
            return self.steps, self.rows
        return -(-part.rows // self.rows_per_step), part.rows

    def run(self, part, first: int, count: int = 1) -> None:
        steps, rows = self.part_shape(part)
        full = min(first + count, steps - 1) - first  # full batches among these steps
        if full > 0:
            self._runner(part, self.rows_per_step, last=False)(full)
        if first + count >= steps:  # the part's last (possibly shorter) batch
            self._runner(part, rows - (steps - 1) * self.rows_per_step, last=True)(1)


def _step_blocks(runner: PartRunner, parts, block: int):
    """(part, first step, step count, rows) of each call an epoch makes: every part's steps, in blocks."""
    with contextlib.closing(parts):  # a streamed pass stops its reader when the loop leaves early
        for part in parts:
            steps, rows = runner.part_shape(part)
            for first in range(0, steps, block):
                count = min(block, steps - first)
                end = min((first + count) * runner.rows_per_step, rows)
                yield part, first, count, end - first * runner.rows_per_step


def evaluate_data(model, data, ws, sums: Sums, rows=None) -> dict:
    """Loss and metrics over a whole data set (resident or streamed), in order; one host read at the end.

    ``rows``: the rows over all ranks when each evaluates its share (``sums`` then reduces them).
    """
    sums.reset()
    seen = 0
    with contextlib.closing(data.parts()) as parts:
        for part in parts:
            for start in range(0, part.rows, ws.rows):
                n = min(ws.rows, part.rows - start)
                _batch_loss(model, ws.view(n) if n < ws.rows else ws, part, sums.buffer)
                model.backend.advance(part.cursor, n)
                seen += n
    return sums.logs(seen if rows is None else rows)
