// Shared helpers for mlp_gpu's kernels. Self-contained: no standard headers, so
// NVRTC (CuPy) and nvcc compile it as is, and the host-execution harness
// (tests/harness/cuda_host.h) compiles it with g++ after mapping the CUDA names.
#pragma once

#define MLP_FULL_MASK 0xffffffffu

// The numbers shared with Python (activation codes ACT_*, optimizer scalar slots HYPER_*,
// accumulator slots ACC_*, schedule codes SCHEDULE_*, the Philox constants PHILOX_*, block shapes)
// come from mlp_gpu/backend/shared_constants.py as -D options given by the backend, NVRTC test and
// harness, or, for a plain nvcc, from the header generated from the same source
// (tests/test_backend_layout keeps it equal); never typed here.
#ifndef ACC_SIZE
#include "shared_constants.cuh"
#endif

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
