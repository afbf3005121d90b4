"""Saves under real write faults: a full disk (a small tmpfs in a private mount namespace), a file-size
limit (RLIMIT_FSIZE), a read-only file system, no write permission; and the files' modes.

Each fault runs in a child process (limits and mounts must not touch pytest) that checks, after every
failed save, that our SaveError names the path and the cause, that the previous file still loads with
its old weights and optimizer state, and that no temporary file is left; then that a save succeeds once
the fault is gone. The parent checks that the child exited normally (no signal, exit code 0, nothing
printed by a library's clean-up).
"""
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import Callback, Dense, Input, Sequential
from mlp_gpu.callbacks.checkpoint import ModelCheckpoint
from mlp_gpu.io import SaveError, export_keras_weights

from ..conftest import blobs

ROOT = Path(__file__).resolve().parents[2]
PAGE = 4096
FSIZE_LIMITS = 40      # file-size limits tried, spread over [0, file size)
FULL_DISK_LEVELS = 16  # free-space levels tried, spread over [0, file size)


def _model(value, features=784):
    """784-64-10 with Adam: a 611 KB file whose weights and optimizer state all equal ``value``."""
    m = Sequential([Input((features,)), Dense(64, "relu"), Dense(10, "softmax")], backend="numpy")
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=0)
    m.params[...] = value
    m.optimizer.state[...] = value / 2
    return m


def _expect_failure(save, path, code):
    """save() raises SaveError naming path and cause; the file is as before; no temp file stayed."""
    before = path.read_bytes()
    try:
        save(path)
    except SaveError as exc:
        assert isinstance(exc, OSError) and exc.errno == code, (exc.errno, str(exc))
        assert str(path) in str(exc) and os.strerror(code) in str(exc), str(exc)
        assert "previous file is unchanged" in str(exc), str(exc)
    else:
        raise AssertionError(f"a save to {path} succeeded under the fault")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []


def _expect_model_kept(save, path, code):
    """As _expect_failure, and the model file still loads with the old weights and optimizer state."""
    _expect_failure(save, path, code)
    loaded = mlp_gpu.load_model(path)
    assert set(np.unique(loaded.params).tolist()) == {1.0}
    assert set(np.unique(loaded.optimizer.state).tolist()) == {0.5}


def _saved_value(path):
    return set(np.unique(mlp_gpu.load_model(path).params).tolist())


# ---- children: run in their own process --------------------------------------------------------------
def child_file_size_limit(folder):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python ignores it too; say so explicitly
    folder = Path(folder)
    path, weights, keras = folder / "m.h5", folder / "w.h5", folder / "k.weights.h5"
    old, new = _model(1.0), _model(2.0)
    old.save(path)
    old.save_weights(weights)
    export_keras_weights(old, keras)
    size = path.stat().st_size
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limits = sorted({int(v) for v in np.linspace(0, size - 1, FSIZE_LIMITS)} | {1, 511, 512, 513, size - 1})
    for limit in limits:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        _expect_model_kept(new.save, path, errno.EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    _expect_failure(new.save_weights, weights, errno.EFBIG)
    _expect_failure(lambda p: export_keras_weights(new, p), keras, errno.EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))  # exactly the file's size: it fits
    new.save(path)
    assert _saved_value(path) == {2.0}
    print("limits", len(limits), "size", size)


def child_checkpoint_limit(folder):
    """fit with a ModelCheckpoint; the file-size limit drops after the second epoch."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path = Path(folder) / "ckpt.h5"
    x, y = blobs()
    model = _model(0.0, features=8)
    model.params[...] = np.random.default_rng(0).normal(0, 0.1, model.params.shape)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    kept = []

    class LimitAfterTwoEpochs(Callback):
        def on_epoch_end(self, epoch, logs=None):
            kept.append(self.model.get_weights())
            if epoch == 2:
                resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))

    try:
        model.fit(x, y, epochs=5, verbose=0, seed=0, callbacks=[LimitAfterTwoEpochs(), ModelCheckpoint(path)])
    except SaveError as exc:
        assert exc.errno == errno.EFBIG and str(path) in str(exc), str(exc)
    else:
        raise AssertionError("fit went on past a failed checkpoint")
    assert len(kept) == 3 and model.epochs_done == 3
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    loaded = mlp_gpu.load_model(path)
    assert loaded.epochs_done == 2 and loaded.optimizer.iterations > 0
    for a, b in zip(kept[1], loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.save(path)  # the limit is gone: saving works again
    assert mlp_gpu.load_model(path).epochs_done == 3
    print("checkpoint ok")


def _fill(filler):
    """Write to ``filler`` until the file system is full; return its size (whole pages)."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 16, PAGE):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
        os.fsync(fd)
    finally:
        os.close(fd)
    return filler.stat().st_size


