"""The GEMM routes of graph mode and the persistent route against PyTorch on the same card (issues 19 and 28).

For the reference net at batch 32, 256 and 1,024 and the wide net: µs per training step (median of timed
epochs, round-robin over every cell), nodes per step (planned, and counted in the captured graph where
cuda-bindings can read it; the persistent route: one launch per block of steps), the route each cell really
took and why; the 30-epoch time of the reference workload on every route, without and with per-epoch
validation; parity of each route's weights with the NumPy backend after one epoch; which of our routes
measured fastest on each workload (what `auto` should pick: it keeps "lt" until a run here shows otherwise).
Peers: PyTorch eager and PyTorch with the whole training step captured as one CUDA graph.

    PYTHONPATH=. python3 benchmarks/graph_routes.py [--out DIR] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlp_gpu.benchmarks import load_data  # noqa: E402
from mlp_gpu.benchmarks.runners import LR, MlpGpuSession, TorchSession  # noqa: E402
from mlp_gpu.benchmarks.workloads import REFERENCE, WIDE, Workload  # noqa: E402

ROUTES = {  # our cells: backend name and options
    "cupy_eager": ("cupy", {"graph": False}),
    "graph_kernel": ("cupy", {"graph": True, "gemm": "kernel"}),
    "graph_cublas": ("cupy", {"graph": True, "gemm": "cublas"}),
    "graph_lt": ("cupy", {"graph": True, "gemm": "lt"}),
    "graph_lt_x16": ("cupy", {"graph": True, "gemm": "lt", "steps_per_graph": 16}),
    "persistent": ("cupy", {"gemm": "persistent"}),  # an epoch a launch (kernels/persistent_step.cu)
}
PEERS = ("torch_eager", "torch_graph")
WORKLOADS = [Workload("reference-b32", REFERENCE, 32), Workload("reference-b256", REFERENCE, 256),
             Workload("reference-b1024", REFERENCE, 1024), Workload("wide-b32", WIDE, 32, rows=8000)]


@dataclass
class Setup:
    """What one run measures; the defaults are gpu-check's, the CPU test runs a tiny one."""
    routes: dict = field(default_factory=lambda: dict(ROUTES))
    peers: tuple = PEERS
    workloads: list = field(default_factory=lambda: list(WORKLOADS))
    epochs: int = 3          # timed epochs per cell, after one warm-up epoch
    long_epochs: int = 30    # the end-to-end run of the reference workload
    parity_rows: int = 3200
    validation: tuple = (False, True)  # the end-to-end run without, then with, per-epoch validation


class TorchGraphSession(TorchSession):
    """PyTorch with the whole step (gather, forward, loss, backward, SGD) captured as one CUDA graph, the
    batch indices copied into a static tensor before each replay; the shorter last batch runs eagerly."""

    def __init__(self, workload, data):
        super().__init__(workload, data, "cuda")
        torch, batch = self.torch, workload.batch
        self.idx = torch.zeros(batch, dtype=torch.int64, device=self.dev)
        self.total = torch.zeros((), device=self.dev)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as PyTorch's graph recipe asks
            for _ in range(3):
                self._eager(self.idx)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            loss = self.loss_fn(self.net(self.x[self.idx].float() / 255), self.y[self.idx])
            loss.backward()
            self.opt.step()
            self.total.add_(loss.detach() * batch)

    def _eager(self, idx):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.x[idx].float() / 255), self.y[idx])
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self) -> float:
        torch, n, batch = self.torch, self.x.shape[0], self.workload.batch
        self._sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=self.dev)
        self.total.zero_()
        full = n - n % batch
        for start in range(0, full, batch):
            self.idx.copy_(perm[start:start + batch])
            self.graph.replay()
        if full < n:
            self.total += self._eager(perm[full:]).detach() * (n - full)
        float(self.total)
        self._sync()
        return time.perf_counter() - t0


def make_session(impl, workload, data, routes):
    if impl == "torch_eager":
        return TorchSession(workload, data, "cuda")
    if impl == "torch_graph":
        return TorchGraphSession(workload, data)
    return MlpGpuSession(workload, data, *routes[impl])


def route_of(session) -> dict:
    backend = getattr(session, "backend", None)
    return dict(getattr(backend, "route", None) or {})


