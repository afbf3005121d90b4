// Optimizer updates over one flat parameter buffer: one launch updates every layer.
// Layout: w, g, v, m are (size,) float32, owned by the model/optimizer; hyper (HYPER_SIZE,) float32
// holds lr, momentum, beta_1, beta_2, epsilon, iterations (slots HYPER_*, see common.cuh), read on
// the device so a captured step sees a new learning rate. g is scratch afterwards.
// __fmul_rn keeps lr * g a separate rounding, as in the NumPy reference (no FMA contraction).
// Every update first applies Keras' decoupled weight decay, w <- w - w * weight_decay * lr,
// when hyper[HYPER_WEIGHT_DECAY] is not 0. With Keras' gradient accumulation (optimizer_steps.cuh) a step
// that only accumulates returns at once, and t counts updates.
#include "common.cuh"
#include "optimizer_steps.cuh"

__device__ __forceinline__ float decayed(float w, const float* hyper) {
    float wd = hyper[HYPER_WEIGHT_DECAY];
    return wd != 0.0f ? w - __fmul_rn(__fmul_rn(w, wd), hyper[HYPER_LR]) : w;
}

// Launch (every update here): 1-D grid and block of any size; grid-stride over size. One thread:
// the elements i, i + grid_stride(), ... of every buffer. Pre: all buffers hold size floats.
// w <- w - lr g
extern "C" __global__ void sgd_update(float* __restrict__ w, const float* __restrict__ g,
                                      const float* __restrict__ hyper, long long size) {
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR];
    for (long long i = global_index(); i < size; i += grid_stride()) w[i] = decayed(w[i], hyper) - __fmul_rn(lr, g[i]);
}

// v <- m v - lr g; w <- w + v   (Nesterov: w <- w + m v - lr g). Launch: as sgd_update.
extern "C" __global__ void sgd_momentum_update(float* __restrict__ w, const float* __restrict__ g,
                                               float* __restrict__ v, const float* __restrict__ hyper,
                                               long long size, int nesterov) {
    if (skipped(hyper)) return;
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
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    float t = (float)update_count(hyper) + 1.0f;
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
    if (skipped(hyper)) return;
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
    if (skipped(hyper)) return;
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
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    double t = update_count(hyper) + 1.0;
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
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    float correction = 1.0f - (float)pow((double)b1, update_count(hyper) + 1.0);
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

// Keras Adam with amsgrad, t = iterations + 1: m, v as adam_update; v_hat <- max(v_hat, v);
// w <- w - alpha m / (sqrt(v_hat) + eps). state is (3, size): m, v, v_hat (optimizers/adam.py).
// Launch: as sgd_update.
extern "C" __global__ void adam_amsgrad_update(float* __restrict__ w, const float* __restrict__ g,
                                               float* __restrict__ state, const float* __restrict__ hyper,
                                               long long size) {
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    float t = (float)update_count(hyper) + 1.0f;
    float alpha = lr * sqrtf(1.0f - powf(b2, t)) / (1.0f - powf(b1, t));
    float* m = state;
    float* v = state + size;
    float* v_hat = state + 2 * size;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float mi = __fmul_rn(b1, m[i]) + __fmul_rn(1.0f - b1, gi);
        float vi = __fmul_rn(b2, v[i]) + __fmul_rn(1.0f - b2, __fmul_rn(gi, gi));
        float hi = fmaxf(v_hat[i], vi);
        m[i] = mi;
        v[i] = vi;
        v_hat[i] = hi;
        w[i] = decayed(w[i], hyper) - __fmul_rn(alpha, mi) / (sqrtf(hi) + eps);
    }
}

// Keras Adadelta: a <- rho a + (1 - rho) g^2; delta = -sqrt(d + eps) g / sqrt(a + eps);
// d <- rho d + (1 - rho) delta^2; w <- w + lr delta. state is (2, size): a, then d (optimizers/adadelta.py).
// Launch: as sgd_update.
extern "C" __global__ void adadelta_update(float* __restrict__ w, const float* __restrict__ g,
                                           float* __restrict__ state, const float* __restrict__ hyper,
                                           long long size) {
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], rho = hyper[HYPER_RHO], eps = hyper[HYPER_EPSILON];
    float* a = state;
    float* d = state + size;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float ai = __fmul_rn(rho, a[i]) + __fmul_rn(1.0f - rho, __fmul_rn(gi, gi));
        float delta = -(__fmul_rn(sqrtf(d[i] + eps), gi) / sqrtf(ai + eps));
        a[i] = ai;
        d[i] = __fmul_rn(rho, d[i]) + __fmul_rn(1.0f - rho, __fmul_rn(delta, delta));
        w[i] = decayed(w[i], hyper) + __fmul_rn(lr, delta);
    }
}

