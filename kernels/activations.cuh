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
        case ACT_ELU: return (x > 0.0f ? x : expm1f(x));
        case ACT_SELU: return 1.0507009873554805f * (x > 0.0f ? x : 1.6732632423543772f * expm1f(x));
        case ACT_SOFTPLUS: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
        case ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
        case ACT_RELU6: return fminf(fmaxf(x, 0.0f), 6.0f);
        case ACT_HARD_SIGMOID: return fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f);
        case ACT_EXPONENTIAL: return expf(x);
        default: return x;
    }
}

__device__ __forceinline__ float activation_derivative(float y, int act) {
    switch (act) {
        case ACT_RELU: return (y > 0.0f ? 1.0f : 0.0f);
        case ACT_SIGMOID: return y * (1.0f - y);
        case ACT_TANH: return 1.0f - y * y;
        case ACT_LEAKY_RELU: return (y > 0.0f ? 1.0f : 0.2f);
        case ACT_ELU: return (y > 0.0f ? 1.0f : y + 1.0f);
        case ACT_SELU: return (y > 0.0f ? 1.0507009873554805f : y + 1.7580993408473766f);
        case ACT_SOFTPLUS: return -expm1f(-y);
        case ACT_SOFTSIGN: return (1.0f - fabsf(y)) * (1.0f - fabsf(y));
        case ACT_RELU6: return (y > 0.0f && y < 6.0f ? 1.0f : 0.0f);
        case ACT_HARD_SIGMOID: return (y > 0.0f && y < 1.0f ? 1.0f / 6.0f : 0.0f);
        case ACT_EXPONENTIAL: return y;
        default: return 1.0f;
    }
}
