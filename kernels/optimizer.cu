// Optimizer updates over one flat parameter buffer: one launch updates every layer.
// Layout: w, g, v, m are (size,) float32, owned by the model/optimizer; hyper (HYPER_SIZE,) float32
// holds lr, momentum, beta_1, beta_2, epsilon, iterations (slots HYPER_*, see common.cuh), read on
// the device so a captured step sees a new learning rate. g is scratch afterwards.
// __fmul_rn keeps lr * g a separate rounding, as in the NumPy reference (no FMA contraction).
// Every update first applies Keras' decoupled weight decay, w <- w - w * weight_decay * lr,
// when hyper[HYPER_WEIGHT_DECAY] is not 0.
#include "common.cuh"

__device__ __forceinline__ float decayed(float w, const float* hyper) {
    float wd = hyper[HYPER_WEIGHT_DECAY];
    return wd != 0.0f ? w - __fmul_rn(__fmul_rn(w, wd), hyper[HYPER_LR]) : w;
}

// Launch (every update here): 1-D grid and block of any size; grid-stride over size. One thread:
// the elements i, i + grid_stride(), ... of every buffer. Pre: all buffers hold size floats.
// w <- w - lr g
extern "C" __global__ void sgd_update(float* __restrict__ w, const float* __restrict__ g,
                                      const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR];
    for (long long i = global_index(); i < size; i += grid_stride()) w[i] = decayed(w[i], hyper) - __fmul_rn(lr, g[i]);
}

// v <- m v - lr g; w <- w + v   (Nesterov: w <- w + m v - lr g). Launch: as sgd_update.
extern "C" __global__ void sgd_momentum_update(float* __restrict__ w, const float* __restrict__ g,
                                               float* __restrict__ v, const float* __restrict__ hyper,
                                               long long size, int nesterov) {
    float lr = hyper[HYPER_LR], m = hyper[HYPER_MOMENTUM];
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float step = __fmul_rn(lr, g[i]);
        float vi = __fmul_rn(m, v[i]) - step;
        v[i] = vi;
        float wi = decayed(w[i], hyper);
        w[i] = nesterov ? (wi - step) + __fmul_rn(m, vi) : wi + vi;
    }
}

// Keras Adam with t = iterations + 1:
// m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; w <- w - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)
// Launch: as sgd_update.
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
        w[i] = decayed(w[i], hyper) - __fmul_rn(alpha, mi) / (sqrtf(vi) + eps);
    }
}

// Keras RMSprop: v <- rho v + (1-rho) g^2; centered: a <- rho a + (1-rho) g, den = v - a^2 + eps, else
// den = v + eps; inc = lr g / sqrt(den); with momentum: mom <- mu mom + inc, w -= mom; else w -= inc.
// Launch: as sgd_update.
extern "C" __global__ void rmsprop_update(float* __restrict__ w, const float* __restrict__ g,
                                          float* __restrict__ vel, float* __restrict__ mom, float* __restrict__ avg,
                                          const float* __restrict__ hyper, long long size, int has_momentum,
                                          int centered) {
    float lr = hyper[HYPER_LR], rho = hyper[HYPER_RHO], eps = hyper[HYPER_EPSILON], mu = hyper[HYPER_MOMENTUM];
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float vi = __fmul_rn(rho, vel[i]) + __fmul_rn(1.0f - rho, __fmul_rn(gi, gi));
        vel[i] = vi;
        float den = vi + eps;
        if (centered) {
            float ai = __fmul_rn(rho, avg[i]) + __fmul_rn(1.0f - rho, gi);
            avg[i] = ai;
            den = vi - __fmul_rn(ai, ai) + eps;
        }
        float inc = __fmul_rn(lr, gi) / sqrtf(den);
        float wi = decayed(w[i], hyper);
        if (has_momentum) {
            float mi = __fmul_rn(mu, mom[i]) + inc;
            mom[i] = mi;
            w[i] = wi - mi;
        } else {
            w[i] = wi - inc;
        }
    }
}

// Keras Adagrad: acc += g^2; w -= lr g / sqrt(acc + eps).
// Launch: as sgd_update.
extern "C" __global__ void adagrad_update(float* __restrict__ w, const float* __restrict__ g,
                                          float* __restrict__ acc, const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR], eps = hyper[HYPER_EPSILON];
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float ai = acc[i] + __fmul_rn(gi, gi);
        acc[i] = ai;
        w[i] = decayed(w[i], hyper) - __fmul_rn(lr, gi) / sqrtf(ai + eps);
    }
}

// Keras Nadam with t = iterations + 1; hyper[HYPER_U_PRODUCT] already holds the product through u_t
// (optimizer_prepare ran first). u_t = b1 (1 - 0.5 * NADAM_DECAY^t);
// m_hat = u_{t+1} m / (1 - prod u_{t+1}) + (1 - u_t) g / (1 - prod); v_hat = v / (1 - b2^t).
// Launch: as sgd_update.
extern "C" __global__ void nadam_update(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                        float* __restrict__ v, const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    double t = (double)hyper[HYPER_ITERATIONS] + 1.0;
    float u_t = b1 * (1.0f - 0.5f * (float)pow(NADAM_DECAY, t));
    float u_t1 = b1 * (1.0f - 0.5f * (float)pow(NADAM_DECAY, t + 1.0));
    float u_prod = hyper[HYPER_U_PRODUCT];
    float u_prod1 = u_prod * u_t1;
    float b2_power = (float)pow((double)b2, t);
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float mi = m[i] + __fmul_rn(gi - m[i], 1.0f - b1);
        float vi = v[i] + __fmul_rn(__fmul_rn(gi, gi) - v[i], 1.0f - b2);
        m[i] = mi;
        v[i] = vi;
        float m_hat = __fmul_rn(u_t1, mi) / (1.0f - u_prod1) + __fmul_rn(1.0f - u_t, gi) / (1.0f - u_prod);
        float v_hat = vi / (1.0f - b2_power);
        w[i] = decayed(w[i], hyper) - __fmul_rn(m_hat, lr) / (sqrtf(v_hat) + eps);
    }
}

// Keras Adamax with t = iterations + 1: m <- m + (g - m)(1 - b1); u <- max(b2 u, |g|);
// w <- w - lr m / ((1 - b1^t)(u + eps)). state is (2, size): m, then u (optimizers/adamax.py).
// Launch: as sgd_update.
extern "C" __global__ void adamax_update(float* __restrict__ w, const float* __restrict__ g,
                                         float* __restrict__ state, const float* __restrict__ hyper, long long size) {
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    float correction = 1.0f - (float)pow((double)b1, (double)hyper[HYPER_ITERATIONS] + 1.0);
    float* m = state;
    float* u = state + size;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float mi = m[i] + __fmul_rn(gi - m[i], 1.0f - b1);
        float ui = fmaxf(__fmul_rn(b2, u[i]), fabsf(gi));
        m[i] = mi;
        u[i] = ui;
        w[i] = decayed(w[i], hyper) - __fmul_rn(lr, mi) / __fmul_rn(correction, ui + eps);
    }
}
