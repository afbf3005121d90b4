// Shared helpers for mlp_gpu's kernels. Self-contained: no standard headers, so
// NVRTC (CuPy) and nvcc compile it as is, and the host-execution harness
// (tests/harness/cuda_host.h) compiles it with g++ after mapping the CUDA names.
#pragma once

#define MLP_FULL_MASK 0xffffffffu

// Activation codes shared with mlp_gpu/backend/cuda_ops.py.
#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_SIGMOID 2
#define ACT_TANH 3
#define ACT_SOFTMAX 4  // only metric_rows applies it; softmax has its own row kernels

// Per-row metric values (mlp_gpu/backend/cuda_ops.py METRIC_CODES, base.py METRIC_KINDS).
#define METRIC_ABS_ERROR 0
#define METRIC_SQUARED_ERROR 1
#define METRIC_BINARY_HITS 2

// Slots of the optimizer's scalar buffer (mlp_gpu/backend/base.py HYPER).
#define HYPER_LR 0
#define HYPER_MOMENTUM 1
#define HYPER_BETA_1 2
#define HYPER_BETA_2 3
#define HYPER_EPSILON 4
#define HYPER_ITERATIONS 5
#define HYPER_RHO 6
#define HYPER_WEIGHT_DECAY 7
#define HYPER_U_PRODUCT 8

// Toolbox constants (mlp_gpu/backend/layer_ops.py, mlp_gpu/schedules.py, cuda_layer_ops.py).
#define ACC_LOSS_SUM 0
#define COLUMN_ROWS 8
#define REDUCE_BLOCK 256
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define SCHEDULE_HEADER 8
#define SCHEDULE_EXPONENTIAL 1
#define SCHEDULE_PIECEWISE 2
#define SCHEDULE_INVERSE_TIME 3
#define SCHEDULE_COSINE 4

// Sum over the 32 lanes of a warp; lane 0 holds the result. Every lane must call it.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(MLP_FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float sigmoidf_stable(float z) {
    z = fminf(fmaxf(z, -88.0f), 88.0f);
    return 1.0f / (1.0f + expf(-z));
}

__device__ __forceinline__ long long global_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}
