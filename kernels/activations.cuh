// Generated from mlp_gpu/activations.py by cuda_header(); do not edit.
// activate(x, act): the activation of x; activation_derivative(y, act): its derivative, written
// through the output y = activate(x, act). Codes ACT_* come from shared_constants.
#pragma once

__device__ __forceinline__ float activate(float x, int act) {
    switch (act) {
        case ACT_RELU: return fmaxf(x, 0.0f);
        case ACT_SIGMOID: return sigmoidf_stable(x);
        case ACT_TANH: return tanhf(x);
        case ACT_LEAKY_RELU: return fmaxf(x, 0.2f * x);
        default: return x;
    }
}

__device__ __forceinline__ float activation_derivative(float y, int act) {
    switch (act) {
        case ACT_RELU: return (y > 0.0f ? 1.0f : 0.0f);
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_TANH: return 1.0f - y * y;
        case ACT_LEAKY_RELU: return (y > 0.0f ? 1.0f : 0.2f);
        default: return 1.0f;
    }
}
