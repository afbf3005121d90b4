"""`mlp-gpu bench --matrix rows`: resident against streamed training as the data outgrows memory.

Synthetic uint8 rows (784 features, 10 classes) are written once to .npy files in a scratch folder
(55 thousand, 1 million and 10 million rows: 43 MB, 784 MB, 7.8 GB; deleted afterwards) and opened as
memmaps. Every cell (rows × resident or streamed × backend) runs in a process of its own, so its peak
resident memory (VmHWM) is its own. A cell trains the reference net (784-300-100-10, batch 32,
SGD 0.01) for a fixed number of steps after a warm-up instead of whole epochs (an epoch of 10 million
rows is 312,500 steps, minutes on two cores): samples/s = timed steps × 32 / their seconds, read at
the progress refreshes (a host read a quarter second at most, so a GPU is not synchronized per step).
A streamed cell also makes one pass over all its parts without training, to show its memory stays
bounded while the whole file goes through. Resident cells run where the backend keeps the data
resident and it is under ``MLP_GPU_BENCH_RESIDENT_GB`` (default 2: this host is shared). Reports go to
``bench-rows.json/.md`` (NumPy) or ``bench-rows-cupy.json/.md``.

    mlp-gpu bench --matrix rows [--repeats 3]      # or:
    python -m mlp_gpu.benchmarks.rows [--rows 55000 1000000] [--backend numpy] [--rounds 3] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..callbacks.base import Callback
from .. import Dense, Input, SGD, Sequential, get_backend
from ..data.placement import StreamedData
from ..data.sources import ChunkedSource
from .report import describe_machine

ROW_COUNTS = (55_000, 1_000_000, 10_000_000)
FEATURES, CLASSES, BATCH = 784, 10, 32
STEPS = {"numpy": (100, 3000), "cupy": (2000, 60000)}  # (warm-up, timed) steps per run: past a part boundary


def write_rows(folder: Path, rows: int, block=65536) -> tuple[Path, Path]:
    """x-<rows>.npy (uint8, rows × 784) and y-<rows>.npy (uint8 labels), written a block at a time."""
    px, py = folder / f"x-{rows}.npy", folder / f"y-{rows}.npy"
    if px.exists() and py.exists():
        return px, py
    rng = np.random.default_rng(rows)
    x = np.lib.format.open_memmap(px, "w+", np.uint8, (rows, FEATURES))
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        x[start:stop] = rng.integers(0, 256, (stop - start, FEATURES), dtype=np.uint8)
    x.flush()
    del x
    np.save(py, rng.integers(0, CLASSES, rows, dtype=np.uint8))
    return px, py


class StepClock(Callback):
    """Times the steps between two progress refreshes (or epoch ends), the first after ``warmup`` steps and
    the first ``steps`` later, then stops training. ``on_progress`` reads the host at most 4 times a second."""

    wants_progress = True

    def __init__(self, backend, warmup, steps):
        self.backend, self.warmup, self.want = backend, warmup, steps
        self.epoch_base, self.start, self.steps, self.seconds = 0, None, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_base = epoch * self.params["steps"]

    def on_epoch_end(self, epoch, logs=None):  # epochs shorter than a progress refresh
        self.on_progress(self.params["steps"], logs)

    def on_progress(self, step, logs):
        done = self.epoch_base + step
        if self.steps is not None:
            return
        if self.start is None and done >= self.warmup:
            self.backend.synchronize()
            self.start = (done, time.perf_counter())
        elif self.start is not None and done >= self.start[0] + self.want:
            self.backend.synchronize()
            self.steps, self.seconds = done - self.start[0], time.perf_counter() - self.start[1]
            self.model.stop_training = True


def run_cell(folder, rows, mode, backend_name, warmup, steps) -> dict:
    """One cell, in this process: train from the memmaps; return timings and memory."""
    px, py = write_rows(Path(folder), rows)
    x, y = np.load(px, mmap_mode="r"), np.load(py, mmap_mode="r")
    be = get_backend(backend_name)
    model = Sequential([Input((FEATURES,)), Dense(300, "relu"), Dense(100, "relu"), Dense(CLASSES, "softmax")],
                       backend=be)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"], seed=0)
    source = ChunkedSource(x, y, resident=mode == "resident")
    clock = StepClock(be, warmup, steps)
    t0 = time.perf_counter()
    model.fit(source, batch_size=BATCH, epochs=1 << 30, verbose=0, seed=0, callbacks=[clock])
    cell = {"rows": rows, "mode": mode, "backend": be.name, "data_mb": x.nbytes / 1e6,
            "fit_seconds": time.perf_counter() - t0, "timed_steps": clock.steps, "timed_seconds": clock.seconds,
            "samples_per_s": clock.steps * BATCH / clock.seconds if clock.seconds else None}
    if mode == "streamed":  # every part through the stages once, no training: bounded memory over the file
        data = StreamedData(be, source.bind(model), source.default_chunk_rows(BATCH))
        t0 = time.perf_counter()
        parts = sum(1 for _ in data.parts())
        be.synchronize()
        cell.update(full_pass_parts=parts, full_pass_seconds=time.perf_counter() - t0,
                    chunk_rows=data.capacity)
    cell["peak_rss_mb"] = _peak_rss_mb()
    return cell


def _peak_rss_mb() -> float:
    """This process' peak resident memory (VmHWM; ru_maxrss would include the parent's, kept across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _resident_allowed(rows, backend_name, cap_gb=None) -> str | None:
    """None if a resident cell should run at this size, else why not."""

    nbytes = rows * (FEATURES + 4)
    cap = float(cap_gb if cap_gb is not None else os.environ.get("MLP_GPU_BENCH_RESIDENT_GB", "2")) * 1e9
    if not get_backend(backend_name).keeps_resident(nbytes, in_host_memory=False):
        return f"{nbytes / 1e9:.1f} GB does not fit the backend's resident share of free memory"
    if nbytes > cap:
        return f"{nbytes / 1e9:.1f} GB is over this bench's resident cap, {cap / 1e9:g} GB (MLP_GPU_BENCH_RESIDENT_GB)"
    return None


