"""The cuBLASLt route's training step: the plan of step_plan.py bound to a model's buffers.

Whoever runs it supplies ``launch`` (kernels) and ``prepare_lt`` (one cuBLASLt call, made ready before
any capture): the CuPy backend through nvmath-python on a GPU, the test harness through g++ and a NumPy
emulation of cuBLASLt on the CPU -- the same nodes with the same arguments either way.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .step_plan import SCALARS, StepSpec, lt_buffers, lt_unsupported, param_offsets, plan_step

_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay")
_REGULARIZERS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer")


def optimizer_kind(optimizer) -> str:
    """"sgd" only for plain SGD (foldable into the weight-gradient GEMM); otherwise a descriptive name."""
    name = type(optimizer).__name__.lower()
    if name != "sgd":
        return name
    if getattr(optimizer, "momentum", 0) or getattr(optimizer, "nesterov", False):
        return "sgd_momentum"
    if any(getattr(optimizer, attr, None) for attr in _CLIPPING):
        return "sgd_clipped"
    return "sgd"


def spec_from_model(model, rows: int) -> tuple[StepSpec | None, str | None]:
    """The step's StepSpec, or None and the reason the model's step is not a plain Dense stack."""
    if getattr(model.loss, "traced", False):
        return None, f"the loss {model.loss.name!r} is a traced Python function (the general step launches its kernel)"
    dense = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Input", "Flatten"):
            continue
        if kind != "Dense":
            return None, f"layer {layer.name!r} ({kind}) is not a Dense layer"
        if [tuple(s) for s in layer.param_shapes()] != [(layer.input_dim, layer.units), (layer.units,)] \
                or getattr(layer, "use_bias", True) is False:
            return None, f"layer {layer.name!r} is not a kernel followed by a bias"
        if getattr(layer, "activation_fn", None) is not None:
            return None, f"layer {layer.name!r} has a traced Python activation"
        if any(getattr(layer, attr, None) for attr in _REGULARIZERS):
            return None, f"layer {layer.name!r} has a regularizer"
        dense.append(layer)
    if np.dtype(model.dtype) != np.float32:
        return None, f"dtype {np.dtype(model.dtype).name} (the route runs float32)"
    metrics = getattr(model, "compiled_metrics", [])
    if any(metric.kind is not None for metric in metrics):
        return None, "metrics other than accuracy are summed by the general step (backend.metric_sum)"
    sizes = (dense[0].input_dim,) + tuple(d.units for d in dense)
    if param_offsets(sizes)[-1] != int(model.params.size):
        return None, "the parameter buffer is not the Dense layers' kernels and biases alone"
    optimizer = optimizer_kind(model.optimizer)
    if optimizer == "sgd" and getattr(model.optimizer, "schedule", None) is not None:
        # The fold reads the rate from the hyper slot; a schedule's rate is written there by
        # optimizer_prepare, which only the optimizer's own update runs: no fold then.
        optimizer = "sgd_scheduled"
    spec = StepSpec(sizes=sizes, activations=tuple(d.activation for d in dense), loss=model.loss.kind(),
                    loss_fused=bool(model.loss_fused), optimizer=optimizer, rows=int(rows),
                    sparse=bool(model.loss.sparse), count=any(metric.kind is None for metric in metrics),
                    threshold=float(model.loss.accuracy_threshold()))
    return spec, None


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
