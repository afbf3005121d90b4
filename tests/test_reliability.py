"""Saves that cannot lose data, divergence, Ctrl-C, and fuzzed loaders."""
import functools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlp_gpu
from mlp_gpu import SGD, Dense, Input, Sequential, TrainingDiverged
from mlp_gpu.callbacks.checkpoint import ModelCheckpoint
from mlp_gpu.data.idx import IDXError, read_idx
from mlp_gpu.io import ModelFileError

from .conftest import blobs, write_idx

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

SAVER = r"""
import sys, numpy as np
from mlp_gpu import Dense, Input, Sequential
path = sys.argv[1]
m = Sequential([Input((784,)), Dense(512, "relu"), Dense(512, "relu"), Dense(10, "softmax")], backend="numpy")
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
m.params[...] = 2.0
print("ready", flush=True)
while True:
    m.save(path)
"""


def test_killed_saves_never_corrupt_the_previous_file(tmp_path):
    """SIGKILL a process that saves over and over; the file always loads, whole, old or new."""
    path = tmp_path / "m.h5"
    first = Sequential([Input((784,)), Dense(512, "relu"), Dense(512, "relu"), Dense(10, "softmax")],
                       backend="numpy")
    first.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
    first.params[...] = 1.0
    first.save(path)
    rng = random.Random(0)
    seen = set()
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.08))  # a save of this model takes ~10-30 ms: kills land mid-write
        proc.kill()
        proc.wait()
        loaded = mlp_gpu.load_model(path)
        values = set(np.unique(loaded.params).tolist())
        assert values in ({1.0}, {2.0}), values  # the old file or a complete new one, never a mix
        assert loaded.optimizer.state.shape == (2, loaded.count_params())
        seen |= values
    assert seen  # at least one state was observed; typically both
    for stray in tmp_path.glob(".m.h5.*.tmp"):  # a kill can leave a temp file beside, never in place
        stray.unlink()


WRITER = r"""
import sys
from mlp_gpu import Dense, Input, Sequential
m = Sequential([Input((784,)), Dense(128, "relu"), Dense(10, "softmax")], backend="numpy")
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
m.params[...] = float(sys.argv[2])
for _ in range(int(sys.argv[3])):
    m.save(sys.argv[1])
"""


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    """Two processes save different models to one path 30 times each while this one loads it."""
    path = tmp_path / "m.h5"
    first = Sequential([Input((784,)), Dense(128, "relu"), Dense(10, "softmax")], backend="numpy")
    first.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
    first.params[...] = 1.0
    first.save(path)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), value, "30"], env=ENV)
               for value in ("2", "3")]
    seen, loads = set(), 0
    while any(w.poll() is None for w in writers) or not loads:
        values = set(np.unique(mlp_gpu.load_model(path).params).tolist())
        assert values in ({1.0}, {2.0}, {3.0}), values
        seen |= values
        loads += 1
    assert [w.wait() for w in writers] == [0, 0]
    assert set(np.unique(mlp_gpu.load_model(path).params).tolist()) in ({2.0}, {3.0})
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]  # every temp file was renamed or removed


def test_divergence_names_epoch_and_step_and_keeps_checkpoint(tmp_path):
    x, y = blobs(n=320)
    m = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    m.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), metrics=["accuracy"], seed=0)
    ckpt = ModelCheckpoint(tmp_path / "ckpt.h5")
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[ckpt], seed=0)
    good = mlp_gpu.load_model(tmp_path / "ckpt.h5").get_weights()
    m.optimizer.learning_rate = 1e6
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match=r"at epoch 3, step \d+ of 10") as info:
        m.fit(np.clip(x * 1e38, -3e38, 3e38), y, batch_size=32, epochs=5, verbose=0, callbacks=[ckpt], seed=0,
              initial_epoch=2, on_nan="raise")
    assert "Lower the learning rate" in str(info.value) and info.value.history.epoch == []
    for a, b in zip(good, mlp_gpu.load_model(tmp_path / "ckpt.h5").get_weights()):
        np.testing.assert_array_equal(a, b)  # the checkpoint still holds the last finite weights
        assert np.isfinite(b).all()


