"""What a data-parallel ``fit`` does on each rank: which rows it takes, what it reduces, who writes.

Every rank holds the whole data set and the same model. Each epoch every rank draws the same
permutation from (seed, epoch); step s covers the global batch perm[s*G : (s+1)*G], and rank r takes
its contiguous share of it (shares differ by at most one row). Each rank's mean gradient is weighted
by its share of the rows and the weighted gradients are summed in one all-reduce, so the update is the
single-process mean over the global batch, to float rounding, however unevenly the rows split; a rank
with no rows in the last step contributes zeros. Every rank runs the same number of steps.
"""
from __future__ import annotations

import contextlib
import math
import traceback

import numpy as np

from .communicator import Communicator, SingleProcess
from .engine import init

BATCH_MODES = ("global", "per_rank")


class DataParallel:
    """How ``fit`` spreads training over the ranks (``fit(..., distribute=DataParallel(...))``).

    engine: ``"auto"`` (from how the program was started), ``"single"``, ``"mpi"``, ``"nccl"`` or a
        Communicator.
    batch: ``"global"`` (default): ``batch_size`` rows per step in all, split across the ranks, the same
        update as one process. ``"per_rank"``: each rank takes ``batch_size`` rows, so a step sees
        ``size * batch_size``; the learning rate is scaled by ``size`` after a linear warm-up over
        ``warmup_epochs`` (Goyal et al., 2017) and put back when fit returns.
    """

    def __init__(self, engine="auto", batch="global", warmup_epochs=5):
        if batch not in BATCH_MODES:
            raise ValueError(f"DataParallel(batch): expected one of {', '.join(BATCH_MODES)}, got {batch!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)) or warmup_epochs < 0:
            raise ValueError(f"DataParallel(warmup_epochs): expected a number >= 0, got {warmup_epochs!r}")
        self.engine, self.batch, self.warmup_epochs = engine, batch, warmup_epochs

    def communicator(self) -> Communicator:
        if isinstance(self.engine, Communicator):
            return self.engine
        if self.engine == "single":  # this fit alone, on this process, whatever else runs
            return SingleProcess()
        return init(self.engine)


def resolve(distribute) -> DataParallel:
    """fit's ``distribute`` argument (None, an engine name, a Communicator or a DataParallel) as a DataParallel."""
    if distribute is None:
        return DataParallel()
    if isinstance(distribute, DataParallel):
        return distribute
    if isinstance(distribute, (str, Communicator)):
        return DataParallel(engine=distribute)
    raise TypeError(f"distribute: expected None, an engine name, a Communicator or a DataParallel, "
                    f"got {type(distribute).__name__}")


def share(rows: int, rank: int, size: int) -> tuple[int, int]:
    """(offset, count) of rank's contiguous share of ``rows`` split across ``size`` ranks."""
    base, extra = divmod(rows, size)
    return rank * base + min(rank, extra), base + (rank < extra)


class FitPlan:
    """One fit's data-parallel plan for this rank. With the single-process engine every hook is a no-op."""

    def __init__(self, distribute, batch_size: int, rows: int):
        strategy = resolve(distribute)
        self.comm = comm = strategy.communicator()
        self.rank, self.size = comm.rank, comm.size
        self.single = comm.engine == "single"  # an MPI or NCCL engine runs its collectives even on one rank
        self.per_rank = strategy.batch == "per_rank" and not self.single
        self.warmup_epochs = strategy.warmup_epochs
        self.global_batch = batch_size * (self.size if self.per_rank else 1)
        self.rows = rows
        self.steps = math.ceil(rows / self.global_batch)
        last = rows - (self.steps - 1) * self.global_batch
        self.full_share = share(min(self.global_batch, rows), self.rank, self.size)
        self.last_share = share(last, self.rank, self.size)
        if min(self.global_batch, rows) < self.size:  # the same on every rank: all raise, none waits
            raise ValueError(f"batch_size: {min(self.global_batch, rows)} rows per step leave some of the {self.size} "
                             f"ranks without rows; use at least {self.size} rows per step")
        self.local_rows = (self.steps - 1) * self.full_share[1] + self.last_share[1]
        # weight of this rank's mean gradient in the global mean: its share of the step's rows
        self.full_weight = self.full_share[1] / min(self.global_batch, rows)
        self.last_weight = self.last_share[1] / last
        self.base_lr = None

    @property
    def is_chief(self) -> bool:
        return self.comm.is_chief

    # ---- set-up ------------------------------------------------------------------------
    def check_same_everywhere(self, **values) -> None:
        """Raise on every rank if the ranks disagree on these integers (they would wait on each other forever)."""
        if self.single:
            return
        mine = np.array(list(values.values()), np.float64)
        low, high = mine.copy(), mine.copy()
        self.comm.allreduce(low, "min")
        self.comm.allreduce(high, "max")
        differ = [f"{k} ({int(a)} to {int(b)})" for k, a, b in zip(values, low, high) if a != b]
        if differ:
            raise ValueError(f"distributed fit: the {self.size} ranks disagree on " + ", ".join(differ)
                             + "; every rank must call fit with the same data and arguments")

    def agree_seed(self, seed: int) -> int:
        return seed if self.single else int(self.comm.broadcast_object(seed))

    def broadcast_state(self, model) -> None:
        """Rank 0's weights and optimizer state (slots, learning rate, iterations) on every rank."""
        if self.single:
            return
        be, opt = model.backend, model.optimizer
        for buf in (model.params, opt.state, opt.hyper):
            if buf.size:
                be.broadcast(self.comm, buf)

    def local_order(self, perm: np.ndarray) -> np.ndarray:
        """This rank's rows of the global permutation, step after step."""
        if self.single:
            return perm
        g, steps = self.global_batch, self.steps
        (f0, fn), (l0, ln) = self.full_share, self.last_share
        full = perm[:(steps - 1) * g].reshape(steps - 1, g)[:, f0:f0 + fn].ravel()
        return np.concatenate([full, perm[(steps - 1) * g:][l0:l0 + ln]])

    def validation_share(self, rows: int) -> slice:
        """This rank's contiguous share of the validation rows (the sums are reduced afterwards)."""
        if self.single:
            return slice(0, rows)
        start, count = share(rows, self.rank, self.size)
        return slice(start, start + count)

    def gradient_sync(self, model, last: bool):
        """The step's one all-reduce over the flat gradient buffer (None with one rank)."""
        if self.single:
            return None
        return GradientSync(self.comm, model.backend, model.grads, self.last_weight if last else self.full_weight)

    # ---- during training -----------------------------------------------------------------
    def reduce_sums(self, host: np.ndarray, least=(2,)) -> np.ndarray:
        """A pass's running sums of this rank -> summed over the ranks; the ``least`` slots (the finite-step
        count) take their smallest value instead."""
        if self.single:
            return host
        total, low = host.astype(np.float64), host.astype(np.float64)
        self.comm.allreduce(total, "sum")
        self.comm.allreduce(low, "min")
        total[list(least)] = low[list(least)]
        return total

    def rows_trained(self, local_rows: int) -> int:
        """Rows an epoch trained over all ranks: with several, every epoch runs to its end."""
        return local_rows if self.single else self.rows

    def stop_mid_epoch(self, requested: bool) -> bool:
        """Ranks leave a step loop together: with several, a stop asked mid-epoch waits for the epoch's end."""
        return requested and self.single

    def agree_stop(self, requested: bool) -> bool:
        """Stop if any rank asked to."""
        if self.single:
            return requested
        flag = np.array([1.0 if requested else 0.0])
        return bool(self.comm.allreduce(flag, "max")[0])

    @contextlib.contextmanager
    def fail_together(self):
        """An exception on one rank ends every rank (the others would wait in a collective forever)."""
        if self.single:
            yield
            return
        try:
            yield
        except BaseException as exc:  # KeyboardInterrupt too: the other ranks sit in an all-reduce
            self.comm.abort("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    # ---- per-rank batches: the learning rate ----------------------------------------------------
    def start_learning_rate(self, optimizer) -> None:
        if self.per_rank:
            self.base_lr = float(optimizer.learning_rate)

    def warm_up(self, optimizer, step: int) -> None:
        """Per-rank batches: lr = base * (1 + (size - 1) * min(1, step / warm-up steps)), step counted from epoch 0."""
        if self.base_lr is None:
            return
        total = self.warmup_epochs * self.steps
        ramp = 1.0 if step >= total else step / total
        optimizer.learning_rate = self.base_lr * (1 + (self.size - 1) * ramp)

    def warming_up(self, step: int) -> bool:
        """True while the learning rate still changes (through the first step at the full rate)."""
        return self.base_lr is not None and step <= self.warmup_epochs * self.steps

    def end_learning_rate(self, optimizer) -> None:
        if self.base_lr is not None:
            optimizer.learning_rate = self.base_lr


class GradientSync:
    """grads <- sum over ranks of weight * grads: one in-place all-reduce per step."""

    def __init__(self, comm, backend, grads, weight: float):
        self.comm, self.backend, self.grads = comm, backend, grads
        self.weight = None if weight == 1.0 else weight
        self.in_graph = backend.collective_in_graph(comm)

    def __call__(self):
        self.backend.allreduce(self.comm, self.grads, "sum", scale=self.weight)
