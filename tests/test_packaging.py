"""The wheel ships the CUDA sources, and the installed package finds them."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_kernels(tmp_path):
    src = tmp_path / "src"  # build from a copy: the checkout gets no build/ or egg-info
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("mlp_gpu", "kernels"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "dist").glob("mlp_gpu-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("mlp_gpu/kernels/")}
    expected = {p.name for p in (ROOT / "kernels").glob("*.cu")} | {"common.cuh"}
    assert expected <= shipped
    # Every package of the tree is in the wheel (a package missing from pyproject's list is not).
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "mlp_gpu").rglob("__init__.py")}
    assert packages <= {str(Path(n).parent) for n in names}
    # Unpacked alone, the package imports whole from there and finds its kernels inside itself. (The test's
    # interpreter has the checkout installed editable: the child checks where mlp_gpu came from.)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import mlp_gpu, mlp_gpu.datasets, mlp_gpu.distributed; "
            "from mlp_gpu.backend.cuda import kernels; print(mlp_gpu.__file__); print(kernels.kernel_dir())")
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout.split()
    assert Path(out[0]) == site / "mlp_gpu" / "__init__.py"
    assert Path(out[1]) == site / "mlp_gpu" / "kernels"
