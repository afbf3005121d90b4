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
   step) against the same fit without it: equal weights, and the cost of the all-reduce per step.

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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlp_gpu import SGD, Dense, Input, Sequential  # noqa: E402
from mlp_gpu.backend import available_backends, get_backend  # noqa: E402
from mlp_gpu.bench import load_data, run_suite  # noqa: E402
from mlp_gpu.bench.report import describe_machine  # noqa: E402
from benchmarks.kernels import bench as kernel_bench  # noqa: E402

import graph_routes  # noqa: E402  (benchmarks/graph_routes.py, beside this file)


def say(*parts):
    print(*parts, flush=True)


def run_gpu_tests(out: Path) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(ROOT / "tests")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    (out / "gpu-tests.log").write_text(proc.stdout + proc.stderr)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    say("gpu tests:", summary)
    return {"exit_code": proc.returncode, "summary": summary}


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
    model.compile(optimizer=SGD(0.01), metrics=["accuracy"], seed=42)
    backend.synchronize()
    t0 = time.perf_counter()
    history = model.fit(data["x"], data["y"], batch_size=32, epochs=epochs,
                        validation_data=(data["x_val"], data["y_val"]), verbose=0, seed=42)
    backend.synchronize()
    seconds = time.perf_counter() - t0
    return {"backend": repr(backend), "epochs": epochs, "train_seconds_with_validation": seconds,
            "val_accuracy": history.history["val_accuracy"][-1],
            "test_accuracy": model.evaluate(data["x_test"], data["y_test"])[1]}


