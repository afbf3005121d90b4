"""Compile kernels/*.cu with g++ against cuda_host.h and launch them through ctypes.

``HostCudaOps`` is the CuPy backend's launch logic (``CudaOps``) over NumPy arrays
with kernels run on the CPU, so tests compare the real kernels and their real
launch configurations with the NumPy reference on machines without a GPU.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from mlp_gpu.backend.cuda import kernels
from mlp_gpu.backend.cuda.ops import CudaOps
from mlp_gpu.backend.shared_constants import define_options

HEADER = Path(__file__).resolve().parent / "cuda_host.h"
_BUILD = Path(tempfile.gettempdir()) / "mlp_gpu_host_kernels"
_SCALARS = {np.dtype(np.int32): ctypes.c_int, np.dtype(np.uint32): ctypes.c_uint,
            np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.float32): ctypes.c_float,
            np.dtype(np.float64): ctypes.c_double}
_CTYPES = {"int": ctypes.c_int, "unsigned": ctypes.c_uint, "long long": ctypes.c_longlong,
           "float": ctypes.c_float, "double": ctypes.c_double}


def compiler() -> str | None:
    return shutil.which("g++")


def _wrapper(path: Path) -> str:
    """C wrappers that ctypes can call: launch_<kernel>(grid, block, kernel args...), and
    launch_coop_<kernel>(grid, block, shared bytes, kernel args...), a cooperative launch."""
    lines = [f'#include "{path}"']
    for name, params in kernels.signatures(path.read_text()).items():
        decl = ", ".join(f"{t} {n}" for t, n in params)
        call = ", ".join(n for _, n in params)
        lines.append(
            f'extern "C" void launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz, {decl}) {{\n"
            f"    mlp_host::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, [=] {{ {name}({call}); }});\n}}")
        lines.append(
            f'extern "C" void launch_coop_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz, unsigned shared, {decl}) {{\n"
            f"    mlp_host::launch_cooperative(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, shared, "
            f"[=] {{ {name}({call}); }});\n}}")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def library(path: Path) -> ctypes.CDLL:
    """Build (once per content) and load the shared library for one kernel file."""
    code = _wrapper(path)
    # -Bsymbolic: a kernel named like a symbol already in the process (say "advance")
    # must still call its own definition.
    defines = list(define_options())  # the constants shared with Python, as NVRTC gets them
    key = "Bsymbolic" + " ".join(defines) + code + HEADER.read_text() + kernels.source(path)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    _BUILD.mkdir(exist_ok=True)
    so = _BUILD / f"{path.stem}-{digest}.so"
    if not so.exists():
        cpp = _BUILD / f"{path.stem}-{digest}.cpp"
        cpp.write_text(code)
        tmp = so.with_suffix(".tmp.so")
        cmd = [compiler(), "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-Wl,-Bsymbolic",
               *defines, "-include", str(HEADER), f"-I{path.parent}", "-o", str(tmp), str(cpp)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"g++ failed on {path.name}:\n{result.stderr}")
        tmp.replace(so)
    return ctypes.CDLL(str(so))


def generated_file(name: str) -> Path:
    """A generated kernel (mlp_gpu.tracing) written to a file, so ``library`` builds it as any kernel file."""
    _BUILD.mkdir(exist_ok=True)
    path = _BUILD / f"{name}.cu"
    text = kernels.generated_source(name)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _arg(value):
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ValueError("kernel arguments must be C-contiguous arrays")
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, np.generic) and value.dtype in _SCALARS:
        return _SCALARS[value.dtype](value.item())
    raise TypeError(f"kernel argument of type {type(value).__name__}: pass arrays or typed NumPy scalars")


class HostCudaOps(CudaOps):
    """CudaOps over NumPy arrays, every launch run on the CPU by the harness."""

    name = "host-cuda"
    xp = np

    def __init__(self):
        self.launches = []

    def launch(self, name, grid, block, args):
        self._launch(name, grid, block, args, None)

    def launch_cooperative(self, name, grid, block, shared_mem, args):
        """A cooperative launch: every block of the grid runs at once with shared_mem bytes of dynamic
        shared memory of its own, so a kernel may wait on a grid-wide barrier (common.cuh's grid_sync)."""
        self._launch(name, grid, block, args, int(shared_mem))

    def _launch(self, name, grid, block, args, shared_mem):
        path = generated_file(name) if kernels.generated_source(name) is not None else kernels.kernel_index()[name]
        expected = kernels.signatures(path.read_text())[name]
        if len(args) != len(expected):
            raise TypeError(f"{name}: {len(args)} arguments for {len(expected)} parameters")
        for value, (ctype, pname) in zip(args, expected):  # the types the kernel declares
            if "*" not in ctype and np.dtype(value).itemsize != ctypes.sizeof(_CTYPES[ctype]):
                raise TypeError(f"{name}({pname}): {ctype} given as {np.dtype(value)}")
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        self.launches.append(name)
        lib = library(path)
        if shared_mem is None:
            getattr(lib, f"launch_{name}")(*grid, *block, *(_arg(a) for a in args))
        else:
            getattr(lib, f"launch_coop_{name}")(*grid, *block, ctypes.c_uint(shared_mem), *(_arg(a) for a in args))
