"""Keras 3's callbacks added for issue #25: CallbackList's signature, TerminateOnNaN(raise_error),
ProgbarLogger, RemoteMonitor (against a local HTTP server) and BackupAndRestore (a killed process resumed)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.callbacks import (BackupAndRestore, Callback, CallbackList, History, ProgbarLogger,
                               ReduceLROnPlateau, RemoteMonitor, TerminateOnNaN)

from ..conftest import blobs

ROOT = Path(__file__).resolve().parents[2]


def model(lr=0.05):
    m = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    m.compile(optimizer=SGD(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"], seed=0)
    return m


# ---- CallbackList, TerminateOnNaN, ReduceLROnPlateau ---------------------------------------------------
def test_callback_list_adds_history_and_progbar_as_keras_and_passes_params():
    seen = []

    class Recorder(Callback):
        def set_params(self, params):
            seen.append(params)

    m = model()
    own = History()
    cbs = CallbackList([Recorder(), own], add_history=True, add_progbar=True, model=m, verbose=0, epochs=3)
    assert [type(cb) for cb in cbs.callbacks] == [Recorder, History, ProgbarLogger]  # the given History is kept
    assert cbs.history is own and m.history is own and all(cb.model is m for cb in cbs.callbacks)
    assert seen == [{"verbose": 0, "epochs": 3}]
    assert [type(cb) for cb in CallbackList().callbacks] == []
    with pytest.raises(TypeError, match="add_history"):
        CallbackList([], add_history="yes")
    with pytest.raises(TypeError, match="Callback objects"):
        CallbackList([object()])


def test_callback_list_calls_hooks_with_keras_arguments():
    calls = []

    class Recorder(Callback):
        def on_epoch_begin(self, epoch, logs):
            calls.append(("epoch_begin", epoch, logs))

        def on_train_batch_end(self, batch, logs):
            calls.append(("batch_end", batch, logs))

    cbs = CallbackList([Recorder()], model=model())
    cbs.on_epoch_begin(2)
    cbs.on_train_batch_end(5, {"loss": 1.5})
    assert calls == [("epoch_begin", 2, {}), ("batch_end", 5, {"loss": 1.5})]


def test_terminate_on_nan_raise_error_raises_out_of_fit():
    x, y = blobs()
    ended = []

    class End(Callback):
        def on_train_end(self, logs=None):
            ended.append(True)

    with np.errstate(all="ignore"), pytest.raises(RuntimeError, match="NaN or Inf loss"):
        model(lr=1e6).fit(x * 1e4, y, epochs=5, verbose=0, callbacks=[TerminateOnNaN(raise_error=True), End()])
    assert ended == []  # as Keras: raising skips the other callbacks' cleanup
    with pytest.raises(TypeError, match="raise_error"):
        TerminateOnNaN(raise_error="yes")


def test_reduce_lr_on_plateau_takes_kwargs_and_refuses_unknown_ones():
    with pytest.raises(TypeError, match=r"unexpected arguments \['pateince'\]"):
        ReduceLROnPlateau(pateince=3)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.01)
    m = model(lr=0.1)
    cb.set_model(m)
    cb.on_train_begin()
    for epoch in range(4):  # no improvement after the first: halved at each later epoch
        cb.on_epoch_end(epoch, {"loss": 1.0})
    assert float(m.optimizer.learning_rate) == pytest.approx(0.0125)
    cb.on_epoch_end(4, {"loss": 1.0})
    assert float(m.optimizer.learning_rate) == pytest.approx(0.01)  # min_lr's floor


# ---- ProgbarLogger ------------------------------------------------------------------------------------
def test_progbar_logger_follows_fits_verbose_and_replaces_fits_own_bar(capsys):
    x, y = blobs(n=64)
    m = model()
    bar = ProgbarLogger()
    m.fit(x, y, epochs=2, verbose=2, callbacks=[bar])
    out = capsys.readouterr().out
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1  # one bar: fit added none of its own
    assert bar.verbose == 2
    m.fit(x, y, epochs=1, verbose=0, callbacks=[ProgbarLogger()])
    assert "Epoch" not in capsys.readouterr().out


# ---- RemoteMonitor ------------------------------------------------------------------------------------
class _Server:
    """A local HTTP server in a thread that keeps each POST's path, headers and body."""

    def __init__(self, status=200):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_remote_monitor_posts_each_epochs_logs_as_json():
    x, y = blobs(n=64)
    with _Server() as server:
        cb = RemoteMonitor(root=server.root, path="/epochs/", send_as_json=True, headers={"X-Run": "7"})
        history = model().fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[cb])
    assert [path for path, _, _ in server.received] == ["/epochs/", "/epochs/"]
    _, headers, body = server.received[1]
    assert headers["Content-Type"] == "application/json" and headers["X-Run"] == "7"
    sent = json.loads(body)
    assert sent["epoch"] == 1
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert sent[key] == history.history[key][1]


