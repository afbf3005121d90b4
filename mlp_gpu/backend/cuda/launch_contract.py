"""The checks a launch makes before it runs: each kernel states its launch contract in the comment
above its entry point (grid, block, what one thread does, preconditions), and the op that launches it
(``cuda_ops.py``, ``cuda_layer_ops.py``) asserts the preconditions with these helpers, raising
:class:`LaunchContractError` instead of letting a kernel read or write out of bounds."""
from __future__ import annotations

import numpy as np

from ..shared_constants import HYPER_SIZE

WARP = 32
INT32_MAX = 2**31 - 1
MAX_BLOCK_THREADS = 1024  # CUDA's limit on threads per block


class LaunchContractError(ValueError):
    """A launch would break the contract its kernel states above its entry point."""


def require(ok, kernel: str, what: str) -> None:
    if not ok:
        raise LaunchContractError(f"{kernel}: launch contract: {what}")


def check_array(kernel: str, name: str, a, shape=None, dtype=np.float32, size=None) -> None:
    """a is a C-contiguous array of this dtype (and shape, or number of elements): the kernels index it
    flat, as row * k + col."""
    wanted = "" if shape is None else f" of shape {tuple(shape)}"
    wanted += "" if size is None else f" of {size} elements"
    require(a.dtype == dtype and a.flags.c_contiguous and (shape is None or tuple(a.shape) == tuple(shape))
            and (size is None or a.size == size),
            kernel, f"{name} must be a C-contiguous {np.dtype(dtype).name} array{wanted}"
            f", got {a.dtype} {tuple(a.shape)}{'' if a.flags.c_contiguous else ' (not contiguous)'}")


def check_int32(kernel: str, **values) -> None:
    for name, value in values.items():
        require(0 <= value <= INT32_MAX, kernel, f"{name}={value} must fit the kernel's int")


def check_block(kernel: str, block: tuple, power_of_two: bool = False) -> None:
    """A block the kernel's shared arrays and barriers are sized for: whole warps, at most
    MAX_BLOCK_THREADS threads, and (for a tree sum) a power of two."""
    threads = int(np.prod(block))
    require(threads % WARP == 0 and threads <= MAX_BLOCK_THREADS, kernel,
            f"block {block} must be whole warps of at most {MAX_BLOCK_THREADS} threads")
    require(not power_of_two or threads & (threads - 1) == 0, kernel,
            f"block {block} must be a power of two (the tree sum halves it)")


def check_flat(kernel: str, params, hyper, *others) -> int:
    """An optimizer launch over one flat buffer: hyper holds the scalar slots, and params and every
    (label, array) in others hold the same number of floats. Returns that number."""
    size = params.size
    check_array(kernel, "hyper", hyper, (HYPER_SIZE,))
    for label, a in (("params", params),) + others:
        check_array(kernel, label, a, (size,))
    return size