// Keras Lion: c = b1 m + (1 - b1) g; w <- w - lr sign(c); m <- b2 m + (1 - b2) g. state is (1, size): m
// (optimizers/lion.py). Launch: as sgd_update.
extern "C" __global__ void lion_update(float* __restrict__ w, const float* __restrict__ g,
                                       float* __restrict__ state, const float* __restrict__ hyper, long long size) {
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], b1 = hyper[HYPER_BETA_1], b2 = hyper[HYPER_BETA_2];
    float* m = state;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        float c = __fmul_rn(m[i], b1) + __fmul_rn(gi, 1.0f - b1);
        float sign = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : 0.0f);
        w[i] = decayed(w[i], hyper) - __fmul_rn(sign, lr);
        m[i] = __fmul_rn(m[i], b2) + __fmul_rn(gi, 1.0f - b2);
    }
}

// Keras Ftrl (p = -learning_rate_power): n' = n + g^2; z += g + 2 l2_shrinkage w - (n'^p - n^p) / lr w;
// w <- (clip(z, -l1, l1) - z) / (n'^p / lr + 2 (l2 + beta / (2 lr))); n <- n'. state is (2, size): n, then z
// (optimizers/ftrl.py). Launch: as sgd_update.
extern "C" __global__ void ftrl_update(float* __restrict__ w, const float* __restrict__ g,
                                       float* __restrict__ state, const float* __restrict__ hyper, long long size) {
    if (skipped(hyper)) return;
    float lr = hyper[HYPER_LR], p = -hyper[HYPER_LR_POWER], l1 = hyper[HYPER_L1];
    float l2 = hyper[HYPER_L2] + hyper[HYPER_BETA] / (2.0f * lr), shrink = 2.0f * hyper[HYPER_L2_SHRINKAGE];
    float* n = state;
    float* z = state + size;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i], wi = decayed(w[i], hyper), ni = n[i];
        float n_new = ni + __fmul_rn(gi, gi);
        float n_pow = powf(n_new, p);
        float zi = z[i] + ((gi + __fmul_rn(shrink, wi)) - __fmul_rn((n_pow - powf(ni, p)) / lr, wi));
        float clipped = fminf(fmaxf(zi, -l1), l1);
        z[i] = zi;
        n[i] = n_new;
        w[i] = (clipped - zi) / (n_pow / lr + 2.0f * l2);
    }
}

// Keras' gradient accumulation (optimizer_steps.cuh), before clipping: a step that only accumulates adds g
// to acc; an update step makes g <- (g + acc) / n and empties acc. acc is (size,) float32, the optimizer's.
// Launch: as sgd_update.
extern "C" __global__ void accumulate_gradients(float* __restrict__ g, float* __restrict__ acc,
                                                const float* __restrict__ hyper, long long size) {
    bool only_accumulate = skipped(hyper);
    float n = hyper[HYPER_ACCUMULATION];
    for (long long i = global_index(); i < size; i += grid_stride()) {
        if (only_accumulate) {
            acc[i] = acc[i] + g[i];
        } else {
            g[i] = (g[i] + acc[i]) / n;
            acc[i] = 0.0f;
        }
    }
}

// Keras' use_ema, after every step's update: with c = iterations // n (optimizer_steps.cuh), mu = momentum
// unless c is 0 or the step restarts the average (hyper[HYPER_EMA_RESEED] < 0, after a restored state):
// then 0. avg <- mu avg + (1 - mu) w; and where frequency > 0 and (c + 1) % frequency == 0, w <- avg.
// avg is (size,) float32, the optimizer's. Launch: as sgd_update.
extern "C" __global__ void ema_update(float* __restrict__ w, float* __restrict__ avg, const float* __restrict__ hyper,
                                      long long size, float momentum, int frequency) {
    double count = update_count(hyper);
    float mu = count != 0.0 && hyper[HYPER_EMA_RESEED] >= 0.0f ? momentum : 0.0f;
    double next = count + 1.0;
    bool overwrite = frequency > 0 && next - (double)frequency * floor(next / (double)frequency) == 0.0;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float ai = __fmul_rn(mu, avg[i]) + __fmul_rn(1.0f - mu, w[i]);
        avg[i] = ai;
        if (overwrite) w[i] = ai;
    }
}
