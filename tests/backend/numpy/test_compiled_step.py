"""The fused SGD step as one compiled call (backend/numpy/compiled_step.py, step_kernel.py): the same training as
the step run op by op in Python, for every activation and loss it compiles, on every kind of data it reads; the
same BLAS thread switches; a clear fallback, and a clear error, where it cannot run."""
import ctypes
import subprocess
import sys

import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.numpy.compiled_step import ACTIVATIONS, CompiledSgdStep
from mlp_gpu.backend.numpy.fused_step import FusedSgdStep
from mlp_gpu.backend.numpy.threads import ThreadPolicy, ThreadRule, blas_pools
from mlp_gpu.data.sources import ChunkedSource
from mlp_gpu.optimizers import schedules
from mlp_gpu.training.fit import prepare_fit

from ...conftest import blobs

pytest.importorskip("numba", reason="Numba is not installed: the compiled step falls back (tested below)")

LOSSES = {  # loss: (output units, output activation, targets from class labels)
    "sparse_categorical_crossentropy": (3, "softmax", lambda y: y),
    "categorical_crossentropy": (3, "softmax", lambda y: np.eye(3, dtype=np.float32)[y]),
    "binary_crossentropy": (1, "sigmoid", lambda y: (y == 1).astype(np.float32)[:, None]),
    "mse": (3, "linear", lambda y: np.eye(3, dtype=np.float32)[y]),
}


def fit(compiled, hidden=("relu", "tanh"), loss="sparse_categorical_crossentropy", pixels=False, epochs=2,
        optimizer=lambda: SGD(0.2), source=None, threads=None):
    """(weights, History, backend) of a short fit; 70 rows at batch 16: the last batch has 6 rows."""
    x, labels = blobs(n=70)
    if pixels:  # uint8 images, scaled by 1/255 in the gather
        x = np.clip((x - x.min()) / (x.max() - x.min()) * 255, 0, 255).astype(np.uint8)
    units, output, targets = LOSSES[loss]
    backend = NumpyBackend(compiled=compiled, threads=threads)
    model = Sequential([Input((8,))] + [Dense(12, act) for act in hidden] + [Dense(units, output)], backend=backend)
    model.compile(loss=loss, optimizer=optimizer(), metrics=["accuracy"], seed=1)
    y = targets(labels)
    data = (source(x, y),) if source else (x, y)
    history = model.fit(*data, batch_size=16, epochs=epochs, verbose=0, seed=2)
    return model.get_weights(), history, backend


def same_training(**kwargs):
    """The compiled step and the step op by op: the same weights and logs within float32 rounding."""
    compiled, h_compiled, backend = fit(True, **kwargs)
    python, h_python, other = fit(False, **kwargs)
    assert backend.route["compiled"] and backend.route["compiled"].startswith("Numba"), backend.route
    assert other.route["route"] == "fused-sgd" and other.route["compiled"] is None
    for a, b in zip(compiled, python):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key, values in h_python.history.items():
        np.testing.assert_allclose(h_compiled.history[key], values, rtol=1e-5, atol=1e-7)
    return compiled


@pytest.mark.parametrize("activation", [a for a in ACTIVATIONS if a != "linear"] + ["linear"])
def test_every_compiled_activation_trains_as_the_python_step(activation):
    weights = same_training(hidden=(activation, activation))
    initial, _, _ = fit(True, hidden=(activation, activation), epochs=0)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(weights, initial))  # every weight moved


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("pixels", [False, True], ids=["float32", "uint8"])
def test_every_compiled_loss_trains_as_the_python_step(loss, pixels):
    same_training(loss=loss, pixels=pixels)


def test_a_schedule_is_read_every_step():
    same_training(optimizer=lambda: SGD(schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.7)))


def test_a_streamed_sources_parts_are_gathered_from_their_stages():
    same_training(source=lambda x, y: ChunkedSource(x, y, chunk_rows=32, resident=False))


def test_what_it_does_not_compile_runs_op_by_op_saying_why():
    _, _, backend = fit(True, hidden=("elu", "relu"))
    assert backend.route["route"] == "fused-sgd" and backend.route["compiled"] is None
    assert "activation 'elu' has no compiled form" in backend.route["reason"]
    _, _, off = fit(False)
    assert "NumpyBackend(compiled=False)" in off.route["reason"]
    with pytest.raises(ValueError, match="compiled"):
        NumpyBackend(compiled="yes")
    assert repr(NumpyBackend(compiled=False)) == "NumpyBackend(compiled=False)" and repr(NumpyBackend()) == \
        "NumpyBackend()"


def test_a_backend_that_overrides_a_compiled_op_runs_op_by_op():
    """A subclass's own gather_rows (a recording one, say) is called for every batch."""
    class Recording(NumpyBackend):
        def __init__(self):
            super().__init__()
            self.gathered = 0

        def gather_rows(self, src, perm, cursor, out):
            self.gathered += 1
            super().gather_rows(src, perm, cursor, out)

    x, y = blobs(n=40)
    model = Sequential([Input((8,)), Dense(4, "relu"), Dense(3, "softmax")], backend=Recording())
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.backend.gathered == 2 * 5  # x and y, 5 batches
    route = model.backend.route
    assert route["compiled"] is None and "Recording has its own gather_rows" in route["reason"]


