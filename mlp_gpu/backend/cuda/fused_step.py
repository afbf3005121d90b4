"""The cuBLASLt route's training step: the plan of step_plan.py bound to a model's buffers.

Whoever runs it supplies ``launch`` (kernels) and ``prepare_lt`` (one cuBLASLt call, made ready before
any capture): the CuPy backend through nvmath-python on a GPU, the test harness through g++ and a NumPy
emulation of cuBLASLt on the CPU -- the same nodes with the same arguments either way.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .step_plan import SCALARS, lt_buffers, lt_unsupported, plan_step
from ..step_spec import param_offsets, spec_from_model


def _resident(data) -> bool:
    """Whether the whole data set sits on the device, as the fused gather reads it (not streamed)."""
    parts = [getattr(data, name, None) for name in ("x", "y", "perm", "cursor")]
    return all(p is not None for p in parts) and parts[0].shape[0] == parts[2].shape[0]


class FusedStep:
    """One lt-route training step over a model, its device data set (x, y, perm, cursor) and acc.

    ``runner`` has ``zeros``, ``launch(name, grid, block, args)`` and ``prepare_lt(gemm, arrays)``,
    which returns a callable running that GEMM. Raises ValueError when the model does not fit the route.
    """

    def __init__(self, runner, model, data, acc, rows: int):
        spec, reason = spec_from_model(model, rows)
        reason = reason or lt_unsupported(spec)
        if not reason and not _resident(data):
            reason = "the training data is not resident on the device (x, y, perm and cursor)"
        if reason:
            raise ValueError(f"the cuBLASLt route cannot run this model: {reason}")
        self.spec = spec = dataclasses.replace(spec, pixels=np.dtype(data.x.dtype) == np.uint8)
        self.plan = plan_step(spec, "lt")
        self.runner, self.model = runner, model
        self.arrays = arrays = {"src_x": data.x, "src_y": data.y, "perm": data.perm, "cursor": data.cursor,
                                "hyper": model.optimizer.hyper, "acc": acc}
        for name, (shape, dtype, ones_column) in lt_buffers(spec).items():
            arrays[name] = runner.zeros(shape, dtype)
            if ones_column is not None:
                arrays[name][:, ones_column] = 1
        arrays["scalars"][SCALARS["one"]] = 1
        offsets = param_offsets(spec.sizes)
        for i, (fan_in, units) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
            block = slice(offsets[i], offsets[i + 1])
            arrays[f"w{i}"] = model.params[block].reshape(fan_in + 1, units)
            arrays[f"g{i}"] = model.grads[block].reshape(fan_in + 1, units)
        self._calls = [self._prepare(node) for node in self.plan]

    def _prepare(self, node):
        if node.kind == "gemm":
            return self.runner.prepare_lt(node.gemm, self.arrays)
        if node.kind == "update":
            model = self.model
            return lambda: model.optimizer.update(model.params, model.grads)
        args = tuple(self.arrays[a] if isinstance(a, str) else a for a in node.args)
        launch = self.runner.launch
        return lambda: launch(node.name, node.grid, node.block, args)

    def __call__(self) -> None:
        for call in self._calls:
            call()
