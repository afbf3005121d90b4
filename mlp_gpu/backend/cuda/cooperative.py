"""Cooperative launches on a GPU, for the persistent route (persistent_step.py, kernels/persistent_step.cu).

``CooperativeLaunches`` is mixed into the CuPy backend: the kernel compiles as every other (one
``cupy.RawModule`` per file, no cooperative_groups: the kernel's grid barrier is common.cuh's grid_sync), and
is launched through the driver's ``cuLaunchCooperativeKernel`` (CuPy's ``cupy.cuda.driver``), which refuses a
grid larger than can be resident at once -- the guarantee a grid-wide barrier needs. The grid is sized from
the occupancy API (``cuOccupancyMaxActiveBlocksPerMultiprocessor`` times the multiprocessors).
"""
from __future__ import annotations

import ctypes

import numpy as np

_ATTR_MAX_DYNAMIC_SHARED = 8  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
_SCALAR_TYPES = {np.dtype(np.int32): ctypes.c_int, np.dtype(np.uint32): ctypes.c_uint,
                 np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.float32): ctypes.c_float,
                 np.dtype(np.float64): ctypes.c_double}
EPOCH = 1 << 30  # steps a launch may take by default: the trainer hands over at most an epoch's


class CooperativeLaunches:
    """shared_memory_limit, resident_blocks, max_persistent_blocks and launch_cooperative over ``self.xp`` (CuPy) and
    ``self._function(name)`` (the compiled cupy.RawKernel), as persistent_step.PersistentStep asks of its runner."""

    def _properties(self) -> dict:
        cp = self.xp
        return cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)

    def shared_memory_limit(self) -> int:
        """Dynamic shared memory one block may have once the kernel's attribute is raised (sm_90: 227 KB)."""
        return int(self._properties()["sharedMemPerBlockOptin"])

    def max_persistent_blocks(self) -> int:
        """One block per multiprocessor: a second would only split its shared memory and add barrier arrivals
        (a lead: no GPU has timed the alternatives yet)."""
        return int(self._properties()["multiProcessorCount"])

    def _allow_shared(self, name, shared_mem):
        function = self._function(name).kernel  # cupy.cuda.function.Function: the CUfunction is .ptr
        self.xp.cuda.driver.funcSetAttribute(function.ptr, _ATTR_MAX_DYNAMIC_SHARED, int(shared_mem))
        return function

    def resident_blocks(self, name, threads, shared_mem) -> int:
        props = self._properties()
        if not props.get("cooperativeLaunch", 1):
            return 0
        function = self._allow_shared(name, shared_mem)
        per_sm = self.xp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(function.ptr, int(threads),
                                                                               int(shared_mem))
        return int(per_sm) * int(props["multiProcessorCount"])

    def launch_cooperative(self, name, grid, block, shared_mem, args) -> None:
        function = self._allow_shared(name, shared_mem)
        holders = [ctypes.c_void_p(a.data.ptr) if hasattr(a, "data") and not isinstance(a, np.generic)
                   else _SCALAR_TYPES[np.dtype(a.dtype)](a.item()) for a in args]
        params = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        self.xp.cuda.driver.launchCooperativeKernel(function.ptr, *grid, *block, int(shared_mem),
                                                    self.xp.cuda.get_current_stream().ptr,
                                                    ctypes.addressof(params))
