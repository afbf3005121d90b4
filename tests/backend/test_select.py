"""Choosing a backend: by argument, by environment, and the logged fallback."""
import logging

import pytest

from mlp_gpu.backend import BackendUnavailable, NumpyBackend, get_backend

from ..conftest import CUPY_REASON


def test_numpy_by_name():
    assert isinstance(get_backend("numpy"), NumpyBackend)


def test_environment_variable_picks_backend(monkeypatch):
    monkeypatch.setenv("MLP_GPU_BACKEND", "numpy")
    assert get_backend().name == "numpy"


def test_unknown_backend_name_is_explained():
    with pytest.raises(ValueError, match="backend: expected one of auto, numpy, cupy, got 'tpu'"):
        get_backend("tpu")


@pytest.mark.skipif(CUPY_REASON is None, reason="a GPU is present")
def test_auto_falls_back_to_numpy_and_logs_why(caplog):
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        backend = get_backend("auto")
    assert backend.name == "numpy"
    assert "using numpy" in caplog.text and CUPY_REASON in caplog.text


@pytest.mark.skipif(CUPY_REASON is None, reason="a GPU is present")
def test_cupy_without_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="backend='cupy' cannot run here"):
        get_backend("cupy")


def test_backends_are_objects_not_a_global():
    """Two models on two backend objects in one process: each keeps its own arrays."""
    from mlp_gpu import Dense, Input, Sequential

    models = [Sequential([Input((3,)), Dense(2, "softmax")], backend=get_backend("numpy")).build(seed=s)
              for s in (0, 1)]
    assert models[0].backend is not models[1].backend
    assert not (models[0].params == models[1].params).all()


def test_importing_mlp_gpu_imports_no_cupy_and_compiles_nothing():
    import subprocess
    import sys

    code = "import sys, mlp_gpu; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
