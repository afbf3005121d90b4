"""The benchmark suite behind `mlp-gpu bench` and `make bench`: workloads × implementations, timed
in one run on one machine, reported as medians, ratios and fractions of a peak measured alongside.
Epochs are interleaved: round after round, every cell trains one epoch in turn, so a drift in the
machine's speed (shared hosts drift) falls on every cell alike.

    from mlp_gpu.benchmarks import run_suite
    result = run_suite("cpu", repeats=5, out="benchmarks/results")
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path


from .._checks import check_int
from ..backend.numpy import threads as cpu_threads
from . import report
from .load import busy_competitors
from .runners import RUNNERS, Skip
from .workloads import MATRICES, Matrix, Workload, on_gpu
from ..backend import available_backends
from .dist import run_dist
from .rows import run_rows
from .workloads import load_data  # noqa: F401 -- the suite's data, for the GPU scripts




def _subset(data, rows):
    return {**data, "x": data["x"][:rows], "y": data["y"][:rows]}


def _base(workload, impl):
    rows = workload.rows_for(impl)
    return {"workload": workload.name, "impl": impl, "sizes": list(workload.sizes), "batch": workload.batch,
            "rows": rows, "steps_per_epoch": math.ceil(rows / workload.batch), "net": workload.net,
            "loaded": workload.loaded}


def _summarize(base, workload, times, extra, peaks, host_mb):
    times = times[1:]  # the first epoch is warm-up: compiles kernels, captures graphs, fills caches
    median = statistics.median(times)
    gflops = workload.flops_per_sample() * base["rows"] / median / 1e9
    peak = peaks["gpu_sgemm_gflops"] if on_gpu(base["impl"]) else peaks["cpu_sgemm_gflops"]
    return {**base, **extra, "epochs_timed": len(times), "times_s": times, "median_s": median, "min_s": min(times),
            "max_s": max(times), "samples_per_s": base["rows"] / median,
            "steps_per_s": base["steps_per_epoch"] / median, "gflops": gflops,
            "fraction_of_peak": gflops / peak if peak else None, "host_mb": host_mb}


@dataclass
class _Live:
    """A cell whose session is set up and taking part in the rounds."""
    index: int
    workload: Workload
    base: dict
    session: object
    rss_before: float
    times: list = field(default_factory=list)
    host_mb: float | None = None


def _run_cells(spec, data, repeats, peaks, log):
    """Set every cell up, then round-robin: each round trains one epoch of every cell in turn."""
    cells, live = [], []
    for workload in spec.workloads:
        for impl in workload.impls:
            base = _base(workload, impl)
            rss_before = report.rss_mb()
            try:
                session = RUNNERS[impl](workload, _subset(data, base["rows"]))
            except Skip as exc:
                cells.append({**base, "skipped": str(exc)})
                log(report.one_line(cells[-1]))
                continue
            live.append(_Live(len(cells), workload, base, session, rss_before))
            cells.append(None)
    for round_ in range(repeats + 1):
        for cell in live:
            cell.times.append(cell.session.epoch())
            if round_ == 0 and cell.rss_before is not None:  # host memory held: growth over setup + first epoch
                cell.host_mb = report.rss_mb() - cell.rss_before
        log(f"  round {round_ + 1}/{repeats + 1}{' (warm-up)' if round_ == 0 else ''} done")
    for cell in live:
        cells[cell.index] = _summarize(cell.base, cell.workload, cell.times, cell.session.result(), peaks,
                                       cell.host_mb)
        log(report.one_line(cells[cell.index]))
    return cells


RATIOS = [("numpy", "handwritten_numpy"), ("numpy", "torch_cpu"), ("numpy", "keras_cpu"), ("numpy", "jax_cpu"),
          ("cupy_graph", "torch_cuda"), ("cupy_eager", "torch_cuda"), ("cupy_graph", "cupy_eager"),
          ("cupy_graph", "numpy")]


def ratios(cells):
    """Median-time ratios a/b within each workload (below 1: a is faster)."""
    out = {}
    for w in dict.fromkeys(c["workload"] for c in cells):
        got = {c["impl"]: c for c in cells if c["workload"] == w and "median_s" in c}
        for a, b in RATIOS:
            if a in got and b in got and got[a]["rows"] == got[b]["rows"]:
                out[f"{w}: {a} / {b}"] = got[a]["median_s"] / got[b]["median_s"]
    return out


def _step_s(cell) -> float:
    return cell["median_s"] / cell["steps_per_epoch"]


def loaded_ratios(cells):
    """Each implementation's time per step with busy competitors over its time per step on the quiet machine,
    the same net and batch (the quiet cell with the most rows: the loaded ones may train fewer)."""
    out = {}
    timed = [c for c in cells if "median_s" in c]
    for cell in (c for c in timed if c.get("loaded")):
        quiet = [q for q in timed if not q.get("loaded") and q["impl"] == cell["impl"] and q["sizes"] == cell["sizes"]
                 and q["batch"] == cell["batch"] and q.get("net") == cell.get("net")]
        if quiet:
            base = max(quiet, key=lambda q: q["rows"])
            out[f"{cell['workload']}: {cell['impl']} loaded / {base['workload']} quiet (per step)"] = \
                _step_s(cell) / _step_s(base)
    return out


# Issue 30's bars: (what, cell a, cell b, how a / b must compare, the bound)
TARGETS = [("ours loaded / quiet (per step)", ("reference-loaded", "numpy"), ("reference", "numpy"), "<=", 3.0),
           ("JAX scanned epoch / ours, quiet", ("reference", "jax_cpu"), ("reference", "numpy"), ">=", 1.2),
           ("PyTorch eager / ours, quiet", ("reference", "torch_cpu"), ("reference", "numpy"), ">=", 2.0)]


def paired_ratio(a, b):
    """The median over rounds of a's time per step over b's in the same round (the epochs a round trains
    follow each other, so a machine whose speed drifts moves both alike); None without the times, or for
    cells of different workloads (not trained in the same rounds)."""
    ta, tb = a.get("times_s"), b.get("times_s")
    if a["workload"] != b["workload"] or not ta or not tb or len(ta) != len(tb):
        return None
    return statistics.median((x / a["steps_per_epoch"]) / (y / b["steps_per_epoch"]) for x, y in zip(ta, tb))


def _meets(value, sense, bound) -> bool:
    return value <= bound if sense == "<=" else value >= bound


def targets(cells):
    """Issue 30's bars with this run's values: [{"what", "value", "paired", "bound", "met"}]: the ratio of the
    median times per step and the median of the per-round ratios (``paired_ratio``, None without the rounds'
    times); met when both meet the bar. None where a cell is absent."""
    got = {(c["workload"], c["impl"]): c for c in cells if "median_s" in c}
    out = []
    for what, a, b, sense, bound in TARGETS:
        value = _step_s(got[a]) / _step_s(got[b]) if a in got and b in got else None
        paired = paired_ratio(got[a], got[b]) if value is not None else None
        met = None if value is None else all(_meets(v, sense, bound) for v in (value, paired) if v is not None)
        out.append({"what": what, "value": value, "paired": paired, "bound": f"{sense} {bound}", "met": met})
    return out


def _one_cell(args):
    """A child process's share of a parallel run: one (workload, impl) cell, its own data and peaks."""
    workload, impl, repeats, peaks = args
    from dataclasses import replace

    _, data = load_data()
    return _run_cells(Matrix("one", [replace(workload, impls=(impl,))]), data, repeats, peaks, lambda *_: None)[0]


