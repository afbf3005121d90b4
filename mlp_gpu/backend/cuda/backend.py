"""The CUDA backend: CuPy arrays, cuBLAS or our GEMM, our fused kernels, CUDA graphs.

This is the only module that imports CuPy, and it does so lazily: importing
mlp_gpu neither imports CuPy nor compiles a kernel. Kernels compile on first
launch (one ``cupy.RawModule`` per file, memoized).
"""
from __future__ import annotations

import functools
import logging
import os

import numpy as np

from . import kernels, routes, vendor_gemm
from ..step_spec import constraint_reason, spec_from_model
from .step_plan import nodes_per_step
from ..base import BackendUnavailable, DeviceMemoryError, StepRunner, device_memory_message
from ..optional import optional_import
from .cooperative import EPOCH, CooperativeLaunches
from .persistent_step import PersistentRunner
from .ops import CudaOps
from .graphs import GraphRunner
from .staging import PinnedStage

log = logging.getLogger("mlp_gpu")
_MODULES = {}  # (device id, kernel file) -> cupy.RawModule, compiled on first launch


@functools.lru_cache(maxsize=1)
def _import_cupy():
    return optional_import("cupy", "cupy")  # the one import of CuPy in mlp_gpu


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when CuPy imports and a CUDA device answers; otherwise why not."""
    cupy, reason = _import_cupy()
    if cupy is None:
        return reason
    try:
        if not cupy.is_available():
            return "cupy imported but found no CUDA device (cupy.is_available() is False)"
    except Exception as exc:
        return f"cupy found no usable CUDA device ({type(exc).__name__}: {exc})"
    return None


def use_device_for_rank(local_rank: int) -> None:
    """Make GPU (local_rank mod the device count) current: one process per GPU on a machine."""
    cupy, _ = _import_cupy()
    device = local_rank % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(device).use()
    log.info("distributed: local rank %d uses GPU %d", local_rank, device)


def _env_flag(name, default):
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off", "")


def column_major_gemm(a_shape, b_shape, out_shape, trans_a, trans_b):
    """cuBLAS arguments for row-major out = op(a) @ op(b), all C-contiguous.

    A row-major matrix is its transpose in column-major, so cuBLAS computes out^T = op(b)^T op(a)^T:
    b goes first. Returns (transpose b?, transpose a?, m, n, k, ldb, lda, ldc) in cuBLAS' order.
    """
    rows, cols = out_shape
    k = a_shape[0] if trans_a else a_shape[1]
    return trans_b, trans_a, cols, rows, k, b_shape[1], a_shape[1], cols


def _env_steps(value):
    value = os.environ.get("MLP_GPU_STEPS_PER_GRAPH", "1") if value is None else value
    try:
        steps = int(value)
    except (TypeError, ValueError):
        steps = 0
    if isinstance(value, bool) or steps < 1 or str(steps) != str(value).strip():
        raise ValueError(f"steps_per_graph (or MLP_GPU_STEPS_PER_GRAPH): expected an int >= 1, got {value!r}")
    return steps


class CupyBackend(CooperativeLaunches, CudaOps):
    """Arrays on the current CUDA device; the fused ops are our kernels.

    graph: capture training steps as CUDA graphs and replay them (env MLP_GPU_GRAPH, default on).
    tf32:  let cuBLAS use TF32 tensor cores for float32 GEMMs (env MLP_GPU_TF32, default off).
    gemm:  the GEMM route of a captured step (env MLP_GPU_GEMM, default "auto"):
           "auto"   cuBLAS eagerly; in graphs "lt" where nvmath-python imports (fastest at every shape
                    measured on an H200, benchmarks/results/graph-routes.md), else CuPy's cuBLAS if it
                    can be captured, else our kernel;
           "kernel" our sgemm_strided;
           "cublas" cuBLAS through nvmath-python's bindings, which can be captured;
           "lt"     the fused cuBLASLt step (step_plan.py) where the model fits it, else "cublas";
           "persistent" a block of steps (an epoch, or steps_per_graph when above 1) in one cooperative
                    launch of kernels/persistent_step.cu (persistent_step.py) where the model and its
                    on-chip budget fit, with or without graph mode; else "lt" (graph mode) or eager.
                    "auto" does not take it: no GPU has timed it yet (benchmarks/graph_routes.py).
           A route that cannot run falls back and logs why; backend.route says what ran (routes.py).
    steps_per_graph: training steps captured in one graph (env MLP_GPU_STEPS_PER_GRAPH, default 1).
    """

    name = "cupy"

    def __init__(self, graph: bool | None = None, tf32: bool | None = None, gemm: str | None = None,
                 steps_per_graph: int | None = None):
        reason = unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"backend='cupy' cannot run here: {reason}. "
                                     "Use backend='numpy' or 'auto' to train on the CPU.")
        gemm = os.environ.get("MLP_GPU_GEMM", "auto").strip().lower() if gemm is None else gemm
        if gemm not in routes.GEMMS:
            raise ValueError(f"gemm (or MLP_GPU_GEMM): expected one of {', '.join(map(repr, routes.GEMMS))}, "
                             f"got {gemm!r}")
        self.xp, _ = _import_cupy()
        self.graph = _env_flag("MLP_GPU_GRAPH", True) if graph is None else bool(graph)
        self.tf32 = _env_flag("MLP_GPU_TF32", False) if tf32 is None else bool(tf32)
        self.steps_per_graph = _env_steps(steps_per_graph)
        self.gemm_choice = gemm
        self.gemm = "kernel" if gemm == "kernel" else "cublas"
        self._scalars = np.array([1.0, 0.0], np.float32)  # alpha, beta for cuBLAS (host pointer mode)
        self._cupy_cublas = None  # (captures?, why), tried once (cupy_cublas_captures)
        self._vendor = self._lt = None  # nvmath's cuBLAS and cuBLASLt, made on first use
        self.route = None  # what make_runner chose: route, reason, steps per graph, nodes per step

    def __repr__(self) -> str:
        return (f"CupyBackend(graph={self.graph}, tf32={self.tf32}, gemm={self.gemm_choice!r}, "
                f"steps_per_graph={self.steps_per_graph})")

    # ---- memory -----------------------------------------------------------------
    def _allocating(self, make, shape, dtype):
        try:
            return make()
        except self.xp.cuda.memory.OutOfMemoryError:
            free, total = self.xp.cuda.runtime.memGetInfo()
            free += self.xp.get_default_memory_pool().free_bytes()  # cached blocks are reusable
            raise DeviceMemoryError(device_memory_message(shape, dtype, free, total)) from None

    def empty(self, shape, dtype=np.float32):
        return self._allocating(lambda: self.xp.empty(shape, dtype=dtype), shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return self._allocating(lambda: self.xp.zeros(shape, dtype=dtype), shape, dtype)

    def asarray(self, host, dtype=None):
        shape, dt = np.shape(host), dtype or getattr(host, "dtype", np.float32)
        return self._allocating(lambda: self.xp.asarray(host, dtype=dtype), shape, dt)

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def copy_from_host(self, dst, host) -> None:
        dst.set(np.ascontiguousarray(host, dtype=dst.dtype))

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    # ---- data placement -----------------------------------------------------------
    device_is_host = False

    def free_memory(self) -> int:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return int(free + self.xp.get_default_memory_pool().free_bytes())  # cached blocks are reusable

    def make_stage(self, rows, cols, x_dtype, y_shape, y_dtype):
        return PinnedStage(self, rows, cols, x_dtype, y_shape, y_dtype)

    def memory_bytes(self) -> int:
        return int(self.xp.get_default_memory_pool().used_bytes())

    def describe(self) -> dict:
        cp = self.xp
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return {"backend": self.name, "device": name, "cupy": cp.__version__,
                "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "graph": self.graph, "tf32": self.tf32,
                "gemm": self.gemm_choice, "steps_per_graph": self.steps_per_graph, "route": self.route,
                "numpy": np.__version__}

    # ---- kernels ----------------------------------------------------------------
    def _function(self, name):
        generated = kernels.generated_source(name) is not None  # a traced loss, metric or layer (mlp_gpu.tracing)
        path = name if generated else kernels.kernel_index()[name]
        key = (self.xp.cuda.Device().id, path)  # one compiled module per file and device, per process
        module = _MODULES.get(key)
        if module is None:
            code, options = kernels.nvrtc_generated(name) if generated else kernels.nvrtc_program(path)
            module = _MODULES[key] = self.xp.RawModule(code=code, options=options)
        return module.get_function(name)

    def launch(self, name, grid, block, args):
        self._function(name)(grid, block, args)

    def _load_all(self):
        """Compile and load every kernel: module loading must not happen inside a graph capture."""
        for name in [*kernels.kernel_index(), *kernels.generated_names()]:
            self._function(name)

    def cublas_matmul(self, a, b, out, trans_a, trans_b):
        """Row-major out = op(a) @ op(b) as the column-major product out^T = op(b)^T op(a)^T."""
        if self.gemm == "nvmath":  # inside a capture on the cuBLAS route
            self._vendor.sgemm(column_major_gemm(a.shape, b.shape, out.shape, trans_a, trans_b), a, b, out)
            return out
        from cupy_backends.cuda.libs import cublas

        handle = self.xp.cuda.device.get_cublas_handle()
        cublas.setStream(handle, self.xp.cuda.get_current_stream().ptr)
        tf32 = getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3)
        cublas.setMathMode(handle, tf32 if self.tf32 else getattr(cublas, "CUBLAS_DEFAULT_MATH", 0))
        t_b, t_a, m, n, k, ldb, lda, ldc = column_major_gemm(a.shape, b.shape, out.shape, trans_a, trans_b)
        ops = (cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T)
        alpha = self._scalars.ctypes.data
        cublas.sgemm(handle, ops[t_b], ops[t_a], m, n, k, alpha, b.data.ptr, ldb, a.data.ptr, lda,
                     alpha + 4, out.data.ptr, ldc)
        return out

    # ---- graphs -----------------------------------------------------------------
    def cupy_cublas_captures(self) -> tuple[bool, str]:
        """Can CuPy's cuBLAS run inside stream capture (CuPy 13/14 refuse it)? Tried once on a tiny product."""
        if self._cupy_cublas is None:
            cp = self.xp
            a = cp.ones((16, 16), cp.float32)
            c = cp.zeros((16, 16), cp.float32)
            self.cublas_matmul(a, a, c, False, False)  # eagerly first: creates the handle outside capture
            c.fill(0)
            try:
                graph, stream = self.capture(lambda: self.cublas_matmul(a, a, c, False, False))
                graph.launch(stream)
                stream.synchronize()
                ok = bool((c == 16).all())
                why = "cuBLAS ran inside stream capture" if ok else "cuBLAS captured but replay gave wrong values"
            except Exception as exc:
                ok, why = False, f"cuBLAS refused stream capture ({type(exc).__name__}: {exc})"
            log.info("graph mode, CuPy's cuBLAS: %s", why)
            self._cupy_cublas = ok, why
        return self._cupy_cublas

    def vendor_gemm(self):
        """nvmath-python's cuBLAS on our stream (the cublas route), made on first use."""
        if self._vendor is None:
            self._vendor = vendor_gemm.CublasGemm(self.xp, self.tf32)
        return self._vendor

    def prepare_lt(self, gemm, arrays):
        """One cuBLASLt call of the fused step, made ready (descriptors, algorithm) before capture."""
        if self._lt is None:
            self._lt = vendor_gemm.LtContext(self.xp, self.tf32)
        return self._lt.prepare(gemm, arrays)

    # ---- collectives -------------------------------------------------------------------
    def allreduce(self, comm, buf, op="sum", scale=None):
        if scale is not None:
            buf *= buf.dtype.type(scale)
        self._collective(comm, buf, lambda a: comm.allreduce(a, op))

    def broadcast(self, comm, buf, root=0):
        self._collective(comm, buf, lambda a: comm.broadcast(a, root))

    def _collective(self, comm, buf, call) -> None:
        """call(array) on the current stream: NCCL takes the device buffer; a host engine (MPI) gets a host
        copy, written back after."""
        if comm.device_buffers:
            call(buf)
            return
        host = self.to_host(buf)
        call(host)
        self.copy_from_host(buf, host)

    def collective_in_graph(self, comm) -> bool:
        """NCCL (2.9 and later) can be captured in a CUDA graph; a host round trip cannot."""
        return bool(comm.device_buffers and getattr(comm, "capturable", False))

    def _runner_around(self, step, rows, max_steps, split):
        """A distributed step: its all-reduce inside the graphs where it can be captured (NCCL), else one
        graph before and one after it, replayed around the all-reduce run eagerly on the same stream."""
        before, collective, after = split
        if getattr(collective, "in_graph", False):
            try:
                return self.make_runner(step, rows, max_steps)
            except Exception as exc:  # an NCCL that refuses capture
                log.warning("graph mode: the all-reduce could not be captured (%s: %s); replaying two graphs "
                            "around it", type(exc).__name__, exc)
        self._load_all()
        route, why, _ = routes.choose(self, self.gemm_choice, step, rows)
        first, second = (self.capture(part, 1, route.capture_gemm)[0] for part in (before, after))  # (graph, stream)
        self.route = {"route": route.name + ", two graphs around the all-reduce", "reason": why, "steps_per_graph": 1,
                      "rows": rows}
        return StepRunner(lambda: (first.launch(), collective(), second.launch()))

    def make_runner(self, step, rows: int, max_steps: int | None = None, model=None, data=None, acc=None,
                    split=None):
        """Graph mode: capture blocks of steps as CUDA graphs on the chosen route; eager: run step().

        With ``model``, ``data`` (x, y, perm, cursor on the device) and ``acc`` the lt route builds its
        own fused step; otherwise ``step`` is captured as it is. ``split``: see ``_runner_around``.
        """
        why = "graph=False"
        if not self.graph and self.gemm_choice == "persistent" and split is None:  # not a graph: it may run
            try:
                body = routes.ROUTES["persistent"].build(self, step, rows, model, data, acc)
                return self._launch_runner(routes.ROUTES["persistent"], "gemm='persistent'", body, rows, max_steps)
            except routes.RouteUnavailable as exc:
                why = f"persistent route not taken: {exc}; graph=False"
        constrained = constraint_reason(model) if self.graph and model is not None else None
        if constrained:  # CuPy's expressions allocate temporaries, which a captured graph must not
            why = f"graph mode off: {constrained}"
            log.info("cupy step for %d rows: eager (%s)", rows, why)
        if not self.graph or constrained:
            self.route = {"route": "eager", "reason": why, "steps_per_graph": 1}
            return StepRunner(step)
        if split is not None:
            return self._runner_around(step, rows, max_steps, split)
        self._load_all()
        route, why, body = routes.choose(self, self.gemm_choice, step, rows, model, data, acc)
        if not route.captured:
            return self._launch_runner(route, why, body, rows, max_steps)
        block = self.steps_per_graph if max_steps is None else max(1, min(self.steps_per_graph, max_steps))
        try:
            runner = GraphRunner(self, body, block, route.capture_gemm)
        except Exception as exc:
            if route.name in ("kernel", "cupy-cublas"):
                raise
            why += f"; its capture failed ({type(exc).__name__}: {exc}): our sgemm_strided kernel instead"
            route = routes.ROUTES["kernel"]
            runner = GraphRunner(self, step, block, route.capture_gemm)
        info = {"route": route.name, "reason": why, "steps_per_graph": block, "rows": rows,
                "nodes_per_step": self._nodes_per_step(model, rows, route),
                "graph_nodes_per_step": runner.nodes_per_step}
        if max_steps is None or self.route is None:  # backend.route: the last uncapped (full-batch) runner's
            self.route = info
        log.info("graph route %s for %d rows, %s nodes per step, %d steps per graph (%s)", route.name, rows,
                 info["nodes_per_step"] or "?", block, why)
        return runner

    def _launch_runner(self, route, why, step, rows, max_steps):
        """The persistent route's runner: up to an epoch of steps a launch (steps_per_graph caps it when above 1),
        one step for the shorter last batch."""
        block = self.steps_per_graph if self.steps_per_graph > 1 else EPOCH
        block = block if max_steps is None else max(1, min(block, max_steps))
        why = f"{why}: {step.grid} blocks of {step.threads} threads, {step.shared_mem} bytes of shared memory each"
        info = {"route": route.name, "reason": why, "steps_per_graph": block, "rows": rows, "nodes_per_step": 1,
                "blocks": step.grid, "shared_mem": step.shared_mem}
        if max_steps is None or self.route is None:
            self.route = info
        log.info("persistent route for %d rows, up to %d steps a launch (%s)", rows, block, why)
        return PersistentRunner(step, block)

    @staticmethod
    def _nodes_per_step(model, rows, route):
        spec = spec_from_model(model, rows)[0] if model is not None else None
        return nodes_per_step(spec, route.plan) if spec is not None else None

    def capture(self, step, count: int = 1, capture_gemm: str | None = None):
        """The one stream-capture helper: a CUDA graph of ``count`` consecutive calls of step() on a fresh
        non-blocking stream, GEMMs in mode ``capture_gemm`` meanwhile (unchanged when None). The capture
        ends even when step() raises, so no stream is left capturing. Returns (graph, stream)."""
        stream = self.xp.cuda.Stream(non_blocking=True)
        eager_gemm = self.gemm
        self.gemm = eager_gemm if capture_gemm is None else capture_gemm
        try:
            with stream:
                stream.begin_capture()
                try:
                    for _ in range(count):
                        step()
                finally:
                    graph = stream.end_capture()
        finally:
            self.gemm = eager_gemm
        return graph, stream
