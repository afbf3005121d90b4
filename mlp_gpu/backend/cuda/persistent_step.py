"""The persistent route (issue 28): a block of training steps -- up to an epoch -- in one cooperative launch of
kernels/persistent_step.cu, each thread block keeping its slice of every layer's weights and optimizer state in
shared memory for the whole launch.

Whoever runs it supplies ``zeros``, ``asarray``, ``launch_cooperative(name, grid, block, shared_mem, args)``,
``shared_memory_limit()`` (dynamic shared memory one block may have, bytes), ``resident_blocks(name,
threads, shared_mem)`` (the blocks of that shape the whole device holds at once: the occupancy API times the
multiprocessors) and ``max_persistent_blocks()`` (the most blocks worth launching): the CuPy backend on a GPU
(cooperative.py), the test harness (tests/harness/persistent.py) on the CPU.
"""
from __future__ import annotations

import numpy as np

from ... import activations
from ..base import StepRunner
from ..shared_constants import (ACT_CODES, PERSIST_BLOCK, PERSIST_MAX_LAYERS, PERSIST_NET_INTS, PERSIST_OPT_CODES,
                               PERSIST_TABLE_INTS)
from ..step_spec import spec_from_model
from .fused_step import _resident
from .step_plan import persistent_kernel as kernel_name

LOSSES = ("softmax_xent_sparse", "softmax_xent")  # the fused softmax cross-entropies the kernel computes
# hidden activations: every element-wise entry of the activation table (kernels/activations.cuh, generated)
# differentiated through its output, which is all the kernel keeps (spec_from_model refuses the others)
HIDDEN = tuple(a.name for a in activations.TABLE if not a.row_wise and not a.from_input)
SLOTS = {"sgd": 0, "sgd_momentum": 1, "adam": 2}   # optimizer state slots, as the optimizers keep them
_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def layout(sizes, rows: int, grid: int, threads: int, slots: int) -> tuple[int, int]:
    """(dynamic shared memory bytes per block, scratch floats) of a launch: kernels/persistent_step.cu's header.

    Shared memory: rows int64 row indices, the PERSIST_TABLE_INTS table, 2 rows of row stats, ``threads``
    partial sums, the (rows, cmax) dz columns and each layer's (1 + slots) x (s_l + 1) x cnt_l slice, sized
    for the block owning the most units (cnt_l <= ceil(s_{l+1} / grid)). Scratch: every act_l (rows, s_{l+1})
    and two partial-gradient buffers of grid x rows x max(hidden widths).
    """
    units = [_ceil_div(s, grid) for s in sizes[1:]]
    floats = 2 * rows + threads + rows * max(units)
    floats += sum((1 + slots) * (fan_in + 1) * cnt for fan_in, cnt in zip(sizes[:-1], units))
    shared = 8 * rows + 4 * PERSIST_TABLE_INTS + 4 * floats
    hidden = max(sizes[1:-1], default=0)
    scratch = rows * sum(sizes[1:]) + 2 * grid * rows * hidden
    return shared, scratch


def unsupported(model, rows: int) -> str | None:
    """Why the persistent kernel cannot train this model (None when it can); the budget is checked apart."""
    spec, reason = spec_from_model(model, rows)
    if reason:
        return reason
    if spec.layers > PERSIST_MAX_LAYERS:
        return f"{spec.layers} Dense layers, more than the kernel's PERSIST_MAX_LAYERS = {PERSIST_MAX_LAYERS}"
    bad = [a for a in spec.activations[:-1] if a not in HIDDEN]
    if bad:
        return f"hidden activation {bad[0]!r} is a row operation (the kernel's are element-wise: {', '.join(HIDDEN)})"
    if not (spec.loss in LOSSES and spec.loss_fused):
        return f"loss {spec.loss!r} (the kernel fuses softmax cross-entropy only: {', '.join(LOSSES)})"
    optimizer = model.optimizer
    kind = {"sgd": "sgd", "sgd_momentum": "sgd_momentum", "adam": "adam"}.get(spec.optimizer)
    if kind is None or type(optimizer).__name__ not in ("SGD", "Adam"):
        return f"optimizer {type(optimizer).__name__} ({spec.optimizer}): the kernel runs SGD, momentum, Adam"
    if getattr(optimizer, "schedule", None) is not None:
        return "a learning-rate schedule (the kernel reads one rate a launch)"
    if any(getattr(optimizer, attr, None) for attr in _CLIPPING):
        return "clipping or weight decay (the kernel updates without them)"
    if getattr(optimizer, "amsgrad", False):
        return "Adam with amsgrad"
    return None


