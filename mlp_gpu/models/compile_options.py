"""Keras' compile arguments beyond the loss, optimizer and metrics, and what each means here.

- ``run_eagerly``: honoured: plain steps, no captured graph or fused route; untraceable Python losses and
  metrics run on the host (training/eager.py).
- ``jit_compile`` (True, False or "auto"): XLA's switch in Keras. On a GPU every step is already compiled (the
  backend's kernels, a captured CUDA graph); on the NumPy backend False runs the fused SGD step op by op in
  Python instead of as one Numba-compiled call (backend/numpy/compiled_step.py), True and "auto" compile it
  where Numba is installed. The numbers agree within float32 rounding either way. Kept as
  ``model.jit_compile``; with ``run_eagerly`` it is False, as Keras sets it.
- ``auto_scale_loss``: Keras scales the loss only under a mixed-precision (float16) policy; mlp_gpu trains in
  float32, where Keras does not scale either: accepted and kept.
- ``steps_per_execution``: 1 only; Keras' N > 1 calls the batch callbacks every N steps, a change of what
  callbacks see (the GPU backend's own ``steps_per_graph`` blocks steps without it).
- ``weighted_metrics``: refused; they weigh by ``fit(sample_weight=...)``, which mlp_gpu does not take.
- ``loss_weights`` of a model with one output: 1 (or None) only; a single loss is its own total.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_bool


@dataclass
class Options:
    run_eagerly: bool
    jit_compile: bool
    auto_scale_loss: bool

    def apply(self, model) -> None:
        model.run_eagerly, model.jit_compile = self.run_eagerly, self.jit_compile
        model.auto_scale_loss = self.auto_scale_loss


def _is_one(value) -> bool:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return len(value) == 1 and _is_one(value[0])
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == 1


def check(model, loss_weights=None, weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
          jit_compile="auto", auto_scale_loss=True, single_output=True) -> Options:
    """The checked arguments, or a ValueError/TypeError naming the one mlp_gpu cannot honour."""
    run_eagerly = check_bool(run_eagerly, "compile(run_eagerly)")
    auto_scale_loss = check_bool(auto_scale_loss, "compile(auto_scale_loss)")
    if jit_compile != "auto":
        jit_compile = check_bool(jit_compile, "compile(jit_compile)")
    if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ValueError(f"compile(steps_per_execution): expected an int >= 1, got {steps_per_execution!r}")
    if steps_per_execution != 1:
        raise ValueError(f"compile(steps_per_execution={steps_per_execution}): only 1 is supported (Keras then "
                         "calls batch callbacks every N steps); on a GPU, CupyBackend(steps_per_graph=N) runs N "
                         "steps per launch with the same results")
    if weighted_metrics is not None:
        raise ValueError("compile(weighted_metrics): not supported: they weigh by fit(sample_weight=...), which "
                         "mlp_gpu does not take; without sample weights they equal metrics=, use that")
    if single_output and loss_weights is not None and not _is_one(loss_weights):
        raise ValueError(f"compile(loss_weights): a model with one output weighs its loss 1, got {loss_weights!r}")
    return Options(run_eagerly, False if run_eagerly else jit_compile, auto_scale_loss)
