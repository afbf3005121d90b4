"""How the program was started (the variables MPI launchers set) and `--workers N` (through mpiexec)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Set for each rank by: MPICH/Hydra and Intel MPI (PMI_RANK), Open MPI (OMPI_COMM_WORLD_RANK),
# PMIx launchers such as Open MPI 5 and srun --mpi=pmix (PMIX_RANK), MVAPICH (MV2_COMM_WORLD_RANK).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def launcher_variable(environ=None) -> str | None:
    """The name of the MPI launcher's rank variable in the environment, or None when not under one."""
    environ = os.environ if environ is None else environ
    return next((name for name in RANK_VARIABLES if name in environ), None)


def find_mpiexec() -> str:
    """mpiexec from this Python's own bin folder (the `mpich` wheel puts it there), else from PATH."""
    here = str(Path(sys.executable).parent)
    found = shutil.which("mpiexec", path=here) or shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("--workers: mpiexec not found next to this Python or on PATH; install an MPI with "
                           "`pip install 'mlp_gpu[distributed]'` (mpi4py and mpich)")
    return found


def spawn_workers(workers: int, argv: list[str], timeout: float | None = None) -> int:
    """Run ``python -m mlp_gpu.cli ARGV`` as ``workers`` ranks under mpiexec on this machine; its exit code."""
    if launcher_variable() is not None:
        raise RuntimeError(f"--workers {workers}: this process already runs under an MPI launcher "
                           f"({launcher_variable()} is set); start it either with mpiexec or with --workers")
    cmd = [find_mpiexec(), "-n", str(workers), sys.executable, "-m", "mlp_gpu.cli", *argv]
    return subprocess.run(cmd, timeout=timeout).returncode
