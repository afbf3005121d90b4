"""Per-kernel development loop, in the manner of llm.c's dev/cuda: each kernel against its NumPy
reference (validation), then timed on the GPU as GB/s or GFLOP/s and % of the card's peak, so a GPU
run says which kernel is slow, not only which epoch.

    PYTHONPATH=. python3 benchmarks/kernels/bench.py [--out DIR] [--validate-only]

Every case runs at the reference workload's shapes (batch 32: launch-bound) and at batch 4096
(bandwidth-bound). Without a GPU, ``--validate-only`` runs every case through the host harness
(tests/harness: the kernels compiled by g++ and run on the CPU) at small sizes, and times nothing.
To try a kernel variant: add its entry point to kernels/, a case here that launches it, compare.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mlp_gpu.optimizers import schedules  # noqa: E402
from mlp_gpu.optimizers.adadelta import adadelta_rule  # noqa: E402
from mlp_gpu.optimizers.adam import amsgrad_rule  # noqa: E402
from mlp_gpu.optimizers.adamax import adamax_rule  # noqa: E402
from mlp_gpu.optimizers.ftrl import ftrl_rule  # noqa: E402
from mlp_gpu.optimizers.lion import lion_rule  # noqa: E402
from mlp_gpu.backend import NumpyBackend, available_backends, get_backend  # noqa: E402
from mlp_gpu.backend.numpy.layer_ops import philox4x32  # noqa: E402
from mlp_gpu.backend.shared_constants import ACC_SIZE, HYPER, HYPER_SIZE  # noqa: E402

PARAMS = 266_610  # the reference net's parameter count
F32 = 4


@dataclass(frozen=True)
class Case:
    """One op at one size: make(rng) gives its arguments; cost is (bytes moved, flops); the arguments
    at positions ``scratch`` hold nothing defined afterwards (an optimizer's gradients); ``reference``
    fills the outputs on the host where the NumPy backend has no such op."""
    name: str
    op: str
    make: object
    bytes: int
    flops: int = 0
    kwargs: tuple = ()
    scratch: tuple = ()
    reference: object = None


def _hyper(**more):
    h = np.zeros(HYPER_SIZE, np.float32)
    for key, value in {**dict(lr=0.01, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7, iterations=4, rho=0.9,
                              u_product=0.3), **more}.items():
        h[HYPER[key]] = value
    return h


def _flat(size, slots):
    """An optimizer's arguments: params, grads, ``slots`` state buffers, hyper."""
    return lambda r: [r.normal(size=size).astype(np.float32) for _ in range(2)] + \
        [np.abs(r.normal(size=size)).astype(np.float32) * 0.1 for _ in range(slots)] + [_hyper()]


def cases(n: int, small: bool = False) -> list[Case]:
    """Every kernel at batch n; ``small`` shrinks the flat buffers and the GEMM for the host harness."""
    size, wide, inp = (1000, 37, 50) if small else (PARAMS, 300, 784)
    f = np.float32

    def act(k, scale=4):
        return lambda r: [(r.normal(size=(n, k)) * scale).astype(f), r.normal(size=k).astype(f)]

    def back(k):
        return lambda r: [r.normal(size=(n, k)).astype(f), r.random((n, k), dtype=f)]

    def gemm(m, k, cols, **t):
        a_shape = (k, m) if t.get("trans_a") else (m, k)
        b_shape = (cols, k) if t.get("trans_b") else (k, cols)
        return lambda r: [r.normal(size=a_shape).astype(f), r.normal(size=b_shape).astype(f), np.zeros((m, cols), f)]

    def loss(kind, k):
        def make(r):
            target = {"softmax_xent_sparse": lambda: r.integers(0, k, n).astype(np.int32),
                      "softmax_xent": lambda: r.dirichlet(np.ones(k), n).astype(f),
                      "sigmoid_bce": lambda: r.integers(0, 2, (n, k)).astype(f),
                      "mse": lambda: r.normal(size=(n, k)).astype(f)}[kind]()
            return [(r.normal(size=(n, k)) * 3).astype(f), target, np.zeros((n, k), f), np.zeros(ACC_SIZE)]
        target_floats = n if kind == "softmax_xent_sparse" else n * k
        return Case(f"loss_grad {kind} ({n}x{k})", "loss_grad", make, (2 * n * k + target_floats) * F32,
                    kwargs=(("kind", kind), ("count", True)))

    def gather(dtype, cols):
        def make(r):
            total = 2 * n + 7
            src = r.integers(0, 256, (total, cols) if cols else total).astype(dtype)
            return [src, r.permutation(total).astype(np.int64), np.array([3], np.int64),
                    np.zeros((n, cols) if cols else n, np.int32 if dtype == np.int32 else f)]
        item = np.dtype(dtype).itemsize
        return Case(f"gather_rows {np.dtype(dtype).name} ({n}x{cols or 1})", "gather_rows", make,
                    n * max(cols, 1) * (item + F32) + 8 * n)

    return [
        Case(f"bias_act relu ({n}x{wide})", "bias_act", act(wide), 2 * n * wide * F32, kwargs=(("act", "relu"),)),
        Case(f"bias_act sigmoid ({n}x{wide})", "bias_act", act(wide), 2 * n * wide * F32,
             kwargs=(("act", "sigmoid"),)),
        Case(f"bias_act softmax ({n}x10)", "bias_act", act(10), 2 * n * 10 * F32, kwargs=(("act", "softmax"),)),
        Case(f"act_backward relu ({n}x{wide})", "act_backward", back(wide), 3 * n * wide * F32,
             kwargs=(("act", "relu"),)),
        Case(f"act_backward softmax ({n}x10)", "act_backward", back(10), 3 * n * 10 * F32,
             kwargs=(("act", "softmax"),)),
        Case(f"bias_grad ({n}x{wide})", "bias_grad", lambda r: [r.normal(size=(n, wide)).astype(f), np.zeros(wide, f)],
             n * wide * F32),
        loss("softmax_xent_sparse", 10), loss("softmax_xent", 10), loss("sigmoid_bce", 1), loss("mse", 10),
        Case(f"metric_sum abs_error softmax ({n}x10)", "metric_sum",
             lambda r: [(r.normal(size=(n, 10)) * 3).astype(f), r.random((n, 10), dtype=f), np.zeros(ACC_SIZE + 1)],
             2 * n * 10 * F32, kwargs=(("kind", "abs_error"), ("slot", ACC_SIZE), ("activation", "softmax"))),
        gather(np.uint8, inp), gather(np.float32, inp), gather(np.int32, 0),
        Case("advance", "advance", lambda r: [np.zeros(1, np.int64), n, _hyper(), np.zeros(ACC_SIZE)], 32),
        Case(f"sgd_update ({size})", "sgd_update", lambda r: _flat(size, 0)(r)[:2] + [None, _hyper()], 3 * size * F32,
             scratch=(1,)),
        Case(f"sgd momentum ({size})", "sgd_update", lambda r: _flat(size, 1)(r)[:3] + [_hyper()], 5 * size * F32,
             scratch=(1,)),
        Case(f"adam_update ({size})", "adam_update", _flat(size, 2), 7 * size * F32, scratch=(1,)),
        Case(f"sgemm_strided NN ({n}x{inp} @ {inp}x{wide})", "matmul", gemm(n, inp, wide),
             (n * inp + inp * wide + n * wide) * F32, 2 * n * inp * wide),
        Case(f"sgemm_strided TN ({inp}x{n} @ {n}x{wide})", "matmul", gemm(inp, n, wide, trans_a=True),
             (n * inp + n * wide + inp * wide) * F32, 2 * n * inp * wide, (("trans_a", True),)),
        Case(f"sgemm_strided NT ({n}x{wide} @ {wide}x{inp})", "matmul", gemm(n, wide, inp, trans_b=True),
             (n * wide + inp * wide + n * inp) * F32, 2 * n * inp * wide, (("trans_b", True),)),
    ] + toolbox_cases(n, small)


def _philox_reference(args):
    ctr, out, key = args
    out[...] = np.stack(philox4x32(ctr.reshape(-1, 4).T, key), axis=1).reshape(-1)


def toolbox_cases(n: int, small: bool = False) -> list[Case]:
    """The toolbox's kernels (dropout, normalization, regularization, clipping, schedules, the optimizers
    beyond SGD and Adam) at batch n, as ``cases``."""
    size, k = (1000, 37) if small else (PARAMS, 300)
    f = np.float32

    def m(*shapes, positive=()):
        """Arrays of these shapes: normal (x 3 + 1), or in (0.5, 1.5) at the positions in ``positive``."""
        return lambda r: [(r.random(s, dtype=f) + 0.5) if i in positive else (r.normal(size=s) * 3 + 1).astype(f)
                          for i, s in enumerate(shapes)]

    def bn_train(r):
        return m((n, k), (n, k), (k,), (k,), (k,), (k,), (k,), (k,), positive=(5,))(r) + [0.99, 1e-3]

    def bn_infer(r):
        return m((n, k), (n, k), (k,), (k,), (k,), (k,), positive=(5,))(r) + [1e-3]

    def dropout(r):
        return m((n, k), (n, k), (n, k))(r) + [np.array([2**33 + 5], np.int64), 0x1234_5678_9abc_def0, 0.2]

    def mask(r):
        dy, dx = m((n, k), (n, k))(r)
        return [dy, np.where(r.random((n, k)) < 0.2, 0, 1.25).astype(f), dx]

    def clip_norm(cuts):
        return lambda r: [r.normal(size=size).astype(f), np.array(cuts, np.int64), 1.0]

    def centered(r):  # the running average within the mean square (avg^2 <= vel), as a real run keeps it
        w, g, vel, mom, _, hyper = _flat(size, 3)(r)
        return [w, g, vel, mom, np.sqrt(vel) * r.uniform(-0.5, 0.5, size).astype(f), hyper]

    table = schedules.CosineDecay(0.1, 20, alpha=0.1, warmup_target=0.2, warmup_steps=5).encode()
    slot = size * F32

    def own(kernel, rule, slots, **hyper):
        """An optimizer file's own kernel through optimizer_update, with ``slots`` state buffers."""
        def make(r):
            *rest, _ = _flat(size, slots)(r)
            return _own_rule(kernel, rule, rest + [_hyper(**hyper)])
        return Case(f"{kernel} ({size})", "optimizer_update", make, (3 + 2 * slots) * slot)
    return [
        Case(f"dropout rate 0.2 ({n}x{k})", "dropout", dropout, 3 * n * k * F32),
        Case(f"dropout_backward ({n}x{k})", "dropout_backward", mask, 3 * n * k * F32),
        Case(f"philox_blocks ({n})", "philox_blocks",
             lambda r: [r.integers(0, 2**32, 4 * n, dtype=np.uint32), np.zeros(4 * n, np.uint32), (7, 2**32 - 3)],
             32 * n, reference=_philox_reference),
        Case(f"batchnorm_train ({n}x{k})", "batchnorm_train", bn_train, 3 * n * k * F32),
        Case(f"batchnorm_backward ({n}x{k})", "batchnorm_backward",
             m((n, k), (n, k), (k,), (k,), (k,), (k,), (k,), (n, k), positive=(4,)), 5 * n * k * F32),
        Case(f"batchnorm_infer ({n}x{k})", "batchnorm_infer", bn_infer, 2 * n * k * F32),
        Case(f"normalize ({n}x{k})", "normalize", m((n, k), (n, k), (k,), (k,), positive=(3,)), 2 * n * k * F32),
        Case(f"normalize invert ({n}x{k})", "normalize", m((n, k), (n, k), (k,), (k,), positive=(3,)),
             2 * n * k * F32, kwargs=(("invert", True),)),
        Case(f"regularize ({size})", "regularize",
             lambda r: m((size,), (size,))(r) + [0.01, 0.02, np.zeros(ACC_SIZE), n], 3 * slot),
        Case(f"clip_by_value ({size})", "clip_by_value", lambda r: [r.normal(size=size).astype(f), 0.5], 2 * slot),
        Case(f"clip_by_norm 3 segments ({size})", "clip_by_norm", clip_norm([0, size // 3, size // 2, size]),
             3 * slot),
        Case(f"clip_by_norm global ({size})", "clip_by_norm", clip_norm([0, size]), 3 * slot),
        Case("optimizer_prepare cosine nadam", "optimizer_prepare", lambda r: [_hyper(), table, True],
             HYPER_SIZE * F32 * 2 + table.nbytes),
        Case(f"rmsprop_update ({size})", "rmsprop_update", lambda r: _flat(size, 1)(r)[:3] + [None, None, _hyper()],
             5 * slot),
        Case(f"rmsprop momentum centered ({size})", "rmsprop_update", centered, 9 * slot),
        Case(f"adagrad_update ({size})", "adagrad_update", _flat(size, 1), 5 * slot),
        Case(f"nadam_update ({size})", "nadam_update", _flat(size, 2), 7 * slot),
        Case(f"adamax_update ({size})", "optimizer_update", lambda r: _own_rule("adamax_update", adamax_rule,
                                                                                 _flat(size, 2)(r)), 7 * slot),
        own("adam_amsgrad_update", amsgrad_rule, 3), own("adadelta_update", adadelta_rule, 2),
        own("lion_update", lion_rule, 1),
        own("ftrl_update", ftrl_rule, 2, lr_power=-0.5, l1=0.01, l2=0.02, l2_shrinkage=0.001, beta=0.1),
        Case(f"accumulate_gradients accumulating ({size})", "accumulate_gradients",
             lambda r: _flat(size, 1)(r)[1:3] + [_hyper(accumulation=4, iterations=1)], 3 * slot),
        Case(f"accumulate_gradients updating ({size})", "accumulate_gradients",
             lambda r: _flat(size, 1)(r)[1:3] + [_hyper(accumulation=4, iterations=3)], 4 * slot),
        Case(f"ema_update ({size})", "ema_update",
             lambda r: [r.normal(size=size).astype(f), r.normal(size=size).astype(f), _hyper()],
             4 * slot, kwargs=(("momentum", 0.99), ("frequency", 5))),
        Case(f"bias_act log_softmax ({n}x10)", "bias_act", lambda r: [(r.normal(size=(n, 10)) * 4).astype(f),
                                                                     r.normal(size=10).astype(f)],
             2 * n * 10 * F32, kwargs=(("act", "log_softmax"),)),
        Case(f"act_backward log_softmax ({n}x10)", "act_backward",
             lambda r: [r.normal(size=(n, 10)).astype(f), np.log(r.dirichlet(np.ones(10), n)).astype(f)],
             3 * n * 10 * F32, kwargs=(("act", "log_softmax"),)),
    ]


def _own_rule(kernel, rule, args):
    """optimizer_update's arguments for an optimizer file's own kernel: its slots as one (slots, size) buffer."""
    w, g, *slots, hyper = args
    return [kernel, rule, w, g, np.stack(slots), hyper]


def _call(backend, case, args):
    loss_kind = dict(case.kwargs).get("kind")
    kwargs = {k: v for k, v in case.kwargs if k != "kind"}
    if case.op == "loss_grad":
        z, target, dz, acc = args
        return backend.loss_grad(loss_kind, z, target, dz, acc, **kwargs)
    if case.op == "metric_sum":
        return backend.metric_sum(loss_kind, *args, **kwargs)
    if case.op in ("bias_act", "act_backward"):
        return getattr(backend, case.op)(*args, kwargs["act"])
    return getattr(backend, case.op)(*args, **kwargs)


def _scale(case, host, i, ref):
    """What an output's error is measured against: itself elementwise; for a GEMM the sum of |a|·|b| over
    the inner dimension, the scale of a float32 dot product's rounding (an output that cancels to near
    zero would otherwise show a large relative error for any summation order but NumPy's); for batch
    normalization, whose outputs cancel too, the output's largest magnitude."""
    if case.op.startswith("batchnorm"):  # sums of terms that cancel (x - mean, column sums of dy): norm-wise
        return np.full_like(ref, np.abs(ref).max())
    if case.op != "matmul" or i != 2:  # matmul(a, b, out): the output is argument 2
        return np.abs(ref)
    kw = dict(case.kwargs)
    a, b = (np.abs(m) for m in host[:2])
    return (a.T if kw.get("trans_a") else a) @ (b.T if kw.get("trans_b") else b)


def validate(backend, case, seed=0) -> float:
    """Run the case on the backend and on the NumPy reference; return the largest relative error (see
    _scale for what it is relative to; 1.0 where an integer output differs)."""
    host = case.make(np.random.default_rng(seed))
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in host]
    if case.reference:
        case.reference(want)
    else:
        _call(NumpyBackend(), case, want)
    placed = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in host]
    _call(backend, case, placed)
    worst = 0.0
    for i, (got, ref) in enumerate(zip(placed, want)):
        if isinstance(ref, np.ndarray) and ref.dtype.kind == "f" and i not in case.scratch:
            got = backend.to_host(got)
            with np.errstate(invalid="ignore"):  # inf - inf: judged by `same`
                err = np.abs(got - ref) / (_scale(case, host, i, ref) + 1e-3)
            same = (got == ref) | (np.isnan(got) & np.isnan(ref))  # a NaN or inf only where NumPy has it
            worst = max(worst, float(np.max(np.where(same, 0.0, np.nan_to_num(err, nan=np.inf)), initial=0.0)))
        elif isinstance(ref, np.ndarray) and ref.dtype.kind in "iu" and i not in case.scratch:
            worst = max(worst, 0.0 if np.array_equal(backend.to_host(got), ref) else 1.0)
    return worst


def time_on_gpu(backend, case, repeats=200, rounds=5) -> tuple[float, str]:
    """(median seconds per launch, how it was timed). The ``repeats`` launches are captured in one CUDA
    graph and replayed ``rounds`` times between events, so what is timed is the device, not the host's
    launch cost (16 µs a launch on the H200 machine, more than most of these kernels take); an op that
    cannot be captured is timed as plain launches, and says so."""
    cp = backend.xp
    args = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in case.make(np.random.default_rng(0))]
    _call(backend, case, args)  # compile and load outside the timing
    try:
        graph, stream = backend.capture(lambda: _call(backend, case, args), repeats)
        run, how = (lambda: graph.launch(stream)), "graph"
    except Exception:  # e.g. an op that reads a result back to the host
        stream = cp.cuda.get_current_stream()
        run, how = (lambda: [_call(backend, case, args) for _ in range(repeats)]), "launches"
    run()  # one untimed replay
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(rounds):
        start.record(stream)
        run()
        end.record(stream)
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3 / repeats)
    return float(np.median(times)), how


