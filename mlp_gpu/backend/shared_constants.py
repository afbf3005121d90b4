"""The one source of every number Python and the CUDA kernels share.

The kernels never spell these numbers: every compiler that builds them (NVRTC in the
CuPy backend, nvcc and the g++ host harness in the tests) gets them as ``-D`` options
from :func:`defines`; without them (a plain ``nvcc file.cu``) ``kernels/common.cuh`` includes
``kernels/shared_constants.cuh``, generated from the same source by :func:`header_text`.
Activations come from the table in ``mlp_gpu/activations.py`` (their code is their position).
"""
from __future__ import annotations

from .. import activations

# Activations by name; the kernels see ACT_<NAME> = position. softmax is a row op with its
# own kernels, so its code is never passed to the element-wise ones.
ACTIVATIONS = tuple(activations.ACTIVATIONS)
ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}

# Metrics summed per row on the device (kernels/metrics.cu); the kernels see METRIC_<KIND> = position.
METRIC_KINDS = ("abs_error", "squared_error", "binary_hits")
METRIC_CODES = {name: code for code, name in enumerate(METRIC_KINDS)}

# Slots of the optimizer's scalar buffer (float32), kept on the device so that a captured
# step reads a changed learning rate without being captured again.
# "accumulation": Keras' gradient_accumulation_steps (0 without): only every n-th step updates, and the
# updates count iterations // n; "lr_power" .. "beta": Ftrl's settings; "ema_reseed": 1 after a restored state
# (whose moving average was not saved), -1 through the next step, whose average restarts from the weights.
HYPER = {"lr": 0, "momentum": 1, "beta_1": 2, "beta_2": 3, "epsilon": 4, "iterations": 5,
         "rho": 6, "weight_decay": 7, "u_product": 8, "accumulation": 9, "lr_power": 10, "l1": 11, "l2": 12,
         "l2_shrinkage": 13, "beta": 14, "ema_reseed": 15}
HYPER_SIZE = 16

# Slots of the step accumulator (float64): the summed row losses, the correct count, and the
# steps after which the running loss was still finite (the step a run diverged at is that + 1).
ACC = {"loss_sum": 0, "correct": 1, "finite_steps": 2}
ACC_SIZE = 3

# Slots of the device scalars the cuBLASLt route's GEMMs read in pointer mode DEVICE (step_plan.py).
LT_SCALARS = {"neg_lr": 0, "one": 1, "zero": 2}

# Learning-rate schedule codes and the table header of kernels/gradients.cu's optimizer_prepare
# (mlp_gpu/schedules.py writes the tables); the kernels see SCHEDULE_<KIND> = position.
SCHEDULE_KINDS = ("constant", "exponential", "piecewise", "inverse_time", "cosine", "polynomial", "cosine_restarts")
SCHEDULE_CODES = {name: code for code, name in enumerate(SCHEDULE_KINDS)}
SCHEDULE_HEADER = 8    # [kind, initial_lr, p1, p2, p3, p4, p5, n], then boundaries and values

# Philox4x32's multipliers and Weyl key increments (Random123), the dropout masks' generator in
# kernels/dropout.cu and its NumPy reference in layer_ops.py; the kernels see PHILOX_<NAME>.
PHILOX = {"M0": 0xD2511F53, "M1": 0xCD9E8D57, "W0": 0x9E3779B9, "W1": 0xBB67AE85}
# A dropout draw keeps the top DROPOUT_BITS bits of a 32-bit Philox word (compared with the threshold).
DROPOUT_BITS = 24

# Keras Nadam's momentum schedule, u_t = beta_1 (1 - 0.5 NADAM_DECAY^t) (kernels/optimizer.cu, gradients.cu).
NADAM_DECAY = 0.96
# uint8 pixels become float32 * (1 / PIXEL_MAX) as a batch is gathered (kernels/gather.cu, fused_step.cu).
PIXEL_MAX = 255

