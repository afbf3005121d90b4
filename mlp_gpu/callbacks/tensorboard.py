"""The TensorBoard callback: Keras' arguments and layout, event files written by tensorboardX.

Layout as Keras writes it: ``<log_dir>/train`` and ``<log_dir>/validation`` each hold event files; tags
``epoch_loss``, ``epoch_accuracy`` (validation values under the same tags in validation/),
``epoch_learning_rate``, ``evaluation_<name>_vs_iterations`` (validation, against optimizer steps),
``batch_<name>`` every ``update_freq`` steps, ``<model>/<layer>/kernel/histogram`` (and ``/image``) every
``histogram_freq`` epochs, and the model's Keras JSON under tag ``keras`` for the graph plugin.

Cost: with ``update_freq="epoch"`` the callback reads nothing from the device during an epoch. With an
int (or "batch") the trainer reads the running loss from the device after every step so that it can
hand batch logs to callbacks: on a GPU that is a synchronization per step, so training runs slower.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .base import Callback
from ..io.keras_zip import model_config

log = logging.getLogger("mlp_gpu")


def _frequency(value, arg, allow_words=()):
    if isinstance(value, str) and value in allow_words:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        words = "".join(f"{w!r} or " for w in allow_words)
        raise ValueError(f"{arg}: expected {words}an int >= 0, got {value!r}")
    return int(value)


class TensorBoard(Callback):
    """Log losses, metrics, the learning rate, weight histograms and the model to TensorBoard."""

    chief_only = True  # writes files: rank 0 alone in a distributed fit

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.histogram_freq = _frequency(histogram_freq, "histogram_freq")
        self.write_graph = bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        update_freq = _frequency(update_freq, "update_freq", ("epoch", "batch"))
        if update_freq == 0:
            raise ValueError("update_freq: expected 'epoch', 'batch' or an int >= 1, got 0")
        self.update_freq = 1 if update_freq == "batch" else update_freq
        if profile_batch:  # as Keras says on its torch and numpy backends
            raise ValueError(f"profile_batch: profiling is not available in mlp_gpu; expected 0, got {profile_batch!r}")
        if embeddings_freq:
            raise ValueError(f"embeddings_freq: mlp_gpu has no Embedding layers; expected 0, got {embeddings_freq!r}")
        self.embeddings_freq, self.embeddings_metadata = 0, embeddings_metadata
        self._writers = {}

    # ---- writers ------------------------------------------------------------------------------------
    def _writer(self, which):
        if which not in self._writers:
            from tensorboardX import SummaryWriter

            folder = Path(self.log_dir) / which
            self._writers[which] = SummaryWriter(str(folder))
        return self._writers[which]

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    @property
    def wants_batch_end(self) -> bool:
        return self.update_freq != "epoch"  # per-step host reads only when batch logging is asked for

    # ---- hooks -------------------------------------------------------------------------------------
    def set_model(self, model):
        super().set_model(model)
        self._close_writers()
        if self.write_graph:
            self._write_model_config()

    def on_train_begin(self, logs=None):
        self._global_batch = 0
        self._batch_time = time.perf_counter()

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_steps = self.model.optimizer.iterations if self.write_steps_per_second else 0

    def on_batch_end(self, batch, logs=None):
        self._global_batch += 1
        if self._global_batch % self.update_freq:
            return
        writer = self._writer("train")
        for name, value in (logs or {}).items():
            writer.add_scalar(f"batch_{name}", value, self._global_batch)
        if self.write_steps_per_second:
            now = time.perf_counter()
            writer.add_scalar("batch_steps_per_second", self.update_freq / (now - self._batch_time), self._global_batch)
            self._batch_time = now

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        train["learning_rate"] = self.model.optimizer.learning_rate
        if self.write_steps_per_second:
            steps = self.model.optimizer.iterations - self._epoch_steps
            train["steps_per_second"] = steps / (time.perf_counter() - self._epoch_start)
        writer = self._writer("train")
        for name, value in train.items():
            writer.add_scalar(f"epoch_{name}", value, epoch)
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if val:
            vwriter, iterations = self._writer("validation"), self.model.optimizer.iterations
            for name, value in val.items():
                vwriter.add_scalar(f"epoch_{name}", value, epoch)
                vwriter.add_scalar(f"evaluation_{name}_vs_iterations", value, iterations)
            vwriter.flush()
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        writer.flush()

    # ---- what gets written --------------------------------------------------------------------------
    def _weights(self):
        """(Keras variable path, host array) for every weight, e.g. ("sequential/dense/kernel", ...)."""
        be = self.model.backend
        for layer in self.model.layers:
            for name, w in zip(layer.weight_names(), layer.weight_views):
                yield f"{self.model.name}/{layer.name}/{name}", be.to_host(w)

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for path, values in self._weights():
            writer.add_histogram(f"{path}/histogram", values, epoch)
            if self.write_images:
                writer.add_image(f"{path}/image", _weight_image(values), epoch, dataformats="HW")

    def _write_model_config(self):
        """The model's Keras JSON under tag "keras" with plugin graph_keras_model, as Keras writes it."""
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto

        try:
            text = json.dumps(model_config(self.model.build()))
        except ValueError as exc:  # a layer without a Keras form: Keras also skips the graph then
            log.warning("TensorBoard: the model has no Keras JSON form; no graph written (%s)", exc)
            return
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="graph_keras_model", content=b"1"))
        tensor = TensorProto(dtype=7, string_val=[text.encode()])  # 7: DT_STRING, a scalar
        summary = Summary(value=[Summary.Value(tag="keras", metadata=meta, tensor=tensor)])
        self._writer("train").file_writer.add_summary(summary, 0)


def _weight_image(values):
    """A weight as a grey image in [0, 1]: a kernel with its longer side across, a bias as one row."""
    image = np.atleast_2d(values.astype(np.float32))
    if image.shape[0] > image.shape[1]:
        image = image.T
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)
