// Generated from mlp_gpu/activations.py by cuda_header(); do not edit.
// activate(x, act): the activation of x; activation_derivative(v, act): its derivative, written
// through v: the output y = activate(x, act), or the input x where the output cannot tell
// the slope (gelu, silu, mish, hard_silu: the caller passes x). Codes ACT_* come from shared_constants.
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
        case ACT_GELU: return 0.5f * x * erfcf(-x * 0.7071067811865476f);
        case ACT_SILU: return x * sigmoidf_stable(x);
        case ACT_MISH: return x * tanhf((fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)))));
        case ACT_HARD_SILU: return x * fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f);
        default: return x;
    }
}

__device__ __forceinline__ float activation_derivative(float v, int act) {
    switch (act) {
        case ACT_RELU: { const float y = v; return (y > 0.0f ? 1.0f : 0.0f); }
        case ACT_SIGMOID: { const float y = v; return y * (1.0f - y); }
        case ACT_TANH: { const float y = v; return 1.0f - y * y; }
        case ACT_LEAKY_RELU: { const float y = v; return (y > 0.0f ? 1.0f : 0.2f); }
        case ACT_ELU: { const float y = v; return (y > 0.0f ? 1.0f : y + 1.0f); }
        case ACT_SELU: { const float y = v; return (y > 0.0f ? 1.0507009873554805f : y + 1.7580993408473766f); }
        case ACT_SOFTPLUS: { const float y = v; return -expm1f(-y); }
        case ACT_SOFTSIGN: { const float y = v; return (1.0f - fabsf(y)) * (1.0f - fabsf(y)); }
        case ACT_RELU6: { const float y = v; return (y > 0.0f && y < 6.0f ? 1.0f : 0.0f); }
        case ACT_HARD_SIGMOID: { const float y = v; return (y > 0.0f && y < 1.0f ? 1.0f / 6.0f : 0.0f); }
        case ACT_EXPONENTIAL: { const float y = v; return y; }
        case ACT_GELU: { const float x = v; return 0.5f * erfcf(-x * 0.7071067811865476f) + x * 0.3989422804014327f * expf(-0.5f * x * x); }
        case ACT_SILU: { const float x = v; return sigmoidf_stable(x) * (1.0f + x * (1.0f - sigmoidf_stable(x))); }
        case ACT_MISH: { const float x = v; return tanhf((fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))))) + x * (1.0f - tanhf((fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))))) * tanhf((fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)))))) * sigmoidf_stable(x); }
        case ACT_HARD_SILU: { const float x = v; return (x < -3.0f ? 0.0f : (x > 3.0f ? 1.0f : x / 3.0f + 0.5f)); }
        default: return 1.0f;
    }
}
