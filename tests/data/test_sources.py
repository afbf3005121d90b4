"""Data sources and the streamed order, below the trainer: every row once per epoch, from the seed."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import threadpoolctl

from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.data.sources import ArraySource, BatchSource, ChunkedSource, as_source, epoch_order, split_rows
from mlp_gpu.data.rows import RowRange
from mlp_gpu.data.hdf5 import open_hdf5, write_hdf5
from mlp_gpu.data.placement import StreamedData


def _model(features=6, classes=3):
    model = Sequential([Input((features,)), Dense(5, "relu"), Dense(classes, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), metrics=["accuracy"], seed=0)
    return model


def _data(rows=103, features=6, dtype=np.uint8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (rows, features)).astype(dtype), rng.integers(0, 3, rows).astype(np.int64)


def _visited(data, seed, epoch, shuffle=True):
    """The (x row, y) pairs of one pass, in the order the steps would see them."""
    xs, ys = [], []
    for stage in data.parts(seed, epoch, shuffle):
        order = stage.host_perm[:stage.rows]
        xs.append(stage.x[:stage.rows][order].copy())
        ys.append(stage.y[:stage.rows][order].copy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("sizes", [[50], [20, 20, 7], [1, 1, 1, 1]])
def test_epoch_order_visits_every_row_once_and_depends_only_on_seed_and_epoch(sizes):
    def flat(seed, epoch):
        starts = np.cumsum([0] + sizes[:-1])
        return np.concatenate([starts[p] + order for p, order in epoch_order(seed, epoch, sizes)])

    rows = sum(sizes)
    assert sorted(flat(7, 0)) == list(range(rows))
    np.testing.assert_array_equal(flat(7, 3), flat(7, 3))
    if rows > 4:
        assert not np.array_equal(flat(7, 0), flat(7, 1))
        assert not np.array_equal(flat(7, 0), flat(8, 0))


def test_one_part_follows_the_resident_order_and_no_shuffle_keeps_storage_order():
    (part, order), = epoch_order(11, 4, [500])
    np.testing.assert_array_equal(order, np.random.default_rng([11, 4]).permutation(500))
    assert list(epoch_order(11, 4, [3, 3, 2], shuffle=False)) == [(0, None), (1, None), (2, None)]


def test_parts_are_shuffled_as_wholes_with_rows_shuffled_within():
    sizes = [10] * 6
    order = list(epoch_order(1, 0, sizes))
    assert sorted(p for p, _ in order) == list(range(6)) and [p for p, _ in order] != list(range(6))
    assert all(sorted(o) == list(range(10)) for _, o in order)


@pytest.fixture
def stored(tmp_path):
    """The same rows as an array, a memmap view (offset into its file) and h5py datasets in one file."""
    x, y = _data()
    np.save(tmp_path / "x.npy", np.concatenate([x[:5], x]))  # the memmap below starts 5 rows in
    np.save(tmp_path / "y.npy", y)
    write_hdf5(tmp_path / "d.h5", x, y)
    f = h5py.File(tmp_path / "d.h5", "r")
    yield x, y, {"array": (x, y), "memmap": (np.load(tmp_path / "x.npy", mmap_mode="r")[5:],
                                            np.load(tmp_path / "y.npy", mmap_mode="r")),
                 "h5py": (f["x"], f["y"])}
    f.close()


@pytest.mark.parametrize("kind", ["array", "memmap", "h5py"])
@pytest.mark.parametrize("chunk", [20, 103, 500])
def test_streamed_passes_deliver_each_row_with_its_target_once(stored, kind, chunk):
    x, y, sources = stored
    model = _model()
    source = ChunkedSource(*sources[kind], chunk_rows=chunk).bind(model)
    data = StreamedData(model.backend, source, source.default_chunk_rows(10))
    seen_x, seen_y = _visited(data, seed=3, epoch=1)
    key = lambda a, b: sorted(map(tuple, np.column_stack([a, b])))  # noqa: E731
    assert key(seen_x, seen_y) == key(x, y)
    np.testing.assert_array_equal(_visited(data, 3, 1)[0], seen_x)      # reproducible
    np.testing.assert_array_equal(_visited(data, 3, 0, shuffle=False)[0], x)  # storage order
    assert data.capacity == (103 if chunk >= 103 else chunk // 10 * 10)  # whole batches, or all rows


def test_chunked_reads_use_bounded_buffers_and_name_the_bad_row(tmp_path):
    x, y = _data(dtype=np.float32)
    x[57, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    model = _model()
    source = ChunkedSource(np.load(tmp_path / "x.npy", mmap_mode="r"), y, chunk_rows=20).bind(model)
    data = StreamedData(model.backend, source, 20)
    assert data.stages[0].host_x.shape == (20, 6)
    with pytest.raises(ValueError, match="row 57"):
        _visited(data, 0, 0, shuffle=False)


def test_targets_are_checked_per_chunk_with_their_rows():
    x, y = _data()
    y[90] = 7
    model = _model()
    source = ChunkedSource(x, y, chunk_rows=20).bind(model)
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 2\].*\(in rows 80 to 99\)"):
        _visited(StreamedData(model.backend, source, 20), 0, 0, shuffle=False)


class Batches:
    """A PyDataset-like object (no Keras base class): len() batches of (x, y)."""

    def __init__(self, x, y, batch=16, extra=None):
        self.x, self.y, self.batch, self.extra = x, y, batch, extra
        self.events = []

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        s = slice(i * self.batch, (i + 1) * self.batch)
        return (self.x[s], self.y[s]) + ((self.extra,) if self.extra is not None else ())

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        self.events.append("end")


def test_batch_source_keeps_batches_whole_and_calls_the_epoch_hooks():
    x, y = _data()
    ds = Batches(x, y)
    model = _model()
    source = as_source(ds).bind(model)
    assert isinstance(source, BatchSource) and source.batches == 7 and source.capacity == 16
    data = StreamedData(model.backend, source, source.default_chunk_rows(32))
    stages = []
    for stage in data.parts(0, 0, shuffle=True):
        stages.append((stage.rows, stage.x[:stage.rows].copy()))
    assert ds.events == ["begin", "end"]
    assert sorted(r for r, _ in stages) == [7] + [16] * 6
    batches = {bytes(b.tobytes()) for _, b in stages}
    assert batches == {x[i * 16:(i + 1) * 16].tobytes() for i in range(7)}  # each batch intact


@pytest.mark.parametrize("make, message", [
    (lambda x, y: Batches(x, y, extra=np.ones(16)), "sample weights"),
    (lambda x, y: _Infinite(), "finite number of batches"),
])
def test_batch_source_errors_say_what_is_unsupported(make, message):
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        source = as_source(make(x, y)).bind(_model())
        list(StreamedData(_model().backend, source, source.capacity).parts())


class _Infinite:
    num_batches = None

    def __getitem__(self, i):
        raise AssertionError("not to be read")


def test_a_later_batch_larger_than_the_first_is_refused():
    x, y = _data()

    class Growing(Batches):
        def __getitem__(self, i):
            return (self.x[:8], self.y[:8]) if i == 0 else (self.x[:16], self.y[:16])

    source = as_source(Growing(x, y)).bind(_model())
    with pytest.raises(ValueError, match="larger than batch 0"):
        list(StreamedData(_model().backend, source, 8).parts(shuffle=False))


def test_as_source_picks_the_kind_and_refuses_y_beside_a_source(stored):
    x, y, sources = stored
    assert type(as_source(x, y)) is ArraySource
    assert type(as_source(*sources["memmap"])) is ChunkedSource
    assert type(as_source(*sources["h5py"])) is ChunkedSource
    with pytest.raises(ValueError, match="y: must be None"):
        as_source(Batches(x, y), y)


def test_row_ranges_split_without_reading_and_hdf5_layout_round_trips(tmp_path):
    x, y = _data()
    write_hdf5(tmp_path / "d.h5", x, y, test=(x[:10], y[:10]), attrs={"classes": 3})
    hx, hy = open_hdf5(tmp_path / "d.h5")
    (tx, ty), (vx, vy) = split_rows(hx, hy, 30)
    assert isinstance(tx, RowRange) and tx.shape == (73, 6) and vx.shape == (30, 6)
    np.testing.assert_array_equal(tx[5:9], x[35:39])
    np.testing.assert_array_equal(open_hdf5(tmp_path / "d.h5", "test")[0][:], x[:10])
    with pytest.raises(ValueError, match="expected datasets 'x' and 'y'"):
        open_hdf5(tmp_path / "d.h5", "nope")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        open_hdf5(tmp_path / "bad.h5")


def test_convert_writes_the_hdf5_layout_and_train_reads_it(tiny_dataset, tmp_path, capsys):
    from mlp_gpu.cli import main
    from mlp_gpu.data.idx import load_fashion_mnist

    h5 = tmp_path / "tiny.h5"
    assert main(["convert", "--data", str(tiny_dataset), "--output", str(h5)]) == 0
    (x, y), (x_test, y_test) = load_fashion_mnist(tiny_dataset, scale=False)
    with h5py.File(h5, "r") as f:
        np.testing.assert_array_equal(f["x"][:], x)
        np.testing.assert_array_equal(f["test/y"][:], y_test)
        assert f.attrs["classes"] == 10
    capsys.readouterr()
    args = ["--data", str(h5), "--backend", "numpy"]
    # The two fits agree to the bit only on one BLAS thread count: the backend picks threads per product from
    # the machine's load (backend/numpy/threads.py), and OpenBLAS rounds differently across counts.
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert main(["train", *args, "--epochs", "8", "--hidden", "32", "--validation-size", "40", "--lr", "0.05",
                     "--output", str(tmp_path / "m.h5"), "--verbose", "0", "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["val_accuracy"] > 0.8 and result["test_accuracy"] > 0.8
        assert main(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "8", "--hidden", "32",
                     "--validation-size", "40", "--lr", "0.05", "--output", str(tmp_path / "idx.h5"),
                     "--verbose", "0", "--json"]) == 0
        from_idx = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (from_idx["val_accuracy"], from_idx["test_loss"]) == (result["val_accuracy"], result["test_loss"])
    assert main(["evaluate", str(tmp_path / "m.h5"), *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == result["test_accuracy"]
