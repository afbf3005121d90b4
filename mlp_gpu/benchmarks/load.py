"""The loaded scenario: one busy competitor process per CPU while some cells train, as on a shared machine
(a notebook beside other jobs, GridSearchCV's workers, CI runners)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

BUSY = "while True: pass"


@contextlib.contextmanager
def busy_competitors(count: int | None = None, settle: float = 0.5):
    """Run ``count`` (default: one per CPU of the machine) processes that spin until the block ends; yields
    their pids. ``settle``: seconds given to them to start spinning before the block runs."""
    count = (os.cpu_count() or 1) if count is None else count
    processes = [subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL) for _ in range(count)]
    try:
        time.sleep(settle)
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
