// BatchNormalization and Normalization (feature-wise), reference in mlp_gpu/backend/layer_ops.py.
// Layout: x, out, dy, dx are (n, k) float32 row-major; gamma, beta, moving_mean, moving_var,
// mean, inv_std, variance are (k,) float32.
// The COLUMN LAUNCH (batchnorm_train, batchnorm_backward): grid (ceil(k / 32),), block exactly
// (32, COLUMN_ROWS) (the shared array and column_total are sized by it). One thread: column
// blockIdx.x * 32 + threadIdx.x over the rows threadIdx.y, + COLUMN_ROWS, ...; x walks columns
// (coalesced), y splits the rows, the partial sums meet in shared memory. Every thread reaches every
// column_total (a thread past column k returns only after the last one).
#include "common.cuh"

// The column's total of v over the block's COLUMN_ROWS row lanes; every thread of the block must call it.
__device__ __forceinline__ float column_total(float (*part)[33], float v) {
    part[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    float t = 0.0f;
    for (int r = 0; r < COLUMN_ROWS; ++r) t += part[r][threadIdx.x];
    __syncthreads();
    return t;
}

// Batch mean and biased variance per column (two passes); mean, inv_std = 1/sqrt(var + eps);
// out = (x - mean) * (inv_std * gamma) + beta; moving = moving * momentum + batch * (1 - momentum).
// Launch: the COLUMN LAUNCH above. Pre: gamma (beta) holds k floats where has_gamma (has_beta).
extern "C" __global__ void batchnorm_train(const float* __restrict__ x, float* __restrict__ out,
                                           const float* __restrict__ gamma, const float* __restrict__ beta,
                                           float* __restrict__ moving_mean, float* __restrict__ moving_var,
                                           float* __restrict__ mean, float* __restrict__ inv_std, int n, int k,
                                           float momentum, float epsilon, int has_gamma, int has_beta) {
    __shared__ float part[COLUMN_ROWS][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    bool ok = col < k;
    float s = 0.0f;
    if (ok)
        for (int row = threadIdx.y; row < n; row += COLUMN_ROWS) s += x[(long long)row * k + col];
    float mu = column_total(part, s) / n;
    float q = 0.0f;
    if (ok)
        for (int row = threadIdx.y; row < n; row += COLUMN_ROWS) {
            float d = x[(long long)row * k + col] - mu;
            q += __fmul_rn(d, d);
        }
    float var = column_total(part, q) / n;
    if (!ok) return;
    float inv = 1.0f / sqrtf(var + epsilon);
    float scale = has_gamma ? __fmul_rn(inv, gamma[col]) : inv;
    float shift = has_beta ? beta[col] : 0.0f;
    for (int row = threadIdx.y; row < n; row += COLUMN_ROWS) {
        long long i = (long long)row * k + col;
        out[i] = __fmul_rn(x[i] - mu, scale) + shift;
    }
    if (threadIdx.y == 0) {
        mean[col] = mu;
        inv_std[col] = inv;
        moving_mean[col] = __fmul_rn(moving_mean[col], momentum) + __fmul_rn(mu, 1.0f - momentum);
        moving_var[col] = __fmul_rn(moving_var[col], momentum) + __fmul_rn(var, 1.0f - momentum);
    }
}

// xhat = (x - mean) * inv_std; dgamma = sum dy xhat; dbeta = sum dy;
// dx = gamma inv_std (dy - sum(dy)/n - xhat sum(dy xhat)/n). Each output only when asked for.
// Launch: the COLUMN LAUNCH above. Pre: gamma, dgamma, dbeta, dx are real buffers where has_gamma,
// want_dgamma, want_dbeta, want_dx say so.
extern "C" __global__ void batchnorm_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                              const float* __restrict__ gamma, const float* __restrict__ mean,
                                              const float* __restrict__ inv_std, float* __restrict__ dgamma,
                                              float* __restrict__ dbeta, float* __restrict__ dx, int n, int k,
                                              int has_gamma, int want_dgamma, int want_dbeta, int want_dx) {
    __shared__ float part[COLUMN_ROWS][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    bool ok = col < k;
    float mu = ok ? mean[col] : 0.0f, inv = ok ? inv_std[col] : 0.0f;
    float s_dy = 0.0f, s_dyx = 0.0f;
    if (ok)
        for (int row = threadIdx.y; row < n; row += COLUMN_ROWS) {
            long long i = (long long)row * k + col;
            s_dy += dy[i];
            s_dyx += __fmul_rn(dy[i], __fmul_rn(x[i] - mu, inv));
        }
    s_dy = column_total(part, s_dy);
    s_dyx = column_total(part, s_dyx);
    if (!ok) return;
    if (threadIdx.y == 0) {
        if (want_dgamma) dgamma[col] = s_dyx;
        if (want_dbeta) dbeta[col] = s_dy;
    }
    if (!want_dx) return;
    float scale = has_gamma ? __fmul_rn(gamma[col], inv) : inv;
    float mean_dy = s_dy / n, mean_dyx = s_dyx / n;
    for (int row = threadIdx.y; row < n; row += COLUMN_ROWS) {
        long long i = (long long)row * k + col;
        float xhat = __fmul_rn(x[i] - mu, inv);
        dx[i] = __fmul_rn(scale, dy[i] - mean_dy - __fmul_rn(xhat, mean_dyx));
    }
}

// out = (x - moving_mean) * (gamma / sqrt(moving_var + eps)) + beta, element-wise.
// Launch: 1-D grid and block of any size; grid-stride over n * k. One thread: the elements i,
// i + grid_stride(), ...  Pre: gamma (beta) holds k floats where has_gamma (has_beta).
extern "C" __global__ void batchnorm_infer(const float* __restrict__ x, float* __restrict__ out,
                                           const float* __restrict__ gamma, const float* __restrict__ beta,
                                           const float* __restrict__ moving_mean,
                                           const float* __restrict__ moving_var, long long n, int k,
                                           float epsilon, int has_gamma, int has_beta) {
    for (long long i = global_index(); i < n * k; i += grid_stride()) {
        int col = (int)(i % k);
        float scale = 1.0f / sqrtf(moving_var[col] + epsilon);
        if (has_gamma) scale = __fmul_rn(scale, gamma[col]);
        out[i] = __fmul_rn(x[i] - moving_mean[col], scale) + (has_beta ? beta[col] : 0.0f);
    }
}

// Keras Normalization: std = max(sqrt(variance), floor); out = (x - mean) / std, or (invert)
// out = mean + x * std; with center 0 the mean is left out (the backward pass).
// Launch: 1-D grid and block of any size; grid-stride over n * k. One thread: the elements i,
// i + grid_stride(), ...  Pre: mean holds k floats where center.
extern "C" __global__ void normalize(const float* __restrict__ x, float* __restrict__ out,
                                     const float* __restrict__ mean, const float* __restrict__ variance,
                                     long long n, int k, float floor, int center, int invert) {
    for (long long i = global_index(); i < n * k; i += grid_stride()) {
        int col = (int)(i % k);
        float sd = fmaxf(sqrtf(variance[col]), floor);
        float m = center ? mean[col] : 0.0f;
        out[i] = invert ? __fmul_rn(x[i], sd) + m : (x[i] - m) / sd;
    }
}
