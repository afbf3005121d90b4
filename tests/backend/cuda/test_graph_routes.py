"""The GEMM routes of a captured training step, checked on the CPU: the node plan of each route against
the launches the code really makes, the fused cuBLASLt step (its kernels run by the host harness, its
cuBLASLt calls by a column-major NumPy emulation) against the NumPy backend, and the new kernel."""
from dataclasses import replace

import numpy as np
import pytest
import threadpoolctl

from mlp_gpu import SGD, Adam, Callback, Dense, Flatten, Input, Sequential
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.cuda import kernels
from mlp_gpu.backend.base import HYPER, HYPER_SIZE
from mlp_gpu.backend.cuda.fused_step import FusedStep
from mlp_gpu.backend.step_spec import spec_from_model
from mlp_gpu.backend.cuda.step_plan import SCALARS, lt_unsupported, nodes_per_step, plan_step
from mlp_gpu.backend.step_spec import StepSpec
from mlp_gpu.optimizers import schedules
from mlp_gpu.training.steps import DeviceData

from ...conftest import blobs, requires_gpu
from ...harness.host_ops import HostCudaOps, compiler
from ...harness.epoch import epoch_steps, general_step
from ...harness.lt_emulator import HostLtOps

needs_gxx = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
REFERENCE = StepSpec(sizes=(784, 300, 100, 10), activations=("relu", "relu", "softmax"),
                     loss="softmax_xent_sparse", loss_fused=True, optimizer="sgd")


def test_reference_nodes_per_step():
    """Today's graph (kernel and cuBLAS routes): 21 nodes; the fused cuBLASLt route: at most 10."""
    assert nodes_per_step(REFERENCE, "kernel") == 21
    assert nodes_per_step(REFERENCE, "cublas") == 21
    lt = plan_step(REFERENCE, "lt")
    assert len(lt) == 10
    assert [n.kind for n in lt].count("gemm") == 8  # 3 forward, 2 input gradients, 3 weight gradients
    assert lt[0].name == "gather_step_u8_i32" and lt[4].name == "softmax_xent_sparse"
    adam = replace(REFERENCE, **{"optimizer": "adam"})
    assert nodes_per_step(adam, "lt") == 12  # no fold: the optimizer's kernel and the iteration count


def test_lt_route_limits_are_stated():
    tanh = replace(REFERENCE, **{"activations": ("tanh", "relu", "softmax")})
    assert "tanh" in lt_unsupported(tanh)
    with pytest.raises(ValueError, match="route 'lt' cannot run"):
        plan_step(tanh, "lt")
    mse_relu = replace(REFERENCE, **{"activations": ("relu", "relu", "relu"), "loss": "mse",
                           "loss_fused": False})
    assert "not fused" in lt_unsupported(mse_relu)
    one_unit = replace(REFERENCE, sizes=(784, 300, 1), activations=("relu", "sigmoid"), loss="sigmoid_bce")
    assert "k > 1" in lt_unsupported(one_unit)
    with pytest.raises(ValueError, match="route"):
        plan_step(REFERENCE, "fast")


def _model(backend, layers, optimizer, loss="sparse_categorical_crossentropy", seed=1):
    model = Sequential(layers, backend=backend)
    model.compile(loss=loss, optimizer=optimizer, metrics=["accuracy"], seed=seed)
    return model


@needs_gxx
@pytest.mark.parametrize("layers,optimizer,loss", [
    (lambda: [Input((6,)), Dense(9, "relu"), Dense(7, "tanh"), Dense(3, "softmax")], lambda: SGD(0.1),
     "sparse_categorical_crossentropy"),
    (lambda: [Input((6,)), Dense(5, "sigmoid"), Dense(2)], lambda: Adam(0.01), "mse"),
    (lambda: [Input((6,)), Dense(4, "relu"), Dense(3, "softmax")], lambda: SGD(0.1, momentum=0.9),
     "categorical_crossentropy"),
], ids=["sgd-tanh", "adam-mse", "momentum-dense-targets"])
def test_op_plan_is_what_the_step_launches(layers, optimizer, loss):
    """The kernel route's plan names, in order, every launch of a real training step."""
    x, y = blobs(n=16, features=6)
    if loss == "categorical_crossentropy":
        y = np.eye(3, dtype=np.float32)[y]
    elif loss == "mse":
        y = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    model = _model(HostCudaOps(), layers(), optimizer(), loss)
    model.fit(x, y, batch_size=16, epochs=1, seed=0, verbose=0)
    launches = model.backend.launches
    step = launches[:launches.index("advance") + 1]
    spec, reason = spec_from_model(model, 16)
    assert reason is None
    assert [n.name for n in plan_step(replace(spec, pixels=False), "kernel")] == step


