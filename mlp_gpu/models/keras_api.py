"""Keras 3's model methods beyond compile and fit: the batch methods (``train_on_batch``, ``test_on_batch``,
``predict_on_batch``), ``evaluate`` and ``predict`` with their callbacks and step limits, ``pop``, and the
files (``to_json``, ``save``, ``save_weights``, ``load_weights``), with Keras' signatures.

A mixin that both ``Sequential`` and ``Model`` inherit; it runs on what the model already has: its data
sources, workspaces, running sums and the step of training/steps.py, so a batch method computes exactly
what ``fit`` computes on that batch. ``Model`` packs several inputs and outputs into one x and one y
(``_packed``); a Sequential's x and y pass through as they are.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from .._checks import check_bool, check_int
from ..callbacks.base import Callback
from ..callbacks.progress import _fmt
from ..data.sources import Source, _is_batch_source
from ..io import hdf5, keras_zip
from ..io.files import check_save_target
from ..training.fit import EVAL_BATCH, _check_optimizer_fits, _check_verbose, bound_source, device_data
from ..training.fit import predict as predict_rows
from ..training.steps import Sums, train_step

log = logging.getLogger("mlp_gpu")
KERAS_BATCH = 32  # Keras' batch_size=None in evaluate/predict: the rows of one step
# evaluate's and predict's hooks, called with Keras' arguments; fit's CallbackList does not call these.
TEST_HOOKS = ("on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end")
PREDICT_HOOKS = ("on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end")
WEIGHTS_SUFFIX = ".weights.h5"  # Keras 3's weights file: written and read in Keras' own layout


def _no_sample_weights(what, sample_weight=None, class_weight=None) -> None:
    """The loss kernels sum every row once; per-row weights are refused by name, never ignored."""
    for arg, value in (("sample_weight", sample_weight), ("class_weight", class_weight)):
        if value is not None:
            raise NotImplementedError(f"{what}({arg}): per-sample and per-class weights are not supported by "
                                      "mlp_gpu (every row counts once); leave it None")


def _flatten_logs(logs: dict, return_dict: bool):
    """Keras' return value: the logs, or their values in metrics_names order (a float when only the loss);
    a metric of several values (Precision at several thresholds, F1Score per class) stays an array."""
    logs = {k: float(v) if np.ndim(v) == 0 else np.asarray(v, np.float64) for k, v in logs.items()}
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _sliceable(x) -> bool:
    """Arrays, memmaps and h5py datasets: data whose first ``n`` rows are ``x[:n]``."""
    return not isinstance(x, Source) and not _is_batch_source(x) and hasattr(x, "shape") and hasattr(x, "__getitem__")


def _defines(cb, hook) -> bool:
    """Whether a callback has its own ``hook`` (on its class or the instance), not a no-op of the base."""
    if hook in vars(cb):
        return callable(vars(cb)[hook])
    own = getattr(type(cb), hook, None)
    return callable(own) and own is not getattr(Callback, hook, None)


class _Hooks:
    """evaluate's / predict's callbacks: each hook called on every callback that has it, Keras' arguments."""

    def __init__(self, callbacks, model, what, hooks, params):
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        elif callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"{what}(callbacks): expected a list of Callback objects, got {type(callbacks).__name__}")
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"{what}(callbacks): expected mlp_gpu Callback objects, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
        # per-batch hooks force a host read of the running sums every batch: only when one is defined
        self.per_batch = any(_defines(cb, h) for cb in self.callbacks for h in hooks[1:3])

    def __call__(self, hook, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):
                fn(*args)


def _progress_line(verbose, steps, seconds, logs=None) -> None:
    """The line Keras' progress bar leaves after evaluate/predict (metrics in Keras' sorted order); drawn
    once at the end, since the host reads the device's sums only then."""
    per_step = f"{seconds / max(steps, 1) * 1000:.0f}ms/step"
    head = f"{steps}/{steps} {'━' * 20} {seconds:.0f}s {per_step}" if verbose == 1 \
        else f"{steps}/{steps} - {seconds:.0f}s - {per_step}"
    metrics = _fmt(dict(sorted(logs.items()))) if logs else ""
    print(head + (f" - {metrics}" if metrics else ""), flush=True)