def test_compile_jit_compile_false_runs_the_step_op_by_op():
    x, y = blobs(n=40)
    for jit_compile, compiled in (("auto", True), (True, True), (False, False)):
        model = Sequential([Input((8,)), Dense(4, "relu"), Dense(3, "softmax")], backend=NumpyBackend())
        model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), jit_compile=jit_compile)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert (model.backend.route["compiled"] is not None) == compiled, (jit_compile, model.backend.route)
    assert "compile(jit_compile=False)" in model.backend.route["reason"]


def _recorded_setters(monkeypatch):
    """Every BLAS thread count set, recorded by C callbacks around the libraries' own setters (the compiled
    step calls them from compiled code, the Python step through BlasPools.set)."""
    pools, calls = blas_pools(), []
    real = list(pools.setters)
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int)
    wrappers = []
    for index, setter in enumerate(real):
        def record(threads, setter=setter, index=index):
            calls.append((index, threads))
            setter(threads)
        wrappers.append(proto(record))
    monkeypatch.setattr(pools, "setters", wrappers)
    return calls


@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "oversubscribed"])
def test_the_compiled_step_switches_blas_threads_as_the_plan_says(monkeypatch, busy):
    """784-300-100-10 at batch 32, a policy that sees two CPUs and gives a second thread from 3 million
    multiply-adds (the 32 x 300 x 785 products only): the compiled step makes the Python step's switches."""
    pools = blas_pools()
    before = pools.get()
    pools.set(2)  # the caller's count: two threads
    try:
        runs = {}
        for compiled in (True, False):
            calls = _recorded_setters(monkeypatch)
            policy = ThreadPolicy(ThreadRule(3_000_000), others=lambda: 1000 if busy else 0, cpus=lambda: 2)
            rng = np.random.default_rng(0)
            x, y = rng.integers(0, 256, (96, 784), dtype=np.uint8), rng.integers(0, 10, 96)
            model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                               backend=NumpyBackend(compiled=compiled, threads=policy))
            model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), seed=0)
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            assert (model.backend.route["compiled"] is not None) == compiled
            assert (policy.single is not None) == busy
            runs[compiled] = [threads for _, threads in calls[::len(pools.setters)]]
            assert pools.get() == 2  # the caller's count is back after the fit
        # quiet: one thread from the 32 x 100 x 301 product on, two again for the 785 x 300 x 32 fold;
        # oversubscribed: one thread for the whole step, then the caller's count; 3 steps either way
        assert runs[True] == runs[False] == [1, 2] * 3, runs
    finally:
        pools.set(before)


def _step(labels=None):
    x, y = blobs(n=40)
    model = Sequential([Input((8,)), Dense(4, "relu"), Dense(3, "softmax")], backend=NumpyBackend())
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), seed=0)
    run = prepare_fit(model, x, y, batch_size=8)
    model.backend.threads.begin()
    if labels is not None:
        run.train.y[:] = labels
    step = CompiledSgdStep(FusedSgdStep(model.backend, model, run.train, run.sums.buffer, 8))
    run.train.begin_epoch()
    return model, run, step


def test_a_label_outside_the_classes_is_refused_by_name_before_anything_moves():
    """fit checks labels first; the compiled step checks again rather than write outside its buffer."""
    model, run, step = _step(labels=7)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 2\]"):
        step()
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after[2:], before[2:]))  # the output layer never moved
    model, run, step = _step()
    step()  # and the process goes on training
    assert int(run.train.cursor[0]) == 8 and model.optimizer.iterations == 1


def test_a_cursor_past_the_rows_is_refused():
    _, run, step = _step()
    run.train.cursor[0] = 36  # 36 + 8 > 40 rows
    with pytest.raises(ValueError, match="row outside the data"):
        step()


def test_without_numba_the_step_runs_op_by_op_saying_why():
    """A real import failure, in a fresh interpreter where importing numba raises."""
    script = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from mlp_gpu import SGD, Dense, Input, Sequential\n"
        "from mlp_gpu.backend import NumpyBackend\n"
        "x = np.random.default_rng(0).random((40, 8), dtype=np.float32); y = np.arange(40) % 3\n"
        "m = Sequential([Input((8,)), Dense(4, 'relu'), Dense(3, 'softmax')], backend=NumpyBackend())\n"
        "m.compile(loss='sparse_categorical_crossentropy', optimizer=SGD(0.1))\n"
        "m.fit(x, y, batch_size=8, epochs=1, verbose=0)\n"
        "print(m.backend.route['compiled'], '|', m.backend.route['reason'])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("None |") and "Numba is not importable" in out.stdout, out.stdout

