"""`mlp-gpu bench --matrix dist`: data-parallel scaling on this machine's CPU, 1 against 2 MPI ranks.

For each batch (32, 1,024, 4,096) the reference net trains, in each of ``repeats`` rounds, one timed
epoch (after a warm-up epoch) on the same rows as: one rank using every core for BLAS; one rank using
half of them; two ranks using half each (the global batch stays the batch, split across the ranks).
Reported: samples/s, the speed-up of 2 ranks over 1 rank on the whole machine, the scaling efficiency
(2 ranks against twice one rank on the same cores per rank), the time per step inside the gradient
all-reduce (waiting for the slower rank included), and an all-reduce of the gradient buffer timed alone.

Each job is a separate process (`python -m mlp_gpu.benchmarks.dist --worker ...`, under mpiexec for 2 ranks).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from .workloads import load_data
from .. import Callback, Dense, Input, SGD, Sequential, distributed
from ..distributed.launch import find_mpiexec
from .report import describe_machine

BATCHES = (32, 1024, 4096)
ROWS = 16384


def _configs(cores):
    half = max(1, cores // 2)
    return [("1 rank, all cores", 1, cores), ("1 rank, half the cores", 1, half), ("2 ranks", 2, half)]


def _job(ranks, threads, batch, rows, epochs, timeout):
    cmd = [sys.executable, "-m", "mlp_gpu.benchmarks.dist", "--worker", "--batch", str(batch), "--rows", str(rows),
           "--epochs", str(epochs)]
    if ranks > 1:
        cmd = [find_mpiexec(), "-n", str(ranks), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench dist: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(name, ranks, threads, runs):
    """One configuration over its rounds: each run's second epoch is the timed one (the first warms up)."""
    raw = runs[0]
    times = [r["epoch_seconds"][-1] for r in runs]
    median = statistics.median(times)
    per_step = statistics.median(r["allreduce_seconds"][-1] for r in runs) / raw["steps"]
    return {"config": name, "ranks": ranks, "blas_threads": threads, "batch": raw["batch"], "rows": raw["rows"],
            "steps_per_epoch": raw["steps"], "epochs_timed": len(times), "epoch_seconds": times, "median_s": median,
            "samples_per_s": raw["rows"] / median, "step_ms": median / raw["steps"] * 1e3,
            "allreduce_ms_per_step": per_step * 1e3 if ranks > 1 else None,
            "allreduce_alone_ms": statistics.median(r["allreduce_alone_s"] for r in runs) * 1e3 if ranks > 1 else None}


def run_dist(repeats=3, out=None, log=print, rows=ROWS) -> dict:
    """``repeats`` rounds; each round runs every (batch, configuration) job once, so drift hits all alike."""

    cores = os.cpu_count() or 1
    started = time.time()
    jobs = [(batch, *config) for batch in BATCHES for config in _configs(cores)]
    runs = {job: [] for job in jobs}
    for round_ in range(repeats):
        for job in jobs:
            batch, _, ranks, threads = job
            runs[job].append(_job(ranks, threads, batch, rows, epochs=2, timeout=1800))
        log(f"  round {round_ + 1}/{repeats} done")
    cells, scaling = [], []
    for batch in BATCHES:
        got = {name: _cell(name, ranks, threads, runs[(batch, name, ranks, threads)])
               for name, ranks, threads in _configs(cores)}
        for c in got.values():
            cells.append(c)
            log(f"  batch {batch:5d} {c['config']:24s} {c['samples_per_s']:9.0f} samples/s  {c['step_ms']:8.2f} "
                "ms/step" + ("" if c["ranks"] == 1 else f"  all-reduce {c['allreduce_ms_per_step']:.3f} ms/step "
                                                         f"({c['allreduce_alone_ms']:.3f} alone)"))
        two, whole, half = got["2 ranks"], got["1 rank, all cores"], got["1 rank, half the cores"]
        scaling.append({"batch": batch, "speedup_vs_1_rank_all_cores": two["samples_per_s"] / whole["samples_per_s"],
                        "efficiency_vs_2x_1_rank_half_cores": two["samples_per_s"] / (2 * half["samples_per_s"]),
                        "allreduce_share_of_step": two["allreduce_ms_per_step"] / two["step_ms"]})
    result = {"benchmark": "mlp_gpu bench dist", "repeats": repeats, "rows": rows, "net": [784, 300, 100, 10],
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": round(time.time() - started, 1),
              "load_average_after": os.getloadavg(), "machine": describe_machine(), "cells": cells,
              "scaling": scaling,
              "ratios": {f"batch {s['batch']}: 2 ranks / 1 rank, samples/s": s["speedup_vs_1_rank_all_cores"]
                         for s in scaling}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench-dist.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "bench-dist.md").write_text(markdown(result))
        result["files"] = [str(out / "bench-dist.json"), str(out / "bench-dist.md")]
        log("wrote " + ", ".join(result["files"]))
    return result


