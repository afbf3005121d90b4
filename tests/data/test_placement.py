"""fit / evaluate / predict from memmaps, h5py datasets and batch sources, resident or streamed."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.data.sources import ChunkedSource
from mlp_gpu.data.hdf5 import write_hdf5
from mlp_gpu.distributed.communicator import Communicator

from ..conftest import blobs, requires_gpu


def _model(backend="numpy", features=8, classes=3, seed=0):
    model = Sequential([Input((features,)), Dense(16, "relu"), Dense(classes, "softmax")], backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), metrics=["accuracy"], seed=seed)
    return model


@pytest.fixture
def on_disk(tmp_path):
    """Blobs as in-memory arrays, memmaps, h5py datasets in one file and in two files."""
    x_all, y_all = blobs(n=750, features=8)
    x, y, x_val, y_val = x_all[:600], y_all[:600], x_all[600:], y_all[600:]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    write_hdf5(tmp_path / "one.h5", x, y, test=(x_val, y_val))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = x
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["data"] = y
    files = [h5py.File(tmp_path / name, "r") for name in ("one.h5", "x.h5", "y.h5")]
    kinds = {"array": (x, y), "memmap": (np.load(tmp_path / "x.npy", mmap_mode="r"),
                                         np.load(tmp_path / "y.npy", mmap_mode="r")),
             "h5py": (files[0]["x"], files[0]["y"]), "h5py-two-files": (files[1]["data"], files[2]["data"])}
    yield kinds, (x_val, y_val), (files[0]["test/x"], files[0]["test/y"])
    for f in files:
        f.close()


class Batches:
    """PyDataset-like: len() batches, [i] -> (x, y); counts its epochs."""

    def __init__(self, x, y, batch=32):
        self.x, self.y, self.batch, self.epochs = x, y, batch, 0

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        return self.x[i * self.batch:(i + 1) * self.batch], self.y[i * self.batch:(i + 1) * self.batch]

    def on_epoch_end(self):
        self.epochs += 1


def _weights(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("kind", ["memmap", "h5py", "h5py-two-files"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_streamed_with_one_chunk_gives_the_resident_weights_bit_for_bit(on_disk, kind, shuffle):
    sources, _, _ = on_disk
    x, y = sources["array"]
    resident, streamed = _model(), _model()
    resident.fit(x, y, batch_size=32, epochs=3, seed=5, verbose=0, shuffle=shuffle)
    streamed.fit(ChunkedSource(*sources[kind], chunk_rows=len(x), resident=False), batch_size=32, epochs=3,
                 seed=5, verbose=0, shuffle=shuffle)
    for a, b in zip(_weights(resident), _weights(streamed)):
        np.testing.assert_array_equal(a, b)


def test_streamed_in_several_chunks_trains_and_shuffles_differently(on_disk, caplog):
    sources, val, _ = on_disk
    x, y = sources["array"]
    resident = _model()
    resident.fit(x, y, batch_size=32, epochs=3, seed=5, verbose=0)
    streamed = _model()
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        history = streamed.fit(ChunkedSource(*sources["memmap"], chunk_rows=100, resident=False), batch_size=32,
                               epochs=3, seed=5, verbose=0, validation_data=val)
    assert "fit: 600 rows of memmap streamed to numpy in 7 parts of up to 96 rows" in caplog.text
    assert history.history["accuracy"][-1] > 0.9 and history.history["val_accuracy"][-1] > 0.9
    assert not np.array_equal(_weights(resident)[0], _weights(streamed)[0])  # chunk-level shuffle differs


def _as(kind, pair, placement):
    """pair as fit gets it: the arrays themselves (the backend decides), or a source streamed in chunks."""
    return pair if placement == "auto" else (ChunkedSource(*pair, chunk_rows=100, resident=False),)


@pytest.mark.parametrize("kind, placement", [(kind, placement) for kind in ("memmap", "h5py", "h5py-two-files")
                                              for placement in ("auto", "streamed")] + [("batches", "auto")])
def test_each_source_trains_validates_evaluates_and_predicts(on_disk, kind, placement, caplog):
    sources, (x_val, y_val), test_h5 = on_disk
    x, y = sources["array"]
    train = (Batches(x, y),) if kind == "batches" else _as(kind, sources[kind], placement)
    validation = ((Batches(x_val, y_val, 50),) if kind == "batches" else
                  _as(kind, test_h5 if kind.startswith("h5py") else (x_val, y_val), placement))
    model = _model()
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        history = model.fit(*train, batch_size=32, epochs=4, seed=1, verbose=0,
                            validation_data=validation if len(validation) == 2 else validation[0])
    streamed = placement == "streamed" or kind == "batches"
    assert ("fit: 19 batches" if kind == "batches" else "fit: 600 rows") in caplog.text
    assert ("streamed to numpy" in caplog.text) == streamed
    assert history.history["val_accuracy"][-1] > 0.9
    reference = model.evaluate(x_val, y_val)
    assert model.evaluate(*validation) == pytest.approx(reference, rel=1e-6)
    assert model.evaluate(*validation, return_dict=True)["accuracy"] == reference[1]
    predicted = model.predict(Batches(x, y) if kind == "batches" else train[0])
    # batches of another size run other GEMM blockings: float32 rounding apart (seen: 2e-6 relative)
    np.testing.assert_allclose(predicted, model.predict(x), rtol=1e-5, atol=1e-7)
    if kind == "batches":
        assert train[0].epochs == 4


def test_evaluate_and_predict_stream_in_order_with_the_resident_results(on_disk):
    sources, _, _ = on_disk
    x, y = sources["array"]
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    mm = sources["memmap"]
    assert model.evaluate(ChunkedSource(*mm, chunk_rows=128, resident=False), batch_size=64) == \
        model.evaluate(x, y, batch_size=64)
    np.testing.assert_array_equal(model.predict(ChunkedSource(mm[0], chunk_rows=100, resident=False),
                                                batch_size=50), model.predict(x, batch_size=50))


def test_validation_split_takes_the_last_rows_of_a_memmap_without_reading_it(on_disk):
    sources, _, _ = on_disk
    a, b, c = _model(), _model(), _model()
    ha = a.fit(*sources["array"], validation_split=0.25, epochs=2, seed=3, verbose=0)
    hb = b.fit(*sources["memmap"], validation_split=0.25, epochs=2, seed=3, verbose=0)
    hc = c.fit(ChunkedSource(*sources["h5py"], chunk_rows=450, resident=False), validation_split=0.25, epochs=2,
               seed=3, verbose=0)
    assert ha.history == hb.history == hc.history


def test_a_callback_stopping_mid_epoch_ends_a_streamed_pass(on_disk):
    from mlp_gpu.callbacks.base import Callback

    class StopAt(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 4:
                self.model.stop_training = True

    model = _model()
    history = model.fit(ChunkedSource(*on_disk[0]["memmap"], chunk_rows=64, resident=False), epochs=3, verbose=0,
                        callbacks=[StopAt()])
    assert len(history.epoch) == 1 and np.isfinite(history.history["loss"][0])


class BadShapes(Batches):
    def __getitem__(self, i):
        bx, by = super().__getitem__(i)
        return (bx[:, :5], by) if i == 2 else (bx, by)


class WrongTargets(Batches):
    def __getitem__(self, i):
        bx, by = super().__getitem__(i)
        return (bx, by[:-1]) if i == 1 else (bx, by)


def _closed_h5(tmp_path):
    path = tmp_path / "closed.h5"
    x, y = blobs(n=40, features=8)
    write_hdf5(path, x, y)
    f = h5py.File(path, "r")
    pair = f["x"], f["y"]
    f.close()
    return pair


@pytest.mark.parametrize("call, message", [
    (lambda m, ds, h: m.fit(BadShapes(ds.x, ds.y), epochs=1), r"x\[2\]: expected samples of shape \(8,\)"),
    (lambda m, ds, h: m.fit(WrongTargets(ds.x, ds.y), epochs=1), r"x\[1\]: y: expected 32 targets"),
    (lambda m, ds, h: m.predict(BadShapes(ds.x, ds.y)), r"x\[2\]: expected samples of shape"),
    (lambda m, ds, h: m.fit(ds, ds.y), "y: must be None"),
    (lambda m, ds, h: m.fit(ds, validation_split=0.2), "validation_split: only for arrays"),
    (lambda m, ds, h: m.fit(ds, validation_data=[1, 2, 3]), "validation_data: expected a tuple"),
    (lambda m, ds, h: m.fit(ChunkedSource(ds.x, None)), "y: expected targets"),
    (lambda m, ds, h: m.fit(ChunkedSource(ds.x[:, :3], ds.y)), r"x: expected a non-empty array of samples"),
    (lambda m, ds, h: m.fit(ChunkedSource(ds.x, ds.y, chunk_rows=0)), "chunk_rows: expected None or an int"),
    (lambda m, ds, h: m.fit(h["h5py"][0], h["h5py-two-files"][1][:599]), r"y: expected 600 targets"),
    (lambda m, ds, h: m.fit(h["h5py"][0], h["two"]), r"y: expected 600 targets \(one per row of x\), got shape"),
])
def test_bad_sources_are_refused_naming_the_argument(on_disk, call, message):
    sources, _, _ = on_disk
    with h5py.File(sources["h5py"][0].file.filename, "r") as f:  # a y of the wrong length in another file
        with pytest.raises(ValueError, match=message):
            call(_model(), Batches(*sources["array"]), {**sources, "two": f["test/y"]})


@pytest.mark.parametrize("where", ["x", "y", "validation_data[0]", "evaluate", "predict"])
def test_a_closed_h5py_file_is_refused_naming_the_argument(on_disk, tmp_path, where):
    sources, (x_val, y_val), _ = on_disk
    cx, cy = _closed_h5(tmp_path)
    x, y = sources["array"]
    model = _model()
    calls = {"x": lambda: model.fit(cx, y[:40]), "y": lambda: model.fit(x[:40], cy),
             "validation_data[0]": lambda: model.fit(x, y, validation_data=(cx, cy)),
             "evaluate": lambda: model.evaluate(cx, cy), "predict": lambda: model.predict(cx)}
    arg = "x" if where in ("evaluate", "predict") else where
    with pytest.raises(ValueError, match=rf"^{arg.replace('[', '.').replace(']', '.')}: the h5py dataset's file is "
                                         "closed"):
        calls[where]()


class TwoRanks(Communicator):
    """Rank 0 of 2, for the checks fit makes before any collective that moves data."""

    engine = "test"

    def __init__(self):
        super().__init__(0, 2)

    def _allreduce(self, buf, op):
        pass

    def _broadcast(self, buf, root):
        pass


def test_a_distributed_fit_refuses_streamed_data_naming_the_argument(on_disk):
    sources, val, _ = on_disk
    streamed = ChunkedSource(*sources["memmap"], resident=False)
    with pytest.raises(ValueError, match=r"^x: a distributed fit \(2 ranks\) needs its data resident"):
        _model().fit(streamed, distribute=TwoRanks(), verbose=0)
    with pytest.raises(ValueError, match=r"^x: a distributed fit .* this batch source is streamed"):
        _model().fit(Batches(*sources["array"]), distribute=TwoRanks(), verbose=0)
    with pytest.raises(ValueError, match=r"^validation_data: a distributed fit"):
        _model().fit(*sources["array"], validation_data=Batches(*val), distribute=TwoRanks(), verbose=0)


MEMORY_CHILD = textwrap.dedent("""
    import json, logging, resource, sys
    import numpy as np
    from mlp_gpu import SGD, Dense, Input, Sequential
    from mlp_gpu.data_sources import ChunkedSource

    folder, headroom, force = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    logging.basicConfig(level="INFO", format="%(message)s")
    x, y = np.load(folder + "/x.npy", mmap_mode="r"), np.load(folder + "/y.npy", mmap_mode="r")
    model = Sequential([Input((x.shape[1],)), Dense(8, "relu"), Dense(2, "softmax")], backend="numpy")
    model.compile(optimizer=SGD(0.01), loss="sparse_categorical_crossentropy", seed=0)
    model.fit(np.asarray(x[:2048]), np.asarray(y[:2048]), batch_size=1024, verbose=0)  # warm every code path
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    limit = status("VmData") + headroom
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    rss_before = status("VmRSS")
    data = (x, y) if force == "auto" else (ChunkedSource(x, y, resident=force == "resident"),)
    try:
        history = model.fit(*data, batch_size=1024, epochs=1, verbose=0, seed=0)
    except MemoryError as exc:
        print(json.dumps({"memory_error": str(exc)}))
        sys.exit(0)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest) across exec
    print(json.dumps({"loss": history.history["loss"][-1], "rss_before": rss_before, "peak_rss": status("VmHWM")}))
