"""What a training step of a plain Dense stack is, device aside: its shapes, activations, loss and
optimizer (``StepSpec``), read off a compiled model (``spec_from_model``), and where each layer's
[kernel; bias] block starts in the flat parameter buffer. The CPU's fused SGD step (numpy/fused_step.py)
and the GPU's node plans (cuda/step_plan.py) are both built from it, so both refuse the same models."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import activations


@dataclass(frozen=True)
class StepSpec:
    """What the node plan depends on: shapes, activations, loss and optimizer of one training step."""
    sizes: tuple            # input width, then each Dense layer's units
    activations: tuple      # one per Dense layer; the last is the output's
    loss: str               # a base.LOSS_KINDS entry
    loss_fused: bool        # the loss applies the output activation itself (logits in)
    optimizer: str          # "sgd" (plain, constant rate: folded), "sgd_scheduled", "sgd_momentum", "adam", ...
    rows: int = 32
    pixels: bool = True     # uint8 inputs scaled on the device, else float32
    sparse: bool = True     # int32 labels, else float32 targets
    count: bool = True      # the metrics ask for the correct count
    threshold: float = 0.0

    @property
    def layers(self) -> int:
        return len(self.sizes) - 1


def param_offsets(sizes) -> list[int]:
    """Offset of each layer's [kernel; bias] block in the flat parameter buffer."""
    offsets, at = [], 0
    for fan_in, units in zip(sizes[:-1], sizes[1:]):
        offsets.append(at)
        at += (fan_in + 1) * units
    return offsets + [at]


# an update the fused routes cannot fold or run in-kernel: it clips, decays, accumulates or averages
_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "use_ema", "gradient_accumulation_steps")


_REGULARIZERS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer")


def constraint_reason(model) -> str | None:
    """Why the model's step applies weight constraints (array expressions that allocate: never captured)."""
    for layer in getattr(model, "compute_layers", ()):
        if layer.trainable and layer.constrained():
            return f"layer {layer.name!r} has a weight constraint, applied by array expressions after the update"
    return None


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
    if getattr(model, "_general", False):  # a functional model that is not a chain
        return None, "the model is a graph of layers, not a chain (the general step runs it)"
    if getattr(model, "_freeze", None) is not None:  # the fused updates write the whole flat buffer
        return None, "the model has frozen layers (trainable=False), which only the general step keeps as they are"
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
        if activations.get(layer.activation).from_input:  # the fused steps keep each layer's output only
            return None, (f"layer {layer.name!r} has activation {layer.activation!r}, whose gradient reads the "
                          "pre-activation (the general step keeps it)")
        if any(getattr(layer, attr, None) for attr in _REGULARIZERS):
            return None, f"layer {layer.name!r} has a regularizer"
        if layer.constrained():
            return None, f"layer {layer.name!r} has a weight constraint (the general step applies it after the update)"
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
