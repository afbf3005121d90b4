"""Where the NumPy backend's folded SGD step spends its time (issue 30's quiet step), in CPU time on one
BLAS thread, so that a shared machine's load moves it little: the whole batch-32 step of the reference
net run op by op in Python and as one compiled call (where Numba is installed), the Python step with its
GEMMs made no-ops (its Python and NumPy overhead), and each GEMM alone; the compiled step less the GEMMs
is its glue. Interleaved rounds; the minimum of each is reported (the least disturbed).

    PYTHONPATH=. python3 benchmarks/cpu_step.py [--steps 2000] [--rounds 5] [--only step] [--json out.json]

Under ``valgrind --tool=callgrind`` with ``--only`` one part and two step counts, the difference of the
instruction counts over the difference of the steps is that part's instructions per step.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import threadpoolctl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlp_gpu import SGD, Dense, Input, Sequential  # noqa: E402
from mlp_gpu.backend import NumpyBackend  # noqa: E402
from mlp_gpu.backend.numpy import blas as prepared_blas  # noqa: E402
from mlp_gpu.backend.numpy.compiled_step import CompiledSgdStep, kernel  # noqa: E402
from mlp_gpu.backend.numpy.fused_step import FusedSgdStep  # noqa: E402
from mlp_gpu.training.fit import prepare_fit  # noqa: E402

BATCH = 32


def folded_step(rows=16000, seed=0, hollow=False):
    """(the folded step of the reference net on random uint8 rows, built as fit builds it; its GEMMs as
    (name, call)). ``hollow``: every GEMM a no-op, what is left is the step's overhead."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 256, (rows, 784), dtype=np.uint8), rng.integers(0, 10, rows).astype(np.int32)
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend=NumpyBackend())
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"], seed=0)
    run = prepare_fit(model, x, y, batch_size=BATCH)
    model.backend.threads.begin()
    with recording_gemms(hollow) as gemms:
        return FusedSgdStep(model.backend, model, run.train, run.sums.buffer, BATCH), gemms


@contextlib.contextmanager
def recording_gemms(hollow=False):
    """While steps are built: record each prepared GEMM as (name, call); ``hollow``: build no-ops instead."""
    made, gemm = [], prepared_blas.gemm

    def recording(a, b, c, trans_a=False, trans_b=False, **kwargs):
        call = gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, **kwargs)
        k = a.shape[0] if trans_a else a.shape[1]
        made.append((f"{'fold' if kwargs.get('beta') else 'gemm'} {c.shape[0]}x{c.shape[1]}x{k}", call))
        if hollow:
            def call():
                pass
            call.macs = made[-1][1].macs
        return call

    prepared_blas.gemm = recording
    try:
        yield made
    finally:
        prepared_blas.gemm = gemm


def cpu_us(fn, calls: int, data=None) -> float:
    """CPU microseconds per call of fn (an epoch restarts ``data`` where a step's cursor would run out)."""
    per_epoch = data.rows // BATCH if data is not None else 0
    start = time.process_time()
    for i in range(calls):
        if per_epoch and i % per_epoch == 0:
            data.begin_epoch()
        fn()
    return (time.process_time() - start) / calls * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default=None, help="one part: 'step', 'overhead', 'gemm' or 'fold' (GEMMs by kind)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        step, _ = folded_step()
        alone, gemms = folded_step()  # timed alone, they move their own model's weights, not the step's
        alone.neg_lr.value = -0.01  # the folds' alpha, as a step sets it (at 0 BLAS skips the product)
        empty, _ = folded_step(hollow=True)
        cells = {"step": lambda: cpu_us(step, args.steps, step.data)}
        if kernel()[0] is not None:
            compiled = CompiledSgdStep(folded_step()[0])
            cells["compiled step"] = lambda: cpu_us(compiled, args.steps, compiled.plan.data)
        else:
            print(f"no compiled step: {kernel()[1]}")

        def hollow():
            with np.errstate(all="ignore"):  # its logits are never written: whatever the buffer held
                return cpu_us(empty, args.steps, empty.data)
        cells["overhead (GEMMs no-ops)"] = hollow
        cells.update({name: (lambda g=g: cpu_us(g, args.steps)) for name, g in gemms})
        if args.only:
            cells = {k: v for k, v in cells.items() if k.startswith(args.only)}
        best = {}
        for _ in range(args.rounds):
            for name, cell in cells.items():
                best[name] = min(best.get(name, np.inf), cell())
    names = [name for name, _ in gemms if name in best]
    if names:
        best["GEMMs (sum)"] = sum(best[name] for name in names)
        if "compiled step" in best:
            best["compiled glue (step - GEMMs)"] = best["compiled step"] - best["GEMMs (sum)"]
    for name, us in best.items():
        print(f"{name:26s} {us:8.1f} us CPU")
    if args.json:
        Path(args.json).write_text(json.dumps(best, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
