"""The persistent route (issue 28) on the CPU: the host harness runs kernels/persistent_step.cu as a cooperative
launch (every block at once, shared memory per block, common.cuh's grid_sync) on grids of 1, 2, 3 and 5 blocks,
against the NumPy backend step by step and over whole fits; the route's limits and on-chip budget; the harness'
grid barrier itself. nvcc and NVRTC compile the kernel file with the others (test_kernels, test_nvrtc)."""
import ctypes

import numpy as np
import pytest

from mlp_gpu import SGD, Adam, Dense, Flatten, Input, Sequential, schedules
from mlp_gpu.optimizers import RMSprop
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.cuda.persistent_step import PersistentStep, choose_grid, kernel_name, layout, unsupported
from mlp_gpu.backend.shared_constants import PERSIST_MAX_LAYERS, PERSIST_TABLE_INTS

from ...conftest import blobs, requires_gpu
from ...harness import host_ops
from ...harness.epoch import epoch_steps, general_step
from ...harness.host_ops import compiler
from ...harness.persistent import SHARED_LIMIT, HostPersistentOps

needs_gxx = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
H200 = dict(sms=132, shared=227 * 1024)
REFERENCE = (784, 300, 100, 10)


def _model(backend, sizes, activations, optimizer, loss="sparse_categorical_crossentropy", seed=1, flatten=None):
    layers = [Input(flatten or (sizes[0],))] + ([Flatten()] if flatten else [])
    layers += [Dense(units, act) for units, act in zip(sizes[1:], activations)]
    model = Sequential(layers, backend=backend)
    model.compile(loss=loss, optimizer=optimizer, metrics=["accuracy"], seed=seed)
    return model


def _close(ref, got, tol=1e-5):
    """Each weight tensor within tol of NumPy's, relative (the norm of the difference over the norm of NumPy's),
    and no single weight off by more than 10 tol of the tensor's largest: Adam's m / sqrt(v) turns the
    rounding of a near-zero gradient into a whole step, so one weight in a thousand may sit ~1e-5 away on any
    route (the kernel route's adam_update too, measured on the odd-widths net)."""
    for a, b in zip(ref.get_weights(), got.get_weights()):
        assert np.linalg.norm(b - a) <= tol * np.linalg.norm(a), (np.linalg.norm(b - a), np.linalg.norm(a))
        assert np.max(np.abs(b - a)) <= 10 * tol * np.max(np.abs(a)), (np.max(np.abs(b - a)), np.max(np.abs(a)))


# ---- the harness' grid barrier ----------------------------------------------------------------------------

GRID_SYNC_CHECK = r'''
// Layout: out (rounds, blocks) int32, written by each block after each barrier. Test kernel for the harness'
// cooperative launch (tests/backend/cuda/test_persistent_step.py), not a kernel of mlp_gpu.
#include "common.cuh"
// Launch: cooperative, 1-D grid of any size, 1-D block of whole warps, shared_mem >= 4 * blockDim.x.
extern "C" __global__ void grid_sync_check(int* slots, int* out, unsigned* bar, int rounds) {
    MLP_DYNAMIC_SHARED(int, mine);
    for (int round = 0; round < rounds; ++round) {
        mine[threadIdx.x] = round * 1000 + blockIdx.x;  // the block's own shared memory
        if (threadIdx.x == 0) slots[blockIdx.x] = round * 1000 + blockIdx.x;
        grid_sync(bar);
        int seen = 0;
        for (unsigned b = 0; b < gridDim.x; ++b) seen += slots[b] == round * 1000 + (int)b;
        __syncthreads();
        if (mine[(threadIdx.x + 1) % blockDim.x] != round * 1000 + (int)blockIdx.x) seen = -1;
        grid_sync(bar);  // nobody writes the next round's slots before every block has read these
        if (threadIdx.x == 0) out[round * gridDim.x + blockIdx.x] = seen;
    }
}
'''


@pytest.fixture(scope="module")
def grid_sync_lib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid_sync")
    for name in ("common.cuh", "shared_constants.cuh"):
        (folder / name).write_text((host_ops.kernels.kernel_dir() / name).read_text())
    (folder / "grid_sync_check.cu").write_text(GRID_SYNC_CHECK)
    return host_ops.library(folder / "grid_sync_check.cu")


@needs_gxx
@pytest.mark.parametrize("blocks", [1, 2, 3, 5])
def test_grid_sync_orders_every_block_in_the_harness(blocks, grid_sync_lib):
    """After grid_sync every block sees every other block's writes of this round, and each block has its own
    shared memory: concurrent blocks with one static copy would see another block's values."""
    lib = grid_sync_lib
    rounds, threads = 6, 64
    slots = np.full(blocks, -1, np.int32)
    out = np.zeros((rounds, blocks), np.int32)
    bar = np.zeros(2, np.uint32)
    lib.launch_coop_grid_sync_check(blocks, 1, 1, threads, 1, 1, ctypes.c_uint(4 * threads),
                                    *(ctypes.c_void_p(a.ctypes.data) for a in (slots, out, bar)), ctypes.c_int(rounds))
    assert (out == blocks).all(), out
    assert bar[0] == 0 and bar[1] == 2 * rounds  # every barrier opened once, the count reset


