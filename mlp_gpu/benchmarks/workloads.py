"""The benchmark matrix: workloads (net, batch, rows) and which implementations run each."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.idx import load_fashion_mnist
from ..data.sources import split_validation

REFERENCE = (784, 300, 100, 10)
WIDE = (784, 4096, 4096, 10)


def on_gpu(impl: str) -> bool:
    """Whether an implementation name denotes a GPU run (cupy_*, *_cuda)."""
    return impl.startswith("cupy") or impl.endswith("cuda")


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple = REFERENCE
    batch: int = 32
    rows: int = 55000
    cpu_rows: int | None = None   # fewer rows for CPU implementations where a full epoch takes minutes
    impls: tuple = ("numpy",)
    accuracy: bool = False        # report test accuracy after the timed epochs
    net: str = "mlp"              # "mlp": Dense layers and SGD 0.01; "toolbox": see toolbox_matrix
    loaded: bool = False          # trained while one busy competitor process per CPU runs (a shared machine)
    impl_rows: tuple = ()         # (impl, rows) pairs: fewer rows for an implementation that collapses there

    def rows_for(self, impl: str) -> int:
        own = dict(self.impl_rows).get(impl)
        if own is not None:
            return min(self.rows, own)
        return self.rows if on_gpu(impl) or self.cpu_rows is None else min(self.rows, self.cpu_rows)

    def flops_per_sample(self) -> int:
        """Training FLOPs per sample counted from the layer shapes: the forward GEMM, the weight-gradient
        GEMM, and the input-gradient GEMM of every layer but the first (2 FLOPs per multiply-add)."""
        products = [a * b for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        return 2 * (2 * sum(products) + sum(products[1:]))


@dataclass(frozen=True)
class Matrix:
    name: str
    workloads: list = field(default_factory=list)


CPU_PEERS = ("numpy", "handwritten_numpy", "torch_cpu")
GPU_PEERS = ("cupy_eager", "cupy_graph", "torch_cuda")


def cpu_matrix() -> Matrix:
    """`make bench` on a 2-core machine, within 5 minutes: the quiet workloads, then the reference net with one
    busy competitor per CPU (16,000 rows, as issue 30 measured; the hand-written loop and PyTorch, whose
    thread pools collapse there, on 2,000 rows: the loaded / quiet ratios compare times per step)."""
    return Matrix("cpu", [
        # ours beside JAX in each round: the bar's two epochs run one after the other (paired_ratio)
        Workload("reference", impls=("numpy", "jax_cpu") + CPU_PEERS[1:] + ("keras_cpu",), accuracy=True),
        Workload("batch-1024", batch=1024, impls=CPU_PEERS),
        Workload("batch-4096", batch=4096, impls=CPU_PEERS),
        Workload("wide", sizes=WIDE, cpu_rows=1000, impls=CPU_PEERS),
        *[Workload(f"rows-{n}", rows=n, impls=("numpy",)) for n in (5000, 15000, 30000)],
        Workload("reference-loaded", rows=16000, loaded=True, impls=("numpy", "jax_cpu") + CPU_PEERS[1:],
                 impl_rows=(("handwritten_numpy", 2000), ("torch_cpu", 2000))),
    ])


def gpu_matrix() -> Matrix:
    """The full matrix for `make gpu-check`: GPU backends and peers, with NumPy on the host as baseline."""
    return Matrix("gpu", [
        Workload("reference", impls=("numpy",) + GPU_PEERS, accuracy=True),
        Workload("batch-1024", batch=1024, impls=("numpy",) + GPU_PEERS),
        Workload("batch-4096", batch=4096, impls=("numpy",) + GPU_PEERS),
        Workload("wide", sizes=WIDE, cpu_rows=2000, impls=("numpy",) + GPU_PEERS),
        *[Workload(f"rows-{n}", rows=n, impls=("cupy_graph",)) for n in (5000, 15000, 30000)],
    ])


def smoke_matrix() -> Matrix:
    """A tiny matrix that checks the suite itself in `make test`."""
    return Matrix("smoke", [
        Workload("reference", rows=600, impls=("numpy", "handwritten_numpy", "torch_cpu", "jax_cpu"), accuracy=True),
        Workload("batch-256", batch=256, rows=600, impls=("numpy",)),
        Workload("rows-300", rows=300, impls=("numpy",)),
        Workload("reference-loaded", rows=320, loaded=True, impls=("numpy",)),
    ])


def toolbox_matrix() -> Matrix:
    """Chapter 11's net: 784-300-100-10 with BatchNormalization after each hidden layer, Dropout 0.2 and
    Nadam (Keras' defaults), batch 32, against the same net in Keras 3 and PyTorch. Run it for 10 epochs
    (``--repeats 9`` after the warm-up epoch) to compare validation accuracy with Keras'."""
    return Matrix("toolbox", [Workload("toolbox", net="toolbox", accuracy=True,
                                       impls=("numpy", "keras_cpu", "torch_cpu", "cupy_graph"))])


MATRICES = {"cpu": cpu_matrix, "gpu": gpu_matrix, "smoke": smoke_matrix, "toolbox": toolbox_matrix}


def load_data():
    """Fashion-MNIST as uint8 rows (55,000 training, 5,000 validation, 10,000 test); synthetic if absent."""
    try:
        (x_full, y_full), (x_test, y_test) = load_fashion_mnist()
        source = "fashion-mnist"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x_full, y_full = rng.integers(0, 256, (60000, 784), dtype=np.uint8), rng.integers(0, 10, 60000)
        x_test, y_test = x_full[:10000], y_full[:10000]
        source = "synthetic (Fashion-MNIST not found: accuracies are meaningless)"
    (x, y), (x_val, y_val) = split_validation(x_full.reshape(-1, 784), y_full)
    return source, {"x": np.ascontiguousarray(x), "y": y.astype(np.int32),
                    "x_val": x_val, "y_val": y_val.astype(np.int32),
                    "x_test": x_test.reshape(-1, 784), "y_test": y_test.astype(np.int32)}