def _run_steps(backend, layers, optimizer, x, y, batch, loss, fused):
    """One epoch of steps (the last one shorter) in a fixed shuffled order; weights and accumulators after."""
    model = _model(backend, layers(), optimizer(), loss)
    make = (lambda m, d, a, rows: FusedStep(backend, m, d, a, rows)) if fused else general_step
    *_, (data, acc) = epoch_steps(model, x, y, batch, make)
    return model, np.array(acc), int(np.array(data.cursor)[0])


@needs_gxx
@pytest.mark.parametrize("case", ["relu-sgd", "linear-hidden-sgd", "pixels-adam", "bce-momentum", "mse-sgd",
                                  "scheduled-sgd"])
def test_fused_lt_step_matches_numpy(case):
    """The lt route's whole step -- gather kernel, cuBLASLt calls with their epilogues, the bias inside the
    GEMM, SGD folded into the weight-gradient product, the loss kernel -- against the NumPy backend."""
    rng = np.random.default_rng(0)
    x, y = blobs(n=45, features=6)
    loss, batch = "sparse_categorical_crossentropy", 8
    layers = lambda: [Input((6,)), Dense(9, "relu"), Dense(7, "relu"), Dense(3, "softmax")]  # noqa: E731
    optimizer = lambda: SGD(0.1)  # noqa: E731
    if case == "linear-hidden-sgd":
        layers = lambda: [Input((6,)), Dense(5), Dense(3, "softmax")]  # noqa: E731
    elif case == "pixels-adam":
        x = rng.integers(0, 256, (45, 2, 3)).astype(np.uint8)
        layers = lambda: [Input((2, 3)), Flatten(), Dense(9, "relu"), Dense(3, "softmax")]  # noqa: E731
        optimizer = lambda: Adam(0.01)  # noqa: E731
    elif case == "bce-momentum":
        y = (y > 0).astype(np.float32)
        loss, optimizer = "binary_crossentropy", lambda: SGD(0.1, momentum=0.9, nesterov=True)
        layers = lambda: [Input((6,)), Dense(9), Dense(1, "sigmoid")]  # noqa: E731
    elif case == "mse-sgd":
        y = rng.normal(size=(45, 2)).astype(np.float32)
        loss, layers = "mse", lambda: [Input((6,)), Dense(9, "relu"), Dense(2)]  # noqa: E731
    elif case == "scheduled-sgd":  # the rate halves every step: a step that kept the first rate would differ
        optimizer = lambda: SGD(schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5))  # noqa: E731
    ref, ref_acc, ref_cursor = _run_steps(NumpyBackend(), layers, optimizer, x, y, batch, loss, False)
    lt_backend = HostLtOps()
    got, got_acc, got_cursor = _run_steps(lt_backend, layers, optimizer, x, y, batch, loss, True)
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_acc[:2], ref_acc[:2], rtol=1e-5)
    assert got_cursor == ref_cursor == 45
    assert got.optimizer.iterations == ref.optimizer.iterations == 6
    # acc[2] is counted at the start of the next step on this route: all steps but the epoch's last
    assert ref_acc[2] == 6 and got_acc[2] == 5
    assert "cublasLtMatmul" in lt_backend.launches and "sgemm_strided" not in lt_backend.launches


