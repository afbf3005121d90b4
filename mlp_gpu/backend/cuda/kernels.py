"""Finding, reading and describing the CUDA sources in ``kernels/``.

Nothing here compiles anything: the CuPy backend compiles a file the first
time one of its kernels is launched (with :func:`nvrtc_program`'s source and
options, which the NVRTC test compiles too), and the test harness compiles the
same text with g++, given the same ``-D`` options.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from ..shared_constants import define_options

_ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_INCLUDE = re.compile(r'^#include\s+"([^"]+)"\s*$', re.M)


def kernel_dir() -> Path:
    """The folder of .cu files: inside the installed package, else the repository's kernels/."""
    here = Path(__file__).resolve().parents[2]  # mlp_gpu/
    for candidate in (here / "kernels", here.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"kernels: no CUDA sources found in {here / 'kernels'} or {here.parent / 'kernels'}")


def kernel_files() -> list[Path]:
    return sorted(kernel_dir().glob("*.cu"))


def source(path: Path) -> str:
    """The file's text with local #include "..." lines expanded, nested ones too (NVRTC then needs no
    include path)."""
    text = path.read_text()
    return _INCLUDE.sub(lambda m: source(path.parent / m.group(1)).replace("#pragma once", ""), text)


NVRTC_STD = "--std=c++17"
# What cupy.RawModule adds to our options before NVRTC sees them (CuPy 13/14, cupy/cuda/compiler.py:
# _compile_with_cache_cuda and compile_using_nvrtc), besides -arch=sm_XX; the NVRTC test adds them too.
CUPY_NVRTC_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


def nvrtc_program(path: Path) -> tuple[str, tuple[str, ...]]:
    """(source, options) exactly as the CuPy backend hands one kernel file to NVRTC (via cupy.RawModule)."""
    return source(path), (NVRTC_STD, *define_options())


# Kernels generated at run time (mlp_gpu.tracing: a user's loss, metric or layer), one per source text,
# compiled through the same NVRTC path as the files: name -> full source.
_GENERATED: dict[str, str] = {}


def register_generated(name: str, text: str) -> None:
    _GENERATED[name] = text


def generated_source(name: str) -> str | None:
    return _GENERATED.get(name)


def generated_names() -> list[str]:
    return list(_GENERATED)


def nvrtc_generated(name: str) -> tuple[str, tuple[str, ...]]:
    """(source, options) of a generated kernel, as for a file (``nvrtc_program``)."""
    return _GENERATED[name], (NVRTC_STD, *define_options())


def signatures(text: str) -> dict[str, list[tuple[str, str]]]:
    """Entry points of a source: {kernel name: [(C type, parameter name), ...]}."""
    found = {}
    for name, params in _ENTRY.findall(text):
        args = []
        for param in params.split(","):
            words = param.replace("*", " * ").split()
            args.append((" ".join(w for w in words[:-1] if w != "__restrict__"), words[-1]))
        found[name] = args
    return found


@functools.lru_cache(maxsize=1)
def kernel_index() -> dict[str, Path]:
    """Which file defines each kernel."""
    return {name: path for path in kernel_files() for name in signatures(path.read_text())}
