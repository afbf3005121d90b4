"""How many BLAS threads the NumPy backend gives each product: as many as pay, never more than the CPUs
this process may use, and one while the machine has more runnable work than CPUs.

Why it matters: OpenBLAS's workers spin between calls and meet at a barrier in every product. When a
busy neighbour holds a core, the worker that lost its core makes the others wait for the scheduler,
and a batch-32 epoch took 32 times as long with three busy processes on two cores (issue 30), where one
thread would have taken its fair share. Environment variables (OPENBLAS_NUM_THREADS) are read once,
when the library loads; the counts here are set through the libraries' own calls, found by threadpoolctl
(the OpenBLAS in NumPy's wheel, which the prepared products use, and SciPy's own, which its wrappers use).

- ``usable_cpus``: the affinity mask, the cgroup CPU quota (v2 ``cpu.max``, v1 ``cfs_quota_us``) and,
  under an MPI launcher, this rank's share of the machine's cores.
- ``ThreadRule``: threads for a product of m x n x k multiply-adds: one more thread for every
  ``work_per_thread`` of them, measured by ``calibrate`` (``mlp-gpu bench`` runs it and caches the result
  per machine) or a default.
- ``ThreadPolicy``: the backend's per-step choices: caps the rule at the usable CPUs and at the count the
  caller left (``threadpoolctl.threadpool_limits`` around ``fit``, or a joblib worker's limits), and
  its guard drops to one thread when other processes' runnable threads leave no core free, or when
  steps take far longer than they did, logging that once.
"""
from __future__ import annotations

import collections
import ctypes
import functools
import json
import logging
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import threadpoolctl

from . import blas as prepared_blas

log = logging.getLogger("mlp_gpu")

# Ranks of one MPI job on this machine: MPICH / Hydra, Open MPI, MVAPICH.
LOCAL_RANK_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


