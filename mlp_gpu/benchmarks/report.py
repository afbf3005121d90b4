"""Machine description, peak measurement, and the JSON / Markdown / PNG reports."""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from ..backend.numpy import threads as cpu_threads
from .. import __version__
from ..backend import available_backends, get_backend
from ..plots import _pyplot


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:
        return None


def describe_machine() -> dict:
    info = {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "mlp_gpu": __version__, "numpy": np.__version__,
            "torch": _version("torch"), "jax": _version("jax"), "h5py": _version("h5py"),
            "usable_cpus": cpu_threads.usable_cpus(), "cgroup_cpu_quota": cpu_threads.cgroup_cpu_limit(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "other_runnable_threads": cpu_threads.others_runnable(), "blas": cpu_threads.blas_pools().describe(),
            "blas_env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}}
    if available_backends()["cupy"] is None:
        info["gpu"] = get_backend("cupy").describe()
    return info


def _median_time(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_peaks(gpu: bool) -> dict:
    """Achievable float32 GEMM rate on this machine, measured now: the denominator of "% of peak"."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    peaks = {"cpu_sgemm_gflops": 2 * n ** 3 / _median_time(lambda: a @ a) / 1e9, "gpu_sgemm_gflops": None}
    if gpu:
        be = get_backend("cupy", graph=False)
        m = 8192
        g = be.xp.random.random((m, m), dtype=np.float32)
        out = be.empty((m, m))

        def gemm():
            be.matmul(g, g, out)
            be.synchronize()

        peaks["gpu_sgemm_gflops"] = 2 * m ** 3 / _median_time(gemm) / 1e9
    return peaks


def one_line(c) -> str:
    if "skipped" in c:
        return f"  {c['workload']:12s} {c['impl']:18s} skipped: {c['skipped']}"
    acc = f"  acc {c['test_accuracy']:.4f}" if "test_accuracy" in c else ""
    acc += f"  val acc {c['val_accuracy']:.4f}" if "val_accuracy" in c else ""
    return (f"  {c['workload']:12s} {c['impl']:18s} {c['median_s']:8.4f} s/epoch ({c['rows']} rows)  "
            f"{c['samples_per_s']:10.0f} samples/s  {c['gflops']:8.1f} GFLOP/s{acc}")


def _per_round(target) -> str:
    return "" if target.get("paired") is None else f", per round **{target['paired']:.2f}**"


def summary_lines(r) -> list[str]:
    """The ratios and issue 30's bars as console lines."""
    lines = [f"  {k}: {v:.3f}" for k, v in {**r["ratios"], **r.get("loaded_ratios", {})}.items()]
    for t in r.get("targets", []):
        value = "absent" if t["value"] is None else f"{t['value']:.2f}"
        if t.get("paired") is not None:
            value += f", per round {t['paired']:.2f}"
        met = "" if t["met"] is None else ("  met" if t["met"] else "  NOT met")
        lines.append(f"  target {t['what']}: {value} (bar {t['bound']}){met}")
    return lines


PEER_COLUMNS = (("numpy", "NumPy backend"), ("jax_cpu", "JAX (jitted lax.scan epoch)"), ("torch_cpu", "PyTorch eager"),
                ("handwritten_numpy", "hand-written NumPy"))


def cpu_table(r) -> str:
    """The README's CPU table: ms per batch-32 step of the reference net, quiet and beside one busy process
    per CPU, and the peers' times over ours (above 1: ours is faster)."""
    got = {(c["workload"], c["impl"]): c for c in r["cells"] if "median_s" in c}
    scenarios = [("reference", "quiet"), ("reference-loaded", f"loaded ({r.get('competitors')} busy processes)")]
    head = "| scenario | " + " | ".join(f"{name} ms/step" for _, name in PEER_COLUMNS) + \
        " | JAX / ours | PyTorch / ours |"
    lines = [head, "|" + "---|" * (len(PEER_COLUMNS) + 3)]
    for workload, label in scenarios:
        steps = {impl: 1e3 * got[(workload, impl)]["median_s"] / got[(workload, impl)]["steps_per_epoch"]
                 for impl, _ in PEER_COLUMNS if (workload, impl) in got}
        if not steps:
            continue
        cells = [_fmt(steps.get(impl), ".3f") for impl, _ in PEER_COLUMNS]
        ours = steps.get("numpy")
        over = [_fmt(ours and steps.get(peer) and steps[peer] / ours, ".2f") for peer in ("jax_cpu", "torch_cpu")]
        lines.append(f"| {label} | " + " | ".join(cells + over) + " |")
    loaded = {k.split(": ", 1)[1].split(" loaded")[0]: v for k, v in r.get("loaded_ratios", {}).items()
              if k.startswith("reference-loaded")}
    if loaded:
        lines.append("| loaded / quiet | " + " | ".join(_fmt(loaded.get(impl), ".2f") for impl, _ in PEER_COLUMNS)
                     + " | | |")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- bench-cpu table: begin -->", "<!-- bench-cpu table: end -->"


def with_cpu_table(readme: str, r) -> str:
    """``readme`` with the text between its CPU-table markers replaced by this run's table and its source."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {README_BEGIN} ... {README_END} block")
    m = r["machine"]
    block = (f"{README_BEGIN}\nFrom `mlp-gpu bench --matrix cpu` ({r['date']}, {m['cpu']}, {m['cores']} cores, "
             f"load average at the start {', '.join(f'{v:.2f}' for v in m.get('load_average') or ())}; "
             f"median of {r['repeats']} interleaved epochs):\n\n{cpu_table(r)}")
    return readme[:start] + block + readme[end:]


def _fmt(v, spec):
    return "" if v is None else format(v, spec)


def markdown(r) -> str:
    m = r["machine"]
    gpu = m.get("gpu", {}).get("device")
    lines = [f"# mlp_gpu bench: {r['matrix']} matrix", "",
             f"{r['date']}; data: {r['data']}; median of {r['repeats']} epochs after one warm-up epoch, "
             + ("every cell in its own process, all at once; " if r.get("schedule") == "parallel processes" else
                "interleaved (each round trains one epoch of every cell); ") +
             f"the whole run took {r['seconds']} s; peak host RSS {r['host_peak_rss_mb']:.0f} MB.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores" + (f" ({m['usable_cpus']} usable)" if m.get('usable_cpus')
                                                           else "") + (f"; GPU: {gpu}" if gpu else "") +
             f"; Python {m['python']}, NumPy {m['numpy']}, PyTorch {m['torch'] or 'absent'}, "
             f"JAX {m.get('jax') or 'absent'}; BLAS {', '.join(m.get('blas', [])) or 'unknown'}"
             + (f"; load average at the start {', '.join(f'{v:.2f}' for v in m['load_average'])}"
                if m.get("load_average") else "") + ".", "",
             f"Peak measured in this run: CPU SGEMM {r['peaks']['cpu_sgemm_gflops']:.1f} GFLOP/s" +
             (f", GPU SGEMM {r['peaks']['gpu_sgemm_gflops']:.1f} GFLOP/s" if r['peaks']['gpu_sgemm_gflops'] else ""),
             "", "| workload | implementation | rows | median s/epoch | min | max | samples/s | steps/s | "
             "GFLOP/s | % of peak | host MB | device MB | test acc | val acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        if "skipped" in c:
            lines.append(f"| {c['workload']} | {c['impl']} | {c['rows']} | skipped: {c['skipped']} |"
                         + " |" * 10)
            continue
        dev = c.get("device_bytes")
        lines.append(
            f"| {c['workload']} | {c['impl']} | {c['rows']} | {c['median_s']:.4f} | {c['min_s']:.4f} | "
            f"{c['max_s']:.4f} | {c['samples_per_s']:,.0f} | {c['steps_per_s']:,.0f} | {c['gflops']:.1f} | "
            f"{_fmt(c['fraction_of_peak'] and 100 * c['fraction_of_peak'], '.1f')} | "
            f"{_fmt(c['host_mb'], '.0f')} | {_fmt(dev and dev / 2 ** 20, '.1f')} | "
            f"{_fmt(c.get('test_accuracy'), '.4f')} | {_fmt(c.get('val_accuracy'), '.4f')} |")
    lines += ["", "Ratios of median epoch times (below 1: the first is faster):", ""]
    lines += [f"- {k}: **{v:.3f}**" for k, v in r["ratios"].items()]
    if r.get("loaded_ratios"):
        lines += ["", f"With {r['competitors']} busy competitor processes (one per CPU) running, in the same run: "
                  "time per step over the quiet cell's time per step:", ""]
        lines += [f"- {k}: **{v:.3f}**" for k, v in r["loaded_ratios"].items()]
    if r.get("targets"):
        lines += ["", "Issue 30's bars (the ratio of the median times per step; per round: the median of each round's "
                  "ratio, the two epochs trained one after the other; met when both meet the bar):", ""]
        lines += [f"- {t['what']}: **{_fmt(t['value'], '.2f') or 'absent'}**{_per_round(t)} (bar {t['bound']}: "
                  f"{'no value' if t['met'] is None else 'met' if t['met'] else 'not met'})" for t in r["targets"]]
        lines += ["", "The README's CPU table (`python benchmarks/readme_table.py` copies it there):", "",
                  cpu_table(r).rstrip()]
    if r.get("blas_threads"):
        b = r["blas_threads"]
        lines += ["", f"NumPy backend's BLAS threads: {b['note']} (rule: one thread per "
                  f"{b['rule']['work_per_thread']:,} multiply-adds, capped at {b['cpus']} usable CPUs)."]
    lines += ["", "Workloads: `reference` 784-300-100-10 batch 32; `batch-N` the same net at batch N; `wide` "
              "784-4096-4096-10 batch 32 (CPU implementations on fewer rows, as the rows column says); "
              "`rows-N` the reference on N rows; `reference-loaded` the reference on 16,000 rows (the hand-written "
              "loop and PyTorch on 2,000) while one busy process per CPU runs; `toolbox` the reference with "
              "BatchNormalization and Dropout 0.2 after each hidden layer and Nadam (val acc after warm-up + "
              "timed epochs). SGD 0.01 elsewhere; `jax_cpu` trains each epoch as one jitted `lax.scan` over the "
              "batches; GFLOP/s counts the forward, "
              "weight-gradient and input-gradient GEMMs from the layer shapes; host MB is the resident memory a "
              "cell added over its setup and first epoch; device MB is the CuPy pool in use or PyTorch's "
              "allocated bytes after training."]
    return "\n".join(lines) + "\n"


def plot_results(r, path) -> Path | None:
    try:
        plt = _pyplot()
    except ImportError:
        return None
    cells = [c for c in r["cells"] if "median_s" in c]
    impls = list(dict.fromkeys(c["impl"] for c in cells))
    workloads = list(dict.fromkeys(c["workload"] for c in cells))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        xs, ys = [], []
        for i, w in enumerate(workloads):
            got = [c for c in cells if c["workload"] == w and c["impl"] == impl]
            if got:
                xs.append(i + k * width)
                ys.append(got[0]["samples_per_s"])
        axes[0].bar(xs, ys, width, label=impl)
    axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(workloads))], workloads, rotation=30, ha="right")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("samples / s (higher is better)")
    axes[0].set_title("throughput by workload")
    axes[0].legend(fontsize=7)
    ref = [c for c in cells if tuple(c["sizes"]) == (784, 300, 100, 10)]
    for impl in impls:
        mine = [c for c in ref if c["impl"] == impl]
        full = max((c["rows"] for c in mine), default=0)  # the batch curve keeps the data size fixed
        pts = sorted((c["batch"], c["median_s"]) for c in mine if c["rows"] == full)
        if len(pts) > 1:
            axes[1].plot(*zip(*pts), "o-", label=impl)
        pts = sorted((c["rows"], c["median_s"]) for c in mine if c["batch"] == 32)
        if len(pts) > 1:
            axes[2].plot(*zip(*pts), "o-", label=impl)
    for ax, xlabel, title in ((axes[1], "batch size", "time vs batch size (all rows)"),
                              (axes[2], "training rows", "time vs data size (batch 32)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(f"mlp_gpu bench ({r['matrix']}): {r['machine']['cpu']}"
                 + (f" + {r['machine']['gpu']['device']}" if "gpu" in r["machine"] else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write(r, out: Path, plot=True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    gpu = r["machine"].get("gpu", {}).get("device")
    stem = f"bench-{r['matrix']}" + (f"-{gpu.replace(' ', '-')}" if gpu and r["matrix"] == "gpu" else "")
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(r, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(r))
    if plot:
        png = plot_results(r, out / f"{stem}.png")
        if png:
            paths.append(png)
    return paths
