// Bias + activation forward and activation backward.
// Layout: z, y, dy are (n, k) row-major float32, contiguous; b is (k,).
// The caller owns every buffer; kernels work in place.
#include "common.cuh"
// activate() and activation_derivative(), generated from the table in mlp_gpu/activations.py
#include "activations.cuh"

// z[i, j] <- act(z[i, j] + b[j]).
// Launch: 1-D grid of any size, 1-D block of any size; grid-stride, so any n * k.
// One thread: the elements idx, idx + grid_stride(), ...  Pre: act is element-wise (not a row op).
extern "C" __global__ void bias_act_forward(float* __restrict__ z, const float* __restrict__ b,
                                            int n, int k, int act) {
    long long total = (long long)n * k;
    for (long long idx = global_index(); idx < total; idx += grid_stride())
        z[idx] = activate(z[idx] + b[idx % k], act);
}

// z[i, :] <- softmax(z[i, :] + b).
// Launch: 1-D grid and block of any size; grid-stride over rows. One thread: one whole row
// (output layers are narrow). Pre: k >= 1.
extern "C" __global__ void bias_softmax_forward(float* __restrict__ z, const float* __restrict__ b, int n, int k) {
    for (long long row = global_index(); row < n; row += grid_stride()) {
        float* r = z + row * k;
        float m = -3.402823466e38f;
        for (int j = 0; j < k; ++j) { r[j] += b[j]; m = fmaxf(m, r[j]); }
        float s = 0.0f;
        for (int j = 0; j < k; ++j) { r[j] = expf(r[j] - m); s += r[j]; }
        float inv = 1.0f / s;
        for (int j = 0; j < k; ++j) r[j] *= inv;
    }
}

// z[i, :] <- log_softmax(z[i, :] + b) = (z + b) - max - log(sum(exp((z + b) - max))).
// Launch: as bias_softmax_forward. Pre: k >= 1.
extern "C" __global__ void bias_log_softmax_forward(float* __restrict__ z, const float* __restrict__ b, int n, int k) {
    for (long long row = global_index(); row < n; row += grid_stride()) {
        float* r = z + row * k;
        float m = -3.402823466e38f;
        for (int j = 0; j < k; ++j) { r[j] += b[j]; m = fmaxf(m, r[j]); }
        float s = 0.0f;
        for (int j = 0; j < k; ++j) s += expf(r[j] - m);
        float shift = m + logf(s);
        for (int j = 0; j < k; ++j) r[j] -= shift;
    }
}

// dy <- dy * act'(.), written through v: the activation's output y, or its input for the entries
// the table marks from_input (gelu, silu, mish, hard_silu), whose output cannot tell the slope.
// Launch: 1-D grid and block of any size; grid-stride over the total = n * k elements.
// One thread: the elements idx, idx + grid_stride(), ...  Pre: act is element-wise and not ACT_LINEAR
// (the caller skips it).
extern "C" __global__ void act_backward(float* __restrict__ dy, const float* __restrict__ v, long long total, int act) {
    for (long long idx = global_index(); idx < total; idx += grid_stride()) {
        dy[idx] *= activation_derivative(v[idx], act);
    }
}

// dy[i, :] <- y[i, :] * (dy[i, :] - <dy[i, :], y[i, :]>).
// Launch: 1-D grid and block of any size; grid-stride over rows. One thread: one whole row.
extern "C" __global__ void softmax_backward(float* __restrict__ dy, const float* __restrict__ y, int n, int k) {
    for (long long row = global_index(); row < n; row += grid_stride()) {
        float* d = dy + row * k;
        const float* p = y + row * k;
        float s = 0.0f;
        for (int j = 0; j < k; ++j) s += d[j] * p[j];
        for (int j = 0; j < k; ++j) d[j] = (d[j] - s) * p[j];
    }
}

// dy[i, :] <- dy[i, :] - exp(y[i, :]) * sum(dy[i, :]), y = log_softmax (exp(y) is the softmax).
// Launch: as softmax_backward.
extern "C" __global__ void log_softmax_backward(float* __restrict__ dy, const float* __restrict__ y, int n, int k) {
    for (long long row = global_index(); row < n; row += grid_stride()) {
        float* d = dy + row * k;
        const float* p = y + row * k;
        float s = 0.0f;
        for (int j = 0; j < k; ++j) s += d[j];
        for (int j = 0; j < k; ++j) d[j] -= expf(p[j]) * s;
    }
}

// db[j] <- sum_i dz[i, j].
// Launch: grid (ceil(k / 32),), block exactly (32, BIAS_GRAD_ROWS) (the shared array is sized by it).
// One thread: column blockIdx.x * 32 + threadIdx.x over the rows threadIdx.y, + BIAS_GRAD_ROWS, ...;
// x walks columns (coalesced), y splits the rows, the partial sums meet in shared memory.
// Every thread reaches __syncthreads (no early return).
extern "C" __global__ void bias_grad(const float* __restrict__ dz, float* __restrict__ db, int n, int k) {
    __shared__ float partial[BIAS_GRAD_ROWS][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (col < k)
        for (int row = threadIdx.y; row < n; row += BIAS_GRAD_ROWS) s += dz[(long long)row * k + col];
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < k) {
        for (int r = 1; r < BIAS_GRAD_ROWS; ++r) s += partial[r][threadIdx.x];
        db[col] = s;
    }
}
