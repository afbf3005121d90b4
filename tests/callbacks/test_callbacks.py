"""Callbacks, progress output, plots and resuming: each shown by what it does."""
import csv

import h5py
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.callbacks.base import Callback, LambdaCallback
from mlp_gpu.callbacks.logging import CSVLogger
from mlp_gpu.callbacks.monitor import EarlyStopping, TerminateOnNaN
from mlp_gpu.callbacks.learning_rate import LearningRateScheduler
from mlp_gpu.callbacks.checkpoint import ModelCheckpoint
from mlp_gpu.cli import main
from mlp_gpu.plots import confusion_matrix

from ..conftest import blobs

PNG = b"\x89PNG\r\n\x1a\n"


def model(lr=0.05, seed=0):
    m = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    m.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(lr), metrics=["accuracy"], seed=seed)
    return m


def drive(cb, m, values, monitor="val_loss"):
    """Feed a callback scripted epoch logs; return the epoch at which it stopped training (or None)."""
    cb.set_model(m)
    cb.set_params({})
    cb.on_train_begin()
    for epoch, v in enumerate(values):
        m.params[...] = epoch  # weights that tell the epochs apart
        m.epochs_done = epoch + 1  # as fit sets it before the epoch-end hooks
        cb.on_epoch_end(epoch, {monitor: v})
        if m.stop_training:
            return epoch
    return None


def test_early_stopping_patience_counts_epochs_without_improvement():
    m = model().build()
    m.stop_training = False
    assert drive(EarlyStopping(patience=2), m, [1.0, 0.9, 0.95, 0.91, 0.5]) == 3
    m.stop_training = False
    assert drive(EarlyStopping(patience=2, min_delta=0.05), m, [1.0, 0.97, 0.96, 0.5]) == 2
    m.stop_training = False
    assert drive(EarlyStopping(monitor="val_accuracy", patience=0), m, [0.5, 0.6, 0.6], "val_accuracy") == 2


def test_early_stopping_restores_best_weights_without_stopping():
    m = model().build()
    m.stop_training = False
    cb = EarlyStopping(patience=10, restore_best_weights=True)
    assert drive(cb, m, [1.0, 0.3, 0.8, 0.9]) is None
    cb.on_train_end()
    assert np.all(m.params == 1)  # epoch 1 had the best val_loss


def test_model_checkpoint_best_only_writes_on_improvement(tmp_path):
    m = model().build()
    cb = ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.h5", save_best_only=True)
    m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    drive(cb, m, [1.0, 0.5, 0.7, 0.4])
    assert [p.split("/")[-1] for p in cb.saved] == ["ckpt-01-1.00.h5", "ckpt-02-0.50.h5", "ckpt-04-0.40.h5"]
    assert np.all(mlp_gpu.load_model(cb.saved[-1]).params == 3)
    with h5py.File(cb.saved[1], "r") as f:
        assert f["optimizer"].attrs["epoch"] == 2


def test_model_checkpoint_weights_only_and_bad_folder(tmp_path):
    m = model().build()
    cb = ModelCheckpoint(tmp_path / "w.h5", save_weights_only=True)
    drive(cb, m, [1.0])
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert "optimizer" not in f and "weights" in f
    cb = ModelCheckpoint(tmp_path / "missing" / "deeper" / "w.h5")  # Keras creates the folder when saving
    drive(cb, m, [1.0])
    assert (tmp_path / "missing" / "deeper" / "w.h5").is_file()


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = blobs()
    history = model().fit(x, y, epochs=3, verbose=0, validation_split=0.2, callbacks=[CSVLogger(tmp_path / "log.csv")])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], history.history["val_loss"])


def test_terminate_on_nan_stops_a_diverging_run_quietly():
    x, y = blobs()
    m = model(lr=1e6)
    history = m.fit(x * 1e4, y, epochs=20, verbose=0, callbacks=[TerminateOnNaN()])  # no exception
    assert history.epoch == [0] and np.isnan(history.history["loss"][0]) and m.stop_training  # as in Keras
    with np.errstate(all="ignore"):
        strict = model(lr=1e6).fit(x * 1e4, y, epochs=20, verbose=0, callbacks=[TerminateOnNaN()], on_nan="raise")
    assert strict.epoch == []  # the strict mode stops before any callback sees the diverged epoch


def test_learning_rate_scheduler_sets_rate_each_epoch():
    x, y = blobs()
    seen = []

    def schedule(epoch, lr):
        seen.append(lr)
        return 0.1 / (epoch + 1)

    m = model()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(schedule)])
    np.testing.assert_allclose(seen, [0.05, 0.1, 0.05])
    assert m.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_batch_hook_only_when_a_callback_needs_it():
    x, y = blobs(n=100)

    class Counter(Callback):
        calls = 0

        def on_batch_end(self, batch, logs=None):
            Counter.calls += 1
            assert "loss" in logs

    model().fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[Counter()])
    assert Counter.calls == 2 * 4
    assert not Callback().wants_batch_end and Counter().wants_batch_end


