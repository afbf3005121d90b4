"""The benchmark suite and the GPU check script run and write well-formed reports (no timing is asserted)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu.bench import handwritten, ratios, run_suite
from mlp_gpu.bench.workloads import REFERENCE, WIDE, Workload, cpu_matrix
from mlp_gpu.cli import main

ROOT = Path(__file__).resolve().parents[2]
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed (make test installs it)")


def test_flop_count_from_layer_shapes():
    ref = Workload("r", sizes=REFERENCE)
    # forward 266,200 MACs, weight gradients 266,200, input gradients of layers 2-3: 31,000
    assert ref.flops_per_sample() == 2 * (2 * 266_200 + 31_000)
    assert Workload("w", sizes=WIDE).flops_per_sample() > 100 * ref.flops_per_sample()


def test_cpu_matrix_covers_the_issue():
    m = cpu_matrix()
    names = [w.name for w in m.workloads]
    assert {"reference", "batch-1024", "batch-4096", "wide"} <= set(names)
    assert {w.rows for w in m.workloads if w.sizes == REFERENCE and w.batch == 32} >= {5000, 55000}
    ref = m.workloads[0]
    assert {"numpy", "handwritten_numpy", "torch_cpu", "keras_cpu"} <= set(ref.impls) and ref.accuracy


@needs_data
def test_smoke_suite_writes_reports(tmp_path):
    result = run_suite("smoke", repeats=1, out=tmp_path, log=lambda *_: None)
    cells = {(c["workload"], c["impl"]): c for c in result["cells"]}
    cell = cells[("reference", "numpy")]
    for key in ("median_s", "min_s", "max_s", "samples_per_s", "steps_per_s", "gflops", "fraction_of_peak",
                "host_mb", "test_accuracy"):
        assert cell[key] is not None, key
    assert cell["rows"] == 600 and cell["steps_per_epoch"] == 19 and cell["epochs_timed"] == 1
    assert "reference: numpy / handwritten_numpy" in result["ratios"]
    saved = json.loads((tmp_path / "bench-smoke.json").read_text())
    assert saved["machine"]["cores"] and saved["peaks"]["cpu_sgemm_gflops"] > 0
    md = (tmp_path / "bench-smoke.md").read_text()
    assert "| reference | numpy | 600 |" in md and "Ratios" in md
    assert (tmp_path / "bench-smoke.png").read_bytes()[:4] == b"\x89PNG"


def test_ratios_compare_only_like_with_like():
    cells = [{"workload": "w", "impl": "numpy", "rows": 10, "median_s": 1.0},
             {"workload": "w", "impl": "handwritten_numpy", "rows": 10, "median_s": 2.0},
             {"workload": "w", "impl": "torch_cpu", "rows": 5, "median_s": 1.0},
             {"workload": "w", "impl": "keras_cpu", "rows": 10, "skipped": "absent"}]
    assert ratios(cells) == {"w: numpy / handwritten_numpy": 0.5}


def test_bench_rejects_bad_arguments():
    with pytest.raises(ValueError, match="matrix: expected one of"):
        run_suite("huge")
    with pytest.raises(ValueError, match="repeats: expected an int >= 1, got 0"):
        run_suite("smoke", repeats=0)


@needs_data
def test_bench_command_and_gpu_check_smoke(tmp_path, capsys):
    assert main(["bench", "--matrix", "smoke", "--repeats", "1", "--out", str(tmp_path), "--no-plot",
                 "--json"]) == 0
    assert "reference: numpy / handwritten_numpy" in capsys.readouterr().out.strip().splitlines()[-1]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    assert gpu_check.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu-check-smoke.json").read_text())
    assert result["full_run"]["epochs"] == 2 and 0 <= result["full_run"]["test_accuracy"] <= 1


def test_handwritten_loop_learns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] @ rng.normal(0, 3, (3, 8)) + rng.normal(0, 0.3, (300, 8))).astype(np.float32)
    params = handwritten.init([8, 16, 3], rng)
    first = handwritten.train_epoch(params, x, y, 0.1, 16, rng)
    for _ in range(5):
        last = handwritten.train_epoch(params, x, y, 0.1, 16, rng)
    assert last < first and handwritten.accuracy(params, x, y) > 0.95
