// Keras' gradient accumulation, read by every optimizer kernel from the optimizer's scalars:
// hyper[HYPER_ACCUMULATION] = n >= 2 (0 without). Only a step with (iterations + 1) % n == 0 updates,
// and an update counts Keras' `optimizer.iterations`, iterations // n (the reference:
// mlp_gpu/backend/numpy/optimizer_ops.py, skipped and update_count).
// Include after common.cuh (the kernels' sources are expanded flat for NVRTC, so a header is never
// included twice through another).
#pragma once

// The optimizer's step count as its formulas see it (iterations // n while accumulating).
__device__ __forceinline__ double update_count(const float* hyper) {
    double n = (double)hyper[HYPER_ACCUMULATION], it = (double)hyper[HYPER_ITERATIONS];
    return n != 0.0 ? floor(it / n) : it;
}

// Whether this step only accumulates its gradients (no update, no weight decay).
__device__ __forceinline__ bool skipped(const float* hyper) {
    double n = (double)hyper[HYPER_ACCUMULATION], next = (double)hyper[HYPER_ITERATIONS] + 1.0;
    return n != 0.0 && next - n * floor(next / n) != 0.0;
}
