"""Every CuPy name mlp_gpu's backend and GPU benchmarks use, in one list, and the means to check
it against a CuPy install.

``USES`` is what tests/backend/cuda/test_cupy_api.py finds in the backend's source (attribute chains on
``self.xp``, ``cupy``, CuPy modules imported by name, and on what their calls return), written as
the code spells them with the root spelled ``cupy``; a new use fails that test until it is listed
here. ``UNTRACKED`` are uses the scan cannot see (methods of arrays passed in as parameters, a
``with stream:`` block). ``python tests/cupy_api.py check`` resolves every name in the CuPy on its
path (no GPU needed) and prints the ones missing; ``specs`` prints the CuPy releases to check.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

# What a call returns, where the code uses an attribute of the result: a class, or an instance that
# exists without a GPU where the attribute is set per instance (a Stream's ptr).
RETURNS = {
    "cupy.cuda.Device()": "cupy.cuda.Device",
    "cupy.cuda.Event()": "cupy.cuda.Event",
    "cupy.cuda.get_current_stream()": "cupy.cuda.Stream.null",
    "cupy.cuda.Stream()": "cupy.cuda.Stream.null",
    "cupy.cuda.Stream().end_capture()": "cupy.cuda.graph.Graph",
    "cupy.get_default_memory_pool()": "cupy.cuda.MemoryPool",
    "cupy.get_default_pinned_memory_pool()": "cupy.cuda.PinnedMemoryPool",
    "cupy.RawModule()": "cupy.RawModule",
    "cupy.RawModule().get_function()": "cupy.RawKernel",
    "cupy.ones()": "cupy.ndarray",
    "cupy.zeros()": "cupy.ndarray",
}

USES = (
    "cupy.RawModule",
    "cupy.RawModule().get_function",
    "cupy.__version__",
    "cupy.asarray",
    "cupy.asnumpy",
    "cupy.cuda.Device",
    "cupy.cuda.Device().id",
    "cupy.cuda.Device().use",
    "cupy.cuda.Event",
    "cupy.cuda.Event().record",
    "cupy.cuda.Event().synchronize",
    "cupy.cuda.Stream",
    "cupy.cuda.Stream().begin_capture",
    "cupy.cuda.Stream().end_capture",
    "cupy.cuda.device.get_cublas_handle",
    "cupy.cuda.driver.funcSetAttribute",      # the persistent route (backend/cuda/cooperative.py)
    "cupy.cuda.driver.launchCooperativeKernel",
    "cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor",
    "cupy.cuda.get_current_stream",
    "cupy.cuda.get_elapsed_time",
    "cupy.cuda.get_current_stream().ptr",
    "cupy.cuda.get_current_stream().synchronize",
    "cupy.cuda.memory.OutOfMemoryError",
    "cupy.cuda.runtime",
    "cupy.cuda.runtime.deviceGetAttribute",
    "cupy.cuda.runtime.getDeviceCount",
    "cupy.cuda.runtime.getDeviceProperties",
    "cupy.cuda.runtime.memGetInfo",
    "cupy.cuda.runtime.runtimeGetVersion",
    "cupy.empty",
    "cupy.float32",
    "cupy.get_default_memory_pool",
    "cupy.get_default_memory_pool().free_all_blocks",
    "cupy.get_default_memory_pool().free_bytes",
    "cupy.get_default_memory_pool().used_bytes",
    "cupy.get_default_pinned_memory_pool",
    "cupy.get_default_pinned_memory_pool().free_all_blocks",
    "cupy.is_available",
    "cupy.ones",
    "cupy.random.random",
    "cupy.zeros",
    "cupy.zeros().fill",
    "cupy_backends.cuda.libs.cublas.CUBLAS_OP_N",
    "cupy_backends.cuda.libs.cublas.CUBLAS_OP_T",
    "cupy_backends.cuda.libs.cublas.setMathMode",
    "cupy_backends.cuda.libs.cublas.setStream",
    "cupy_backends.cuda.libs.cublas.sgemm",
)

UNTRACKED = (
    "cupy.ndarray.set",                       # copy_from_host: dst.set(host)
    "cupy.ndarray.data",                      # cublas_matmul: a.data.ptr
    "cupy.cuda.MemoryPointer.ptr",
    "cupy.ndarray.flags",                     # cuda_ops: a.flags.c_contiguous
    "cupy.ndarray.all",                       # the capture probe: (c == 16).all()
    "cupy.RawKernel.__call__",                # launch: function(grid, block, args)
    "cupy.RawKernel.kernel",                  # cooperative.py: self._function(name).kernel.ptr, the CUfunction
    "cupy.cuda.function.Function.ptr",
    "cupy.cuda.Stream.__enter__",             # capture: with stream:
    "cupy.cuda.Stream.__exit__",
    "cupy.cuda.graph.Graph.launch",           # make_runner: graph.launch, graph from capture()
    # metrics/confusion.py's device_sum, on the array module it is handed (backend.xp)
    "cupy.tanh", "cupy.full", "cupy.abs", "cupy.empty_like", "cupy.exp", "cupy.asarray", "cupy.float32",
    "cupy.argsort", "cupy.where", "cupy.inf",
    "cupy.ndarray.astype", "cupy.ndarray.reshape", "cupy.ndarray.sum", "cupy.ndarray.max", "cupy.ndarray.__matmul__",
)


def resolvable(use: str) -> str:
    """The dotted path to look up for a use: the longest call prefix replaced by what it returns."""
    for call in sorted(RETURNS, key=len, reverse=True):
        if use.startswith(call + "."):
            return RETURNS[call] + use[len(call):]
    if "()" in use:
        raise KeyError(f"{use}: add what {use[:use.rindex('()') + 2]} returns to RETURNS in tests/cupy_api.py")
    return use


def lookup(path: str):
    """Import and getattr along a dotted path. A compiled module that cannot load without its CUDA
    library (cuBLAS needs libcublas, absent without a GPU) is searched for the name in its binary."""
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 2):
        module = ".".join(parts[:i])
        try:  # a lazy package's getattr may import, and fail like an import
            obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(module)
        except ImportError:
            spec = importlib.util.find_spec(module)
            if spec is None or not (spec.origin or "").endswith(".so"):
                raise
            return _in_binary(spec.origin, parts[i:], path)
    return obj


def _in_binary(origin: str, names: list[str], path: str):
    data = Path(origin).read_bytes()
    if len(names) != 1 or not re.search(rb"(?<![A-Za-z0-9_])" + names[0].encode() + rb"\x00", data):
        raise AttributeError(f"{path}: not in {Path(origin).name}")
    return names[0]


def missing(extra=()) -> dict[str, str]:
    """{use: why} for every listed name (and every name in extra) this CuPy lacks."""
    out = {}
    for use in USES + UNTRACKED + tuple(extra):
        try:
            lookup(resolvable(use))
        except Exception as exc:  # an AttributeError, an ImportError, a KeyError: all say what is missing
            out[use] = f"{type(exc).__name__}: {exc}"
    return out


def specs(pyproject: Path) -> list[tuple[str, str]]:
    """(folder name, pip requirement) for each CuPy release to check: every CuPy the gpu and cuda13 extras
    name, at its newest and, where its lower bound is an older major release, at that release too."""
    import tomllib

    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    out = []
    for extra in ("gpu", "cuda13"):
        for req in extras[extra]:
            m = re.fullmatch(r"(cupy-cuda\w+)\s*>=\s*(\d+)(?:[.\d]*)", req.replace(" ", ""))
            if not m:
                continue
            out.append((f"{m.group(1)}-newest", req))
            out.append((f"{m.group(1)}-{m.group(2)}", f"{m.group(1)}=={m.group(2)}.*"))
    return out


def install(folder: Path, pyproject: Path) -> None:
    """pip install each CuPy release of specs() into folder/<name> (CuPy packages all install as
    ``cupy``, so each gets a folder of its own). An older major release equal to the newest is skipped."""
    import subprocess

    newest = {}
    for name, req in specs(pyproject):
        package, tag = name.rsplit("-", 1)
        if newest.get(package, "").split(".")[0] == tag:
            continue  # the newest release already is of that major version
        target = folder / name
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--target", str(target), req],
                       check=True)
        if tag == "newest":
            newest[package] = next(target.glob(f"{package.replace('-', '_')}-*.dist-info")).name.split("-")[1]


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        import cupy

        print(json.dumps({"version": cupy.__version__, "missing": missing(sys.argv[2:])}))
    elif sys.argv[1:2] == ["install"] and len(sys.argv) == 4:
        install(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: cupy_api.py check [NAME...] | install FOLDER PYPROJECT")