# cudaDeviceAttr codes (driver_types.h); the clock attributes outlive cudaDeviceProp's removed clock fields
_ATTRIBUTES = (("clock_khz", 13), ("sms", 16), ("mem_clock_khz", 36), ("bus_bits", 37), ("major", 75), ("minor", 76))


def peaks(backend, log=print) -> dict | None:
    """The card's memory bandwidth (B/s) and FP32 rate (FLOP/s) from its attributes; None if unreadable."""
    rt = backend.xp.cuda.runtime
    try:
        dev = backend.xp.cuda.Device().id
        attr = {name: rt.deviceGetAttribute(code, dev) for name, code in _ATTRIBUTES}
    except Exception as exc:  # a CUDA release without one of them: time without percentages
        log(f"peaks unknown ({type(exc).__name__}: {exc}); reporting times and rates only")
        return None
    lanes = 64 if (attr["major"], attr["minor"]) == (8, 0) else 128  # FP32 lanes per SM (A100: 64)
    return {"bandwidth": attr["mem_clock_khz"] * 1e3 * 2 * attr["bus_bits"] / 8,
            "fp32": attr["sms"] * lanes * 2 * attr["clock_khz"] * 1e3}


def run(validate_only: bool, log=print) -> dict:
    if validate_only:
        from tests.harness.host_ops import HostCudaOps

        backend, sizes, small = HostCudaOps(), (1, 33), True
    else:
        backend, sizes, small = get_backend("cupy", graph=False, gemm="kernel"), (32, 4096), False
    peak = None if validate_only else peaks(backend, log)
    rows = []
    for n in sizes:
        for case in cases(n, small):
            row = {"case": case.name, "max_rel_error": validate(backend, case)}
            row["valid"] = row["max_rel_error"] < 1e-3
            if not validate_only:
                s, row["timed"] = time_on_gpu(backend, case)
                row.update(us=s * 1e6, gb_s=case.bytes / s / 1e9)
                if case.flops:
                    row["gflop_s"] = case.flops / s / 1e9
                if peak:
                    row["pct_bandwidth"] = 100 * case.bytes / s / peak["bandwidth"]
                    if case.flops:
                        row["pct_fp32"] = 100 * case.flops / s / peak["fp32"]
            rows.append(row)
            log(_line(row))
    return {"benchmark": "kernels", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "backend": backend.describe(),
            "validate_only": validate_only, "peaks": peak, "rows": rows, "all_valid": all(r["valid"] for r in rows),
            "launched": sorted(set(getattr(backend, "launches", ())))}  # the harness records its launches