# ---- step by step against NumPy ------------------------------------------------------------------------

def _steps(backend, sizes, activations, optimizer, x, y, batch, loss, persistent):
    """One epoch of single steps in a fixed shuffled order (the last one shorter); the model, acc and cursor
    after each step."""
    model = _model(backend, sizes, activations, optimizer(), loss)
    make = (lambda m, d, a, rows: PersistentStep(backend, m, d, a, rows, backend.threads)) if persistent \
        else general_step
    for data, acc in epoch_steps(model, x, y, batch, make):
        yield model, np.array(acc), int(np.array(data.cursor)[0])


@needs_gxx
@pytest.mark.parametrize("blocks", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [1, 31, 33])
def test_each_step_matches_numpy(blocks, batch):
    """Odd widths (fewer units than blocks in the output layer: blocks that own nothing), batches of 1, 31 and
    33 rows over 40 rows (the last batch shorter), momentum: weights, losses, counts, cursor after every step.
    A gentle rate: at lr 0.1 and momentum 0.9 on one-row batches the NumPy run itself amplifies a rounding
    difference 2000-fold in 40 steps (measured: 1e-7 to 2e-4), which no summation order survives."""
    x, y = blobs(n=40, features=13, classes=5)
    sizes, acts = (13, 7, 9, 5), ("relu", "tanh", "softmax")
    opt = lambda: SGD(0.05, momentum=0.5)  # noqa: E731
    ref = _steps(NumpyBackend(), sizes, acts, opt, x, y, batch, "sparse_categorical_crossentropy", False)
    got = _steps(HostPersistentOps(blocks, threads=32), sizes, acts, opt, x, y, batch,
                 "sparse_categorical_crossentropy", True)
    count = 0
    for (m_ref, acc_ref, cur_ref), (m_got, acc_got, cur_got) in zip(ref, got):
        _close(m_ref, m_got, 1e-5)
        np.testing.assert_allclose(acc_got, acc_ref, rtol=1e-5)
        assert cur_got == cur_ref and m_got.optimizer.iterations == m_ref.optimizer.iterations
        count += 1
    assert count == -(-40 // batch)


@needs_gxx
@pytest.mark.parametrize("case", ["dense-targets-adam", "pixels-nesterov", "one-layer-sgd", "table-hidden-adam"])
def test_launch_of_several_steps_matches_numpy(case):
    """Several steps in one launch (the whole epoch but its shorter last batch), on 3 blocks: float features with
    categorical targets, uint8 pixels, a single Dense layer (the barrier at the end of each step), sigmoid,
    leaky_relu and linear hidden layers (the activation table's kernels/activations.cuh)."""
    rng = np.random.default_rng(0)
    x, y = blobs(n=45, features=6, classes=3)
    sizes, acts, loss, opt = (6, 9, 3), ("relu", "softmax"), "sparse_categorical_crossentropy", lambda: Adam(0.01)
    flatten = None
    if case == "dense-targets-adam":
        y, loss = np.eye(3, dtype=np.float32)[y], "categorical_crossentropy"
    elif case == "pixels-nesterov":
        x, flatten = rng.integers(0, 256, (45, 2, 3)).astype(np.uint8), (2, 3)
        opt = lambda: SGD(0.05, momentum=0.8, nesterov=True)  # noqa: E731
    elif case == "one-layer-sgd":
        sizes, acts, opt = (6, 3), ("softmax",), lambda: SGD(0.1)  # noqa: E731
    else:
        sizes, acts = (6, 11, 4, 5, 3), ("sigmoid", "leaky_relu", "linear", "softmax")
    fits = []
    for backend in (NumpyBackend(), HostPersistentOps(3, threads=32)):
        model = _model(backend, sizes, acts, opt(), loss, flatten=flatten)
        fits.append((model, model.fit(x, y, batch_size=8, epochs=2, seed=4, verbose=0).history))
    (ref, h_ref), (got, h_got) = fits
    assert got.backend.route["route"] == "persistent", got.backend.route
    _close(ref, got, 1e-5)
    for key in h_ref:
        np.testing.assert_allclose(h_got[key], h_ref[key], rtol=1e-5)
    assert got.optimizer.iterations == ref.optimizer.iterations == 12
    # two launches an epoch: five full batches in one, the shorter last batch in its own
    assert got.backend.launches.count(kernel_name(x.dtype == np.uint8, loss.startswith("sparse"))) == 4


@needs_gxx
def test_the_host_sees_the_weights_after_every_launch():
    """Weights return to the parameter buffer at the end of each launch: a callback reading them after every
    batch (the trainer then hands one step a launch) sees NumPy's, step for step."""
    from mlp_gpu import Callback

    class Weights(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_end(self, batch, logs=None):
            self.seen.append([w.copy() for w in self.model.get_weights()])

    x, y = blobs(n=30, features=6)
    seen = []
    for backend in (NumpyBackend(), HostPersistentOps(2, threads=32)):
        cb = Weights()
        _model(backend, (6, 9, 3), ("relu", "softmax"), SGD(0.1, momentum=0.9)).fit(
            x, y, batch_size=8, epochs=1, seed=4, verbose=0, callbacks=[cb])
        seen.append(cb.seen)
    assert len(seen[1]) == len(seen[0]) == 4
    assert backend.launches.count(kernel_name(False, True)) == 4  # one launch a step
    for ref, got in zip(*seen):
        for a, b in zip(ref, got):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


# ---- whole fits: 100 steps -------------------------------------------------------------------------------

def _fit_both(sizes, acts, opt, x, y, batch, blocks, epochs=1, threads=32, **fit):
    fits = []
    for backend in (NumpyBackend(), HostPersistentOps(blocks, threads=threads, shared_limit=1 << 30)):
        model = _model(backend, sizes, acts, opt())
        fits.append((model, model.fit(x, y, batch_size=batch, epochs=epochs, seed=5, verbose=0, **fit).history))
    return fits


@needs_gxx
@pytest.mark.parametrize("case", ["odd-widths-adam", "odd-widths-momentum"])
def test_100_steps_match_numpy(case):
    """100 steps (4 epochs of 25, the last batch of each shorter) of a net of odd widths on 5 blocks, with
    per-epoch validation: weights within 1e-5 of NumPy's (relative), losses and accuracies alike."""
    x, y = blobs(n=24 * 31 + 7, features=37, classes=5)
    opt = (lambda: Adam(0.003)) if case.endswith("adam") else (lambda: SGD(0.05, momentum=0.9))
    fits = _fit_both((37, 33, 31, 5), ("relu", "tanh", "softmax"), opt, x, y, 31, 5, epochs=4,
                     validation_data=(x[:50], y[:50]))
    (ref, h_ref), (got, h_got) = fits
    assert got.backend.route["route"] == "persistent"
    assert ref.optimizer.iterations == got.optimizer.iterations == 100
    _close(ref, got, 1e-5)
    for key in h_ref:
        np.testing.assert_allclose(h_got[key], h_ref[key], rtol=1e-5)


@needs_gxx
@pytest.mark.slow
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_reference_net_100_steps_match_numpy(opt):
    """The reference net 784-300-100-10 (uint8 pixels, ReLU, softmax cross-entropy; momentum or Adam) for 100
    steps of 32 rows on 3 blocks."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (3200, 784)).astype(np.uint8)
    y = rng.integers(0, 10, 3200).astype(np.int32)
    make = (lambda: SGD(0.05, momentum=0.9)) if opt == "momentum" else (lambda: Adam(0.001))
    fits = _fit_both(REFERENCE, ("relu", "relu", "softmax"), make, x, y, 32, 3)
    (ref, h_ref), (got, h_got) = fits
    assert got.backend.route["route"] == "persistent" and got.optimizer.iterations == 100
    _close(ref, got, 1e-5)
    np.testing.assert_allclose(h_got["loss"], h_ref["loss"], rtol=1e-5)


# ---- scope, budget, grid ----------------------------------------------------------------------------------

@pytest.mark.parametrize("what,make,expect", [
    ("softmax hidden", lambda be: _model(be, (6, 5, 3), ("softmax", "softmax"), SGD(0.1)), "hidden activation"),
    ("mse", lambda be: _model(be, (6, 5, 2), ("relu", "linear"), SGD(0.1), loss="mse"), "loss 'mse'"),
    ("rmsprop", lambda be: _model(be, (6, 5, 3), ("relu", "softmax"), RMSprop(0.01)), "optimizer RMSprop"),
    ("schedule", lambda be: _model(be, (6, 5, 3), ("relu", "softmax"),
                                   SGD(schedules.ExponentialDecay(0.1, 10, 0.5))), "schedule"),
    ("clipnorm", lambda be: _model(be, (6, 5, 3), ("relu", "softmax"), Adam(0.01, clipnorm=1.0)), "clipping"),
    ("too deep", lambda be: _model(be, (6,) + (4,) * PERSIST_MAX_LAYERS + (3,),
                                   ("relu",) * PERSIST_MAX_LAYERS + ("softmax",), SGD(0.1)), "PERSIST_MAX_LAYERS"),
])
def test_what_the_route_does_not_run_is_named(what, make, expect):
    assert expect in unsupported(make(NumpyBackend()), 8)


def test_a_supported_model_has_no_reason():
    assert unsupported(_model(NumpyBackend(), REFERENCE, ("relu", "tanh", "softmax"), Adam(0.001)), 32) is None


class FakeDevice:
    """A device of `sms` multiprocessors that holds `per_sm` blocks of any shape up to `shared` bytes."""

    def __init__(self, sms, shared, per_sm=1):
        self.sms, self.shared, self.per_sm = sms, shared, per_sm

    def shared_memory_limit(self):
        return self.shared

    def max_persistent_blocks(self):
        return self.sms

    def resident_blocks(self, name, threads, shared_mem):
        return self.sms * self.per_sm if shared_mem <= self.shared else 0


@pytest.mark.parametrize("batch", [32, 256, 1024])
@pytest.mark.parametrize("slots", [0, 1, 2])
def test_reference_net_fits_on_an_h200(batch, slots):
    """The on-chip budget: the reference net with SGD, momentum or Adam at batch 32, 256 and 1024 takes 132
    blocks (one a multiprocessor) within 227 KB of shared memory each; the wide net (20 M parameters) does not."""
    grid, shared, why = choose_grid(FakeDevice(H200["sms"], H200["shared"]), "k", REFERENCE, batch, 256, slots)
    assert why is None and grid == 132 and shared <= H200["shared"]
    grid, shared, why = choose_grid(FakeDevice(H200["sms"], H200["shared"]), "k", (784, 4096, 4096, 10), 32, 256, 0)
    assert grid == 0 and "do not fit on chip" in why


def test_grid_shrinks_to_the_resident_blocks():
    """Never more blocks than can be resident: a device holding 5 blocks gets a grid of 5, or none at all when
    5 blocks cannot hold the slices."""
    grid, shared, why = choose_grid(FakeDevice(5, 1 << 30), "k", (13, 7, 9, 5), 8, 32, 1)
    assert (grid, why) == (5, None)
    assert shared == layout((13, 7, 9, 5), 8, 5, 32, 1)[0]
    grid, _, why = choose_grid(FakeDevice(5, 4096), "k", REFERENCE, 32, 256, 0)
    assert grid == 0 and "do not fit on chip" in why


def test_layout_counts_the_kernels_shared_memory():
    """The shared-memory formula of kernels/persistent_step.cu's header, counted by hand for one shape: 2 blocks,
    widths (13, 7, 9, 5), 8 rows, 32 threads, Adam's 2 slots."""
    units = [4, 5, 3]  # ceil(7 / 2), ceil(9 / 2), ceil(5 / 2)
    floats = 2 * 8 + 32 + 8 * 5 + 3 * (14 * 4 + 8 * 5 + 10 * 3)
    assert layout((13, 7, 9, 5), 8, 2, 32, 2) == (8 * 8 + 4 * PERSIST_TABLE_INTS + 4 * floats,
                                                   8 * (7 + 9 + 5) + 2 * 2 * 8 * 9)
    assert units == [-(-s // 2) for s in (7, 9, 5)]


@needs_gxx
def test_fit_falls_back_and_says_why():
    """A model outside the route trains on the general step, and the route says why."""
    x, y = blobs(n=20, features=6)
    backend = HostPersistentOps(2, threads=32)
    model = _model(backend, (6, 5, 3), ("relu", "softmax"), RMSprop(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert backend.route["route"] == "eager" and "RMSprop" in backend.route["reason"]
    assert SHARED_LIMIT == 227 * 1024


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_persistent_route_matches_numpy_on_gpu(opt):
    """On a GPU: the cooperative launch through CuPy trains like the NumPy backend, and the route is persistent."""
    from mlp_gpu.backend import get_backend

    make = {"sgd": lambda: SGD(0.1), "momentum": lambda: SGD(0.05, momentum=0.9), "adam": lambda: Adam(0.003)}[opt]
    x, y = blobs(n=500, features=37, classes=5)
    runs = []
    for backend in (NumpyBackend(), get_backend("cupy", gemm="persistent")):
        model = _model(backend, (37, 33, 31, 5), ("relu", "tanh", "softmax"), make())
        runs.append((model, model.fit(x, y, batch_size=32, epochs=2, seed=3, verbose=0,
                                      validation_data=(x[:50], y[:50])).history))
    (ref, h_ref), (got, h_got) = runs
    assert got.backend.route["route"] == "persistent", got.backend.route
    _close(ref, got, 1e-4)
    for key in h_ref:
        np.testing.assert_allclose(h_got[key], h_ref[key], rtol=1e-4)
