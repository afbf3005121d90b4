"""Route choice (backend/cuda/routes.py) without a GPU: each route's fallback, the reasons it gives, and the
lt route building its fused step on the host harness with cuBLASLt emulated."""
import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.backend.cuda import routes, step_plan, vendor_gemm
from mlp_gpu.backend.cuda.fused_step import FusedStep
from mlp_gpu.training.steps import DeviceData

from ...conftest import blobs
from ...harness.host_ops import compiler
from ...harness.lt_emulator import HostLtOps


class Stub:
    """What routes.choose asks of a backend: nvmath's cuBLAS and whether CuPy's cuBLAS captures."""

    def __init__(self, vendor=True, cupy_captures=True):
        self.vendor, self.cupy_captures = vendor, cupy_captures

    def vendor_gemm(self):
        if not self.vendor:
            raise OSError("libcublas.so.13: cannot open shared object file")

    def cupy_cublas_captures(self):
        return self.cupy_captures, "cuBLAS refused stream capture (NotImplementedError)"


@pytest.fixture
def nvmath(monkeypatch):
    """nvmath-python importable (True) or not (False), whatever this machine has."""
    def set_(importable):
        monkeypatch.setattr(vendor_gemm, "unavailable_reason", lambda: None if importable else "no nvmath-python")
    return set_


def step():
    pass


def test_the_vocabulary_is_closed():
    """Every fallback names a route, every chain ends at the kernel route, every plan is a node plan."""
    for route in routes.ROUTES.values():
        seen, name = set(), route.name
        while name is not None:
            assert name in routes.ROUTES and name not in seen, name
            seen.add(name)
            name = routes.ROUTES[name].fallback
        assert "kernel" in seen
        assert route.plan in step_plan.PLANS and route.name in routes.LABELS
    assert set(routes.GEMMS) - {"auto"} <= set(routes.ROUTES)


def test_kernel_is_taken_as_asked(nvmath):
    nvmath(True)
    route, why, body = routes.choose(Stub(), "kernel", step, 32)
    assert route.name == "kernel" and body is step and "not taken" not in why


@pytest.mark.parametrize("cupy_captures,expected", [(True, "cupy-cublas"), (False, "kernel")])
def test_cublas_falls_back_saying_why(nvmath, cupy_captures, expected):
    nvmath(True)
    route, why, body = routes.choose(Stub(vendor=False, cupy_captures=cupy_captures), "cublas", step, 32)
    assert route.name == expected and body is step
    assert "cublas route not taken: OSError: libcublas.so.13" in why
    assert ("cupy-cublas route not taken" in why) == (expected == "kernel")


def test_auto_without_nvmath_starts_at_cupys_cublas(nvmath):
    nvmath(False)
    assert routes.first_route("auto") == "cupy-cublas"
    assert routes.choose(Stub(), "auto", step, 32)[0].name == "cupy-cublas"
    nvmath(True)
    assert routes.first_route("auto") == "lt"


def test_lt_without_a_model_takes_cublas(nvmath):
    nvmath(True)
    route, why, body = routes.choose(Stub(), "lt", step, 32)
    assert route.name == "cublas" and body is step
    assert "lt route not taken: the caller passed no model" in why


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("hidden,expected", [("relu", "lt"), ("tanh", "cublas")])
def test_lt_builds_its_fused_step_where_the_model_fits(nvmath, monkeypatch, hidden, expected):
    nvmath(True)
    backend = HostLtOps()
    monkeypatch.setattr(backend, "vendor_gemm", lambda: None, raising=False)
    model = Sequential([Input((6,)), Dense(5, hidden), Dense(3, "softmax")], backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), seed=0)
    x, y = blobs(n=16, features=6)
    data = DeviceData(backend, x, y.astype(np.int32))
    acc = backend.zeros(3, np.float64)
    route, why, body = routes.choose(backend, "lt", step, 16, model, data, acc)
    assert route.name == expected
    if expected == "lt":
        assert isinstance(body, FusedStep)
    else:
        assert body is step and "tanh" in why


def test_persistent_without_a_model_takes_lt_and_auto_never_starts_there(nvmath):
    nvmath(True)
    route, why, body = routes.choose(Stub(), "persistent", step, 32)
    assert route.name == "cublas" and "persistent route not taken: the caller passed no model" in why
    assert not routes.ROUTES["persistent"].captured and all(r.captured for n, r in routes.ROUTES.items()
                                                             if n != "persistent")
    for importable in (True, False):
        nvmath(importable)
        assert routes.first_route("auto") != "persistent"


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("loss,expected", [("sparse_categorical_crossentropy", "persistent"), ("mse", "lt")])
def test_persistent_builds_its_step_where_the_model_fits(nvmath, loss, expected):
    """The persistent route builds a PersistentStep on the harness' cooperative launches; a model outside it (mse)
    goes on to lt, saying why."""
    from mlp_gpu.backend.cuda.persistent_step import PersistentStep

    from ...harness.persistent import HostPersistentOps

    nvmath(False)  # lt then cannot run either: the chain ends on the general step
    backend = HostPersistentOps(2, threads=32)
    backend.cupy_cublas_captures = lambda: (False, "the harness has no CuPy")
    model = Sequential([Input((6,)), Dense(5, "relu"), Dense(3, "softmax" if loss != "mse" else "linear")],
                       backend=backend)
    model.compile(optimizer=SGD(0.1), loss=loss, seed=0)
    x, y = blobs(n=16, features=6)
    data = DeviceData(backend, x, y.astype(np.int32) if loss != "mse" else np.eye(3, dtype=np.float32)[y])
    route, why, body = routes.choose(backend, "persistent", step, 16, model, data, backend.zeros(3, np.float64))
    if expected == "persistent":
        assert route.name == "persistent" and isinstance(body, PersistentStep) and body.grid == 2
        assert step_plan.nodes_per_step(body.spec, route.plan) == 1
    else:
        assert route.name == "kernel" and "persistent route not taken" in why and "mse" in why
