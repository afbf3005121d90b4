"""Data-parallel training on 2 MPI ranks (mpi4py + mpich from PyPI) against one process.

The ranks run tests/dist_worker.py under the installed mpiexec, always under a timeout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu import distributed
from mlp_gpu.backend import BackendUnavailable
from mlp_gpu.distributed.launch import find_mpiexec
from mlp_gpu.distributed.parallel import DataParallel, FitPlan, share

from ..conftest import requires_gpu

WORKER = str(Path(__file__).with_name("dist_worker.py"))
LIMIT = 60  # seconds for one job; a hang fails the test instead of the suite


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "MPI_"))}
    return {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_job(ranks, *args, timeout=LIMIT):
    """Run the worker on ``ranks`` processes (1: plainly, no MPI); return the CompletedProcess."""
    cmd = [sys.executable, WORKER, *map(str, args)]
    if ranks > 1:
        cmd = [find_mpiexec(), "-n", str(ranks), *cmd]
    cmd = ["timeout", "-k", "5", str(timeout), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15, env=_env())


def trained(ranks, out, *args):
    proc = run_job(ranks, "--out", out, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [np.load(out / f"result-rank{r}.npz") for r in range(ranks)]


def relative_error(reference, result):
    """The largest relative (Frobenius) difference over the weight arrays the result holds."""
    keys = [k for k in result.files if k.startswith("e")]
    assert keys
    return max(np.linalg.norm(reference[k] - result[k]) / np.linalg.norm(reference[k]) for k in keys)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, 3 epochs: the reference weights after each epoch, and its checkpoints."""
    out = tmp_path_factory.mktemp("single")
    return out, trained(1, out, "--epochs", 3)[0]


def test_share_splits_rows_contiguously_and_completely():
    for rows in (0, 1, 7, 32, 33):
        for size in (1, 2, 3, 5):
            parts = [share(rows, r, size) for r in range(size)]
            assert sum(n for _, n in parts) == rows
            assert all(a + n == b for (a, n), (b, _) in zip(parts, parts[1:]))
            assert max(n for _, n in parts) - min(n for _, n in parts) <= 1


def test_plan_shards_each_step_and_weights_by_real_rows():
    plan = FitPlan(distributed.Communicator(rank=1, size=3), batch_size=8, rows=21)  # steps of 8, 8, 5 rows
    assert plan.steps == 3 and plan.full_share == (3, 3) and plan.last_share == (2, 2)
    assert plan.local_order(np.arange(21)).tolist() == [3, 4, 5, 11, 12, 13, 18, 19]
    assert plan.full_weight == 3 / 8 and plan.last_weight == 2 / 5


def test_per_rank_batches_make_the_global_batch_larger():
    plan = FitPlan(DataParallel(distributed.Communicator(rank=0, size=4), batch="per_rank"), batch_size=8, rows=100)
    assert plan.global_batch == 32 and plan.full_share == (0, 8) and plan.steps == 4


def test_single_process_is_todays_behaviour():
    comm = distributed.init()
    assert comm.engine == "single" and (comm.rank, comm.size) == (0, 1)
    buf = np.arange(4.0)
    assert comm.allreduce(buf, "average") is buf and buf.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="op: expected one of sum, average, min, max, got 'mean'"):
        comm.allreduce(buf, "mean")
    with pytest.raises(RuntimeError, match="already runs the 'single' engine"):
        distributed.init("mpi")


def test_bad_distribute_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="distribute: expected None, an engine name"):
        FitPlan(3, batch_size=8, rows=10)
    with pytest.raises(ValueError, match="DataParallel\\(batch\\): expected one of global, per_rank"):
        DataParallel(batch="local")
    comm = distributed.Communicator(rank=2, size=3)
    with pytest.raises(ValueError, match="batch_size: 2 rows per step leave some of the 3 ranks without rows"):
        FitPlan(comm, batch_size=2, rows=10)


def test_nccl_engine_without_a_gpu_says_why():
    from mlp_gpu.backend.cuda.nccl import import_nccl

    with pytest.raises(BackendUnavailable, match="the NCCL engine needs CuPy with a GPU"):
        import_nccl()


def test_two_ranks_train_the_same_weights_as_one_process(single, tmp_path):
    _, reference = single
    rank0, rank1 = trained(2, tmp_path, "--epochs", 2)
    assert int(rank0["size"]) == 2
    assert relative_error(reference, rank0) < 1e-5  # after epochs 1 and 2
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(rank0[key], reference[key][:2], rtol=1e-5)
    for key in rank0.files:  # the ranks end identical (rank 1 started from other weights)
        np.testing.assert_array_equal(rank0[key], rank1[key])


def test_files_are_written_by_rank_0_alone(tmp_path):
    trained(2, tmp_path, "--epochs", 2)
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == ["ckpt-1.h5", "ckpt-2.h5", "log.csv"]
    assert list((tmp_path / "rank1").iterdir()) == []


@pytest.mark.parametrize("ranks", [2, 3])
def test_uneven_split_matches_one_process(tmp_path, ranks):
    # 1001 rows, batch 25: 40 steps split 13/12 (or 9/8/8) and a last step of 1 row, which leaves
    # the other ranks without rows in it
    args = ("--rows", 1001, "--batch", 25, "--epochs", 2)
    reference = trained(1, tmp_path / "one", *args)[0]
    spread = trained(ranks, tmp_path / "many", *args)[0]
    assert relative_error(reference, spread) < 1e-5
    np.testing.assert_allclose(spread["loss"], reference["loss"], rtol=1e-5)


