"""The persistent route on the CPU: the host harness runs kernels/persistent_step.cu with every block of the
grid at once (a cooperative launch), on as many blocks as the test asks for.

``HostPersistentOps.make_runner`` does what CupyBackend's does on the persistent route: a runner of up to
``steps_per_launch`` steps per call, each call one cooperative launch; a model outside the route falls back to
the general step, and ``route`` says which ran and why.
"""
from __future__ import annotations

from mlp_gpu.backend.base import StepRunner
from mlp_gpu.backend.cuda.persistent_step import PersistentRunner, PersistentStep

from .host_ops import HostCudaOps

SHARED_LIMIT = 227 * 1024  # what an sm_90 block may have (cudaFuncAttributeMaxDynamicSharedMemorySize)


class HostPersistentOps(HostCudaOps):
    name = "host-cuda-persistent"

    def __init__(self, blocks: int, threads: int = 64, steps_per_launch: int = 1 << 30,
                 shared_limit: int = SHARED_LIMIT):
        super().__init__()
        self.blocks, self.threads, self.steps_per_launch = blocks, threads, steps_per_launch
        self.shared_limit = shared_limit
        self.route = None

    def shared_memory_limit(self) -> int:
        return self.shared_limit

    def max_persistent_blocks(self) -> int:
        return self.blocks

    def resident_blocks(self, name, threads, shared_mem) -> int:
        return self.blocks if shared_mem <= self.shared_limit else 0

    def make_runner(self, step, rows, max_steps=None, model=None, data=None, acc=None):
        try:
            persistent = PersistentStep(self, model, data, acc, rows, self.threads)
        except ValueError as exc:
            self.route = {"route": "eager", "reason": str(exc)}
            return StepRunner(step)
        self.route = {"route": "persistent", "reason": "harness", "blocks": persistent.grid,
                      "shared_mem": persistent.shared_mem}
        return PersistentRunner(persistent, self.steps_per_launch if max_steps is None else max_steps)