def markdown(r) -> str:
    m = r["machine"]
    lines = [f"# bench dist {r['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores (shared with other work while measured); numpy "
             f"{m['numpy']}; MPI: mpich through mpi4py; load average after the run "
             f"{', '.join(f'{v:.1f}' for v in r['load_average_after'])}. Net {'-'.join(map(str, r['net']))}, "
             f"{r['rows']:,} rows; median over {r['repeats']} rounds of one timed epoch (after a warm-up epoch) "
             "per job, the jobs of a round run one after another.", "",
             "| batch | run | BLAS threads | samples/s | ms/step | all-reduce ms/step | all-reduce alone ms |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for c in r["cells"]:
        ar = "" if c["allreduce_ms_per_step"] is None else f"{c['allreduce_ms_per_step']:.3f}"
        alone = "" if c["allreduce_alone_ms"] is None else f"{c['allreduce_alone_ms']:.3f}"
        lines.append(f"| {c['batch']:,} | {c['config']} | {c['blas_threads']} | {c['samples_per_s']:,.0f} | "
                     f"{c['step_ms']:.2f} | {ar} | {alone} |")
    lines += ["", "| batch | 2 ranks / 1 rank on all cores | efficiency: 2 ranks / (2 x 1 rank on half) | "
              "all-reduce share of a step |", "|---:|---:|---:|---:|"]
    for s in r["scaling"]:
        lines.append(f"| {s['batch']:,} | {s['speedup_vs_1_rank_all_cores']:.2f} | "
                     f"{s['efficiency_vs_2x_1_rank_half_cores']:.2f} | {s['allreduce_share_of_step']:.1%} |")
    return "\n".join(lines) + "\n"


def worker(batch, rows, epochs) -> dict:
    """One rank: train the reference net; rank 0 returns its timings."""
    comm = distributed.init()
    _, data = load_data()
    x, y = data["x"][:rows], data["y"][:rows]
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"], seed=0)
    epoch_s, allreduce_s = [], []

    class Timer(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.a0 = time.perf_counter(), comm.allreduce_seconds

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self.t0)
            allreduce_s.append(comm.allreduce_seconds - self.a0)

    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, seed=0, callbacks=[Timer()])
    grads = np.ones(model.count_params(), np.float32)
    alone = []
    for _ in range(30):
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce(grads)
        alone.append(time.perf_counter() - t0)
    return {"ranks": comm.size, "batch": batch, "rows": rows, "steps": math.ceil(rows / batch),
            "epoch_seconds": epoch_s, "allreduce_seconds": allreduce_s, "allreduce_alone_s": statistics.median(alone)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="one rank of `mlp-gpu bench --matrix dist`")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    result = worker(args.batch, args.rows, args.epochs)
    if result["ranks"] == 1 or __import__("mlp_gpu").distributed.is_chief():
        print(json.dumps(result), flush=True)
