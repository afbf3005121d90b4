"""`make gpu-check`: the GPU machine's one prepared run (a few minutes, no network, no pip).

1. describes the device and runs the GPU tests (pytest -m gpu: CuPy against NumPy, eager against
   graph replay, every kernel through NVRTC);
2. runs the benchmark suite's GPU matrix (NumPy on the host, CuPy eager and graph, PyTorch eager on
   the same card) and writes bench-gpu-<device>.json/.md/.png;
3. runs every kernel against its NumPy reference and times it (benchmarks/kernels: GB/s, GFLOP/s,
   % of the card's peak), writing kernels-<device>.json/.md;
4. trains the reference workload for 30 epochs in graph mode with per-epoch validation and
   measures a RawKernel launch, writing gpu-check-<device>.json/.md;
5. measures the graph routes (our GEMM, cuBLAS and fused cuBLASLt through nvmath-python, several steps
   per graph) against PyTorch eager and PyTorch CUDA graphs (benchmarks/graph_routes.py), writing
   graph-routes.json/.md. ``--routes-only`` runs this part alone;
5. trains the reference workload with the NCCL engine on one rank (its all-reduce inside the captured
   step) against the same fit without it: equal weights, and the cost of the all-reduce per step;
6. times resident against streamed training from synthetic data on disk (55 thousand and 1 million
   rows; mlp_gpu/benchmarks/rows.py), writing bench-rows-cupy.json/.md.

Data: Fashion-MNIST from $MLP_GPU_DATA or the usual search path (synthetic pixels otherwise:
timings hold, accuracies do not).

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--out DIR] [--smoke] [--routes-only]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlp_gpu import SGD, Dense, Input, Sequential  # noqa: E402
from mlp_gpu.backend import available_backends, get_backend  # noqa: E402
from mlp_gpu.benchmarks import load_data, run_suite  # noqa: E402
from mlp_gpu.benchmarks.report import describe_machine  # noqa: E402
from mlp_gpu.benchmarks.rows import run_rows  # noqa: E402
from benchmarks.kernels import bench as kernel_bench  # noqa: E402

import graph_routes  # noqa: E402  (benchmarks/graph_routes.py, beside this file)


def say(*parts):
    print(*parts, flush=True)


def run_gpu_tests(out: Path, timeout_s: float, where: str = "tests", log_name: str = "gpu-tests.log") -> dict:
    """pytest -m gpu over ``where`` (a folder or file under the repository), spread over 8 processes where
    pytest-xdist is installed (the GPU machine has it), each test limited to 120 s where pytest-timeout is, the
    whole run to timeout_s."""
    import importlib.util

    cmd = [sys.executable, "-m", "pytest", "-v", "-rfE", "--tb=short", "-m", "gpu", "-p", "no:cacheprovider"]
    if importlib.util.find_spec("xdist"):
        cmd += ["-n", "8"]
    if importlib.util.find_spec("pytest_timeout"):
        cmd += ["--timeout", "120"]
    path = [str(ROOT)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    try:
        proc = subprocess.run(cmd + [str(ROOT / where)], capture_output=True, text=True, cwd=ROOT, env=env,
                              timeout=timeout_s)
        text, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = "".join(part.decode() if isinstance(part, bytes) else (part or "") for part in (exc.stdout, exc.stderr))
        text, code = text + f"\n(stopped after {timeout_s:.0f} s)", "timeout"
    (out / log_name).write_text(text)
    import re

    finals = [line for line in text.splitlines() if re.match(r"=+ .* in [\d.]+s.* =+$", line)]
    summary = finals[-1].strip("= ") if finals else "(no summary line: see gpu-tests.log)"
    say("gpu tests:", summary)
    return {"exit_code": code, "summary": summary, "command": " ".join(cmd)}


def launch_overhead_us(backend, count=20000) -> float:
    """Host-side microseconds per RawKernel launch (the one-thread `advance` kernel), device drained."""
    cursor = backend.zeros(1, np.int64)
    backend.advance(cursor, 1)
    backend.synchronize()
    t0 = time.perf_counter()
    for _ in range(count):
        backend.advance(cursor, 1)
    backend.synchronize()
    return (time.perf_counter() - t0) / count * 1e6


def full_run(backend, data, epochs) -> dict:
    """The headline: the reference workload, per-epoch validation, timed end to end."""
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")], backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"], seed=42)
    backend.synchronize()
    t0 = time.perf_counter()
    history = model.fit(data["x"], data["y"], batch_size=32, epochs=epochs,
                        validation_data=(data["x_val"], data["y_val"]), verbose=0, seed=42)
    backend.synchronize()
    seconds = time.perf_counter() - t0
    return {"backend": repr(backend), "epochs": epochs, "train_seconds_with_validation": seconds,
            "val_accuracy": history.history["val_accuracy"][-1],
            "test_accuracy": model.evaluate(data["x_test"], data["y_test"])[1]}


def persistent_headline(data, epochs=30) -> dict:
    """Issue 28's headline, early so that a run cut short has it: the reference workload's 30 epochs with
    per-epoch validation on the persistent route (target 0.6 s, 10 µs a step) against the lt route and PyTorch
    with a captured step, and each route's parity with NumPy after an epoch. graph_routes (a later stage) has
    every route at batch 32, 256, 1024 and on the wide net."""
    keep = ("graph_lt", "persistent")
    setup = graph_routes.Setup(routes={k: graph_routes.ROUTES[k] for k in keep}, peers=("torch_graph",),
                               long_epochs=epochs, validation=(True,))
    runs = []
    for impl in keep + setup.peers:
        try:
            runs.append(graph_routes.thirty_epochs(data, impl, setup, say, validation=True))
        except Exception as exc:  # no torch CUDA, or a route failing: reported, the rest go on
            runs.append({"impl": impl, "skipped": f"{type(exc).__name__}: {exc}"})
    return {"target_seconds": 0.6, "thirty_epochs_with_validation": runs,
            "parity": [graph_routes.parity(data, impl, setup) for impl in keep]}


def nccl_one_rank(data, epochs=1) -> dict:
    """The NCCL engine on this one GPU: the reference workload in graph mode with its all-reduce in the
    captured step, against the same fit without it (same weights; time per step with and without)."""
    from mlp_gpu.backend import BackendUnavailable
    from mlp_gpu.backend.cuda.nccl import NcclCommunicator
    from mlp_gpu.distributed import SingleProcess

    try:
        comm = NcclCommunicator(SingleProcess())
    except BackendUnavailable as exc:
        return {"skipped": str(exc)}
    out = {"nccl_version": comm.version, "capturable": comm.capturable}
    weights = {}
    for name, distribute in (("plain", "single"), ("nccl", comm)):
        # one GEMM route for both (the fused cuBLASLt step has no all-reduce in it), so that their
        # weights can agree bit for bit
        backend = get_backend("cupy", graph=True, gemm="cublas")
        model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                           backend=backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"], seed=42)
        model.fit(data["x"], data["y"], batch_size=32, epochs=1, verbose=0, seed=42, distribute=distribute)
        backend.synchronize()
        t0 = time.perf_counter()
        model.fit(data["x"], data["y"], batch_size=32, epochs=1 + epochs, initial_epoch=1, verbose=0, seed=42,
                  distribute=distribute)
        backend.synchronize()
        out[f"{name}_us_per_step"] = (time.perf_counter() - t0) / (epochs * math.ceil(len(data["x"]) / 32)) * 1e6
        weights[name] = model.get_weights()
        out[f"{name}_route"] = (backend.route or {}).get("route")
    pairs = zip(weights["plain"], weights["nccl"])
    out["max_abs_weight_difference"] = max(float(np.abs(a - b).max()) for a, b in pairs)
    out["all_reduce_in_graph"] = "two graphs" not in (out["nccl_route"] or "")  # the route names the fallback
    say("nccl, one rank:", out)
    return out


class Stages:
    """gpu-check's stages in order under one time budget: a stage runs only while the budget leaves it
    `needs` seconds, a stage that raises is recorded (its traceback) and the rest go on, and the results
    are written after every stage, so a run cut short or failing half-way still reports what it measured."""

    def __init__(self, result: dict, budget_s: float, write):
        self.result, self.write = result, write
        self.deadline = time.monotonic() + budget_s
        result["stages"] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, needs: float, fn):
        record = self.result["stages"]
        if self.left() < needs:
            record[name] = f"skipped: {self.left():.0f} s of the budget left, it needs {needs:.0f}"
            say(name, record[name])
            self.write()
            return None
        t0 = time.monotonic()
        try:
            value = fn()
            record[name] = f"ok in {time.monotonic() - t0:.1f} s"
        except Exception as exc:
            value = None
            record[name] = f"FAILED after {time.monotonic() - t0:.1f} s: {type(exc).__name__}: {exc}"
            self.result.setdefault("tracebacks", {})[name] = traceback.format_exc()
            say(traceback.format_exc())
        say(f"stage {name}: {record[name]}")
        self.write()
        return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--smoke", action="store_true", help="the CPU smoke matrix, to check this script without a GPU")
    ap.add_argument("--routes-only", action="store_true", help="only the graph routes against PyTorch")
    ap.add_argument("--persistent-only", action="store_true", help="only the persistent route: its GPU tests and "
                    "the 30-epoch headline against the lt route and PyTorch (a short first device check)")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds the whole run may take (stages that "
                    "would not fit are skipped and reported)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = available_backends()["cupy"] is None
    from mlp_gpu.backend.cuda import vendor_gemm

    say("nvmath-python:", vendor_gemm.unavailable_reason() or "importable")
    if args.routes_only:
        if not gpu:
            say("graph routes need a GPU:", available_backends()["cupy"])
            return 1
        routes = graph_routes.run(out, graph_routes.Setup(epochs=1, long_epochs=3) if args.smoke else None, log=say)
        return 0 if all(p["ok"] for p in routes["parity"]) else 1
    if args.persistent_only:
        if not gpu:
            say("the persistent route needs a GPU:", available_backends()["cupy"])
            return 1
        check = {"tests": run_gpu_tests(out, 180, "tests/backend/cuda/test_persistent_step.py", "persistent-tests.log")}
        check["headline"] = persistent_headline(load_data()[1])
        (out / "persistent-check.json").write_text(json.dumps(check, indent=2, default=str) + "\n")
        say("wrote", out / "persistent-check.json")
        return 0 if check["tests"]["exit_code"] == 0 and all(p["ok"] for p in check["headline"]["parity"]) else 1
    result = {"benchmark": "gpu_check", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke,
              "budget_s": args.budget, "machine": describe_machine(), "cupy_unavailable": available_backends()["cupy"],
              "nvmath": vendor_gemm.unavailable_reason() or "importable"}
    say("machine:", result["machine"])
    name = "smoke" if args.smoke else result["machine"].get("gpu", {}).get("device", "cpu").replace(" ", "-")

    def write():
        (out / f"gpu-check-{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / f"gpu-check-{name}.md").write_text(markdown(result))

    stages = Stages(result, args.budget, write)
    source, data = load_data()
    result["data"] = source
    if gpu:
        # The headline numbers first, so that a run cut short still has them.
        result["tests"] = stages.run("gpu tests", 60, lambda: run_gpu_tests(out, max(30.0, stages.left() - 150)))
        result["full_run"] = stages.run("30-epoch graph run", 40,
                                        lambda: full_run(get_backend("cupy", graph=True), data, 30))
        result["persistent"] = stages.run("persistent route", 30, lambda: persistent_headline(data))
        suite = stages.run("bench matrix", 40, lambda: run_suite("gpu", repeats=3, out=out, log=say))
        kernels = stages.run("kernel bench", 15, lambda: kernel_bench.run(validate_only=False, log=say))
        if kernels is not None:
            result["kernels"] = {"all_valid": kernels["all_valid"],
                                 "files": [str(p) for p in kernel_bench.write(kernels, out)]}
        result["launch_overhead_us"] = stages.run("launch overhead", 5,
                                                  lambda: launch_overhead_us(get_backend("cupy", graph=False)))
        quick = graph_routes.Setup(epochs=2, long_epochs=5)
        routes = stages.run("graph routes", 60, lambda: graph_routes.run(
            out, None if stages.left() > 200 else quick, data=data, log=say))
        if routes is not None:
            result["graph_routes"] = {"file": "graph-routes.md", "parity_ok": all(p["ok"] for p in routes["parity"])}
        result["nccl_one_rank"] = stages.run("nccl one rank", 20, lambda: nccl_one_rank(data))
        rows = stages.run("rows: resident vs streamed", 60, lambda: run_rows(
            (55_000, 1_000_000), backend="cupy", rounds=1, out=out, log=say))
        if rows is not None:
            result["rows_streamed_over_resident"] = rows["ratios"]
    else:
        suite = stages.run("bench matrix", 0, lambda: run_suite("smoke" if args.smoke else "cpu",
                                                               repeats=1 if args.smoke else 5, out=out, log=say))
        result["full_run"] = stages.run("full run", 0, lambda: full_run(get_backend("numpy"), data,
                                                                         2 if args.smoke else 30))
    if suite is not None:
        result["bench_files"] = suite.get("files", [])
        result["ratios"] = suite["ratios"]
        graph_ref = [c for c in suite["cells"] if c["workload"] == "reference" and c["impl"] == "cupy_graph"]
        if graph_ref and "median_s" in graph_ref[0]:
            result["graph_us_per_step"] = graph_ref[0]["median_s"] / graph_ref[0]["steps_per_epoch"] * 1e6
    say("full run:", result["full_run"])
    write()
    say("wrote", out / f"gpu-check-{name}.md")
    ok = (all(s.startswith("ok") for s in result["stages"].values())
          and (result.get("tests") or {}).get("exit_code", 0) == 0
          and result.get("kernels", {}).get("all_valid", True))
    return 0 if ok else 1


def markdown(r) -> str:
    gpu = r["machine"].get("gpu", {}).get("device") or f"none ({r['cupy_unavailable']})"
    lines = [f"# gpu-check {r['date']}", "", f"Device: {gpu}; data: {r.get('data')}; nvmath-python: {r['nvmath']}; "
             f"budget {r['budget_s']:.0f} s.", "", "Stages:", ""]
    lines += [f"- {k}: {v}" for k, v in r["stages"].items()] + [""]
    if r.get("tests"):
        lines += [f"GPU tests: {r['tests']['summary']} (exit {r['tests']['exit_code']}); log in gpu-tests.log.", ""]
    if "kernels" in r:
        lines += [f"Kernels against NumPy: {'all valid' if r['kernels']['all_valid'] else 'SOME INVALID'}; "
                  "times and % of peak in the kernels-* files.", ""]
    if r.get("launch_overhead_us"):
        lines += [f"CuPy RawKernel launch: {r['launch_overhead_us']:.2f} µs host-side per launch."]
    if "graph_us_per_step" in r:
        lines += [f"Graph replay, reference workload: {r['graph_us_per_step']:.2f} µs per training step."]
    fr = r.get("full_run")
    if fr:
        lines += ["", f"Full run ({fr['backend']}): {fr['epochs']} epochs of the reference workload with per-epoch "
                  f"validation in {fr['train_seconds_with_validation']:.2f} s; val accuracy {fr['val_accuracy']:.4f}, "
                  f"test accuracy {fr['test_accuracy']:.4f}."]
    for run in (r.get("persistent") or {}).get("thirty_epochs_with_validation", []):
        lines += ["", f"Persistent-route headline, {run['impl']}: " + (
            f"{run['epochs']} epochs with validation in {run['seconds']:.2f} s (target 0.6 s on the persistent route); "
            f"route {(run.get('route') or {}).get('route', run['impl'])}" if "seconds" in run
            else f"skipped: {run['skipped']}")]
    if r.get("ratios"):
        lines += ["", "Ratios from the suite (see the bench-* files):", ""]
        lines += [f"- {k}: {v:.3f}" for k, v in r["ratios"].items()]
    if r.get("nccl_one_rank"):
        lines += ["", "NCCL engine on one rank (all-reduce in the step, graph mode): "
                  + ", ".join(f"{k} {v}" for k, v in r["nccl_one_rank"].items()) + "."]
    for stage, tb in r.get("tracebacks", {}).items():
        lines += ["", f"Traceback of {stage}:", "", "```", tb.rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
