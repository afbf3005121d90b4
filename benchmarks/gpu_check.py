"""`make gpu-check`: the GPU machine's one prepared run (about 3 minutes, no network).

Prints the device, runs the GPU tests, times the reference workload (784-300-100-10,
SGD 0.01, batch 32, 55,000 rows, 1,719 steps/epoch) with the CuPy backend eager and in
graph mode against PyTorch eager and NumPy on the same machine, trains 30 epochs in
graph mode with per-epoch validation, and writes gpu-<device>.json and .md.

Data: Fashion-MNIST from $MLP_GPU_DATA (or the usual search path); synthetic pixels of
the same shape where none is found (timings hold, accuracies are then left out).

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--out DIR] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mlp_gpu  # noqa: E402
from mlp_gpu import SGD, Dense, Input, Sequential  # noqa: E402
from mlp_gpu.backend import available_backends, get_backend  # noqa: E402
from mlp_gpu.data import load_fashion_mnist, split_validation  # noqa: E402

LOG = []


def say(*parts):
    line = " ".join(str(p) for p in parts)
    LOG.append(line)
    print(line, flush=True)


def load_data(rows):
    try:
        (x_full, y_full), (x_test, y_test) = load_fashion_mnist(scale=False)
        source = "fashion-mnist"
    except FileNotFoundError as exc:
        say("data: synthetic pixels (", exc, ")")
        rng = np.random.default_rng(0)
        x_full = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y_full = rng.integers(0, 10, 60000).astype(np.uint8)
        x_test, y_test = x_full[:10000], y_full[:10000]
        source = "synthetic"
    (x, y), (x_val, y_val) = split_validation(x_full.reshape(-1, 784), y_full)
    return source, (x[:rows], y[:rows]), (x_val, y_val), (x_test.reshape(-1, 784), y_test)


def reference_model(backend):
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend=backend)
    model.compile(optimizer=SGD(0.01), metrics=["accuracy"], seed=42)
    return model


class EpochTimer(mlp_gpu.Callback):
    """Seconds per epoch, synchronized with the device at both ends."""

    def __init__(self):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.backend.synchronize()
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.model.backend.synchronize()  # logs were read already; this is cheap
        self.times.append(time.perf_counter() - self.t0)


def time_mlp_gpu(backend, train, epochs):
    """Median seconds per epoch over epochs 2.. (the first compiles kernels and captures graphs)."""
    model = reference_model(backend)
    timer = EpochTimer()
    model.fit(*train, batch_size=32, epochs=epochs, verbose=0, seed=1, callbacks=[timer])
    rest = timer.times[1:] or timer.times
    return {"median_s": statistics.median(rest), "min_s": min(rest), "max_s": max(rest),
            "first_epoch_s": timer.times[0], "epochs_timed": len(rest)}


def time_torch(train, epochs, device):
    try:
        import torch
    except ImportError as exc:
        return {"skipped": f"torch not importable ({exc})"}
    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA device"}
    torch.manual_seed(0)
    dev = torch.device(device)
    x = torch.from_numpy(np.array(train[0])).to(dev)  # uint8 on the device, as mlp_gpu keeps it
    y = torch.from_numpy(train[1].astype(np.int64)).to(dev)
    net = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                              torch.nn.ReLU(), torch.nn.Linear(100, 10)).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    times = []
    for _ in range(epochs):
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        total = torch.zeros((), device=dev)
        for start in range(0, n, 32):
            idx = perm[start:start + 32]
            xb = x[idx].float() / 255
            loss = loss_fn(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        float(total)  # one read per epoch, as mlp_gpu does
        sync()
        times.append(time.perf_counter() - t0)
    rest = times[1:] or times
    return {"median_s": statistics.median(rest), "min_s": min(rest), "max_s": max(rest),
            "first_epoch_s": times[0], "epochs_timed": len(rest), "torch": torch.__version__}


def launch_overhead(backend, count=20000):
    """Host-side microseconds per CuPy RawKernel launch (the one-thread `advance` kernel)."""
    cursor = backend.zeros(1, np.int64)
    backend.advance(cursor, 1)
    backend.synchronize()
    t0 = time.perf_counter()
    for _ in range(count):
        backend.advance(cursor, 1)
    backend.synchronize()
    return (time.perf_counter() - t0) / count * 1e6


def run_tests(out):
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(ROOT / "tests")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    (out / "gpu-tests.log").write_text(proc.stdout + proc.stderr)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    say("gpu tests:", summary)
    return {"exit_code": proc.returncode, "summary": summary}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script itself on a CPU")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, epochs, long_epochs = (600, 2, 2) if args.smoke else (55000, 4, 30)

    reasons = available_backends()
    gpu = reasons["cupy"] is None
    result = {"benchmark": "gpu_check", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": args.smoke,
              "machine": {"cpu_cores": os.cpu_count(), "python": platform.python_version(),
                          "numpy": np.__version__, "mlp_gpu": mlp_gpu.__version__},
              "cupy_unavailable": reasons["cupy"]}
    if gpu:
        result["device"] = get_backend("cupy").describe()
        say("device:", result["device"])
        result["tests"] = run_tests(out)
    else:
        say("no GPU:", reasons["cupy"])
    source, train, val, test = load_data(rows)
    result["data"] = source
    steps = -(-len(train[0]) // 32)
    result["workload"] = {"rows": len(train[0]), "batch": 32, "steps_per_epoch": steps}

    timings = {"numpy": time_mlp_gpu(get_backend("numpy"), train, 2)}
    say("numpy:", timings["numpy"])
    if gpu:
        for label, opts in (("cupy_eager", {"graph": False}), ("cupy_graph", {"graph": True})):
            backend = get_backend("cupy", **opts)
            timings[label] = time_mlp_gpu(backend, train, epochs)
            say(f"{label}:", timings[label])
        result["launch_overhead_us"] = launch_overhead(get_backend("cupy", graph=False))
        result["graph_step_us"] = timings["cupy_graph"]["median_s"] / steps * 1e6
        say("RawKernel launch µs:", round(result["launch_overhead_us"], 2),
            "graph µs/step:", round(result["graph_step_us"], 2))
    timings["torch_cuda" if gpu else "torch_cpu"] = time_torch(train, 3 if gpu else 2, "cuda" if gpu else "cpu")
    say("torch:", timings.get("torch_cuda") or timings.get("torch_cpu"))
    result["seconds_per_epoch"] = timings
    base = timings.get("torch_cuda", {}).get("median_s")
    result["speedup"] = {k: base / v["median_s"] for k, v in timings.items() if base and "median_s" in v}

    # The headline: a full reference run in graph mode (NumPy in --smoke runs without a GPU).
    backend = get_backend("cupy", graph=True) if gpu else get_backend("numpy")
    model = reference_model(backend)
    backend.synchronize()
    t0 = time.perf_counter()
    history = model.fit(*train, batch_size=32, epochs=long_epochs, validation_data=val, verbose=0, seed=42)
    backend.synchronize()
    seconds = time.perf_counter() - t0
    run = {"backend": repr(backend), "epochs": long_epochs, "train_seconds_with_validation": seconds}
    if source == "fashion-mnist":
        run["val_accuracy"] = history.history["val_accuracy"][-1]
        run["test_accuracy"] = model.evaluate(*test)[1]
    result["full_run"] = run
    say("full run:", run)

    name = "smoke" if args.smoke else result.get("device", {}).get("device", "cpu").replace(" ", "-")
    (out / f"gpu-{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"gpu-{name}.md").write_text(markdown(result))
    say("wrote", out / f"gpu-{name}.json")
    return 0 if result.get("tests", {}).get("exit_code", 0) == 0 else 1


def markdown(r):
    lines = [f"# gpu-check {r['date']}", "",
             f"Device: {r.get('device', {}).get('device', 'none (' + str(r['cupy_unavailable']) + ')')}; "
             f"data: {r['data']}; {r['workload']['rows']} rows, batch 32, {r['workload']['steps_per_epoch']} "
             "steps/epoch.", ""]
    if "tests" in r:
        lines += [f"GPU tests: {r['tests']['summary']} (exit {r['tests']['exit_code']})", ""]
    lines += ["| implementation | median s/epoch | min | max | first epoch | speed-up vs torch CUDA |",
              "|---|---|---|---|---|---|"]
    for k, v in r["seconds_per_epoch"].items():
        if "median_s" not in v:
            lines.append(f"| {k} | skipped: {v.get('skipped')} | | | | |")
            continue
        sp = r["speedup"].get(k)
        lines.append(f"| {k} | {v['median_s']:.4f} | {v['min_s']:.4f} | {v['max_s']:.4f} | "
                     f"{v['first_epoch_s']:.3f} | {f'{sp:.2f}x' if sp else ''} |")
    if "launch_overhead_us" in r:
        lines += ["", f"CuPy RawKernel launch: {r['launch_overhead_us']:.2f} µs (host side); "
                      f"graph replay: {r['graph_step_us']:.2f} µs per training step."]
    fr = r["full_run"]
    lines += ["", f"Full run ({fr['backend']}): {fr['epochs']} epochs with per-epoch validation in "
                  f"{fr['train_seconds_with_validation']:.2f} s" +
              (f"; val accuracy {fr['val_accuracy']:.4f}, test accuracy {fr['test_accuracy']:.4f}."
               if "val_accuracy" in fr else ".")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