def _steps_and_batch(steps, batch_size, x, per_batch, what):
    """(steps, rows per batch, whether batches are counted) as Keras takes them: with ``steps`` and no
    ``batch_size`` the batches split x into ``steps`` (Keras' array adapter), else ``batch_size`` rows (32
    by default). Without steps or per-batch hooks the rows per pass do not change the numbers:
    EVAL_BATCH then, for speed."""
    if steps is not None:
        steps = check_int(steps, f"{what}(steps)", 1)
        if not _sliceable(x):
            raise ValueError(f"{what}(steps): only for arrays, memmaps and h5py datasets (steps of batch_size "
                             f"rows), not a {type(x).__name__}; pass the batches you want instead")
    if batch_size is not None:
        batch = check_int(batch_size, f"{what}(batch_size)", 1)
    elif steps is not None:
        batch = max(1, math.ceil(len(x) / steps))
    else:
        batch = KERAS_BATCH if per_batch else EVAL_BATCH
    return steps, batch, steps is not None or per_batch


def _shown_steps(rows, batch_size, batch, counted, steps_run):
    """The step count Keras' progress bar shows: the batches run, in Keras' batches of 32 by default."""
    if counted:
        return steps_run
    return math.ceil(rows / (KERAS_BATCH if batch_size is None else batch))


def _check_overwrite(filepath, overwrite, what) -> None:
    """Keras asks on the terminal before replacing a file when ``overwrite=False``; here that is an error,
    so a script never blocks on a prompt."""
    overwrite = check_bool(overwrite, f"{what}(overwrite)")
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{what}: {str(filepath)!r} exists and overwrite=False (Keras would ask on the "
                              "terminal; mlp_gpu does not prompt): pass overwrite=True or choose another path")


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs) -> None:
    """Keras' ``save_model``: a ``.keras`` path writes Keras 3's zip; any other path mlp_gpu's own sealed
    HDF5 (architecture, weights, compile settings and optimizer state). ``zipped=False`` (Keras' unzipped
    folder) is refused; kwargs as Keras: ``include_optimizer`` (only True here), ``save_format`` (deprecated)."""
    if not isinstance(filepath, (str, Path)) and not hasattr(filepath, "__fspath__"):
        raise TypeError(f"save(filepath): expected a file path (str or os.PathLike), got {type(filepath).__name__}")
    include_optimizer = kwargs.pop("include_optimizer", True)
    save_format = kwargs.pop("save_format", False)
    if kwargs:
        raise ValueError(f"save: the following argument(s) are not supported: {list(kwargs)}")
    if include_optimizer is not True:
        raise NotImplementedError("save(include_optimizer): only True (a compiled model's file holds its optimizer "
                                  "state); for weights alone use save_weights")
    if save_format:
        raise ValueError("save(save_format): deprecated in Keras 3; pass a file path ending in .keras or .h5")
    if zipped not in (None, True):
        raise NotImplementedError(f"save(zipped): only None or True (a file), got {zipped!r}; Keras' unzipped "
                                  "folder layout is not written by mlp_gpu")
    _check_overwrite(filepath, overwrite, "save")
    hdf5.save_model(model, filepath)


