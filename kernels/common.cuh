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

// Dynamic shared memory: `MLP_DYNAMIC_SHARED(float, smem);` declares smem, the block's dynamic shared
// memory (the launch's shared_mem bytes). The host harness defines it as the block's own buffer.
#ifndef MLP_DYNAMIC_SHARED
#define MLP_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Spinning on a word another block writes: a volatile read (the harness: an atomic load), with a short
// sleep between reads where the chip has one (sm_70 on; the harness yields its thread).
#ifndef MLP_SPIN_READ
#define MLP_SPIN_READ(p) (*(volatile unsigned*)(p))
#endif
#ifndef MLP_SPIN_PAUSE
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
#define MLP_SPIN_PAUSE() __nanosleep(32)
#else
#define MLP_SPIN_PAUSE()
#endif
#endif

// A barrier over every thread of the grid, for kernels launched cooperatively (every block resident at
// once: cuLaunchCooperativeKernel, or the harness' launch_cooperative). bar (2,) unsigned in global memory,
// zero before the launch and owned by the kernel for its run: bar[0] counts the blocks arrived, bar[1] is
// the barrier's generation. Thread 0 of each block reads the generation, publishes the block's writes
// (__threadfence) and arrives; the last block to arrive resets the count and opens the next generation,
// the others spin until it changes. Every thread of every block must call it the same number of times.
__device__ __forceinline__ void grid_sync(unsigned* bar) {
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
        unsigned generation = MLP_SPIN_READ(bar + 1);
        unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
        __threadfence();
        if (atomicAdd(bar, 1u) == blocks - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (MLP_SPIN_READ(bar + 1) == generation) MLP_SPIN_PAUSE();
        }
        __threadfence();
    }
    __syncthreads();
}
