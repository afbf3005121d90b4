"""HDF5 model files.

Layout (``format_version`` 1)::

    /                       attrs: format="mlp_gpu", format_version=1, mlp_gpu_version,
                                   model_config (JSON), training_config (JSON, if compiled)
    /weights/<layer>/<name> float32, each layer's weights by Keras name: kernel (inputs, units),
                            bias (units,); gamma, beta, moving_mean, moving_variance; mean, variance
    /optimizer/state        float32 (slots, parameters)   -- full saves of compiled models
    /optimizer              attrs: iterations, epoch (completed), seed (of the shuffles),
                                   draws (Dropout's Philox counter, so a resumed run draws fresh masks)

The file opens with a 512-byte user block holding a SHA-256 of the rest, checked before
the HDF5 library reads anything. The architecture is JSON read back through a fixed set
of layer classes: loading never executes code from the file. Saves are built in memory and written,
checked and renamed into place by ``files.save_hdf5``: an existing file is never left half-written.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from .. import __version__, losses, optimizers
from .bounded import MAX_CONFIG_BYTES, load_json
from .declared import declared_weights, read_declared
from .files import ModelFileError, save_hdf5, verify_seal
from .keras import is_keras_file, read_keras_weights
from .keras_zip import load_keras_weights, save_keras
from .safe_h5 import COUNTERS, file_size, open_h5

FORMAT = "mlp_gpu"
FORMAT_VERSION = 1


def _checked_dataset(group, name, data):
    """A dataset with a Fletcher-32 checksum: flipped bits in stored weights fail the read."""
    if data.size and data.ndim:  # HDF5 filters need chunks, which scalars do not have
        group.create_dataset(name, data=data, chunks=data.shape, fletcher32=True)
    else:
        group.create_dataset(name, data=data)


def _write_weights(f, model):
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["mlp_gpu_version"] = __version__
    f.attrs["model_config"] = json.dumps(model.get_config())
    group = f.create_group("weights")
    for layer in model.compute_layers:
        if not layer.weight_names():
            continue
        g = group.create_group(layer.name)
        for name, array in zip(layer.weight_names(), layer.weight_views):
            _checked_dataset(g, name, model.backend.to_host(array).astype(np.float32))


def save_weights(model, path) -> None:
    """Write the model's architecture and float32 weights (no optimizer state)."""
    model._require_built("save_weights")
    save_hdf5(path, lambda f: _write_weights(f, model))


def save_model(model, path, epoch: int | None = None) -> None:
    """Write architecture, weights, and (if compiled) loss, optimizer config and state.
    A ``.keras`` path writes Keras 3's zip format instead (io/keras_zip.py)."""
    if str(path).endswith(".keras"):
        return save_keras(model, path)
    model._require_built("save")

    def write(f):
        _write_weights(f, model)
        if model.optimizer is not None and model.loss is not None:  # compile(loss=None): nothing to resume
            several = getattr(model, "_losses", None) is not None and len(model._losses) > 1
            f.attrs["training_config"] = json.dumps({  # a graph with several outputs: a loss each, weighted
                "loss": [losses.serialize(loss) for loss in model._losses] if several
                else losses.serialize(model.loss),
                # the optimizer by class and config, so one the user named reloads too
                "metrics": model.metrics, "optimizer": optimizers.serialize(model.optimizer),
                **({"loss_weights": model._loss_weights} if several else {})})
            g = f.create_group("optimizer")
            _checked_dataset(g, "state", model.backend.to_host(model.optimizer.state).astype(np.float32))
            g.attrs["iterations"] = model.optimizer.iterations
            g.attrs["epoch"] = int(model.epochs_done if epoch is None else epoch)
            g.attrs["draws"] = int(model.backend.to_host(model.rng_counter)[0])
            if model.fit_seed is not None:
                g.attrs["seed"] = np.uint64(model.fit_seed)

    save_hdf5(path, write)


@contextlib.contextmanager
def _damaged_as_model_file_error(path):
    """h5py reports a damaged file as OSError, KeyError or RuntimeError from deep inside: name the file."""
    try:
        yield
    except ModelFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
            raise
        raise ModelFileError(f"path: {str(path)!r} is damaged or not a valid model file "
                             f"({type(exc).__name__}: {exc})") from None