def test_divergence_step_is_exact():
    """acc[2] counts steps whose running loss was finite: poison one batch and find it named."""
    x, y = blobs(n=320)
    x[200] = 3e38  # row 200 is in step 7 (batch 32, no shuffle): its logits overflow to inf
    m = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    m.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), seed=0)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="epoch 1, step 7 of 10"):
        m.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, on_nan="raise")


CTRL_C = r"""
import sys, numpy as np
from mlp_gpu import Callback, Dense, Input, Sequential
from mlp_gpu.callbacks import ModelCheckpoint
rng = np.random.default_rng(0)
x, y = rng.normal(size=(20000, 20)).astype(np.float32), rng.integers(0, 3, 20000)
class Ready(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            print("ready", flush=True)
m = Sequential([Input((20,)), Dense(64, "relu"), Dense(3, "softmax")], backend="numpy")
m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
h = m.fit(x, y, epochs=10000, verbose=0, callbacks=[ModelCheckpoint(sys.argv[1]), Ready()])
print("epochs", len(h.epoch), flush=True)
"""


def test_ctrl_c_returns_history_and_keeps_last_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C, str(tmp_path / "c.h5")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    completed = int(out.split()[-1])
    assert completed >= 2 and "fit interrupted" in err
    assert mlp_gpu.load_model(tmp_path / "c.h5").epochs_done == completed


# ---- fuzzing: the only exceptions are the documented ones ----------------------------------

IDX_SEEDS = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros((2, 2, 2), np.uint8), np.array([7], np.int32)]


def _mutate(data: bytes, edits):
    data = bytearray(data)
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    return bytes(data)


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(raw=st.binary(max_size=64), seed=st.sampled_from(range(len(IDX_SEEDS))),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 64), gz=st.booleans(), mode=st.sampled_from(["raw", "mutated", "cut"]))
def test_fuzz_idx_reader(tmp_path, raw, seed, edits, cut, gz, mode):
    path = write_idx(tmp_path / ("f.gz" if gz else "f"), IDX_SEEDS[seed])
    data = path.read_bytes()
    data = raw if mode == "raw" else _mutate(data, edits) if mode == "mutated" else data[:cut]
    path.write_bytes(data)
    try:
        out = read_idx(path)
    except IDXError:
        return
    assert isinstance(out, np.ndarray)


@functools.lru_cache(maxsize=1)
def model_bytes():
    """A valid model file to mutate (not a fixture: Hypothesis would print all of it on failure)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.h5"
        m = Sequential([Input((3,)), Dense(4, "relu"), Dense(2, "softmax")], backend="numpy")
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
        m.save(path)
        return path.read_bytes()


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1 << 14)))
def test_fuzz_model_loader(tmp_path, edits, cut):
    data = _mutate(model_bytes(), edits)
    path = tmp_path / "fuzzed.h5"
    path.write_bytes(data if cut is None else data[:cut])
    try:
        model = mlp_gpu.load_model(path)
    except ModelFileError:
        return
    assert model.count_params() == 26


def test_flipped_bit_in_stored_weights_is_detected(tmp_path):
    """Weights carry a Fletcher-32 checksum: silent corruption on disk fails the load loudly."""
    import h5py

    m = Sequential([Input((3,)), Dense(4, "relu"), Dense(2, "softmax")], backend="numpy")
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    m.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        offset = f["weights/dense/kernel"].id.get_chunk_info(0).byte_offset
    data = bytearray((tmp_path / "m.h5").read_bytes())
    data[offset + 5] ^= 0x10
    (tmp_path / "m.h5").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        mlp_gpu.load_model(tmp_path / "m.h5")