def _line(r) -> str:
    timing = ""
    if "us" in r:
        timing = (f"{r['us']:9.2f} us ({r['timed']}) {r['gb_s']:9.1f} GB/s "
                  f"{r.get('pct_bandwidth', float('nan')):5.1f}% bw")
        if "gflop_s" in r:
            timing += f" {r['gflop_s']:9.1f} GFLOP/s {r.get('pct_fp32', float('nan')):5.1f}% fp32"
    return f"{'ok ' if r['valid'] else 'BAD'} {r['case']:44s} err {r['max_rel_error']:.1e} {timing}"


def markdown(result) -> str:
    lines = [f"# kernels {result['date']}", "", f"Backend: {result['backend']}; peaks: {result['peaks']}.", "",
             "µs per launch on the device: each case's launches captured in one CUDA graph and replayed between "
             "events (timed = graph), or plain launches where an op cannot be captured (timed = launches: "
             "the host's launch cost included).", "",
             "| case | max rel. error | µs | timed | GB/s | % of bandwidth | GFLOP/s | % of FP32 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        cells = [f"{r.get(k):.2f}" if isinstance(r.get(k), float) else "" for k in
                 ("us", "gb_s", "pct_bandwidth", "gflop_s", "pct_fp32")]
        cells.insert(1, r.get("timed", ""))
        lines.append(f"| {r['case']} | {r['max_rel_error']:.1e} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for kernels-<device>.json/.md")
    ap.add_argument("--validate-only", action="store_true", help="no GPU: validate through the host harness")
    args = ap.parse_args(argv)
    gpu = available_backends()["cupy"] is None
    if not gpu and not args.validate_only:
        print(f"no GPU ({available_backends()['cupy']}): validating through the host harness only", flush=True)
    result = run(args.validate_only or not gpu)
    if args.out:
        write(result, Path(args.out))
    return 0 if result["all_valid"] else 1


def write(result, out: Path) -> list[Path]:
    """kernels-<device>.json and .md in out."""
    out.mkdir(parents=True, exist_ok=True)
    name = "host-harness" if result["validate_only"] else result["backend"]["device"].replace(" ", "-")
    paths = [out / f"kernels-{name}.json", out / f"kernels-{name}.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    paths[1].write_text(markdown(result))
    return paths


if __name__ == "__main__":
    sys.exit(main())