def test_remote_monitor_form_field_as_keras_and_warnings_for_unreachable_servers():
    with _Server() as server:
        cb = RemoteMonitor(root=server.root)
        cb.on_epoch_end(3, {"loss": np.float32(0.5), "accuracy": np.float64(0.25)})
    path, headers, body = server.received[0]
    assert path == "/publish/epoch/end/" and headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(urllib.parse.parse_qs(body.decode())["data"][0]) == {"epoch": 3, "loss": 0.5, "accuracy": 0.25}
    with _Server(status=500) as server:
        with pytest.warns(UserWarning, match="answered 500"):
            RemoteMonitor(root=server.root).on_epoch_end(0, {"loss": 1.0})
    gone = _Server()
    gone.httpd.server_close()  # a port nothing listens on any more
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server"):
        RemoteMonitor(root=gone.root).on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="root"):
        RemoteMonitor(root="ftp://example")
    with pytest.raises(TypeError, match="headers"):
        RemoteMonitor(headers={"X": 1})


# ---- BackupAndRestore ---------------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import mlp_gpu
    from mlp_gpu import layers
    from mlp_gpu.callbacks import BackupAndRestore, Callback

    backup, out, kill_at, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    mlp_gpu.utils.set_random_seed(seed)  # the resumed run starts from other weights and another fit seed
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1)
    model = mlp_gpu.Sequential([layers.Input((6,)), layers.Dense(16, "relu"), layers.Dropout(0.3),
                                layers.BatchNormalization(), layers.Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer=mlp_gpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Kill(Callback):  # SIGKILL in the middle of epoch kill_at: nothing of it reaches a file
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_at and batch == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0, callbacks=[BackupAndRestore(backup), Kill()])
    np.savez(out, *model.get_weights(), state=model.optimizer.state, epochs=np.asarray(history.epoch))
""")


def _fit_resumes_from_initial_epoch() -> bool:
    """Whether fit reads Keras' ``model._initial_epoch`` after on_train_begin (training/fit.py)."""

    class Resume(Callback):
        def on_train_begin(self, logs=None):
            self.model._initial_epoch = 1

    x, y = blobs(n=32)
    return model().fit(x, y, epochs=2, verbose=0, callbacks=[Resume()]).epoch == [1]


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               MLP_GPU_BACKEND="numpy")
    return subprocess.run([sys.executable, str(script), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(not _fit_resumes_from_initial_epoch(),
                    reason="training/fit.py does not yet start at model._initial_epoch set in on_train_begin")
def test_backup_and_restore_resumes_a_killed_fit_bit_for_bit(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    backup = tmp_path / "backup"
    killed = _run(script, backup, tmp_path / "never.npz", 3, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (backup / "latest.h5").is_file() and not (tmp_path / "never.npz").exists()
    resumed = _run(script, backup, tmp_path / "resumed.npz", -1, 12345)
    assert resumed.returncode == 0, resumed.stderr
    reference = _run(script, tmp_path / "fresh", tmp_path / "reference.npz", -1, 0)
    assert reference.returncode == 0, reference.stderr
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "reference.npz")
    assert list(a["epochs"]) == [3, 4, 5] and list(b["epochs"]) == [0, 1, 2, 3, 4, 5]
    for key in b.files:
        if key != "epochs":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bit for bit
    assert not backup.exists()  # a fit that ended normally removes its backup


def test_backup_and_restore_backs_up_each_epoch_and_keeps_the_one_before(tmp_path):
    x, y = blobs(n=64)
    m = model()
    cb = BackupAndRestore(tmp_path / "b", double_checkpoint=True, delete_checkpoint=False)
    seen = []

    class Look(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(p.name for p in (tmp_path / "b").iterdir()))

    m.fit(x, y, epochs=3, verbose=0, callbacks=[cb, Look()])
    assert seen == [["latest.h5"], ["latest.h5", "latest.h5.bkp"], ["latest.h5", "latest.h5.bkp"]]
    weights = m.get_weights()
    (tmp_path / "b" / "latest.h5").write_bytes(b"damaged")
    other = model()
    cb.set_model(other)
    cb.set_params({"epochs": 3})
    cb.on_train_begin()  # the damaged last backup: the one before it, after epoch 2, is restored
    assert cb.restored_epoch == 2 and other.epochs_done == 2 and other._initial_epoch == 2
    assert not all(np.array_equal(a, b) for a, b in zip(other.get_weights(), weights))


def test_backup_and_restore_keeps_its_backup_when_fit_is_cut_short(tmp_path):
    x, y = blobs(n=64)

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # fit returns the History so far and calls on_train_end

    history = model().fit(x, y, epochs=5, verbose=0, callbacks=[BackupAndRestore(tmp_path / "b"), Interrupt()])
    assert history.epoch == [0] and (tmp_path / "b" / "latest.h5").is_file()


@pytest.mark.parametrize("kwargs, error", [
    (dict(backup_dir=""), "backup_dir"), (dict(backup_dir=3), "backup_dir"),
    (dict(backup_dir="b", save_freq=0), "save_freq"), (dict(backup_dir="b", save_freq=False), "save_freq"),
    (dict(backup_dir="b", double_checkpoint="yes"), "double_checkpoint"),
    (dict(backup_dir="b", delete_checkpoint=None), "delete_checkpoint")])
def test_backup_and_restore_refuses_bad_arguments(kwargs, error):
    with pytest.raises((TypeError, ValueError), match=error):
        BackupAndRestore(**kwargs)
