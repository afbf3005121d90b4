// Optimizer updates over one flat parameter buffer: one launch updates every layer.
// Layout: w, g, v, m are (size,) float32, owned by the model/optimizer; hyper (8,) float32
// holds lr, momentum, beta_1, beta_2, epsilon, iterations (slots in common.cuh), read on
// the device so a captured step sees a new learning rate. g is scratch afterwards.
// __fmul_rn keeps lr * g a separate rounding, as in the NumPy reference (no FMA contraction).
#include "common.cuh"

// w <- w - lr g
extern "C" __global__ void sgd_update(float* __restrict__ w, const float* __restrict__ g,
                                      const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR];
    for (long long i = global_index(); i < size; i += grid_stride()) w[i] -= __fmul_rn(lr, g[i]);
}

// v <- m v - lr g; w <- w + v   (Nesterov: w <- w + m v - lr g)
extern "C" __global__ void sgd_momentum_update(float* __restrict__ w, const float* __restrict__ g,
                                               float* __restrict__ v, const float* __restrict__ hyper,
                                               long long size, int nesterov) {
    float lr = hyper[HYPER_LR], m = hyper[HYPER_MOMENTUM];
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float step = __fmul_rn(lr, g[i]);
        float vi = __fmul_rn(m, v[i]) - step;
        v[i] = vi;
        w[i] = nesterov ? (w[i] - step) + __fmul_rn(m, vi) : w[i] + vi;
    }
}

// Keras Adam with t = iterations + 1:
// m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; w <- w - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)
extern "C" __global__ void adam_update(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                       float* __restrict__ v, const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    float t = hyper[HYPER_ITERATIONS] + 1.0f;
    float alpha = lr * sqrtf(1.0f - powf(b2, t)) / (1.0f - powf(b1, t));
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float mi = __fmul_rn(b1, m[i]) + __fmul_rn(1.0f - b1, gi);
        float vi = __fmul_rn(b2, v[i]) + __fmul_rn(1.0f - b2, __fmul_rn(gi, gi));
        m[i] = mi;
        v[i] = vi;
        w[i] -= __fmul_rn(alpha, mi) / (sqrtf(vi) + eps);
    }
}
