"""Compile a kernel file with NVRTC, through ctypes, as CuPy's RawModule does on a user's machine.

NVRTC is a plain library (PyPI's ``nvidia-cuda-nvrtc-cu12`` ships it) and needs no GPU, so CI
compiles every kernel here with the very source and options the CuPy backend hands CuPy, plus the
options CuPy adds itself (``kernels.CUPY_NVRTC_OPTIONS``) and the architecture.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path


class NvrtcError(RuntimeError):
    """NVRTC refused a program; the message carries its log."""


@functools.lru_cache(maxsize=1)
def library_path() -> Path | None:
    """libnvrtc.so.12 from the nvidia-cuda-nvrtc-cu12 wheel, or None where it is not installed."""
    try:
        import nvidia.cuda_nvrtc as pkg
    except ImportError:
        return None
    for folder in pkg.__path__:
        found = sorted(Path(folder, "lib").glob("libnvrtc.so.*"))
        if found:
            return found[0]
    return None


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    path = library_path()
    if path is None:
        raise FileNotFoundError("libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12 (the dev extra has it)")
    lib = ctypes.CDLL(str(path))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def version() -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    _lib().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_program(source: str, options, name: str = "kern.cu") -> bytes:
    """NVRTC-compile source with options; return the CUBIN (for -arch=sm_XX) or PTX. Raise NvrtcError."""
    lib = _lib()
    prog = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None), "create")
    try:
        opts = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        if status:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            raise NvrtcError(f"{name}: {lib.nvrtcGetErrorString(status).decode()} with options {list(options)}:\n"
                             f"{log.value.decode(errors='replace')}")
        cubin = any(o.startswith("-arch=sm_") for o in options)
        get_size, get = (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN) if cubin else (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX)
        size = ctypes.c_size_t()
        _check(get_size(prog, ctypes.byref(size)), "size")
        out = ctypes.create_string_buffer(size.value)
        _check(get(prog, out), "get")
        return out.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _check(status: int, what: str) -> None:
    if status:
        raise NvrtcError(f"nvrtc {what}: {_lib().nvrtcGetErrorString(status).decode()}")
