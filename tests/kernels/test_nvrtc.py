"""NVRTC, as on users' machines: every kernel file compiles through NVRTC with the source and
options the CuPy backend gives cupy.RawModule (plus what CuPy adds), for sm_80 and sm_90.
NVRTC comes from PyPI (nvidia-cuda-nvrtc-cu12, in the dev extra) and needs no GPU."""
import pytest

from mlp_gpu.backend.cuda import kernels

from ..harness import nvrtc

ARCHS = ["sm_80", "sm_90"]


def cupy_options(path, arch):
    code, options = kernels.nvrtc_program(path)
    return code, options + kernels.CUPY_NVRTC_OPTIONS + (f"-arch={arch}",)


def test_nvrtc_library_is_installed():
    assert nvrtc.library_path() is not None, "nvidia-cuda-nvrtc-cu12 is missing: make install (dev extra)"
    assert nvrtc.version() >= (12, 0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path", kernels.kernel_files(), ids=lambda p: p.name)
def test_nvrtc_compiles_each_kernel_as_the_backend_does(path, arch):
    code, options = cupy_options(path, arch)
    cubin = nvrtc.compile_program(code, options, path.name)
    assert cubin[:4] == b"\x7fELF"  # -arch=sm_XX gives a CUBIN, as CuPy asks for on a device NVRTC knows
    for name in kernels.signatures(code):
        assert name.encode() in cubin, f"{name} missing from {path.name}'s CUBIN"


def test_nvrtc_refuses_what_it_cannot_compile():
    """The check can fail: a standard header (nvcc finds one, NVRTC has no include path) is refused."""
    code, options = cupy_options(kernels.kernel_index()["sgd_update"], "sm_90")
    with pytest.raises(nvrtc.NvrtcError, match="cstdio"):
        nvrtc.compile_program("#include <cstdio>\n" + code, options, "with_header.cu")


def test_nvrtc_source_carries_the_shared_constants_without_the_options():
    """The assembled source embeds the generated header, so it compiles without the -D options too
    (test_backend_layout keeps that header equal to the options)."""
    path = kernels.kernel_index()["adam_update"]
    code, options = cupy_options(path, "sm_90")
    bare = tuple(o for o in options if not o.startswith("-D"))
    nvrtc.compile_program(code, bare, path.name)