def _run_parallel(spec, repeats, peaks, log):
    """Every cell in its own process at once: on a crowded shared host each then gets its own share of
    the CPU, and they still run side by side under the same conditions."""
    import multiprocessing

    jobs = [(w, impl, repeats, peaks) for w in spec.workloads for impl in w.impls]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        cells = pool.map(_one_cell, jobs)
    for cell in cells:
        log(report.one_line(cell))
    return cells


def run_suite(matrix="auto", repeats=5, out=None, plot=True, log=print, parallel=False) -> dict:
    """Run a matrix ("cpu", "gpu", "smoke", "toolbox", "dist", "rows" or "auto": gpu where CuPy has a device); write
    results to ``out``. ``parallel``: each cell in its own process, all at once, instead of interleaved epochs."""

    if matrix == "auto":
        matrix = "gpu" if available_backends()["cupy"] is None else "cpu"
    if matrix == "dist":  # several processes: its own runner

        return run_dist(repeats, out, log)
    if matrix == "rows":  # a process per cell, data on disk: its own runner; repeats = rounds

        return run_rows(rounds=check_int(repeats, "repeats", 1), out=out, log=log)
    if matrix not in MATRICES:
        raise ValueError(f"matrix: expected one of {sorted(MATRICES)} or 'auto', got {matrix!r}")
    check_int(repeats, "repeats", 1)
    spec = MATRICES[matrix]()
    source, data = load_data()
    started = time.time()
    machine = report.describe_machine()  # before any cell: the load average of the machine as found
    blas = None
    if matrix == "cpu":  # the NumPy backend's thread rule for this machine, measured and cached before its cells
        blas = cpu_threads.calibrate()
        log(f"bench {matrix}: BLAS threads: {blas['note']}")
        blas["rule"] = vars(blas["rule"])
    peaks = report.measure_peaks(gpu=matrix == "gpu")
    log(f"bench {matrix}: data {source}; peaks {peaks}")
    quiet = Matrix(spec.name, [w for w in spec.workloads if not w.loaded])
    loaded = Matrix(spec.name, [w for w in spec.workloads if w.loaded])
    run = _run_parallel if parallel else lambda m, *args: _run_cells(m, data, *args)
    cells = run(quiet, repeats, peaks, log) if quiet.workloads else []
    competitors = None
    if loaded.workloads:  # in the same run, after the quiet cells: each system's epochs beside busy processes
        with busy_competitors() as pids:
            competitors = len(pids)
            log(f"bench {matrix}: {competitors} busy competitor processes running")
            cells += run(loaded, repeats, peaks, log)
    result = {"benchmark": "mlp_gpu bench", "matrix": matrix, "repeats": repeats, "data": source,
              "schedule": "parallel processes" if parallel else "interleaved epochs",
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": round(time.time() - started, 1),
              "machine": machine, "peaks": peaks, "blas_threads": blas, "competitors": competitors,
              "cells": cells, "ratios": ratios(cells), "loaded_ratios": loaded_ratios(cells),
              "targets": targets(cells) if matrix == "cpu" else [], "host_peak_rss_mb": report.peak_rss_mb()}
    for line in report.summary_lines(result):
        log(line)
    if out is not None:
        paths = report.write(result, Path(out), plot=plot)
        result["files"] = [str(p) for p in paths]
        log("wrote " + ", ".join(result["files"]))
    return result