class KerasModelApi:
    """Keras' methods of ``keras.Model`` built on the model's own machinery (see the module docstring)."""

    def _packed(self, x, y=None, validation_data=None):
        """Several inputs/outputs joined into one x and one y (Model); a Sequential's pass through."""
        return x, y, validation_data

    # ---- one batch -------------------------------------------------------------------------------
    def _batch_data(self, x, y, what, need_y=True):
        x, y, _ = self._packed(x, y)
        source = bound_source(self, x, y, need_y=need_y)
        return device_data(self, source, max(1, source.rows), what, resident=True)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch (x, y), exactly fit's step; the loss and metrics of the batch as
        the step computed them (before its update), as a float, a list in ``metrics_names`` order, or a dict."""
        self._require_compiled("train_on_batch")
        _no_sample_weights("train_on_batch", sample_weight, class_weight)
        return_dict = check_bool(return_dict, "train_on_batch(return_dict)")
        data = self._batch_data(x, y, "train_on_batch")
        _check_optimizer_fits(self)
        sums = Sums(self)
        data.begin_epoch()
        train_step(self, self.workspace(data.rows), data, sums.buffer)
        return _flatten_logs(sums.logs(data.rows), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss and metrics on the batch (x, y), weights unchanged; as ``train_on_batch`` returns them."""
        self._require_compiled("test_on_batch")
        _no_sample_weights("test_on_batch", sample_weight)
        return_dict = check_bool(return_dict, "test_on_batch(return_dict)")
        data = self._batch_data(x, y, "test_on_batch")
        logs, _ = self._test_rows(data, data.rows, _Hooks(None, self, "test_on_batch", TEST_HOOKS, {}))
        return _flatten_logs(logs, return_dict)

    def predict_on_batch(self, x):
        """The outputs for the batch x as host arrays (a list of them for several outputs)."""
        x, _, _ = self._packed(x)
        rows = len(x) if _sliceable(x) else EVAL_BATCH
        return predict_rows(self, x, max(1, rows), 0)

    # ---- evaluate and predict ------------------------------------------------------------------------
    def _test_rows(self, data, batch_size, hooks):
        """(logs, batches run): loss and metrics over the device data in batches of ``batch_size`` rows,
        calling the per-batch hooks (the running logs are read from the device only when one is defined).
        The same sums as training/steps.evaluate_data."""
        be, sums = self.backend, Sums(self)
        ws = self.workspace(data.step_rows(batch_size))
        seen = step = 0
        self.stop_evaluating = False
        with contextlib.closing(data.parts()) as parts:
            for part in parts:
                for start in range(0, part.rows, ws.rows):
                    view = ws.view(min(ws.rows, part.rows - start))
                    hooks("on_test_batch_begin", step, {})
                    part.gather(view)
                    self.forward(view.x, view, logits=True)
                    self.loss_and_count(view, view.y, sums.buffer)
                    be.advance(part.cursor, view.rows)
                    seen += view.rows
                    if hooks.per_batch:
                        hooks("on_test_batch_end", step, sums.logs(seen))
                    step += 1
                    if self.stop_evaluating:
                        break
                if self.stop_evaluating:
                    break
        return sums.logs(seen), step

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Keras' ``evaluate``: ``[loss, *metrics]`` over (x, y) in compile's order (the loss alone without
        metrics), or a dict. ``steps`` takes the first ``steps`` batches of ``batch_size`` rows (arrays);
        ``callbacks`` get on_test_begin/end and on_test_batch_begin/end (running logs; their host reads
        come only when a per-batch hook is defined). ``batch_size=None`` is Keras' 32 when steps or
        per-batch hooks count batches; otherwise the rows per pass do not change the numbers and
        mlp_gpu evaluates 1024 at a time. ``sample_weight`` is refused by name. ``verbose``: 0, 1, 2 or
        "auto" (1), a progress line at the end as Keras leaves it."""
        if kwargs:
            raise ValueError(f"evaluate: arguments not recognized: {kwargs}")
        self._require_compiled("evaluate")
        _no_sample_weights("evaluate", sample_weight)
        verbose = _check_verbose(verbose)
        return_dict = check_bool(return_dict, "evaluate(return_dict)")
        x, y, _ = self._packed(x, y)
        hooks = _Hooks(callbacks, self, "evaluate", TEST_HOOKS, {"verbose": verbose, "epochs": 1, "steps": steps})
        steps, batch, counted = _steps_and_batch(steps, batch_size, x, hooks.per_batch, "evaluate")
        if steps is not None:
            x, y = x[:steps * batch], (y[:steps * batch] if y is not None else None)
        start = time.monotonic()
        data = device_data(self, bound_source(self, x, y), batch, "evaluate")
        hooks("on_test_begin", {})
        logs, steps_run = self._test_rows(data, batch, hooks)
        hooks("on_test_end", dict(logs))
        if verbose:
            _progress_line(verbose, _shown_steps(data.rows, batch_size, batch, counted, steps_run),
                           time.monotonic() - start, logs)
        return _flatten_logs(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras' ``predict``: the outputs for x as a host array (rows, units), a list of them for several
        outputs. ``steps``: the first ``steps`` batches of ``batch_size`` rows (arrays); ``callbacks`` get
        on_predict_begin/end and on_predict_batch_begin/end (``{"outputs": ...}`` of each batch).
        ``batch_size=None`` as in ``evaluate``; ``verbose`` a progress line at the end."""
        verbose = _check_verbose(verbose)
        x, _, _ = self._packed(x)
        hooks = _Hooks(callbacks, self, "predict", PREDICT_HOOKS, {"verbose": verbose, "epochs": 1, "steps": steps})
        steps, batch, counted = _steps_and_batch(steps, batch_size, x, hooks.per_batch, "predict")
        if steps is not None:
            x = x[:steps * batch]
        if hooks.per_batch and not _sliceable(x):
            raise ValueError(f"predict(callbacks): per-batch hooks need arrays, memmaps or h5py datasets, not a "
                             f"{type(x).__name__}")
        start = time.monotonic()
        hooks("on_predict_begin", {})
        if hooks.per_batch:  # batch by batch, each batch's outputs handed to the hooks
            self.stop_predicting = False
            outs, done = [], 0
            for step, first in enumerate(range(0, len(x), batch)):
                hooks("on_predict_batch_begin", step, {})
                out = predict_rows(self, x[first:first + batch], batch, 0)
                outs.append(out)
                hooks("on_predict_batch_end", step, {"outputs": out})
                done = step + 1
                if self.stop_predicting:
                    break
            result = _concatenate(outs) if outs else predict_rows(self, x[:0], batch, 0)
        else:
            result = predict_rows(self, x, batch, 0)
            rows = len(result[0] if isinstance(result, list) else result)
            done = _shown_steps(rows, batch_size, batch, counted, math.ceil(rows / batch))
        hooks("on_predict_end", {})
        if verbose:
            _progress_line(verbose, done, time.monotonic() - start)
        return result

    # ---- structure ---------------------------------------------------------------------------------
    def _rebuilt(self, change) -> None:
        """Run ``change()`` on the layer list of a built model and build it again: every layer that stays
        keeps its weights (Keras keeps them in the layers; here they live in the model's one buffer). The
        optimizer's state starts afresh, sized to the new parameters. A stack that cannot be built yet
        (its last computing layer is not a Dense, as after popping the output) stays unbuilt and gets the
        weights back when the next ``add`` builds it."""
        was_built, pending, before = self.built, getattr(self, "_kept_weights", None), list(self.layers)
        kept = dict(pending or {})
        if was_built:
            kept.update({id(layer): layer.get_weights() for layer in self.layers})
        self.built, self._kept_weights = False, None  # change() adds or pops on a plain unbuilt stack
        try:
            change()
        except BaseException:  # a refused layer: the model is as it was (its buffer was never touched)
            self.built, self._kept_weights = was_built, pending
            raise
        self._kept_weights = kept
        for layer in before + self.layers:
            layer._owner = None  # free to be bound into the rebuilt buffer (a popped one into another model)
        computing = self.compute_layers
        if not (computing and type(computing[-1]).__name__ == "Dense" and self.input_known):
            log.debug("model %r stays unbuilt until a Dense layer is on top", self.name)
            return
        self.build(seed=self._compile_seed)
        for layer in self.layers:
            if id(layer) in kept and layer.weight_views:
                layer.set_weights(kept[id(layer)])
        self._kept_weights = None

    def _rebuild_pending(self) -> bool:
        """Whether pop left weights to give back at the next ``add`` (see ``_rebuilt``)."""
        return bool(getattr(self, "_kept_weights", None))

    def _add_to_built(self, layer) -> None:
        """``add`` on a built model (or one pop left unbuilt): the layer goes on top, the model is built
        again (see ``_rebuilt``)."""
        self._rebuilt(lambda: self.add(layer, rebuild=False))

    def pop(self, rebuild=True):
        """Keras' ``pop``: remove the last layer and return it. A built model is built again and its other
        layers keep their weights (with ``rebuild=False`` too: here the weights live in the model's buffer,
        so it cannot wait); an unbuilt one stays unbuilt."""
        check_bool(rebuild, "pop(rebuild)")
        if hasattr(self, "_graph"):  # Model sets it: a graph has no top to pop
            raise TypeError("pop: a functional or subclassed model is wired by its layer calls; pop() is Sequential's")
        if not self.layers:
            raise IndexError("pop: there are no layers in the model")
        if not self.built and not self._rebuild_pending():
            return self.layers.pop()
        popped = []
        self._rebuilt(lambda: popped.append(self.layers.pop()))
        return popped[0]

    # ---- files -------------------------------------------------------------------------------------------
    def to_json(self, **kwargs) -> str:
        """Keras 3's ``to_json``: the model serialized as Keras writes it (``{"module": "keras", "class_name":
        "Sequential" or "Functional", "config": ..., "build_config": ..., "compile_config": ...}``, the same
        as a .keras file's config.json); kwargs go to ``json.dumps``. ``models.model_from_json`` reads it.
        An optimizer without a Keras form here (see io/keras_zip.py) leaves compile_config out, logged."""
        self._require_built("to_json")
        try:
            config = keras_zip.model_config(self)
        except ValueError as exc:
            if self.optimizer is None or "optimizer" not in str(exc):
                raise
            # the architecture is what model_from_json reads: write it without the compile settings
            log.warning("to_json: %s; the JSON leaves out compile_config", exc)
            optimizer, self.optimizer = self.optimizer, None
            try:
                config = keras_zip.model_config(self)
            finally:
                self.optimizer = optimizer
        return json.dumps(config, **kwargs)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs) -> None:
        """Keras' ``save`` (``models.save_model(self, ...)``; see there)."""
        save_model(self, filepath, overwrite, zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None) -> None:
        """Keras' ``save_weights``. A path ending ``.weights.h5`` is written in Keras 3's own layout (what
        ``keras.Model.load_weights`` reads: ``layers/<class>[_k]/vars/<i>``, ``vars``, the optimizer's
        ``optimizer/vars``); any other path mlp_gpu's own sealed HDF5. ``max_shard_size`` (Keras' sharded
        files) is refused; ``overwrite=False`` on an existing file is an error (Keras would prompt)."""
        if max_shard_size is not None:
            raise NotImplementedError(f"save_weights(max_shard_size): sharded weight files are not written by "
                                      f"mlp_gpu; leave it None, got {max_shard_size!r}")
        if not isinstance(filepath, (str, Path)) and not hasattr(filepath, "__fspath__"):
            raise TypeError(f"save_weights(filepath): expected a file path, got {type(filepath).__name__}")
        _check_overwrite(filepath, overwrite, "save_weights")
        if str(filepath).endswith(WEIGHTS_SUFFIX):
            self._require_built("save_weights")
            check_save_target(filepath)
            keras_zip.save_weights_file(self, filepath)
        else:
            hdf5.save_weights(self, filepath)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs) -> None:
        """Keras' ``load_weights``: the weights of an mlp_gpu file, a Keras 3 ``.weights.h5`` or ``.keras``
        file or a Keras 2 ``.h5`` into a model of the same layers; nothing changes unless all of them fit.
        A Keras 3 ``.weights.h5`` also restores a compiled model's optimizer state when it fits.
        ``skip_mismatch=True`` and Keras' legacy kwargs (``by_name``, ``objects_to_skip``) are refused."""
        if check_bool(skip_mismatch, "load_weights(skip_mismatch)"):
            raise NotImplementedError("load_weights(skip_mismatch=True): mlp_gpu loads every layer or none; "
                                      "leave it False")
        if kwargs:
            raise ValueError(f"load_weights: invalid keyword arguments: {kwargs}")
        keras_layout = str(filepath).endswith(WEIGHTS_SUFFIX) and \
            keras_zip.is_keras_weights_file(path := hdf5.checked_path(filepath))
        if keras_layout:
            self.build()
            keras_zip.load_weights_file(self, path)
        else:  # mlp_gpu's own files (a .weights.h5 one written before Keras' layout too), .keras, Keras 2's .h5
            hdf5.load_weights(self, filepath)


def _concatenate(outs):
    if isinstance(outs[0], list):  # several outputs: one list per batch
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
    return np.concatenate(outs)
