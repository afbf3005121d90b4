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

from .. import losses as loss_configs
from .files import ModelFileError, save_hdf5, verify_seal

FORMAT = "mlp_gpu"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


def _checked_dataset(group, name, data):
    """A dataset with a Fletcher-32 checksum: flipped bits in stored weights fail the read."""
    if data.size and data.ndim:  # HDF5 filters need chunks, which scalars do not have
        group.create_dataset(name, data=data, chunks=data.shape, fletcher32=True)
    else:
        group.create_dataset(name, data=data)


def _write_weights(f, model):
    from .. import __version__

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
        from .keras_zip import save_keras
        return save_keras(model, path)
    model._require_built("save")

    def write(f):
        _write_weights(f, model)
        if model.optimizer is not None:
            f.attrs["training_config"] = json.dumps({
                "loss": loss_configs.serialize(model.loss), "metrics": model.metrics,
                "optimizer": model.optimizer.get_config()})
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


def _check_file(path) -> Path:
    """The path as a Path to an existing file, or the error a user can act on (for .h5 and .keras alike)."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory, expected a model file")
    if not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    return path


def _open(path, allow_keras=False):
    h5py = _h5py()
    path = _check_file(path)
    verify_seal(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"path: {str(path)!r} is not an HDF5 file ({exc})") from None
    if f.attrs.get("format") != FORMAT:
        from .keras import is_keras_file

        if allow_keras and is_keras_file(f):
            return f
        f.close()
        raise ModelFileError(f"path: {str(path)!r} is HDF5 but not an mlp_gpu file "
                             "(no format='mlp_gpu' attribute)" + ("" if not allow_keras else
                                                                  " nor a Keras weights file"))
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        f.close()
        raise ModelFileError(f"path: {str(path)!r} has format_version {version}; "
                             f"this mlp_gpu reads {FORMAT_VERSION}")
    return f


def _json_attr(f, key, path):
    try:
        value = json.loads(f.attrs[key])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"path: {str(path)!r} has no readable {key} attribute") from None
    return value


def _read_weights(f, model, path):
    """Read and check every weight before writing any into the model."""
    weights = []
    for layer in model.compute_layers:
        for name, shape in zip(layer.weight_names(), [w.shape for w in layer.weight_views]):
            key = f"weights/{layer.name}/{name}"
            if key not in f:
                raise ModelFileError(f"path: {str(path)!r} lacks dataset {key!r}")
            ds = f[key]
            if not isinstance(ds, _h5py().Dataset):
                raise ModelFileError(f"path: {str(path)!r} {key!r} is not a dataset")
            if tuple(ds.shape) != tuple(shape) or ds.dtype != np.float32:
                raise ModelFileError(f"path: {str(path)!r} dataset {key!r} is {ds.dtype}{tuple(ds.shape)}, "
                                     f"expected float32{tuple(shape)}")
            weights.append(ds[()])
    return weights


def load_weights(model, path) -> None:
    """Load weights into a model of the same layers, from an mlp_gpu file (save_weights/save)
    or a Keras 3 ``.weights.h5`` / ``.keras`` / Keras 2 ``.h5`` file. Nothing changes unless all of them fit."""
    if str(path).endswith(".keras"):
        from .keras_zip import load_keras_weights

        model.build()
        return load_keras_weights(model, _check_file(path))
    with _damaged_as_model_file_error(path), _open(path, allow_keras=True) as f:
        model.build()
        if f.attrs.get("format") == FORMAT:
            model.set_weights(_read_weights(f, model, path))
        else:
            from .keras import read_keras_weights

            model.set_weights(read_keras_weights(f, model, path))


def load_model(path, backend=None):
    """Rebuild a saved model: architecture, weights, and compiled state when it was saved.
    A ``.keras`` path reads Keras 3's zip format (io/keras_zip.py)."""
    path = _check_file(path)
    if str(path).endswith(".keras"):
        from .keras_zip import load_keras
        return load_keras(path, backend=backend)
    from .. import losses, optimizers
    from ..models.sequential import Sequential

    with _damaged_as_model_file_error(path), _open(path) as f:
        try:
            model = Sequential.from_config(_json_attr(f, "model_config", path), backend=backend)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"path: {str(path)!r} has an invalid model_config: {exc}") from None
        model.build()
        model.set_weights(_read_weights(f, model, path))
        if "training_config" in f.attrs:
            cfg = _json_attr(f, "training_config", path)
            try:
                opt = optimizers.from_config(cfg["optimizer"])
                model.compile(loss=losses.get(cfg["loss"]), optimizer=opt, metrics=cfg.get("metrics"))
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(f"path: {str(path)!r} has an invalid training_config: {exc}") from None
            if "optimizer/state" in f:
                state = f["optimizer/state"]
                if not isinstance(state, _h5py().Dataset):
                    raise ModelFileError(f"path: {str(path)!r} 'optimizer/state' is not a dataset")
                expected = (opt.slots, int(model.params.size))
                if tuple(state.shape) != expected:
                    raise ModelFileError(f"path: {str(path)!r} optimizer/state is {tuple(state.shape)}, "
                                         f"expected {expected}")
                g = f["optimizer"]
                opt.load_state(state[()], iterations=int(g.attrs.get("iterations", 0)))
                model.epochs_done = int(g.attrs.get("epoch", 0))
                model.rng_counter[...] = int(g.attrs.get("draws", 0))
                model.fit_seed = int(g.attrs["seed"]) if "seed" in g.attrs else None
    return model