""")


def _memory_child(folder, headroom, force):
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(folder), str(headroom), force],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.slow
def test_a_memmap_larger_than_the_memory_limit_trains_streamed_with_bounded_memory(tmp_path):
    rows, features = 400_000, 784   # 314 MB of uint8 on disk; the child may allocate 160 MiB more
    x = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.uint8, (rows, features))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 50_000):
        x[start:start + 50_000] = rng.integers(0, 256, (50_000, features), dtype=np.uint8)
    x.flush()
    del x
    np.save(tmp_path / "y.npy", rng.integers(0, 2, rows, dtype=np.uint8))
    headroom = 160 << 20
    got, log = _memory_child(tmp_path, headroom, "auto")  # a plain memmap: the backend decides
    assert "fit: 400,000 rows of memmap streamed to numpy" in log, log
    assert np.isfinite(got["loss"])
    assert got["peak_rss"] - got["rss_before"] < headroom  # the file's 314 MB never came into memory
    refused, _ = _memory_child(tmp_path, headroom, "resident")  # the limit bites: a resident copy fails
    assert "memory_error" in refused


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["memmap", "batches"])
def test_gpu_streamed_matches_numpy_streamed_and_resident(on_disk, kind):
    """cupy streamed (pinned stages, side stream) against numpy streamed in the same order, and, with one
    chunk, against cupy and numpy resident: float tolerance (the GPU sums in another order)."""
    sources, (x_val, y_val), _ = on_disk
    x, y = sources["array"]

    def data(chunk):
        if kind == "batches":
            return (Batches(x, y),)
        return (ChunkedSource(*sources["memmap"], chunk_rows=chunk, resident=chunk is None),)

    runs = {}
    for name, backend, chunk in (("cpu", "numpy", 100), ("gpu", "cupy", 100), ("cpu-one", "numpy", len(x)),
                                 ("gpu-one", "cupy", len(x)), ("gpu-resident", "cupy", None)):
        model = _model(backend)
        model.fit(*data(chunk), batch_size=32, epochs=3, seed=5, verbose=0, validation_data=(x_val, y_val))
        runs[name] = (_weights(model), model.evaluate(*data(chunk)), model.predict(data(chunk)[0]))
    pairs = [("cpu", "gpu")] + ([] if kind == "batches" else [("cpu-one", "gpu-one"), ("gpu-one", "gpu-resident")])
    for a, b in pairs:
        for wa, wb in zip(runs[a][0], runs[b][0]):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(runs[a][1], runs[b][1], rtol=1e-4)
        np.testing.assert_allclose(runs[a][2], runs[b][2], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["memmap", "batches"])
def test_a_model_without_an_input_shape_builds_from_a_source(on_disk, kind):
    sources, (x_val, y_val), _ = on_disk
    model = Sequential([Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), metrics=["accuracy"], seed=0)
    data = (Batches(*sources["array"]),) if kind == "batches" else sources["memmap"]
    model.fit(*data, epochs=3, verbose=0, seed=0)
    assert model.input_shape == (8,) and model.evaluate(x_val, y_val)[1] > 0.9


def test_rows_bench_times_resident_and_streamed_cells_and_reports_them(tmp_path, monkeypatch):
    from mlp_gpu.benchmarks import rows

    monkeypatch.setitem(rows.STEPS, "numpy", (16, 48))
    result = rows.run_rows((3000,), out=tmp_path / "out", scratch=tmp_path, rounds=1, log=lambda *_: None)
    cells = {c["mode"]: c for c in result["cells"]}
    assert set(cells) == {"resident", "streamed"}
    for cell in cells.values():
        assert cell["timed_steps"] >= 48 and cell["samples_per_s"] > 0 and cell["peak_rss_mb"] > 0
    assert cells["streamed"]["full_pass_parts"] == 1 and "3000" in result["ratios"]
    assert "| 3,000 | streamed |" in (tmp_path / "out" / "bench-rows.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the data files are gone
