"""HDF5 model files.

Layout (``format_version`` 1)::

    /                       attrs: format="mlp_gpu", format_version=1, mlp_gpu_version,
                                   model_config (JSON), training_config (JSON, if compiled)
    /weights/<layer>/kernel float32 (inputs, units)
    /weights/<layer>/bias   float32 (units,)
    /optimizer/state        float32 (slots, parameters)   -- full saves of compiled models
    /optimizer              attrs: iterations, epoch (completed), seed (of the shuffles)

The file opens with a 512-byte user block holding a SHA-256 of the rest, checked before
the HDF5 library reads anything. The architecture is JSON read back through a fixed set
of layer classes: loading never executes code from the file. Writes go to a temporary file in the same
folder that replaces the target only once complete, so an existing file is
never left half-written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

FORMAT = "mlp_gpu"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


class ModelFileError(ValueError):
    """A file is not an mlp_gpu model/weights file, or does not fit the model."""


# Our files start with a 512-byte HDF5 user block holding a SHA-256 of everything after it. Loading
# checks it before libhdf5 parses a byte: libhdf5 can crash or hang on damaged files (fuzzing found
# both), so damage must be caught in Python first.
USERBLOCK = 512
SEAL = b"mlp_gpu sha256 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _sha256_after_userblock(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(USERBLOCK)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _seal(path) -> None:
    header = SEAL + _sha256_after_userblock(path).encode() + b"\n"
    with open(path, "rb+") as fh:
        fh.write(header.ljust(USERBLOCK, b"\0"))


def _verify_seal(path) -> None:
    """Raise ModelFileError if an mlp_gpu file is damaged; let other HDF5 files (Keras) through."""
    with open(path, "rb") as fh:
        head = fh.read(USERBLOCK + len(HDF5_SIGNATURE))
    if head.startswith(SEAL):
        stored = head[len(SEAL):len(SEAL) + 64].decode("ascii", "replace")
        if stored != _sha256_after_userblock(path):
            raise ModelFileError(f"path: {str(path)!r} is damaged: its SHA-256 does not match its contents "
                                 "(a truncated or altered file)")
    elif head[USERBLOCK:] == HDF5_SIGNATURE:
        raise ModelFileError(f"path: {str(path)!r} is damaged: it has an HDF5 user block but no valid "
                             "mlp_gpu checksum header")


def check_save_target(path) -> Path:
    """The folder a save to ``path`` would write in, or an error saying why it cannot (before any work)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory; expected a file name such as model.h5")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"path: folder {str(folder)!r} does not exist")
    return folder


def _atomic_write(path, write, sealed=True):
    """Run write(h5file) on a temp file beside ``path``, seal it with a checksum (unless ``sealed`` is
    False, for files meant for other programs), fsync it, then rename it over ``path``."""
    h5py = _h5py()
    path = Path(path)
    folder = check_save_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise PermissionError(f"path: cannot write in folder {str(folder)!r} ({exc.strerror}); "
                              "choose a writable folder") from None
    os.close(fd)
    try:
        # libver="latest": checksummed HDF5 metadata as a second line of defence
        with h5py.File(tmp, "w", libver="latest", userblock_size=USERBLOCK if sealed else 0) as f:
            write(f)
        if sealed:
            _seal(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _checked_dataset(group, name, data):
    """A dataset with a Fletcher-32 checksum: flipped bits in stored weights fail the read."""
    if data.size:
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
    for layer in model.dense_layers:
        g = group.create_group(layer.name)
        for name, array in (("kernel", layer.kernel), ("bias", layer.bias)):
            _checked_dataset(g, name, model.backend.to_host(array).astype(np.float32))


def save_weights(model, path) -> None:
    """Write the model's architecture and float32 weights (no optimizer state)."""
    model._require_built("save_weights")
    _atomic_write(path, lambda f: _write_weights(f, model))


def save_model(model, path, epoch: int | None = None) -> None:
    """Write architecture, weights, and (if compiled) loss, optimizer config and state."""
    model._require_built("save")

    def write(f):
        _write_weights(f, model)
        if model.optimizer is not None:
            f.attrs["training_config"] = json.dumps({
                "loss": model.loss.get_config(), "metrics": model.metrics,
                "optimizer": model.optimizer.get_config()})
            g = f.create_group("optimizer")
            _checked_dataset(g, "state", model.backend.to_host(model.optimizer.state).astype(np.float32))
            g.attrs["iterations"] = model.optimizer.iterations
            g.attrs["epoch"] = int(model.epochs_done if epoch is None else epoch)
            if model.fit_seed is not None:
                g.attrs["seed"] = np.uint64(model.fit_seed)

    _atomic_write(path, write)


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


def _open(path, allow_keras=False):
    h5py = _h5py()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory, expected an mlp_gpu .h5 file")
    if not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    _verify_seal(path)
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
    """Read and check every kernel and bias before writing any into the model."""
    weights = []
    for layer in model.dense_layers:
        for name, shape in zip(("kernel", "bias"), layer.param_shapes()):
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
    or a Keras 3 ``.weights.h5`` / Keras 2 ``.h5`` file. Nothing changes unless all of them fit."""
    with _damaged_as_model_file_error(path), _open(path, allow_keras=True) as f:
        model.build()
        if f.attrs.get("format") == FORMAT:
            model.set_weights(_read_weights(f, model, path))
        else:
            from .keras import read_keras_weights

            model.set_weights(read_keras_weights(f, model, path))


def load_model(path, backend=None):
    """Rebuild a saved model: architecture, weights, and compiled state when it was saved."""
    from .. import losses, optimizers
    from ..model import Sequential

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
                expected = (opt.slots, model.count_params())
                if tuple(state.shape) != expected:
                    raise ModelFileError(f"path: {str(path)!r} optimizer/state is {tuple(state.shape)}, "
                                         f"expected {expected}")
                g = f["optimizer"]
                opt.build(model.backend, model.count_params(), state=state[()],
                          iterations=int(g.attrs.get("iterations", 0)))
                model.epochs_done = int(g.attrs.get("epoch", 0))
                model.fit_seed = int(g.attrs["seed"]) if "seed" in g.attrs else None
    return model