def run_rows(row_counts=ROW_COUNTS, backend="numpy", out=None, scratch=None, resident_cap_gb=None, rounds=2,
             log=print) -> dict:
    """Every cell in its own process, resident and streamed back to back in each of ``rounds`` rounds, in
    alternating order (a drift of this shared machine's speed falls on both); median samples/s, largest
    peak RSS, and the median over rounds of each round's streamed / resident ratio. Writes
    bench-rows[-<backend>].json/.md to ``out``; deletes the data."""

    folder = Path(tempfile.mkdtemp(prefix="mlp_gpu_rows_", dir=scratch))
    warmup, steps = STEPS.get(backend, STEPS["numpy"])
    cells, ratios = [], {}
    try:
        for rows in row_counts:
            need = rows * (FEATURES + 1) * 1.1
            if shutil.disk_usage(folder).free < need:
                cells.append({"rows": rows, "skipped": f"needs {need / 1e9:.1f} GB of free disk in {folder}"})
                continue
            write_rows(folder, rows)
            why = {"resident": _resident_allowed(rows, backend, resident_cap_gb), "streamed": None}
            runs = {mode: [] for mode in why if not why[mode]}
            for k in range(rounds):
                for mode in list(runs)[::1 if k % 2 == 0 else -1]:
                    runs[mode].append(_child(folder, rows, mode, backend, warmup, steps))
            if len(runs) == 2:
                ratios[str(rows)] = _paired_ratio(runs["resident"], runs["streamed"])
            for mode in why:
                cells.append({"rows": rows, "mode": mode, "skipped": why[mode]} if why[mode] else _merge(runs[mode]))
                log(one_line(cells[-1]))
            for p in folder.glob(f"*-{rows}.npy"):
                p.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {"benchmark": "mlp_gpu bench rows", "backend": backend, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "machine": describe_machine(), "warmup_steps": warmup, "timed_steps": steps, "rounds": rounds,
              "cells": cells, "ratios": {k: v["median"] for k, v in ratios.items()},
              "ratio_rounds": ratios}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        name = "bench-rows" if backend == "numpy" else f"bench-rows-{backend}"
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / f"{name}.md").write_text(markdown(result))
        log(f"wrote {out / f'{name}.md'}")
    return result