def time_workload(workload, data, setup, log) -> list[dict]:
    """Round-robin epochs over every cell of one workload; the first epoch of each is warm-up."""
    rows = {**data, "x": data["x"][:workload.rows], "y": data["y"][:workload.rows]}
    steps = -(-workload.rows // workload.batch)
    sessions, cells = {}, []
    for impl in list(setup.routes) + list(setup.peers):
        try:
            sessions[impl] = make_session(impl, workload, rows, setup.routes)
        except Exception as exc:  # Skip, or a route that cannot start: reported, the rest go on
            cells.append({"workload": workload.name, "impl": impl, "skipped": f"{type(exc).__name__}: {exc}"})
    times = {impl: [] for impl in sessions}
    for _ in range(setup.epochs + 1):
        for impl, session in list(sessions.items()):
            try:
                times[impl].append(session.epoch())
            except Exception as exc:  # a route failing on the device: reported, the rest go on
                del sessions[impl]
                cells.append({"workload": workload.name, "impl": impl, "skipped": f"{type(exc).__name__}: {exc}"})
                log(f"  {workload.name:16s} {impl:14s} FAILED {type(exc).__name__}: {exc}")
    for impl, session in sessions.items():
        median = statistics.median(times[impl][1:])
        cell = {"workload": workload.name, "impl": impl, "batch": workload.batch, "rows": workload.rows,
                "steps_per_epoch": steps, "median_epoch_s": median, "us_per_step": median / steps * 1e6,
                "route": route_of(session)}
        cells.append(cell)
        log(f"  {workload.name:16s} {impl:14s} {cell['us_per_step']:9.2f} µs/step  {cell['route']}")
    return cells


def reference_model(backend):
    from mlp_gpu import SGD, Dense, Input, Sequential

    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")], backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(LR), metrics=["accuracy"], seed=1)
    return model


def _validation_split(data):
    """The validation rows: the data's own split where it has one (gpu-check's full run uses it), else the test's."""
    return (data["x_val"], data["y_val"]) if "x_val" in data else (data["x_test"], data["y_test"])


def _peer_accuracy(session, data) -> float:
    """A PyTorch peer's validation accuracy, computed on the device and read once: its per-epoch validation."""
    torch = session.torch
    xv, yv = _validation_split(data)
    with torch.no_grad():
        x = torch.from_numpy(np.array(xv)).to(session.dev).float() / 255
        y = torch.from_numpy(yv.astype(np.int64)).to(session.dev)
        return float((session.net(x).argmax(dim=1) == y).float().mean())


def thirty_epochs(data, impl, setup, log, validation=False) -> dict:
    """The reference workload trained from scratch for `long_epochs` epochs in one fit, with or without
    validation after every epoch (_validation_split)."""
    from mlp_gpu import get_backend

    epochs = setup.long_epochs
    if impl in setup.routes:
        name, options = setup.routes[impl]
        backend = get_backend(name, **options)
        model = reference_model(backend)
        backend.synchronize()
        t0 = time.perf_counter()
        model.fit(data["x"], data["y"], batch_size=32, epochs=epochs, verbose=0, seed=2,
                  validation_data=_validation_split(data) if validation else None)
        backend.synchronize()
        seconds = time.perf_counter() - t0
        out = {"test_accuracy": model.evaluate(data["x_test"], data["y_test"])[1],
               "route": getattr(backend, "route", None)}
    else:
        session = make_session(impl, Workload("reference-b32", REFERENCE, 32), data, setup.routes)
        t0 = time.perf_counter()
        for _ in range(epochs):
            session.epoch()
            if validation:
                _peer_accuracy(session, data)
        seconds = time.perf_counter() - t0
        out = session.result()
    log(f"  {epochs} epochs {impl:14s} {'with' if validation else 'without'} validation {seconds:8.2f} s  "
        f"test accuracy {out.get('test_accuracy')}")
    return {"impl": impl, "epochs": epochs, "validation": validation, "seconds": seconds, **out}


def fastest_routes(cells, routes) -> dict:
    """Per workload, which of our routes measured fastest (µs per step) and by how much over "graph_lt"."""
    out = {}
    for cell in cells:
        if cell["impl"] not in routes or "us_per_step" not in cell:
            continue
        best = out.get(cell["workload"])
        if best is None or cell["us_per_step"] < best["us_per_step"]:
            out[cell["workload"]] = {"impl": cell["impl"], "us_per_step": cell["us_per_step"],
                                     "route": cell["route"].get("route")}
    for workload, best in out.items():
        lt = next((c for c in cells if c["workload"] == workload and c["impl"] == "graph_lt" and "us_per_step" in c),
                  None)
        best["lt_over_fastest"] = lt["us_per_step"] / best["us_per_step"] if lt else None
    return out


AUTO_NOTE = ('`auto` keeps the lt route (cupy_backend.CupyBackend): the persistent route becomes its choice only '
             'for the workloads where a run of this benchmark on the card measured it fastest.')


def parity(data, impl, setup) -> dict:
    """Weights after one epoch on `parity_rows` rows, this route against the NumPy backend, same seeds."""
    from mlp_gpu import get_backend

    weights, losses, rows = [], [], setup.parity_rows
    name, options = setup.routes[impl]
    for backend in (get_backend("numpy"), get_backend(name, **options)):
        model = reference_model(backend)
        history = model.fit(data["x"][:rows], data["y"][:rows], batch_size=32, epochs=1, seed=2, verbose=0)
        weights.append(model.get_weights())
        losses.append(history.history["loss"][0])
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights))
    scale = max(float(np.max(np.abs(a))) for a in weights[0])
    return {"impl": impl, "rows": rows, "max_abs_weight_diff": diff, "max_abs_weight": scale,
            "loss_numpy": losses[0], "loss_route": losses[1], "ok": diff <= 1e-3 * scale,
            "route": getattr(backend, "route", None)}