def checked_path(path) -> Path:
    """The path as a Path to an existing regular file, or the error a user can act on (for .h5 and .keras
    alike); a FIFO or device is refused without being opened."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    file_size(path, ModelFileError, "a model file")
    return path


@contextlib.contextmanager
def _open(path, allow_keras=False):
    """A guard over a checked mlp_gpu (or, with ``allow_keras``, Keras) HDF5 file; closed on exit."""
    path = checked_path(path)
    verify_seal(path)
    with open_h5(path, what="an HDF5 file") as g:
        if g.attr(g.file, "format") != FORMAT:
            if allow_keras and is_keras_file(g):
                yield g
                return
            raise ModelFileError(f"path: {str(path)!r} is HDF5 but not an mlp_gpu file "
                                 "(no format='mlp_gpu' attribute)" + ("" if not allow_keras else
                                                                      " nor a Keras weights file"))
        version = g.int_attr(g.file, "format_version", -(1 << 31), 1 << 31, default=-1)
        if version != FORMAT_VERSION:
            raise ModelFileError(f"path: {str(path)!r} has format_version {version}; "
                                 f"this mlp_gpu reads {FORMAT_VERSION}")
        yield g


def _json_attr(g, key, path):
    text = g.str_attr(g.file, key, MAX_CONFIG_BYTES)
    if text is None:
        raise ModelFileError(f"path: {str(path)!r} has no readable {key} attribute")
    return load_json(text, str(path), f"{key} attribute")


def _read_weights(g, declared):
    """Every weight the model declares, from /weights/<layer>/<name>, each checked before any is read."""
    return read_declared(g, declared, [[g.dataset(f"weights/{layer.name}/{name}") for name, _ in weights]
                                       for layer, weights in declared], exact=np.float32)


def load_weights(model, path) -> None:
    """Load weights into a model of the same layers, from an mlp_gpu file (save_weights/save)
    or a Keras 3 ``.weights.h5`` / ``.keras`` / Keras 2 ``.h5`` file. Nothing changes unless all of them fit."""
    if str(path).endswith(".keras"):
        model.build()
        return load_keras_weights(model, checked_path(path))
    with _damaged_as_model_file_error(path), _open(path, allow_keras=True) as g:
        model.build()
        declared = declared_weights(model)
        if g.attr(g.file, "format") == FORMAT:
            model.set_weights(_read_weights(g, declared))
        else:
            model.set_weights(read_keras_weights(g, declared))


def _counter(g, group, name, default):
    low, high = COUNTERS[name]
    return g.int_attr(group, name, low, high, default)


def load_model(path, make_model, backend=None):
    """Rebuild a saved model: ``make_model(config, backend)`` makes it from the file's model_config (checked
    against the weights in the file before it is built), then its weights and, when saved, its compiled
    state and optimizer state are read into it. models/saving.py is the caller."""
    path = checked_path(path)
    with _damaged_as_model_file_error(path), _open(path) as g:
        try:
            model = make_model(_json_attr(g, "model_config", path), backend)
            declared = declared_weights(model)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"path: {str(path)!r} has an invalid model_config: {exc}") from None
        weights = _read_weights(g, declared)
        model.build()
        model.set_weights(weights)
        if "training_config" in g.file.attrs:
            cfg = _json_attr(g, "training_config", path)
            try:
                opt = optimizers.from_config(cfg["optimizer"])
                loss = cfg["loss"]
                several = {"loss_weights": cfg["loss_weights"]} if "loss_weights" in cfg else {}
                model.compile(loss=[losses.get(v) for v in loss] if several else losses.get(loss), optimizer=opt,
                              metrics=cfg.get("metrics"), **several)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(f"path: {str(path)!r} has an invalid training_config: {exc}") from None
            state = g.dataset("optimizer/state", kinds="f", shape=(opt.slots, int(model.params.size)),
                              required=False)
            if state is not None:
                group = g.group("optimizer")
                counters = {name: _counter(g, group, name, 0 if name != "seed" else None) for name in COUNTERS}
                opt.load_state(g.read(state), iterations=counters["iterations"])
                model.epochs_done = counters["epoch"]
                model.rng_counter[...] = counters["draws"]
                model.fit_seed = counters["seed"]
    return model