# Block shapes the kernels are written for (see their launch contracts).
GEMM_TILE = 16         # sgemm_strided: (GEMM_TILE, GEMM_TILE) threads, one output element each
BIAS_GRAD_ROWS = 8     # bias_grad: (32, BIAS_GRAD_ROWS) threads, the rows split BIAS_GRAD_ROWS ways
COLUMN_ROWS = 8        # batchnorm_train/_backward: (32, COLUMN_ROWS) threads, the rows split COLUMN_ROWS ways
REDUCE_BLOCK = 256     # regularize, clip_by_norm: REDUCE_BLOCK threads, a power of two (a tree sum)

# The persistent route (kernels/persistent_step.cu, backend/cuda/persistent_step.py): threads per block on a GPU
# (whole warps), the most Dense layers, the ints of the block's table in shared memory (widths, activations
# and 6 per-layer entries, the parameter count last), and the optimizer codes (PERSIST_OPT_<NAME>).
PERSIST_BLOCK = 256
PERSIST_MAX_LAYERS = 8
PERSIST_TABLE_INTS = 64
PERSIST_NET_INTS = 2 + 2 * PERSIST_MAX_LAYERS  # [L, widths (L + 1), activation codes (L)]
PERSIST_OPTIMIZERS = ("sgd", "sgd_momentum", "adam")
PERSIST_OPT_CODES = {name: code for code, name in enumerate(PERSIST_OPTIMIZERS)}


def defines() -> dict[str, int | float]:
    """Every shared constant under its C name."""
    out = {f"ACT_{name.upper()}": code for name, code in ACT_CODES.items()}
    out.update({f"METRIC_{name.upper()}": code for name, code in METRIC_CODES.items()})
    out.update({f"HYPER_{key.upper()}": slot for key, slot in HYPER.items()})
    out["HYPER_SIZE"] = HYPER_SIZE
    out.update({f"ACC_{key.upper()}": slot for key, slot in ACC.items()})
    out["ACC_SIZE"] = ACC_SIZE
    out.update({f"LT_SCALAR_{key.upper()}": slot for key, slot in LT_SCALARS.items()})
    out.update({f"SCHEDULE_{name.upper()}": code for name, code in SCHEDULE_CODES.items()})
    out["SCHEDULE_HEADER"] = SCHEDULE_HEADER
    out.update({f"PHILOX_{name}": value for name, value in PHILOX.items()})
    out.update(DROPOUT_BITS=DROPOUT_BITS, NADAM_DECAY=NADAM_DECAY, PIXEL_MAX=PIXEL_MAX)
    out.update(GEMM_TILE=GEMM_TILE, BIAS_GRAD_ROWS=BIAS_GRAD_ROWS, COLUMN_ROWS=COLUMN_ROWS,
               REDUCE_BLOCK=REDUCE_BLOCK)
    out.update(PERSIST_BLOCK=PERSIST_BLOCK, PERSIST_MAX_LAYERS=PERSIST_MAX_LAYERS,
               PERSIST_TABLE_INTS=PERSIST_TABLE_INTS, PERSIST_NET_INTS=PERSIST_NET_INTS)
    out.update({f"PERSIST_OPT_{name.upper()}": code for name, code in PERSIST_OPT_CODES.items()})
    return out


def _literal(value: int | float) -> str:
    """A C literal of the value: a double as Python writes it, an int, or past int's range an unsigned
    hex one (the Philox words are unsigned 32-bit, as the kernels use them)."""
    if isinstance(value, float):
        return repr(value)
    return str(value) if value < 2**31 else f"0x{value:X}u"


def define_options() -> tuple[str, ...]:
    """The defines as ``-DNAME=value`` options, which NVRTC, nvcc and g++ all read alike."""
    return tuple(f"-D{name}={_literal(value)}" for name, value in defines().items())


def header_text() -> str:
    """The same defines as a header, ``kernels/shared_constants.cuh``, so a plain ``nvcc file.cu``
    compiles too; the backend still passes the options, and a test keeps the file equal to this."""
    lines = ["// Generated from mlp_gpu/backend/shared_constants.py by header_text(); do not edit.",
             "#pragma once"]
    lines += [f"#define {name} {_literal(value)}" for name, value in defines().items()]
    return "\n".join(lines) + "\n"