def child_full_disk(folder):
    folder = Path(folder)
    path, weights = folder / "m.h5", folder / "w.h5"
    old, new = _model(1.0), _model(2.0)
    old.save(path)
    old.save_weights(weights)
    size = path.stat().st_size
    filler = folder / "filler"
    full = _fill(filler)
    _expect_failure(new.save_weights, weights, errno.ENOSPC)
    pages = -(-size // PAGE)
    levels = sorted({int(v) for v in np.linspace(0, pages - 1, FULL_DISK_LEVELS)})
    for free in levels:
        os.truncate(filler, full - free * PAGE)
        _expect_model_kept(new.save, path, errno.ENOSPC)
    os.truncate(filler, full - pages * PAGE)  # exactly the room the new file needs
    new.save(path)
    assert _saved_value(path) == {2.0}
    filler.unlink()
    old.save(path)  # and back: with space, saves go on as ever
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    _expect_model_kept(new.save, path, errno.EROFS)
    subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
    os.seteuid(65534)  # nobody: the tmpfs root (mode 0755, root's) is not writable
    try:
        _expect_model_kept(new.save, path, errno.EACCES)
    finally:
        os.seteuid(0)
    print("levels", len(levels), "size", size)


# ---- the tests: run the children and check they ended well -------------------------------------------
def _run(args, timeout=300):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def _child(name, folder):
    return [sys.executable, "-c", f"from tests.io.test_save_faults import {name}; {name}({str(folder)!r})"]


def test_file_size_limit_at_many_limits_keeps_the_previous_file(tmp_path):
    out = _run(_child("child_file_size_limit", tmp_path))
    assert out.split()[0] == "limits" and int(out.split()[1]) >= FSIZE_LIMITS, out


def test_checkpoint_meeting_a_file_size_limit_stops_fit_with_the_last_epoch_safe(tmp_path):
    assert _run(_child("child_checkpoint_limit", tmp_path)).strip() == "checkpoint ok"


def _tmpfs_or_skip(mountpoint, size):
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount (util-linux)")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size},mode=0755 tmpfs "
                            f"{mountpoint}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace (needs root or CAP_SYS_ADMIN): "
                    f"{probe.stderr.strip()}")


def test_full_disk_read_only_and_no_permission_keep_the_previous_file():
    mountpoint = Path(tempfile.mkdtemp(prefix="mlp_gpu_tmpfs_", dir="/tmp"))  # /tmp: nobody may pass
    try:
        size = 2 << 20
        _tmpfs_or_skip(mountpoint, size)
        python, _, code = _child("child_full_disk", mountpoint)
        out = _run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size},mode=0755 tmpfs {mountpoint} "
                    '&& exec "$0" -c "$1"', python, code])
        assert out.split()[:2] == ["levels", str(FULL_DISK_LEVELS)], out
    finally:
        mountpoint.rmdir()  # the mount lived only in the child's namespace


def _mode(path):
    return path.stat().st_mode & 0o777


def test_new_files_follow_the_umask_and_saving_over_keeps_the_mode(tmp_path):
    m = _model(1.0, features=3)
    previous = os.umask(0o027)
    try:
        m.save(tmp_path / "m.h5")
        export_keras_weights(m, tmp_path / "k.weights.h5")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "m.h5") == 0o640 and _mode(tmp_path / "k.weights.h5") == 0o640
    os.chmod(tmp_path / "m.h5", 0o644)
    m.save(tmp_path / "m.h5")
    assert _mode(tmp_path / "m.h5") == 0o644
    os.chmod(tmp_path / "m.h5", 0o604)
    m.save_weights(tmp_path / "m.h5")
    assert _mode(tmp_path / "m.h5") == 0o604