def choose_grid(runner, name: str, sizes, rows: int, threads: int, slots: int) -> tuple[int, int, str | None]:
    """(blocks, shared bytes, None) for the most blocks that are all resident at once, own at least one unit
    of the widest layer and are no more than ``runner.max_persistent_blocks()`` (on a GPU its multiprocessors:
    a second block on a multiprocessor only shares its shared memory and adds barrier arrivals), or
    (0, bytes, why) when even that many cannot hold the weights on chip."""
    limit = runner.shared_memory_limit()
    grid = min(max(sizes[1:]), runner.max_persistent_blocks())
    while True:
        shared, _ = layout(sizes, rows, grid, threads, slots)
        if shared > limit:
            return 0, shared, (f"{shared} bytes of shared memory a block at {grid} blocks for batch {rows}, more "
                               f"than the {limit} a block may have: the weights and optimizer state do not fit on chip")
        resident = runner.resident_blocks(name, threads, shared)
        if resident >= grid:
            return grid, shared, None
        if resident < 1:
            return 0, shared, f"no block of {threads} threads with {shared} bytes of shared memory is resident"
        grid = resident


class PersistentStep:
    """``count`` training steps per call as one cooperative launch, over a model, its device data set (x, y,
    perm, cursor) and acc. Raises ValueError (with the reason) when the model or the budget does not fit."""

    def __init__(self, runner, model, data, acc, rows: int, threads: int = PERSIST_BLOCK):
        if threads % 32 or threads < 32:
            raise ValueError(f"the persistent route: {threads} threads a block, not whole warps")
        reason = unsupported(model, rows)
        if not reason and not _resident(data):
            reason = "the training data is not resident on the device (x, y, perm and cursor)"
        spec = None if reason else spec_from_model(model, rows)[0]
        self.name = kernel_name(not reason and np.dtype(data.x.dtype) == np.uint8, bool(spec and spec.sparse))
        if not reason:
            self.slots = SLOTS[spec.optimizer]
            self.grid, self.shared_mem, reason = choose_grid(runner, self.name, spec.sizes, rows, threads, self.slots)
        if reason:
            raise ValueError(f"the persistent route cannot run this model: {reason}")
        self.runner, self.spec, self.rows, self.threads = runner, spec, rows, threads
        net = np.zeros(PERSIST_NET_INTS, np.int32)
        net[0] = spec.layers
        net[1:2 + spec.layers] = spec.sizes
        net[2 + spec.layers:2 + 2 * spec.layers] = [ACT_CODES[a] for a in spec.activations[:-1]] + [ACT_CODES["linear"]]
        _, scratch = layout(spec.sizes, rows, self.grid, threads, self.slots)
        optimizer = model.optimizer
        state = optimizer.state if self.slots else runner.zeros(1, np.float32)
        self.args = (data.x, data.y, data.perm, data.cursor, runner.asarray(net), model.params, state,
                     optimizer.hyper, acc, runner.zeros(scratch, np.float32), runner.zeros(2, np.uint32),
                     np.int32(rows))
        self.tail = (np.int32(PERSIST_OPT_CODES[spec.optimizer]), np.int32(bool(getattr(optimizer, "nesterov", False))),
                     np.int32(spec.count), np.int32(self.slots))

    def __call__(self, count: int = 1) -> None:
        if count > 0:
            self.runner.launch_cooperative(self.name, (self.grid,), (self.threads,), self.shared_mem,
                                           self.args + (np.int32(count),) + self.tail)


class PersistentRunner(StepRunner):
    """The trainer's runner over a PersistentStep: ``count`` steps a call in one launch; ``block`` the most
    steps the loop hands over at once (an epoch's worth unless the backend caps it)."""

    def __call__(self, count: int = 1) -> None:
        self.step(count)