def test_graph_with_two_inputs_and_outputs_on_two_ranks_matches_one_process(tmp_path):
    args = ("--graph", "--rows", 301, "--batch", 20, "--epochs", 2)
    reference = trained(1, tmp_path / "one", *args)[0]
    rank0, rank1 = trained(2, tmp_path / "two", *args)
    for key in (k for k in reference.files if k.startswith("e")):  # the aux bias is near 0: float32 steps
        np.testing.assert_allclose(rank0[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for key in ("loss", "main_loss", "aux_loss", "main_accuracy", "val_loss", "val_aux_loss"):
        np.testing.assert_allclose(rank0[key], reference[key], rtol=1e-5, err_msg=key)
    for key in rank0.files:
        np.testing.assert_array_equal(rank0[key], rank1[key])
    assert sorted(p.name for p in (tmp_path / "two" / "rank0").iterdir()) == ["ckpt-1.h5", "ckpt-2.h5", "log.csv"]


def test_per_rank_batches_scale_the_learning_rate(tmp_path):
    # 2 ranks x 16 rows at lr 0.05 (scaled to 0.1, no warm-up) is one process with 32 rows at lr 0.1
    reference = trained(1, tmp_path / "one", "--batch", 32, "--lr", 0.1)[0]
    spread = trained(2, tmp_path / "two", "--batch", 16, "--lr", 0.05, "--per-rank")[0]
    assert relative_error(reference, spread) < 1e-5


def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    start = time.monotonic()
    proc = run_job(2, "--out", tmp_path, "--epochs", 3, "--fail-rank", 1, timeout=40)
    seconds = time.monotonic() - start
    assert proc.returncode not in (0, 124), proc.stdout + proc.stderr  # 124: killed by timeout
    assert seconds < 30
    assert "rank 1 of 2 failed" in proc.stderr and "boom from rank 1 at batch 5" in proc.stderr


def test_checkpoint_from_two_ranks_resumes_in_one_process(single, tmp_path):
    _, reference = single
    trained(2, tmp_path / "two", "--epochs", 2)
    resumed = trained(1, tmp_path / "one", "--epochs", 3, "--resume", tmp_path / "two" / "rank0" / "ckpt-2.h5")[0]
    assert relative_error(reference, resumed) < 1e-5


def test_checkpoint_from_one_process_resumes_on_two_ranks(single, tmp_path):
    folder, reference = single
    resumed = trained(2, tmp_path, "--epochs", 3, "--resume", folder / "rank0" / "ckpt-2.h5")[0]
    assert relative_error(reference, resumed) < 1e-5


def test_cli_trains_under_mpiexec_and_with_workers(tiny_dataset, tmp_path):
    cli = [sys.executable, "-m", "mlp_gpu.cli", "train", "--data", str(tiny_dataset), "--backend", "numpy",
           "--epochs", "2", "--hidden", "16", "--validation-size", "40", "--verbose", "0", "--json"]
    results = {}
    for name, prefix, extra in (("mpiexec", [find_mpiexec(), "-n", "2"], []), ("workers", [], ["--workers", "2"])):
        out = tmp_path / f"{name}.h5"
        proc = subprocess.run(["timeout", "-k", "5", str(LIMIT), *prefix, *cli, *extra, "--output", str(out)],
                              capture_output=True, text=True, timeout=LIMIT + 15, env=_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stdout.strip().splitlines()
        assert len(lines) == 1, proc.stdout  # rank 0 alone reports
        results[name] = json.loads(lines[0])
        assert out.exists() and results[name]["epochs"] == 2
    assert results["mpiexec"]["test_accuracy"] == results["workers"]["test_accuracy"]


def test_bench_dist_job_reports_its_all_reduce_time():
    from mlp_gpu.benchmarks.dist import _job

    result = _job(ranks=2, threads=1, batch=256, rows=1024, epochs=2, timeout=LIMIT)
    assert result["ranks"] == 2 and result["steps"] == 4 and len(result["epoch_seconds"]) == 2
    assert 0 < result["allreduce_seconds"][-1] < result["epoch_seconds"][-1] and result["allreduce_alone_s"] > 0


def _nccl_or_skip():
    from mlp_gpu.backend.cuda import nccl as nccl_engine

    try:
        return nccl_engine.import_nccl()[1]
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.gpu
@requires_gpu
def test_nccl_names_the_engine_uses_exist_in_the_installed_cupy():
    from mlp_gpu.backend.cuda import nccl as nccl_engine

    nccl = _nccl_or_skip()
    missing = [n for n in nccl_engine.NCCL_FUNCTIONS + nccl_engine.NCCL_CONSTANTS if not hasattr(nccl, n)]
    missing += [m for m in nccl_engine.NCCL_METHODS if not hasattr(nccl.NcclCommunicator, m)]
    assert missing == []


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("graph", [False, True])
def test_nccl_on_one_rank_trains_like_one_process(graph):
    from mlp_gpu import SGD, Dense, Input, Sequential, get_backend
    from mlp_gpu.backend.cuda.nccl import NcclCommunicator

    _nccl_or_skip()
    comm = NcclCommunicator(distributed.SingleProcess())
    x, y = np.random.default_rng(0).normal(size=(500, 20)).astype(np.float32), np.arange(500) % 3
    weights = []
    for distribute in ("single", comm):
        backend = get_backend("cupy", graph=graph)
        model = Sequential([Input((20,)), Dense(16, "relu"), Dense(3, "softmax")], backend=backend)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=SGD(0.05, momentum=0.9), metrics=["accuracy"], seed=0)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=1, distribute=distribute)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    if graph:  # captured once and replayed: Python sees the captures and the eager last batches only
        assert "two graphs" not in backend.route["route"]
        assert 1 <= comm.allreduce_calls < 2 * 16
    else:
        assert comm.allreduce_calls >= 2 * 16
