"""BLAS threads on the CPU (backend/numpy/threads.py): the usable CPUs, the per-product rule, the caller's limits
and the oversubscription guard, checked on the BLAS libraries' own thread counts while steps run."""
import logging
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import threadpoolctl

from mlp_gpu import SGD, Adam, Dense, Input, Sequential
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.numpy import threads as cpu_threads
from mlp_gpu.backend.numpy.threads import NEVER, ThreadPolicy, ThreadRule

DROP = "one BLAS thread per product"


def blas_threads_now() -> int:
    """The smallest thread count among the BLAS libraries loaded, read through threadpoolctl."""
    return min(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")


def fit_watching_threads(backend, optimizer=SGD, rows=320, epochs=2):
    """Train the reference net's shape (784-300-100-10, batch 32) on random data; the BLAS thread count
    seen inside every step (read as the loss runs, between the forward and the backward products). The
    backend runs its steps op by op (``compiled=False``), so that the loss is a Python call to watch; the
    compiled step switches counts as the same plan says (test_compiled_step.py)."""
    seen = []
    loss_grad = backend.loss_grad

    def watching(*args, **kwargs):
        seen.append(blas_threads_now())
        return loss_grad(*args, **kwargs)

    backend.loss_grad = watching
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (rows, 784), dtype=np.uint8), rng.integers(0, 10, rows)
    model = Sequential([Input((784,)), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer(0.01), metrics=["accuracy"], seed=0)
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return seen


def quiet_backend():
    """A backend on the default rule (not this machine's cached calibration), whose guard sees no other process
    and no slow steps and which does not probe (the machine running the tests may be busy, and a shared host's
    speed swings 2x within seconds: its slowest window of steps can be 4x its fastest)."""
    return NumpyBackend(threads=ThreadPolicy(ThreadRule(), others=lambda: 0, slow=math.inf, probe_every=None),
                        compiled=False)


# Two CPUs, and no thread limit already in force (OPENBLAS_NUM_THREADS=1 is a caller's limit, honoured).
two_cpus = pytest.mark.skipif(cpu_threads.usable_cpus() < 2 or blas_threads_now() < 2,
                              reason="needs two usable CPUs and BLAS allowed two threads")


# ---- usable CPUs ---------------------------------------------------------------------------------
def write_cgroup(tmp_path, lines, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text("\n".join(lines) + "\n")
    root = tmp_path / "fs"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return proc, root


def test_cgroup_v2_quota_is_the_tightest_along_the_path(tmp_path):
    proc, root = write_cgroup(tmp_path, ["0::/job/step"], {"job/cpu.max": "150000 100000\n",
                                                           "job/step/cpu.max": "max 100000\n"})
    assert cpu_threads.cgroup_cpu_limit(proc, root) == 1.5
    proc, root = write_cgroup(tmp_path / "b", ["0::/job"], {"job/cpu.max": "max 100000\n"})
    assert cpu_threads.cgroup_cpu_limit(proc, root) is None


def test_cgroup_v1_quota_and_a_container_seeing_its_own_root(tmp_path):
    proc, root = write_cgroup(tmp_path, ["4:memory:/x", "3:cpu,cpuacct:/docker/abc"],
                              {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cpu_threads.cgroup_cpu_limit(proc, root) == 0.5  # /docker/abc is not there: the mount's root is ours
    proc, root = write_cgroup(tmp_path / "b", ["1:cpu:/"], {"cpu/cpu.cfs_quota_us": "-1\n",
                                                            "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpu_threads.cgroup_cpu_limit(proc, root) is None


def test_usable_cpus_takes_the_quota_and_each_ranks_share(monkeypatch):
    monkeypatch.setattr(cpu_threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(cpu_threads, "cgroup_cpu_limit", lambda: None)
    assert cpu_threads.usable_cpus({}) == 8
    assert cpu_threads.usable_cpus({"MPI_LOCALNRANKS": "3"}) == 2  # --workers 3: each rank gets 8 // 3
    assert cpu_threads.usable_cpus({"OMPI_COMM_WORLD_LOCAL_SIZE": "16"}) == 1
    monkeypatch.setattr(cpu_threads, "cgroup_cpu_limit", lambda: 2.5)
    assert cpu_threads.usable_cpus({}) == 3


def test_the_rule_gives_a_thread_per_share_of_work_capped():
    rule = ThreadRule(work_per_thread=1000)
    assert [rule.threads(m, cap=4) for m in (10, 1999, 2000, 3500, 10 ** 9)] == [1, 1, 2, 3, 4]
    assert ThreadRule(NEVER).threads(10 ** 12, cap=64) == 1


# ---- the caller's limits and the plan ------------------------------------------------------------
@two_cpus
def test_a_quiet_machine_runs_the_large_products_on_several_threads():
    backend = quiet_backend()
    seen = fit_watching_threads(backend)
    assert backend.route["route"] == "fused-sgd"
    assert set(seen) == {2}, seen  # the 32 x 300 x 785 product's count, still set as the loss runs
    assert backend.threads.single is None


def test_a_callers_threadpool_limits_is_honoured():
    before = blas_threads_now()
    for optimizer in (SGD, Adam):  # the folded step and the general one
        backend = quiet_backend()
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            seen = fit_watching_threads(backend, optimizer)
            assert blas_threads_now() == 1  # left as the caller set it
        assert set(seen) == {1}, (optimizer, seen)
        assert backend.threads.cap == 1
    assert blas_threads_now() == before


@two_cpus
def test_the_general_step_picks_threads_per_product_and_restores_the_callers_count():
    backend = quiet_backend()
    seen = fit_watching_threads(backend, Adam)
    assert backend.route["route"] == "general"
    assert set(seen) == {2}, seen
    assert blas_threads_now() == backend.threads.caller


# ---- the oversubscription guard ------------------------------------------------------------------
@two_cpus
def test_busy_competitors_drop_the_backend_to_one_thread_logged_once(caplog):
    """One busy process per CPU, started here: the guard reads the machine's runnable threads."""
    competitors = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count())]
    try:
        time.sleep(0.5)  # they are running
        backend = NumpyBackend(compiled=False)
        with caplog.at_level(logging.INFO, logger="mlp_gpu"):
            seen = fit_watching_threads(backend, epochs=3)
            seen += fit_watching_threads(backend)  # a second fit on the same backend: no second message
    finally:
        for process in competitors:
            process.kill()
            process.wait()
    assert set(seen) == {1}, seen
    assert "runnable threads of other processes" in backend.threads.single
    assert sum(DROP in record.getMessage() for record in caplog.records) == 1


@two_cpus
def test_the_guard_drops_while_others_hold_the_cores_and_comes_back(caplog):
    load = [0]
    policy = ThreadPolicy(ThreadRule(1000), period=0.0, clear_checks=3, others=lambda: load[0], cpus=lambda: 2)
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        policy.begin()
        assert policy.threads(10 ** 6) == 2
        load[0] = 1  # one busy neighbour on a 2-CPU machine: our second thread would wait for it
        for _ in range(policy.samples - 1):
            policy.step_done(1e-3, time.perf_counter())
            assert policy.threads(10 ** 6) == 2  # fewer readings than samples: it may be a passing kernel thread
        policy.step_done(1e-3, time.perf_counter())
        assert policy.threads(10 ** 6) == 1
        load[0] = 0
        for _ in range(3):
            policy.step_done(1e-3, time.perf_counter())
        assert policy.threads(10 ** 6) == 2
        load[0] = 5
        for _ in range(policy.samples):
            policy.step_done(1e-3, time.perf_counter())
    assert policy.threads(10 ** 6) == 1 and policy.drops == 2
    assert sum(DROP in record.getMessage() for record in caplog.records) == 1


def test_a_probe_keeps_whichever_way_ran_faster_and_tries_again():
    """Steps take 2 ms with the plan's two threads and 1 ms on one (another tenant holds the second core), then
    the other way round: every probe_every seconds a probe tries the other way and the faster is kept."""
    policy = ThreadPolicy(ThreadRule(1000), others=lambda: 0, cpus=lambda: 2, probe_every=0.5, slow=math.inf)
    policy.begin()
    clock = [time.perf_counter()]
    cost = {True: 1e-3, False: 2e-3}  # one thread: 1 ms; two: 2 ms

    def steps(n):
        seen = []
        for _ in range(n):
            one = policy.one_thread() is not None
            seen.append(one)
            clock[0] += cost[one]
            policy.step_done(cost[one], clock[0])
        return seen

    assert policy.threads(10 ** 6) == 2
    seen = steps(400)  # 0.5 s at two threads, then a probe of one thread: kept
    assert seen[0] is False and seen[-1] is True and policy.switches == 1
    assert "another tenant holds a core" in policy.one_thread() and policy.threads(10 ** 6) == 1
    assert policy.single is None  # the guard saw nothing: the probe decided
    cost[True], cost[False] = 2e-3, 1e-3  # the tenant left
    seen = steps(400)
    assert seen[-1] is False and policy.switches == 2 and policy.one_thread() is None
    before = policy.switches
    steps(2000)  # two threads stay faster: each probe tries one thread for a few steps and goes back
    assert policy.switches == before and policy.one_thread() is None


@two_cpus
def test_steps_far_slower_than_the_fastest_seen_drop_for_the_rest_of_the_fit():
    policy = ThreadPolicy(ThreadRule(1000), period=0.0, slow=4.0, clear_checks=1, others=lambda: None,
                          cpus=lambda: 2)
    policy.begin()

    def window(seconds):
        for _ in range(5):
            policy.step_done(seconds, -1.0)  # no check until the window is full
        policy.step_done(seconds, time.perf_counter())

    window(1e-3)
    window(3e-3)  # slower, within the bound
    assert policy.single is None
    window(5e-3)
    assert "times as long as the fastest" in policy.single
    window(1e-3)
    assert policy.threads(10 ** 6) == 1  # no way to tell the neighbours left: it holds until the next fit
    policy.begin()
    assert policy.single is None


def test_one_usable_cpu_never_threads():
    policy = ThreadPolicy(ThreadRule(1), others=lambda: 0, cpus=lambda: 1)
    policy.begin()
    assert policy.threads(10 ** 9) == 1 and policy.plan(10 ** 9) == 1


# ---- calibration ---------------------------------------------------------------------------------
def test_calibration_is_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cpu_threads, "others_runnable", lambda: 0)
    assert cpu_threads.cached_rule(2).source == "default"
    got = cpu_threads.calibrate(cpus=2, shapes=((32, 10, 101), (32, 300, 785)))
    assert [(t["m"], t["n"], t["k"]) for t in got["timings"]] == [(32, 10, 101), (32, 300, 785)]
    assert all(t["us_1"] > 0 and t["us_2"] > 0 for t in got["timings"])
    cached = cpu_threads.cached_rule(2)
    assert cached.work_per_thread == got["rule"].work_per_thread and cached.source.startswith("calibrated")
    assert cpu_threads.cached_rule(3).source == "default"  # another number of CPUs: not this calibration
    assert NumpyBackend().threads.rule is None  # read at the first fit, from the cache
    policy = ThreadPolicy(others=lambda: 0, cpus=lambda: 2)
    policy.begin()
    assert policy.rule == cached


def test_the_calibrated_rule_starts_where_a_second_thread_paid():
    timed = [{"m": 32, "n": 300, "k": 785, "us_1": 149.0, "us_2": 83.0},   # issue 30's machine, quiet
             {"m": 32, "n": 10, "k": 101, "us_1": 2.0, "us_2": 2.0},
             {"m": 32, "n": 100, "k": 301, "us_1": 21.1, "us_2": 13.9},
             {"m": 32, "n": 64, "k": 128, "us_1": 5.0, "us_2": 4.9}]
    assert cpu_threads.smallest_paying(timed) == 32 * 100 * 301
    assert cpu_threads.smallest_paying(timed, gain=1.6) == 32 * 300 * 785
    assert cpu_threads.smallest_paying(timed[1:2]) is None


def test_calibration_waits_for_a_quiet_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cpu_threads, "others_runnable", lambda: 3)
    got = cpu_threads.calibrate(cpus=2)
    assert got["timings"] == [] and "not calibrated" in got["note"] and "cache" not in got
    assert not (tmp_path / "mlp_gpu").exists()
    assert cpu_threads.calibrate(cpus=1)["rule"].work_per_thread == NEVER


def _fit_in_worker(_):
    """A short fit in a joblib worker: (the policy's cap, the caller's count it read)."""
    backend = quiet_backend()
    fit_watching_threads(backend, rows=64, epochs=1)
    return backend.threads.cap, backend.threads.caller


def test_a_joblib_workers_thread_limit_is_honoured():
    joblib = pytest.importorskip("joblib")
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        got = joblib.Parallel(n_jobs=2)(joblib.delayed(_fit_in_worker)(i) for i in range(2))
    assert got == [(1, 1), (1, 1)]