def run(out: Path, setup: Setup | None = None, data=None, log=print) -> dict:
    """Measure everything `setup` names (gpu-check's defaults), write graph-routes.json/.md into out."""
    setup = setup or Setup()
    source, data = ("given", data) if data is not None else load_data()
    result = {"benchmark": "graph_routes", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "data": source}
    log("graph routes: µs per step, round-robin epochs")
    result["cells"] = [c for w in setup.workloads for c in time_workload(w, data, setup, log)]
    log("graph routes: parity with the NumPy backend")
    result["parity"] = []
    for impl in setup.routes:
        try:
            p = parity(data, impl, setup)
            log(f"  {p['impl']:14s} max |Δw| {p['max_abs_weight_diff']:.2e} ({'ok' if p['ok'] else 'DIFFERS'})")
        except Exception as exc:
            p = {"impl": impl, "error": f"{type(exc).__name__}: {exc}", "ok": False}
            log(f"  {impl:14s} FAILED {p['error']}")
        result["parity"].append(p)
    result["fastest"] = fastest_routes(result["cells"], setup.routes)
    result["auto_note"] = AUTO_NOTE
    log(f"graph routes: {setup.long_epochs}-epoch runs of the reference workload")
    result["thirty_epochs"] = []
    for validation in setup.validation:
        for impl in list(setup.routes) + list(setup.peers):
            try:
                result["thirty_epochs"].append(thirty_epochs(data, impl, setup, log, validation))
            except Exception as exc:  # Skip (no torch CUDA) or a failure: reported, the rest go on
                result["thirty_epochs"].append({"impl": impl, "validation": validation,
                                                "skipped": f"{type(exc).__name__}: {exc}"})
    (out / "graph-routes.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "graph-routes.md").write_text(markdown(result))
    log("wrote", out / "graph-routes.md")
    return result


def markdown(r) -> str:
    lines = [f"# Graph routes {r['date']}", "", f"Data: {r['data']}.", "",
             "| workload | impl | µs/step | vs torch eager | vs torch graph | route taken | nodes/step (plan) | "
             "graph nodes/step |", "|---|---|---:|---:|---:|---|---:|---:|"]
    by = {(c["workload"], c["impl"]): c for c in r["cells"]}
    for c in r["cells"]:
        if "skipped" in c:
            lines.append(f"| {c['workload']} | {c['impl']} | skipped: {c['skipped']} | | | | | |")
            continue
        ratio = [f"{by[(c['workload'], p)]['us_per_step'] / c['us_per_step']:.2f}×"
                 if "us_per_step" in by.get((c["workload"], p), {}) else "" for p in ("torch_eager", "torch_graph")]
        route = c["route"]
        lines.append(f"| {c['workload']} | {c['impl']} | {c['us_per_step']:.2f} | {ratio[0]} | {ratio[1]} | "
                     f"{route.get('route', '')} | {route.get('nodes_per_step', '')} | "
                     f"{route.get('graph_nodes_per_step', '')} |")
    lines += ["", "Ratios are peer µs/step over this cell's (above 1: this cell is faster).", "",
              "| fastest of our routes | impl | µs/step | route taken | graph_lt / fastest |",
              "|---|---|---:|---|---:|"]
    for workload, best in r.get("fastest", {}).items():
        ratio = f"{best['lt_over_fastest']:.2f}×" if best.get("lt_over_fastest") else ""
        lines.append(f"| {workload} | {best['impl']} | {best['us_per_step']:.2f} | {best['route']} | {ratio} |")
    lines += ["", r.get("auto_note", ""), "",
              "| end to end, reference b32 | validation | epochs | seconds | test accuracy |",
              "|---|---|---:|---:|---:|"]
    lines += [f"| {t['impl']} | {t.get('validation', False)} | {t['epochs']} | {t['seconds']:.2f} | "
              f"{t.get('test_accuracy', '')} |" if "seconds" in t
              else f"| {t['impl']} | {t.get('validation', False)} | skipped: {t['skipped']} | | |"
              for t in r["thirty_epochs"]]
    lines += ["", "| parity after one epoch | rows | max abs weight diff | loss numpy | loss route | ok |",
              "|---|---:|---:|---:|---:|---|"]
    for p in r["parity"]:
        lines.append(f"| {p['impl']} | failed: {p['error']} | | | | |" if "error" in p else
                     f"| {p['impl']} | {p['rows']} | {p['max_abs_weight_diff']:.2e} | {p['loss_numpy']:.5f} | "
                     f"{p['loss_route']:.5f} | {p['ok']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quick", action="store_true", help="one timed epoch and 3-epoch runs (a quick look)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = Setup(epochs=1, long_epochs=3) if args.quick else Setup()
    result = run(out, setup, log=lambda *a: print(*a, flush=True))
    return 0 if all(p["ok"] for p in result["parity"]) else 1


if __name__ == "__main__":
    sys.exit(main())