def _merge(runs) -> dict:
    """One cell from its rounds: the median run's numbers, every round's samples/s, the largest peak RSS."""
    done = [r for r in runs if r.get("samples_per_s")]
    if not done:
        return runs[-1]
    cell = dict(sorted(done, key=lambda r: r["samples_per_s"])[len(done) // 2])
    cell.update(rounds_samples_per_s=[r["samples_per_s"] for r in done],
                peak_rss_mb=max(r["peak_rss_mb"] for r in done))
    return cell


def _child(folder, rows, mode, backend, warmup, steps) -> dict:
    cmd = [sys.executable, "-m", "mlp_gpu.benchmarks.rows", "--cell", str(folder), str(rows), mode, backend,
           str(warmup), str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"rows": rows, "mode": mode, "failed": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _paired_ratio(resident, streamed) -> dict:
    """Streamed / resident samples/s of each round (the two ran back to back), and their median."""
    rounds = [s["samples_per_s"] / r["samples_per_s"] for r, s in zip(resident, streamed)
              if r.get("samples_per_s") and s.get("samples_per_s")]
    return {"median": statistics.median(rounds) if rounds else None, "rounds": rounds}


def one_line(c) -> str:
    head = f"  rows {c['rows']:>10,} {c.get('mode', ''):9s}"
    if "samples_per_s" not in c:
        return f"{head} {c.get('skipped') or 'failed: ' + c.get('failed', '?')}"
    return (f"{head} {c['samples_per_s']:10,.0f} samples/s over {c['timed_steps']} steps; "
            f"peak RSS {c['peak_rss_mb']:,.0f} MB (data {c['data_mb']:,.0f} MB)")


def markdown(r) -> str:
    m = r["machine"]
    lines = [f"# mlp_gpu bench: rows ({r['backend']})", "",
             f"{r['date']}; {m['cpu']}, {m['cores']} cores" + (f"; GPU {m['gpu']['device']}" if "gpu" in m else "")
             + f". Synthetic uint8 rows (784 features) in .npy memmaps; the reference net at batch 32; "
             f"{r['timed_steps']} steps timed after {r['warmup_steps']} warm-up steps per run (not whole "
             f"epochs), each run in its own process, resident and streamed back to back in each of {r['rounds']} "
             "rounds (order alternating); samples/s is the median round (every round's in brackets), peak RSS the "
             "largest.", "",
             "| rows | placement | samples/s | timed steps | peak RSS MB | data MB | full streamed pass |",
             "|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        if "samples_per_s" not in c:
            lines.append(f"| {c['rows']:,} | {c.get('mode', '')} | {c.get('skipped') or c.get('failed')} | | | | |")
            continue
        full = (f"{c['full_pass_parts']} parts of {c['chunk_rows']:,} rows in {c['full_pass_seconds']:.1f} s"
                if "full_pass_parts" in c else "")
        each = ", ".join(f"{v:,.0f}" for v in c.get("rounds_samples_per_s", []))
        lines.append(f"| {c['rows']:,} | {c['mode']} | {c['samples_per_s']:,.0f} ({each}) | {c['timed_steps']} | "
                     f"{c['peak_rss_mb']:,.0f} | {c['data_mb']:,.0f} | {full} |")
    lines += ["", "Streamed / resident samples/s (1 = as fast), the median of the rounds' ratios (each round's in "
              "brackets: a shared host's speed drifts, the two runs of a round see much the same load):", ""]
    lines += [f"- {int(k):,} rows: **{v['median']:.3f}** ({', '.join(f'{x:.2f}' for x in v['rounds'])})"
              for k, v in r["ratio_rounds"].items() if v["median"] is not None]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="resident vs streamed training by data size")
    ap.add_argument("--cell", nargs=6, metavar=("FOLDER", "ROWS", "MODE", "BACKEND", "WARMUP", "STEPS"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, nargs="+", default=list(ROW_COUNTS))
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--scratch", default=None, help="folder for the data files (default: the temp folder)")
    ap.add_argument("--rounds", type=int, default=3, help="resident/streamed pairs per row count")
    args = ap.parse_args(argv)
    if args.cell:
        folder, rows, mode, backend, warmup, steps = args.cell
        print(json.dumps(run_cell(folder, int(rows), mode, backend, int(warmup), int(steps))))
        return 0
    run_rows(args.rows, args.backend, args.out, args.scratch, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