@needs_gxx
def test_fused_step_launches_its_plan():
    """What the fused step runs is its plan: 10 nodes per step for a reference-shaped net."""
    x = np.random.default_rng(1).integers(0, 256, (40, 12)).astype(np.uint8)
    y = np.random.default_rng(2).integers(0, 4, 40).astype(np.int32)
    backend = HostLtOps()
    model = _model(backend, [Input((12,)), Dense(8, "relu"), Dense(6, "relu"), Dense(4, "softmax")], SGD(0.05))
    data = DeviceData(backend, x, y)
    step = FusedStep(backend, model, data, backend.zeros(3, np.float64), 16)
    backend.launches.clear()
    step()
    assert len(backend.launches) == len(step.plan) == 10
    assert backend.launches == ["cublasLtMatmul" if n.kind == "gemm" else n.name for n in step.plan]


@needs_gxx
@pytest.mark.parametrize("rows", [1, 31, 33, 1000])
@pytest.mark.parametrize("pixels", [True, False])
def test_gather_step_kernel(rows, pixels):
    """The gather-and-bookkeeping kernel over several blocks: the batch into the padded input, labels,
    and one cursor advance by the last block only."""
    rng = np.random.default_rng(rows)
    total, cols, ld = rows + 7, 3, 8
    src = rng.integers(0, 256, (total, cols)).astype(np.uint8) if pixels else rng.normal(size=(total, cols)).astype(
        np.float32)
    labels = rng.integers(0, 10, total).astype(np.int32)
    perm = rng.permutation(total).astype(np.int64)
    cursor = np.array([5], np.int64)
    x = np.full((rows, ld), -1, np.float32)
    y = np.zeros(rows, np.int32)
    ticket = np.zeros(1, np.uint32)
    hyper = np.zeros(HYPER_SIZE, np.float32)
    hyper[HYPER["lr"]], hyper[HYPER["iterations"]] = 0.25, 7
    acc = np.array([1.5, 0, 3], np.float64)
    scalars = np.zeros(4, np.float32)
    name = f"gather_step_{'u8' if pixels else 'f32'}_i32"
    HostCudaOps().launch(name, (max(1, min(-(-rows * cols // 256), 4096)),), (256,),
                         (src, labels, perm, cursor, x, y, np.int32(rows), np.int32(cols), np.int32(ld), np.int32(1),
                          ticket, hyper, acc, scalars, np.int32(1)))
    idx = perm[5:5 + rows]
    want = src[idx].astype(np.float32) * (np.float32(1 / 255) if pixels else 1)
    np.testing.assert_allclose(x[:, :cols], want, rtol=1e-6)
    assert (x[:, cols:] == -1).all(), "the ones column and padding are the host's, never written"
    np.testing.assert_array_equal(y, labels[idx])
    assert cursor[0] == 5 + rows and ticket[0] == 0
    assert hyper[HYPER["iterations"]] == 8 and acc[2] == 4 and scalars[SCALARS["neg_lr"]] == -0.25


def test_scalar_slot_is_shared_with_the_kernel():
    from mlp_gpu.backend.shared_constants import defines

    text = (kernels.kernel_dir() / "fused_step.cu").read_text()
    assert "scalars[LT_SCALAR_NEG_LR]" in text and defines()["LT_SCALAR_NEG_LR"] == SCALARS["neg_lr"]


def test_vendor_bindings_have_every_name_the_routes_use():
    """nvmath-python (a dev dependency) imports without a GPU: the enum and attribute names the cuBLAS and
    cuBLASLt routes pass exist in its bindings, with the value types the module packs them in."""
    from mlp_gpu.backend.cuda import vendor_gemm

    assert vendor_gemm.unavailable_reason() is None
    from nvmath.bindings import cublas, cublasLt

    for name in vendor_gemm.EPILOGUES.values():
        assert name in cublasLt.Epilogue.__members__
    assert cublasLt.Epilogue.RELU_AUX == 130 and cublasLt.Epilogue.DRELU == 136  # cublasLtEpilogue_t values
    for name in ("TRANSA", "TRANSB", "POINTER_MODE", "EPILOGUE", "EPILOGUE_AUX_POINTER", "EPILOGUE_AUX_LD"):
        assert np.dtype(cublasLt.get_matmul_desc_attribute_dtype(cublasLt.MatmulDescAttribute[name])).kind in "iu"
    for name in ("MAX_WORKSPACE_BYTES", "MIN_ALIGNMENT_A_BYTES", "MIN_ALIGNMENT_B_BYTES", "MIN_ALIGNMENT_C_BYTES",
                 "MIN_ALIGNMENT_D_BYTES"):
        assert name in cublasLt.MatmulPreferenceAttribute.__members__
    assert cublasLt.PointerMode.DEVICE == 1 and cublas.PointerMode.HOST == 0
    assert {"COMPUTE_32F", "COMPUTE_32F_FAST_TF32"} <= set(cublas.ComputeType.__members__)
    assert {"DEFAULT_MATH", "TF32_TENSOR_OP_MATH"} <= set(cublas.Math.__members__)
    for fn in ("create", "set_stream", "set_workspace", "set_pointer_mode", "set_math_mode", "sgemm"):
        assert callable(getattr(cublas, fn))
    for fn in ("create", "matmul", "matmul_desc_create", "matrix_layout_create", "matmul_algo_get_heuristic",
               "matmul_preference_create"):
        assert callable(getattr(cublasLt, fn))
    assert "algo" in cublasLt.matmul_heuristic_result_dtype.names


@needs_gxx
@pytest.mark.parametrize("steps_per_graph", [1, 4])
def test_fit_on_the_fused_route_in_blocks_matches_numpy(steps_per_graph):
    """fit through the trainer's runner seam: blocks of fused steps, the epoch's last partial block and the
    shorter last batch (45 rows, batch 8: 5 full steps and 5 rows), validation between epochs."""
    x, y = blobs(n=45, features=6)
    layers = lambda: [Input((6,)), Dense(9, "relu"), Dense(7, "relu"), Dense(3, "softmax")]  # noqa: E731
    histories, models = [], []
    for backend in (NumpyBackend(), HostLtOps(steps_per_graph)):
        model = _model(backend, layers(), SGD(0.1))
        histories.append(model.fit(x, y, batch_size=8, epochs=3, seed=4, verbose=0,
                                   validation_data=(x[:10], y[:10])).history)
        models.append(model)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4)
    assert models[1].optimizer.iterations == 18
    assert models[1].backend.launches.count("gather_step_f32_i32") == 18


@needs_gxx
def test_per_batch_callbacks_see_every_step_of_a_block():
    """A callback that reads the logs after each batch gets every step, in order, though the backend
    would run four steps per call; the logs match NumPy's."""
    class Batches(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_end(self, batch, logs=None):
            self.seen.append((batch, round(logs["loss"], 4)))

    x, y = blobs(n=45, features=6)
    seen = []
    for backend in (NumpyBackend(), HostLtOps(4)):
        cb = Batches()
        _model(backend, [Input((6,)), Dense(9, "relu"), Dense(3, "softmax")], SGD(0.1)).fit(
            x, y, batch_size=8, epochs=1, seed=4, verbose=0, callbacks=[cb])
        seen.append(cb.seen)
    assert [b for b, _ in seen[1]] == list(range(6))
    assert seen[1] == seen[0]


def test_steps_per_graph_setting_is_checked():
    """CupyBackend(steps_per_graph=...) and MLP_GPU_STEPS_PER_GRAPH accept ints >= 1 only (checked before any
    device is needed)."""
    from mlp_gpu.backend.cuda.backend import _env_steps

    assert _env_steps(16) == 16 and _env_steps("4") == 4
    for bad in (0, -1, "x", 2.5, True, "1.5"):
        with pytest.raises(ValueError, match="steps_per_graph"):
            _env_steps(bad)


def test_each_cublaslt_call_of_the_plan_against_its_row_major_meaning():
    """Every GEMM of the lt plan, run alone by the column-major emulation on random buffers, computes what
    the row-major step means: forward [a, 1] @ [kernel; bias] (+ ReLU and its mask), input gradient
    (dz @ kernel^T) * mask, and the folded update [kernel; bias] -= lr [a, 1]^T @ dz."""
    from mlp_gpu.backend.cuda.step_plan import lt_buffers
    from mlp_gpu.backend.step_spec import param_offsets
    from tests.harness.lt_emulator import lt_matmul

    spec = replace(REFERENCE, sizes=(37, 33, 9, 5), rows=31)
    rng = np.random.default_rng(7)
    arrays = {name: (rng.normal(size=shape) if dtype == np.float32 else np.zeros(shape)).astype(dtype)
              for name, (shape, dtype, _) in lt_buffers(spec).items()}
    for name, (_, _, ones) in lt_buffers(spec).items():
        if ones is not None:
            arrays[name][:, ones:] = 0
            arrays[name][:, ones] = 1
    arrays["scalars"][:3] = [-0.125, 1, 0]
    params = rng.normal(size=param_offsets(spec.sizes)[-1]).astype(np.float32)
    offsets = param_offsets(spec.sizes)
    for i, (fan_in, units) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        arrays[f"w{i}"] = params[offsets[i]:offsets[i + 1]].reshape(fan_in + 1, units)
    inputs = ["x", "act0", "act1"]
    for node in plan_step(spec, "lt"):
        g = node.gemm
        if g is None:
            continue
        before = {k: v.copy() for k, v in arrays.items()}
        lt_matmul(g, arrays)
        i = int(node.name[-1])
        w = before[f"w{i}"].astype(np.float64)
        if node.name.startswith("forward"):
            a = before[inputs[i]][:, :spec.sizes[i] + 1]
            want = a @ w
            out = arrays[g.d][:, :spec.sizes[i + 1]]
            if g.epilogue == "relu_aux":
                bits = np.unpackbits(arrays[g.aux], axis=1, bitorder="little")[:, :spec.sizes[i + 1]]
                np.testing.assert_array_equal(bits, want > 0)
                want = np.maximum(want, 0)
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
            if i < 2:
                assert (arrays[g.d][:, spec.sizes[i + 1]] == 1).all(), "the ones column survives the GEMM"
        elif node.name.startswith("input_grad"):
            mask = np.unpackbits(before[g.aux], axis=1, bitorder="little")[:, :spec.sizes[i]]
            np.testing.assert_allclose(arrays[g.d], (before[f"dz{i}"] @ w[:-1].T) * mask, rtol=1e-5, atol=1e-5)
        else:
            a = before[inputs[i]][:, :spec.sizes[i] + 1].astype(np.float64)
            np.testing.assert_allclose(arrays[g.d], w - 0.125 * a.T @ before[f"dz{i}"], rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("gemm,steps", [("kernel", 1), ("cublas", 1), ("cublas", 4), ("lt", 1), ("lt", 4)])
def test_graph_routes_match_numpy_on_gpu(gemm, steps):
    """On a GPU: each route, with one or four steps per graph, trains like the NumPy backend, and the route
    that ran is the one asked for (nvmath-python present) -- or the logged fallback says why."""
    from mlp_gpu.backend import get_backend
    from mlp_gpu.backend.cuda import vendor_gemm

    x, y = blobs(n=200, features=12)
    layers = lambda: [Input((12,)), Dense(33, "relu"), Dense(17, "relu"), Dense(3, "softmax")]  # noqa: E731
    runs = []
    for backend in (NumpyBackend(), get_backend("cupy", graph=True, gemm=gemm, steps_per_graph=steps)):
        model = _model(backend, layers(), SGD(0.1))
        runs.append((model, model.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0,
                                      validation_data=(x[:50], y[:50])).history))
    (ref, h_ref), (got, h_got) = runs
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    for key in h_ref:
        np.testing.assert_allclose(h_got[key], h_ref[key], rtol=1e-3)
    route = got.backend.route
    expected = gemm if gemm == "kernel" or vendor_gemm.unavailable_reason() is None else "kernel"
    assert route["route"] == expected, route
    assert route["steps_per_graph"] == steps


@needs_gxx
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_the_same_step_on_the_fused_route():
    """The fused route counts finite steps at the start of the next step; a diverging run still reports
    the step NumPy reports."""
    from mlp_gpu.training.fit import TrainingDiverged

    x, y = blobs(n=200, features=6)
    messages = []
    for backend in (NumpyBackend(), HostLtOps(4)):
        model = _model(backend, [Input((6,)), Dense(9, "relu"), Dense(3, "softmax")], SGD(1e9))
        with pytest.raises(TrainingDiverged) as info:
            model.fit(x * 1e3, y, batch_size=8, epochs=1, seed=0, verbose=0, on_nan="raise")
        messages.append(str(info.value))
    assert "step" in messages[0] and messages[1] == messages[0]


def test_graph_routes_benchmark_runs_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/graph_routes.py (gpu-check's item) on a tiny setup with NumPy standing in for the GPU
    routes: every stage runs and reports, the PyTorch CUDA peers are reported as skipped with the reason,
    so the one GPU run does not find a typo at its end."""
    import sys

    sys.path.insert(0, str(kernels.kernel_dir().parent / "benchmarks"))
    import graph_routes

    rng = np.random.default_rng(0)
    data = {"x": rng.integers(0, 256, (256, 784)).astype(np.uint8), "y": rng.integers(0, 10, 256).astype(np.int32)}
    data.update(x_test=data["x"][:64], y_test=data["y"][:64])
    setup = graph_routes.Setup(routes={"numpy": ("numpy", {})}, epochs=1, long_epochs=1, parity_rows=64,
                               workloads=[graph_routes.Workload("tiny", (784, 16, 10), 32, rows=128)])
    # Two NumPy fits agree to the bit only on one BLAS thread count: the backend picks threads per product
    # from the machine's load (backend/numpy/threads.py), and OpenBLAS rounds differently across counts.
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        result = graph_routes.run(tmp_path, setup, data, log=lambda *a: None)
    cells = {c["impl"]: c for c in result["cells"]}
    assert cells["numpy"]["us_per_step"] > 0 and cells["numpy"]["steps_per_epoch"] == 4
    for peer in ("torch_eager", "torch_graph"):
        assert "skipped" in cells[peer] or "us_per_step" in cells[peer]
    assert result["parity"][0]["ok"] and result["parity"][0]["max_abs_weight_diff"] == 0
    assert result["thirty_epochs"][0]["epochs"] == 1
    assert [(t["impl"], t["validation"]) for t in result["thirty_epochs"]] == [
        (impl, v) for v in (False, True) for impl in ("numpy", "torch_eager", "torch_graph")]
    assert result["fastest"]["tiny"]["impl"] == "numpy" and "keeps the lt route" in result["auto_note"]
    text = (tmp_path / "graph-routes.md").read_text()
    assert "| tiny | numpy |" in text and "parity after one epoch" in text and "fastest of our routes" in text
    assert "persistent" in graph_routes.ROUTES and "reference-b256" in [w.name for w in graph_routes.WORKLOADS]


def test_gpu_check_persistent_stage_runs_on_the_cpu(monkeypatch):
    """gpu-check's persistent-route stage end to end, NumPy standing in for the lt and persistent routes (the
    PyTorch peer reports itself skipped without CUDA), so the GPU run does not find a typo in it."""
    import sys

    sys.path.insert(0, str(kernels.kernel_dir().parent / "benchmarks"))
    import gpu_check
    import graph_routes

    monkeypatch.setitem(graph_routes.ROUTES, "graph_lt", ("numpy", {}))
    monkeypatch.setitem(graph_routes.ROUTES, "persistent", ("numpy", {}))
    rng = np.random.default_rng(1)
    data = {"x": rng.integers(0, 256, (96, 784)).astype(np.uint8), "y": rng.integers(0, 10, 96).astype(np.int32)}
    data.update(x_test=data["x"][:32], y_test=data["y"][:32], x_val=data["x"][32:64], y_val=data["y"][32:64])
    monkeypatch.setattr(graph_routes.Setup, "parity_rows", 64)
    result = gpu_check.persistent_headline(data, epochs=1)
    runs = {r["impl"]: r for r in result["thirty_epochs_with_validation"]}
    assert runs["persistent"]["epochs"] == 1 and runs["persistent"]["validation"] and runs["graph_lt"]["seconds"] > 0
    assert "skipped" in runs["torch_graph"] or "seconds" in runs["torch_graph"]
    assert [p["impl"] for p in result["parity"]] == ["graph_lt", "persistent"]
    assert all(p["ok"] for p in result["parity"])
