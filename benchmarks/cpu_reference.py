"""mlp_gpu's NumPy backend against the minimal hand-written NumPy loop, in one run.

Reference workload: Fashion-MNIST 784-300-100-10, SGD lr 0.01, batch 32, 55,000
training rows (1,719 steps an epoch). Two rounds, alternating, each trains
``repeats`` epochs with each implementation (mlp_gpu in one ``fit`` call, timed
per epoch by a callback, so its one-time input check and upload are left out as
in a 30-epoch run); the first epoch of each block is warm-up. We quote the
median seconds per epoch and their ratio. Results go to benchmarks/results/.

    python benchmarks/cpu_reference.py [--repeats 5] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import handwritten  # noqa: E402

import mlp_gpu  # noqa: E402
from mlp_gpu import Dense, Input, Sequential  # noqa: E402
from mlp_gpu.data import load_fashion_mnist, split_validation  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "mlp_gpu": mlp_gpu.__version__, "platform": platform.platform()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=55000, help="training rows (55,000 = reference)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)

    (x_full, y_full), _ = load_fashion_mnist()
    (x, y), _ = split_validation(x_full.reshape(-1, 784), y_full)
    x, y = np.ascontiguousarray(x[:args.rows]), y[:args.rows].astype(np.int64)

    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend="numpy")
    model.compile(optimizer=mlp_gpu.SGD(0.01), metrics=["accuracy"], seed=0)
    params = handwritten.init([784, 300, 100, 10], np.random.default_rng(0))
    rng = np.random.default_rng(0)

    class EpochTimer(mlp_gpu.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch:  # warm-up
                times["mlp_gpu_numpy"].append(time.perf_counter() - self.t0)

    def ours():
        model.fit(x, y, batch_size=32, epochs=per_block + 1, verbose=0, callbacks=[EpochTimer()],
                  seed=int(rng.integers(1 << 30)))

    def theirs():
        for epoch in range(per_block + 1):
            t0 = time.perf_counter()
            handwritten.train_epoch(params, x, y, 0.01, 32, rng)
            if epoch:
                times["handwritten_numpy"].append(time.perf_counter() - t0)

    times = {"mlp_gpu_numpy": [], "handwritten_numpy": []}
    per_block = -(-args.repeats // 2)
    for _ in range(2):
        ours()
        theirs()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["mlp_gpu_numpy"] / med["handwritten_numpy"]
    result = {
        "benchmark": "cpu_reference", "workload": "fashion-mnist 784-300-100-10, sgd 0.01, batch 32",
        "rows": len(x), "steps_per_epoch": -(-len(x) // 32), "repeats": len(times["mlp_gpu_numpy"]),
        "machine": machine(),
        "seconds_per_epoch": {k: {"median": med[k], "min": min(v), "max": max(v)} for k, v in times.items()},
        "ratio_mlp_gpu_over_handwritten": ratio,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu-reference.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {med[k]:.3f} | {min(v):.3f} | {max(v):.3f} |" for k, v in times.items())
    md = (f"# NumPy backend vs hand-written NumPy loop\n\n{result['workload']}, {result['rows']} rows "
          f"({result['steps_per_epoch']} steps/epoch), median of {result['repeats']} epochs in two "
          f"alternating rounds, each after a warm-up epoch.\n\n"
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
          f"Python {result['machine']['python']}, NumPy {result['machine']['numpy']}.\n\n"
          f"| implementation | median s/epoch | min | max |\n|---|---|---|---|\n{rows}\n\n"
          f"**Ratio mlp_gpu / hand-written: {ratio:.3f}**\n")
    (out / "cpu-reference.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