def nccl_one_rank(data, epochs=1) -> dict:
    """The NCCL engine on this one GPU: the reference workload in graph mode with its all-reduce in the
    captured step, against the same fit without it (same weights; time per step with and without)."""
    import logging

    from mlp_gpu.backend import BackendUnavailable
    from mlp_gpu.backend.nccl_engine import NcclCommunicator
    from mlp_gpu.distributed import SingleProcess

    try:
        comm = NcclCommunicator(SingleProcess())
    except BackendUnavailable as exc:
        return {"skipped": str(exc)}
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("mlp_gpu").addHandler(handler)
    out = {"nccl_version": comm.version, "capturable": comm.capturable}
    weights = {}
    try:
        for name, distribute in (("plain", "single"), ("nccl", comm)):
            backend = get_backend("cupy", graph=True)
            model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                               backend=backend)
            model.compile(optimizer=SGD(0.01), metrics=["accuracy"], seed=42)
            model.fit(data["x"], data["y"], batch_size=32, epochs=1, verbose=0, seed=42, distribute=distribute)
            backend.synchronize()
            t0 = time.perf_counter()
            model.fit(data["x"], data["y"], batch_size=32, epochs=1 + epochs, initial_epoch=1, verbose=0, seed=42,
                      distribute=distribute)
            backend.synchronize()
            out[f"{name}_us_per_step"] = (time.perf_counter() - t0) / (epochs * math.ceil(len(data["x"]) / 32)) * 1e6
            weights[name] = model.get_weights()
    finally:
        logging.getLogger("mlp_gpu").removeHandler(handler)
    pairs = zip(weights["plain"], weights["nccl"])
    out["max_abs_weight_difference"] = max(float(np.abs(a - b).max()) for a, b in pairs)
    out["all_reduce_in_graph"] = not any("could not be captured" in w for w in warnings)
    say("nccl, one rank:", out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--smoke", action="store_true", help="the CPU smoke matrix, to check this script without a GPU")
    ap.add_argument("--routes-only", action="store_true", help="only the graph routes against PyTorch")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = available_backends()["cupy"] is None
    from mlp_gpu.backend import vendor_gemm

    say("nvmath-python:", vendor_gemm.unavailable_reason() or "importable")
    if args.routes_only:
        if not gpu:
            say("graph routes need a GPU:", available_backends()["cupy"])
            return 1
        routes = graph_routes.run(out, graph_routes.Setup(epochs=1, long_epochs=3) if args.smoke else None, log=say)
        return 0 if all(p["ok"] for p in routes["parity"]) else 1
    result = {"benchmark": "gpu_check", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke,
              "machine": describe_machine(), "cupy_unavailable": available_backends()["cupy"]}
    say("machine:", result["machine"])
    if gpu:
        result["tests"] = run_gpu_tests(out)
    source, data = load_data()
    result["data"] = source
    suite = run_suite("smoke" if args.smoke or not gpu else "gpu", repeats=1 if args.smoke else 5, out=out,
                      log=say)
    result["bench_files"] = suite.get("files", [])
    result["ratios"] = suite["ratios"]
    if gpu:
        kernels = kernel_bench.run(validate_only=False, log=say)
        result["kernels"] = {"all_valid": kernels["all_valid"],
                             "files": [str(p) for p in kernel_bench.write(kernels, out)]}
        eager = get_backend("cupy", graph=False)
        result["launch_overhead_us"] = launch_overhead_us(eager)
        graph_ref = [c for c in suite["cells"] if c["workload"] == "reference" and c["impl"] == "cupy_graph"]
        if graph_ref and "median_s" in graph_ref[0]:
            result["graph_us_per_step"] = graph_ref[0]["median_s"] / graph_ref[0]["steps_per_epoch"] * 1e6
        result["full_run"] = full_run(get_backend("cupy", graph=True), data, 30)
        routes = graph_routes.run(out, graph_routes.Setup(epochs=1, long_epochs=3) if args.smoke else None, log=say)
        result["graph_routes"] = {"file": "graph-routes.md", "parity_ok": all(p["ok"] for p in routes["parity"])}
        result["nccl_one_rank"] = nccl_one_rank(data)
    else:
        result["full_run"] = full_run(get_backend("numpy"), data, 2 if args.smoke else 30)
    say("full run:", result["full_run"])
    name = "smoke" if args.smoke else result["machine"].get("gpu", {}).get("device", "cpu").replace(" ", "-")
    (out / f"gpu-check-{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"gpu-check-{name}.md").write_text(markdown(result))
    say("wrote", out / f"gpu-check-{name}.md")
    ok = result.get("tests", {}).get("exit_code", 0) == 0 and result.get("kernels", {}).get("all_valid", True)
    return 0 if ok else 1


def markdown(r) -> str:
    gpu = r["machine"].get("gpu", {}).get("device") or f"none ({r['cupy_unavailable']})"
    fr = r["full_run"]
    lines = [f"# gpu-check {r['date']}", "", f"Device: {gpu}; data: {r['data']}.", ""]
    if "tests" in r:
        lines += [f"GPU tests: {r['tests']['summary']} (exit {r['tests']['exit_code']}); log in gpu-tests.log.", ""]
    if "kernels" in r:
        lines += [f"Kernels against NumPy: {'all valid' if r['kernels']['all_valid'] else 'SOME INVALID'}; "
                  "times and % of peak in the kernels-* files.", ""]
    if "launch_overhead_us" in r:
        lines += [f"CuPy RawKernel launch: {r['launch_overhead_us']:.2f} µs host-side per launch."]
    if "graph_us_per_step" in r:
        lines += [f"Graph replay, reference workload: {r['graph_us_per_step']:.2f} µs per training step."]
    lines += ["", f"Full run ({fr['backend']}): {fr['epochs']} epochs of the reference workload with per-epoch "
              f"validation in {fr['train_seconds_with_validation']:.2f} s; val accuracy {fr['val_accuracy']:.4f}, "
              f"test accuracy {fr['test_accuracy']:.4f}.", "", "Ratios from the suite (see the bench-* files):", ""]
    lines += [f"- {k}: {v:.3f}" for k, v in r["ratios"].items()]
    if "nccl_one_rank" in r:
        lines += ["", "NCCL engine on one rank (all-reduce in the step, graph mode): "
                  + ", ".join(f"{k} {v}" for k, v in r["nccl_one_rank"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
