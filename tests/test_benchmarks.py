"""The benchmark scripts run and write well-formed reports (timings themselves are not tested)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed (make test installs it)")
def test_gpu_check_smoke_writes_report(tmp_path):
    import gpu_check

    assert gpu_check.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu-smoke.json").read_text())
    assert result["workload"] == {"rows": 600, "batch": 32, "steps_per_epoch": 19}
    assert result["seconds_per_epoch"]["numpy"]["median_s"] > 0
    assert result["full_run"]["epochs"] == 2 and 0 <= result["full_run"]["test_accuracy"] <= 1
    assert "| numpy |" in (tmp_path / "gpu-smoke.md").read_text()


def test_handwritten_loop_learns():
    import handwritten
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] @ rng.normal(0, 3, (3, 8)) + rng.normal(0, 0.3, (300, 8))).astype(np.float32)
    params = handwritten.init([8, 16, 3], rng)
    first = handwritten.train_epoch(params, x, y, 0.1, 16, rng)
    for _ in range(5):
        last = handwritten.train_epoch(params, x, y, 0.1, 16, rng)
    assert last < first and handwritten.accuracy(params, x, y) > 0.95