def test_keyboard_interrupt_returns_history_so_far():
    x, y = blobs()

    class CtrlC(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    history = model().fit(x, y, epochs=5, verbose=0, callbacks=[CtrlC()])
    assert history.epoch == [0, 1]


def test_verbose_levels(capsys):
    x, y = blobs()
    model().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model().fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2 - loss:")
    model().fit(x, y, epochs=1, verbose=1)
    captured = capsys.readouterr()
    bar = captured.out + captured.err
    assert "Epoch 1/1" in bar and "sample" in bar and "accuracy" in bar


def test_resume_from_checkpoint_equals_uninterrupted_bit_for_bit(tmp_path):
    x, y = blobs()
    straight = model(seed=3)
    straight.fit(x, y, epochs=4, verbose=0, seed=11)
    first = model(seed=3)
    first.fit(x, y, epochs=2, verbose=0, seed=11, callbacks=[ModelCheckpoint(tmp_path / "c.h5")])
    resumed = mlp_gpu.load_model(tmp_path / "c.h5")
    assert resumed.epochs_done == 2 and resumed.fit_seed == 11
    resumed.fit(x, y, epochs=4, verbose=0, seed=resumed.fit_seed, initial_epoch=resumed.epochs_done)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_history_plot_and_confusion_matrix(tmp_path):
    x, y = blobs()
    history = model().fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    path = history.plot(tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    counts = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_cli_plot_checkpoint_resume(tiny_dataset, tmp_path, capsys):
    common = ["--data", str(tiny_dataset), "--backend", "numpy", "--verbose", "0", "--hidden", "16",
              "--validation-size", "40", "--lr", "0.05"]
    out = tmp_path / "m.h5"
    assert main(["train", *common, "--epochs", "2", "--output", str(out), "--plot",
                 "--checkpoint", str(tmp_path / "ckpt.h5")]) == 0
    assert (tmp_path / "m-history.png").read_bytes()[:8] == PNG
    assert main(["train", *common, "--epochs", "4", "--output", str(tmp_path / "m2.h5"),
                 "--resume", str(tmp_path / "ckpt.h5")]) == 0
    assert "resuming" in capsys.readouterr().out
    assert mlp_gpu.load_model(tmp_path / "m2.h5").epochs_done == 4
    assert main(["evaluate", str(out), "--data", str(tiny_dataset), "--plot", str(tmp_path / "cm.png")]) == 0
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG


class _KerasModelStandIn:
    """What Keras' EarlyStopping touches on a model: stop_training and the weights."""
    stop_training = False
    epoch = 0

    def get_weights(self):
        return [self.epoch]


@pytest.mark.parametrize("kwargs,values", [
    (dict(patience=2), [1.0, 0.9, 0.95, 0.91, 0.5]),
    (dict(patience=2, min_delta=0.05), [1.0, 0.97, 0.96, 0.5]),
    (dict(patience=0), [1.0, 1.1, 1.2]),
    (dict(patience=1, baseline=0.5), [1.0, 0.9, 0.8, 0.7, 0.4, 0.45, 0.46]),
    (dict(patience=0, start_from_epoch=2), [1.0, 1.1, 1.2, 1.3, 1.4]),
    (dict(monitor="val_accuracy", mode="max", patience=1, restore_best_weights=True), [0.5, 0.6, 0.6, 0.55, 0.7]),
    (dict(patience=3, restore_best_weights=True, start_from_epoch=1), [0.2, 1.0, 0.9, 0.95, 0.97, 0.99]),
])
def test_early_stopping_stops_and_restores_where_keras_does(kwargs, values, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch CPU, a dev dependency
    from keras.callbacks import EarlyStopping as KerasEarlyStopping

    monitor = kwargs.get("monitor", "val_loss")
    theirs, stand_in = KerasEarlyStopping(**kwargs), _KerasModelStandIn()
    theirs.set_model(stand_in)
    theirs.on_train_begin()
    keras_stop = None
    for epoch, v in enumerate(values):
        stand_in.epoch = epoch
        theirs.on_epoch_end(epoch, {monitor: v})
        if stand_in.stop_training:
            keras_stop = epoch
            break
    m = model().build()
    m.stop_training = False
    ours = EarlyStopping(**kwargs)
    assert drive(ours, m, values, monitor) == keras_stop
    assert ours.best_epoch == theirs.best_epoch and ours.wait == theirs.wait
    if kwargs.get("restore_best_weights"):
        ours.on_train_end()
        assert np.all(m.params == theirs.best_weights[0])  # drive() writes the epoch into the weights


def test_callbacks_take_keras_positional_arguments_and_verbose(capsys):
    es = EarlyStopping("val_loss", 0.1, 3, 1, "min", None, True, 2)
    assert (es.min_delta, es.patience, es.verbose, es.restore_best_weights, es.start_from_epoch) == (0.1, 3, 1, True, 2)
    ck = ModelCheckpoint("c.h5", "val_accuracy", 1, True, True, "max", 5, 0.9)
    assert (ck.verbose, ck.save_best_only, ck.save_weights_only, ck.save_freq, ck.best) == (1, True, True, 5, 0.9)
    m = model().build()
    m.stop_training = False
    assert drive(EarlyStopping(patience=0, verbose=1), m, [1.0, 2.0]) == 1
    with pytest.raises(TypeError, match=r"EarlyStopping\(monitor\)"):
        EarlyStopping(monitor=5)
    with pytest.raises(ValueError, match=r"save_freq"):
        ModelCheckpoint("c.h5", save_freq="batch")
    with pytest.raises(ValueError, match=r"save_freq"):
        ModelCheckpoint("c.h5", save_freq=0)


def test_early_stopping_verbose_prints_as_keras():
    import contextlib
    import io

    m = model().build()
    m.stop_training = False
    cb = EarlyStopping(patience=0, verbose=1, restore_best_weights=True)
    drive(cb, m, [1.0, 2.0])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cb.on_train_end()
    assert out.getvalue() == ("Epoch 2: early stopping\n"
                              "Restoring model weights from the end of the best epoch: 1.\n")


def test_model_checkpoint_save_freq_counts_batches_across_epochs_as_keras(tmp_path):
    x, y = blobs(320, 8, 3)
    m = model()
    cb = ModelCheckpoint(str(tmp_path / "c-{epoch}-{batch}.h5"), save_freq=4)
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=0, callbacks=[cb])  # 10 batches an epoch
    assert [p.split("/")[-1] for p in cb.saved] == ["c-1-4.h5", "c-1-8.h5", "c-2-2.h5", "c-2-6.h5", "c-2-10.h5"]
    assert mlp_gpu.load_model(cb.saved[-1]).count_params() == m.count_params()


def test_model_checkpoint_initial_value_threshold(tmp_path):
    m = model().build()
    cb = ModelCheckpoint(tmp_path / "best-{epoch}.h5", save_best_only=True, initial_value_threshold=0.7)
    drive(cb, m, [1.0, 0.8, 0.5, 0.6])
    assert [p.split("/")[-1] for p in cb.saved] == ["best-3.h5"]


def test_lambda_callback_and_hooks_without_logs_defaults():
    x, y = blobs(320, 8, 3)
    seen = {"epochs": [], "batches": 0, "begin": 0, "end": 0, "older": 0}

    def batch_end(batch, logs):
        seen["batches"] += 1

    class KerasStyle(Callback):  # Keras passes logs to every hook; user code may not give it a default
        def on_epoch_begin(self, epoch, logs):
            assert logs == {}

        def on_train_begin(self, logs):
            seen["begin"] += 1

        def on_train_end(self, logs):
            seen["end"] += 1

    cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen["epochs"].append((epoch, sorted(logs))),
                        on_train_batch_end=batch_end)
    older = LambdaCallback(on_batch_end=lambda batch, logs: seen.__setitem__("older", seen["older"] + 1))
    model().fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb, older, KerasStyle()])
    assert seen == {"epochs": [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])], "batches": 20, "begin": 1,
                    "end": 1, "older": 20}
    with pytest.raises(TypeError, match=r"LambdaCallback\(on_epoch_end\)"):
        LambdaCallback(on_epoch_end="print")


def test_verbose_1_prints_the_backend_and_the_data_placement_once(capsys):
    x, y = blobs()
    model().fit(x, y, epochs=3, verbose=1, validation_split=0.2)
    out = capsys.readouterr().out
    assert out.count("backend numpy (asked for)") == 1
    assert out.count("fit: 240 rows of in-memory array") == 1 and out.count("resident on numpy") == 2
    auto = Sequential([Input((8,)), Dense(3, "softmax")], backend="auto")
    auto.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05))
    auto.fit(x, y, epochs=2, verbose=1)
    assert f"backend {auto.backend.name} (auto" in capsys.readouterr().out
    model().fit(x, y, epochs=2, verbose=2)
    assert "resident" not in capsys.readouterr().out
