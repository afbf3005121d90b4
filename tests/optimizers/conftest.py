"""The Keras 3 peer's results, run once for the optimizer tests (tests/optimizers/peer.py)."""
import pytest

from ..keras.test_interop import _importable
from .peer import run_keras


@pytest.fixture(scope="session")
def keras_peer(tmp_path_factory):
    """(arrays, report) of the Keras peer; skipped where Keras with PyTorch is not installed."""
    if not (_importable("keras") and _importable("torch")):
        pytest.skip("Keras with PyTorch (make peers) is not installed")
    return run_keras(tmp_path_factory.mktemp("keras_opt"))