# ---- the CPUs this process may use ---------------------------------------------------------------
def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (all online CPUs where the platform has no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")):
    """The CPU quota of this process's cgroup in CPUs (quota / period, the tightest along the path up
    to the root), or None where none is set. cgroup v2's ``cpu.max`` and v1's ``cpu.cfs_quota_us``."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    limits = []
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified tree
            top, files = root, [("cpu.max", None)]
        elif "cpu" in controllers.split(","):
            top, files = root / controllers, [("cpu.cfs_quota_us", "cpu.cfs_period_us")]
        else:
            continue
        here = top / path.lstrip("/")
        if not here.is_dir():  # a container sees its own cgroup at the mount's root
            here = top
        while True:
            for quota_file, period_file in files:
                quota = _read(here / quota_file)
                if quota is None:
                    continue
                if period_file is None:
                    quota, _, period = quota.partition(" ")
                else:
                    period = _read(here / period_file) or ""
                if quota not in ("max", "-1") and quota.isdigit() and period.isdigit() and int(period) > 0:
                    limits.append(int(quota) / int(period))
            if here == top or top not in here.parents:
                break
            here = here.parent
    return min(limits) if limits else None


def local_ranks(environ=None) -> int:
    """How many ranks of this MPI job share the machine (1 when not under a launcher that says)."""
    environ = os.environ if environ is None else environ
    for name in LOCAL_RANK_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def usable_cpus(environ=None) -> int:
    """CPUs this process may keep busy: its affinity mask, capped by the cgroup quota (rounded up), divided
    among the ranks of an MPI job on this machine; at least 1."""
    cpus = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return max(1, cpus // local_ranks(environ))


# ---- other processes' runnable threads -----------------------------------------------------------
def _own_runnable() -> int:
    """Threads of this process now running or runnable (state R): OpenBLAS workers that spin count."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        stat = _read(Path("/proc/self/task", tid, "stat"))
        if stat is not None and stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R":
            count += 1
    return max(count, 1)  # this thread, reading


def others_runnable() -> int | None:
    """Runnable threads of other processes on the machine now (the kernel's running count in
    /proc/loadavg less this process's own), or None where /proc/loadavg is absent."""
    text = _read(Path("/proc/loadavg"))
    if text is None:
        return None
    running = int(text.split()[3].split("/")[0])
    return max(0, running - _own_runnable())


# ---- the BLAS libraries' thread counts -----------------------------------------------------------
class BlasPools:
    """The thread counts of the BLAS libraries loaded in this process, set together.

    threadpoolctl finds the libraries (NumPy's OpenBLAS, SciPy's where it is another one) and their
    ``openblas_set_num_threads`` symbols; ``set`` calls those directly, so that switching before a
    product costs one foreign call, and only when the count changes.
    """

    def __init__(self):
        controller = threadpoolctl.ThreadpoolController()
        self.libraries = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
        self.setters = [_raw_setter(lib) for lib in self.libraries]  # each library's own call where it has one
        self.current = None

    def describe(self) -> list[str]:
        return [f"{lib.internal_api} {lib.version} ({Path(lib.filepath).name})" for lib in self.libraries]

    def get(self) -> int:
        """The smallest thread count any of them has now: the limit a caller left in force."""
        counts = [lib.get_num_threads() for lib in self.libraries]
        counts = [c for c in counts if c]
        self.current = min(counts) if counts else 1
        return self.current

    def set(self, threads: int) -> None:
        if threads != self.current:
            for setter in self.setters:
                setter(threads)
            self.current = threads


def _raw_setter(lib):
    """The library's own set-threads function where threadpoolctl found an OpenBLAS, else its method."""
    if lib.internal_api == "openblas" and getattr(lib, "threading_layer", None) != "openmp":
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                function = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if function is not None:
                    function.argtypes, function.restype = [ctypes.c_int], None
                    return function
    return lib.set_num_threads


@functools.lru_cache(maxsize=1)
def blas_pools() -> BlasPools:
    """The process's BLAS pools (one set of libraries per process: their counts are process-wide)."""
    return BlasPools()


# ---- how many threads a product gets -------------------------------------------------------------
DEFAULT_WORK_PER_THREAD = 1 << 18
"""Multiply-adds each thread needs before another one pays, where nothing was calibrated: about 250
thousand (10 us of one core's SGEMM), below which OpenBLAS's own threads cost more than they save."""

OPENBLAS_ONE_THREAD = 65536 * 4
"""OpenBLAS's gemm runs products of fewer multiply-adds on the calling thread (SMP_THRESHOLD_MIN times
GEMM_MULTITHREAD_THRESHOLD in its interface/gemm.c)."""

NEVER = 1 << 62  # the calibrated answer where a second thread never paid

# ThreadPolicy's probes: at least this many steps and seconds, at most this many steps; the other way is kept
# when its median step is this many times faster
PROBE_MIN_STEPS, PROBE_MIN_SECONDS, PROBE_MAX_STEPS, PROBE_GAIN = 8, 0.02, 256, 1.1


@dataclass(frozen=True)
class ThreadRule:
    """Threads for one product: one per ``work_per_thread`` multiply-adds, at least one."""
    work_per_thread: int = DEFAULT_WORK_PER_THREAD
    source: str = "default"

    def threads(self, macs: int, cap: int) -> int:
        return max(1, min(cap, macs // self.work_per_thread))


def cache_path() -> Path:
    """Where calibrations are kept: $XDG_CACHE_HOME/mlp_gpu (default ~/.cache/mlp_gpu)/blas_threads.json."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlp_gpu" / "blas_threads.json"


def machine_key(cpus: int) -> str:
    """What a calibration holds for: the CPU model, the usable CPUs and the BLAS libraries."""
    model = platform.processor() or platform.machine()
    text = _read(Path("/proc/cpuinfo")) or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model} | {cpus} cpus | " + ", ".join(blas_pools().describe())


def cached_rule(cpus: int) -> ThreadRule:
    """The calibration cached for this machine, else the default rule."""
    try:
        entry = json.loads(cache_path().read_text()).get(machine_key(cpus))
    except (OSError, ValueError):
        entry = None
    if not isinstance(entry, dict) or not isinstance(entry.get("work_per_thread"), int):
        return ThreadRule()
    return ThreadRule(entry["work_per_thread"], f"calibrated {entry.get('date', '')}".strip())


def save_rule(cpus: int, rule: ThreadRule, timings: list) -> Path:
    path = cache_path()
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    table[machine_key(cpus)] = {"work_per_thread": rule.work_per_thread, "date": time.strftime("%Y-%m-%d %H:%M"),
                                "timings": timings}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(path)
    return path


# batch-32 products of the reference net and around it: (m, n, k)
CALIBRATION_SHAPES = ((32, 10, 101), (32, 100, 10), (32, 64, 128), (32, 100, 301), (301, 100, 32), (32, 300, 100),
                      (32, 256, 512), (32, 300, 785), (785, 300, 32), (128, 300, 785), (32, 1024, 1024))


def _paired_times(call, pools, pairs: int = 9, calls: int = 20) -> dict:
    """The product timed on one thread and on two, ``pairs`` times each, the two counts back to back in
    alternating order: {"us_1", "us_2": the medians in microseconds, "speedup": the median of each pair's
    ratio}. A shared host's speed drifts 2x within seconds (its other tenants, unseen in the load average),
    and a pair's two timings drift alike, where separate minima over a second apart did not: one such
    calibration found two threads paying nowhere below 30 million multiply-adds on a machine where they
    run the 7.5 million of the reference net's first layer 1.7 times as fast."""
    one, two, ratios = [], [], []
    for pair in range(pairs):
        got = {}
        for threads in ((1, 2) if pair % 2 == 0 else (2, 1)):
            pools.set(threads)
            call()  # the workers awake at this count
            start = time.perf_counter()
            for _ in range(calls):
                call()
            got[threads] = (time.perf_counter() - start) / calls
        one.append(got[1])
        two.append(got[2])
        ratios.append(got[1] / got[2])
    return {"us_1": round(statistics.median(one) * 1e6, 2), "us_2": round(statistics.median(two) * 1e6, 2),
            "speedup": round(statistics.median(ratios), 3)}


def smallest_paying(timings, gain: float = 1.15) -> int | None:
    """The fewest multiply-adds among the timed products that two threads ran ``gain`` times as fast as one
    (their ``speedup``, paired; else the ratio of their times)."""
    paying = [t["m"] * t["n"] * t["k"] for t in timings if t.get("speedup", t["us_1"] / t["us_2"]) >= gain]
    return min(paying) if paying else None


def calibrate(cpus: int | None = None, gain: float = 1.15, shapes=CALIBRATION_SHAPES, save: bool = True) -> dict:
    """Time the prepared float32 product at each shape with one and with two threads, in pairs
    (``_paired_times``); the rule's
    ``work_per_thread`` is half the smallest product that two threads ran ``gain`` times faster (NEVER
    where none did: one thread is simply faster). Measures only on a quiet machine, else returns the
    cached or default rule and says why. Returns {"rule", "timings", "cpus", "note"[, "cache"]}."""
    cpus = usable_cpus() if cpus is None else cpus
    pools = blas_pools()
    if cpus < 2:
        return {"rule": ThreadRule(NEVER, "one usable CPU"), "timings": [], "cpus": cpus,
                "note": "one usable CPU: every product runs on one thread"}
    readings = []
    for _ in range(5):  # the fewest of a few readings: a passing kernel thread is no neighbour
        readings.append(others_runnable())
        time.sleep(0.01)
    others = None if None in readings else min(readings)
    if others is not None and others > 0:
        return {"rule": cached_rule(cpus), "timings": [], "cpus": cpus,
                "note": f"not calibrated: {others} runnable threads of other processes"}
    rng = np.random.default_rng(0)
    before = pools.get()
    timings = []
    try:
        for m, n, k in shapes:
            a, b, c = (rng.random(s, dtype=np.float32) for s in ((m, k), (k, n), (m, n)))
            timings.append({"m": m, "n": n, "k": k, **_paired_times(prepared_blas.gemm(a, b, c), pools)})
    finally:
        pools.set(before)
    smallest = smallest_paying(timings, gain)
    rule = ThreadRule(NEVER if smallest is None else max(1, smallest // 2), f"calibrated {time.strftime('%Y-%m-%d')}")
    out = {"rule": rule, "timings": timings, "cpus": cpus,
           "note": "one thread was as fast at every shape" if smallest is None else
           f"two threads paid from {smallest:,} multiply-adds"}
    if save:
        out["cache"] = str(save_rule(cpus, rule, timings))
    return out


# ---- the backend's choices, step by step ---------------------------------------------------------
class ThreadPolicy:
    """The NumPy backend's thread choices and its oversubscription guard.

    ``begin()`` at the start of a fit's steps sets ``cap``, the most threads any product gets: the usable
    CPUs or the count the caller left, whichever is smaller. ``plan(macs)`` / ``threads(macs)`` for one
    product; ``step_done`` after each step feeds the guard, which reads other processes' runnable threads
    every ``period`` seconds (the fewest of the last ``samples`` readings: half a second of them, so that
    kernel threads passing now and then do not count; a drop costs up to a second of one thread, a whole
    batch-32 epoch of the reference net) and compares step times with the fastest window seen. It drops
    every product to one thread while our threads and theirs outnumber the CPUs, back after
    ``clear_checks`` clear readings, and for the rest of the fit once steps ran ``slow`` times slower than
    the fastest. ``run_step`` frames each step of every route with these choices.

    What the load average cannot show, a probe measures: on a shared host another tenant may hold the core
    our second thread runs on (a virtual CPU the host gives to someone else), and then two threads run a
    batch-32 step 1.3 times slower than one, for seconds at a time, while at other times they run it 1.5
    times faster (issue 30, measured in alternating blocks of 100 steps on the 2-core machine). Every
    ``probe_every`` seconds the next few steps (at least 8 and 20 ms) run the other way (one thread if
    the plan's counts are in force, the plan's counts if one thread is), and the faster of the probe and
    as many steps just before it (medians) is kept until the next probe. ``one_thread()`` says what holds
    for the next step.
    """

    def __init__(self, rule: ThreadRule | None = None, period: float = 0.1, slow: float = 4.0, clear_checks: int = 10,
                 samples: int = 5, others=others_runnable, cpus=usable_cpus, probe_every: float | None = 1.0):
        self.rule, self.period, self.slow, self.clear_checks = rule, period, slow, clear_checks
        self.samples, self.probe_every = samples, probe_every
        self._others, self._cpus = others, cpus
        self.cap = self.caller = None  # read by begin(), at the start of every fit
        self.single = None      # why every product runs on one thread now, or None
        self.logged = False     # the drop is logged once per backend
        self.drops = 0          # how often the guard dropped to one thread
        self.switches = 0       # how often a probe found the other way faster
        self._one = self._probe = None

    def begin(self) -> None:
        """Read the caller's limit and the usable CPUs before a fit's first step; the first check now."""
        pools = blas_pools()
        self.caller = pools.get()
        cpus = self._cpus()
        if self.rule is None:
            self.rule = cached_rule(cpus)
        self.cap = max(1, min(cpus, self.caller))
        self.single, self._clear, self._sticky = None, 0, False
        self._window, self._next_check, self._fastest = [], 0.0, math.inf
        self._one, self._probe, self._probing_from = None, None, None  # the probes' choice and the running probe
        self._before = collections.deque(maxlen=PROBE_MAX_STEPS)      # step times in the choice now in force
        self._next_probe = time.perf_counter() + (self.probe_every or 0.0)
        self._recent = collections.deque(maxlen=self.samples)
        for _ in range(self.samples - 1):  # the first check reads as many times as later checks remember
            self._recent.append(self._others())
            time.sleep(0.001)
        self._check(time.perf_counter())

    def one_thread(self) -> str | None:
        """Why every product of the next step runs on one thread (the guard's drop, a probe's finding, a probe
        running), or None."""
        return self.single or self._one

    def threads(self, macs: int) -> int:
        """Threads for a product of ``macs`` multiply-adds now."""
        return 1 if self.one_thread() or self.cap == 1 else self.rule.threads(macs, self.cap)

    def plan(self, macs: int) -> int | None:
        """Threads for a product of a prepared step while the machine has free cores; None where OpenBLAS
        runs the product on one thread whatever the count (leave the count as it is: no call)."""
        return None if macs < OPENBLAS_ONE_THREAD else self.rule.threads(macs, self.cap)

    def run_step(self, body):
        """One training step under the policy: ``body(single)`` with every product on one thread where
        ``one_thread()`` says so (``single``: leave the count alone), the caller's count back after it, its time
        fed to the guard and the probes. Returns what ``body`` returns."""
        pools = blas_pools()
        start = time.perf_counter()
        single = self.one_thread() is not None  # the guard's or a probe's choice holds for the whole step
        if single:
            pools.set(1)
        try:
            result = body(single)
        finally:
            pools.set(self.caller)  # the caller's count between steps
        end = time.perf_counter()
        self.step_done(end - start, end)
        return result

    def step_done(self, seconds: float, now: float) -> None:
        """One step took ``seconds``; check the machine every ``period``, probe every ``probe_every``."""
        self._window.append(seconds)
        if now >= self._next_check:
            self._check(now)
        self._adapt(seconds, now)

    def _adapt(self, seconds: float, now: float) -> None:
        if self.single or self.cap == 1 or self.probe_every is None:  # the guard's choice, or nothing to choose
            if self._probe is not None:  # a probe the guard interrupted: the choice before it
                self._one, self._probe = self._probing_from, None
            return
        if self._probe is None:
            self._before.append(seconds)
            if now >= self._next_probe and len(self._before) >= PROBE_MIN_STEPS:
                self._probe, self._probing_from = [], self._one
                self._one = None if self._one else "a probe of one thread"
            return
        probe = self._probe
        probe.append(seconds)
        if len(probe) < PROBE_MAX_STEPS and (len(probe) < PROBE_MIN_STEPS or sum(probe) < PROBE_MIN_SECONDS):
            return
        before = statistics.median(list(self._before)[-len(probe):])
        after = statistics.median(probe)
        if after * PROBE_GAIN < before:  # the other way is faster: keep it
            self.switches += 1
            self._one = None if self._probing_from else (
                f"one thread ran a step in {after * 1e6:.0f} us against {before * 1e6:.0f} us with up to {self.cap}: "
                "another tenant holds a core the load average does not show")
            self._before = collections.deque(probe, maxlen=PROBE_MAX_STEPS)
            log.debug("blas threads: %s", self._one or f"back to up to {self.cap} threads: a probe ran faster")
        else:
            self._one = self._probing_from
        self._probe, self._next_probe = None, now + self.probe_every

    def _check(self, now: float) -> None:
        self._next_check = now + self.period
        window, self._window = self._window, []
        if self.cap == 1 or self._sticky:
            return
        self._recent.append(self._others())
        others = None if None in self._recent else min(self._recent)
        if others is not None and others + self.cap > (os.cpu_count() or 1):
            self._clear = 0
            self._drop(f"{others} runnable threads of other processes and up to {self.cap} of ours "
                       f"on {os.cpu_count()} CPUs")
            return
        if len(window) >= 5 and not self.single:
            mean = statistics.fmean(window)
            if mean > self.slow * self._fastest:
                self._sticky = True
                self._drop(f"steps took {mean / self._fastest:.1f} times as long as the fastest seen")
                return
            self._fastest = min(self._fastest, mean)
        if self.single:
            self._clear += 1
            if self._clear >= self.clear_checks:
                log.debug("blas threads: the machine has free CPUs again; back to up to %d threads", self.cap)
                self.single = None
                self._fastest = math.inf

    def _drop(self, why: str) -> None:
        if self.single:
            return
        self.single, self.drops = why, self.drops + 1
        if not self.logged:
            self.logged = True
            log.info("numpy backend: one BLAS thread per product while the machine is oversubscribed (%s): "
                     "a multi-threaded BLAS stalls when its threads wait for cores", why)

    def describe(self) -> dict:
        return {"cap": self.cap, "caller_threads": self.caller, "rule": self.rule and self.rule.source,
                "work_per_thread": self.rule and self.rule.work_per_thread, "single": self.single,
                "probe_single": self._one, "probe_switches": self.switches}
