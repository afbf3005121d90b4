"""CuPy API conformance without a GPU: every CuPy name the backend uses (tests/cupy_api.py, the one
list) is found in its source, and exists in each supported CuPy release (`make cupy-api` installs
them, one folder each, from the gpu and cuda13 extras; `make test` runs it first)."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ... import cupy_api

ROOT = Path(__file__).resolve().parents[3]
# Where CuPy is used: the backend, and the GPU benchmarks that `make gpu-check` runs
SCANNED = ("mlp_gpu/backend/**/*.py", "mlp_gpu/benchmarks/*.py", "benchmarks/*.py", "benchmarks/kernels/*.py")
INSTALLS = ROOT / ".cupy-api"


def _spelled(node, names):
    """A chain such as cupy.cuda.Stream().begin_capture, with its root renamed through names; else None."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.attr == "xp":  # a backend's array module: CuPy's there
            return "cupy"
        base = _spelled(node.value, names)
        return base and f"{base}.{node.attr}"
    if isinstance(node, ast.Call):
        base = _spelled(node.func, names)
        return base and f"{base}()"
    return None


def _uses_in(scope, names):
    names = dict(names)
    for node in ast.walk(scope):  # names bound to CuPy modules, or to what CuPy calls return
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name: a.name for a in node.names if a.name.split(".")[0] == "cupy"})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("cupy", "cupy_backends"):
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:  # x = cupy...  and  a, b = cupy..., cupy...
            pairs = zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and \
                isinstance(node.value, ast.Tuple) else [(target, node.value)]
            names.update({t.id: _spelled(v, names) for t, v in pairs
                          if isinstance(t, ast.Name) and _spelled(v, names)})
    found, inner = set(), set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(scope):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # whole chains only
            spelled = _spelled(node, names)
            if spelled and spelled != "cupy":
                found.add(spelled)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) == 2 \
                and isinstance(node.args[1], ast.Constant) and _spelled(node.args[0], names):
            found.add(f"{_spelled(node.args[0], names)}.{node.args[1].value}")  # getattr with a default may miss
    return found


def used_names(paths) -> set[str]:
    """Every CuPy attribute chain in these modules, function by function (local names stay local)."""
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for fn in functions:
            found |= _uses_in(fn, {"cupy": "cupy"})  # a name `cupy` always holds the module
    return found


def test_every_cupy_name_the_backend_uses_is_listed():
    found = used_names(sorted(p for pattern in SCANNED for p in ROOT.glob(pattern)))
    unlisted, stale = found - set(cupy_api.USES), set(cupy_api.USES) - found
    assert not unlisted, f"add these CuPy uses to USES in tests/cupy_api.py (and RETURNS if needed): {sorted(unlisted)}"
    assert not stale, f"tests/cupy_api.py lists uses the backend no longer has: {sorted(stale)}"


def test_the_scan_sees_a_new_use(tmp_path):
    """The scan can fail: a use through an alias, a call's result and a module import is found."""
    src = tmp_path / "m.py"
    src.write_text("def f(self):\n    cp = self.xp\n    s = cp.cuda.Stream()\n    s.wait_event(1)\n"
                   "    from cupy_backends.cuda.libs import cublas\n    cublas.dgemm()\n")
    assert used_names([src]) == {"cupy.cuda.Stream", "cupy.cuda.Stream().wait_event",
                                 "cupy_backends.cuda.libs.cublas.dgemm"}


def _installs():
    return sorted(p for p in INSTALLS.glob("*") if p.is_dir()) if INSTALLS.is_dir() else []


def _check(folder, *extra):
    env = {**os.environ, "PYTHONPATH": str(folder)}
    result = subprocess.run([sys.executable, str(Path(cupy_api.__file__)), "check", *extra], env=env,
                            capture_output=True, text=True, timeout=300, cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_each_supported_cupy_is_installed_for_the_check():
    names = {p.name for p in _installs()}
    assert {"cupy-cuda12x-newest", "cupy-cuda13x-newest"} <= names, \
        f"CuPy releases to check are missing from {INSTALLS} (found {sorted(names)}): run make cupy-api"


@pytest.mark.parametrize("folder", _installs(), ids=lambda p: p.name)
def test_cupy_release_has_every_name_we_use(folder):
    report = _check(folder)
    assert report["missing"] == {}, f"CuPy {report['version']} ({folder.name}) lacks: {report['missing']}"


def test_the_check_reports_what_is_missing():
    folder = next(iter(_installs()), None)
    assert folder is not None, "run make cupy-api"
    bogus = ["cupy.cuda.Stream().no_such_method", "cupy_backends.cuda.libs.cublas.no_such_function",
             "cupy.no_such_module.thing"]
    assert set(_check(folder, *bogus)["missing"]) == set(bogus)
