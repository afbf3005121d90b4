// Losses fused with their gradient and, on request, the correct-count.
// Layout: z (logits, or outputs for mse) and dz are (n, k) row-major float32; labels (n,) int32;
// t (n, k) float32 targets; acc (ACC_SIZE,) float64, owned by the caller and only added to:
// acc[ACC_LOSS_SUM] += sum of row losses, acc[ACC_CORRECT] += correct rows (acc[ACC_FINITE_STEPS]
// belongs to advance in gather.cu). dz = d(mean row loss)/dz.
// Every entry point here has the same launch contract, the ROW LAUNCH: 1-D grid with
// grid * block >= n (no grid stride), 1-D block of whole warps (a multiple of 32: warp_sum shuffles
// all 32 lanes). One thread: row global_index() if it is < n, else nothing but its share of the
// warp sums; each warp adds its sums with one atomic per accumulator, so no thread may return
// before add_to_acc.
#include "common.cuh"

// 1 when the row is predicted right: argmax (first maximum) for several columns,
// (z > threshold) == (t > 0.5) for one column. label < 0 means "use argmax of t".
__device__ __forceinline__ float row_correct(const float* z, const float* t, int label, int k, float threshold) {
    if (k == 1) return ((z[0] > threshold) == (t[0] > 0.5f)) ? 1.0f : 0.0f;
    int best = 0;
    for (int j = 1; j < k; ++j) if (z[j] > z[best]) best = j;
    if (label < 0) {
        label = 0;
        for (int j = 1; j < k; ++j) if (t[j] > t[label]) label = j;
    }
    return best == label ? 1.0f : 0.0f;
}

__device__ __forceinline__ void add_to_acc(double* acc, float loss, float correct, int count) {
    loss = warp_sum(loss);
    correct = warp_sum(correct);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(acc + ACC_LOSS_SUM, (double)loss);
        if (count) atomicAdd(acc + ACC_CORRECT, (double)correct);
    }
}

// Softmax + cross-entropy. labels != 0: sparse integer labels; else dense targets t.
__device__ __forceinline__ void softmax_xent_row(const float* z, const int* labels, const float* t, float* dz,
                                                 int n, int k, long long row, float* loss, float* correct,
                                                 int count) {
    const float* r = z + row * k;
    float* d = dz + row * k;
    float m = r[0];
    for (int j = 1; j < k; ++j) m = fmaxf(m, r[j]);
    float s = 0.0f;
    for (int j = 0; j < k; ++j) s += expf(r[j] - m);
    float log_s = logf(s), inv = 1.0f / s, inv_n = 1.0f / n;
    int label = labels ? labels[row] : -1;
    const float* tr = labels ? 0 : t + row * k;
    if (labels) {
        *loss = log_s - (r[label] - m);
        for (int j = 0; j < k; ++j) d[j] = (expf(r[j] - m) * inv - (j == label ? 1.0f : 0.0f)) * inv_n;
    } else {
        float tsum = 0.0f, picked = 0.0f;
        for (int j = 0; j < k; ++j) { tsum += tr[j]; picked += (r[j] - m) * tr[j]; }
        *loss = log_s * tsum - picked;
        for (int j = 0; j < k; ++j) d[j] = (expf(r[j] - m) * inv - tr[j]) * inv_n;
    }
    if (count) *correct = row_correct(r, tr, label, k, 0.0f);
}

// Launch: the ROW LAUNCH above. Pre: 0 <= labels[i] < k.
extern "C" __global__ void softmax_xent_sparse(const float* __restrict__ z, const int* __restrict__ labels,
                                               float* __restrict__ dz, double* acc, int n, int k, int count) {
    long long row = global_index();
    float loss = 0.0f, correct = 0.0f;
    if (row < n) softmax_xent_row(z, labels, 0, dz, n, k, row, &loss, &correct, count);
    add_to_acc(acc, loss, correct, count);
}

// Launch: the ROW LAUNCH above.
extern "C" __global__ void softmax_xent_dense(const float* __restrict__ z, const float* __restrict__ t,
                                              float* __restrict__ dz, double* acc, int n, int k, int count) {
    long long row = global_index();
    float loss = 0.0f, correct = 0.0f;
    if (row < n) softmax_xent_row(z, 0, t, dz, n, k, row, &loss, &correct, count);
    add_to_acc(acc, loss, correct, count);
}

// Element-wise losses, averaged over the k outputs of a row. An Element gives the loss of one output
// and its derivative; the row helper applies the 1/(n k) of the mean.
struct BinaryCrossentropyOnLogits {  // max(z,0) - z t + log(1 + exp(-|z|)); d/dz = sigmoid(z) - t
    static __device__ __forceinline__ float loss(float z, float t) {
        return fmaxf(z, 0.0f) - z * t + log1pf(expf(-fabsf(z)));
    }
    static __device__ __forceinline__ float grad(float z, float t) { return sigmoidf_stable(z) - t; }
};

struct SquaredError {  // (y - t)^2; d/dy = 2 (y - t)
    static __device__ __forceinline__ float loss(float y, float t) { return (y - t) * (y - t); }
    static __device__ __forceinline__ float grad(float y, float t) { return 2.0f * (y - t); }
};

template <class Element>
__device__ __forceinline__ void elementwise_loss(const float* z, const float* t, float* dz, double* acc,
                                                 int n, int k, int count, float threshold) {
    long long row = global_index();
    float loss = 0.0f, correct = 0.0f;
    if (row < n) {
        const float* r = z + row * k;
        const float* tr = t + row * k;
        float* d = dz + row * k;
        float scale = 1.0f / ((float)n * k);
        for (int j = 0; j < k; ++j) {
            loss += Element::loss(r[j], tr[j]);
            d[j] = Element::grad(r[j], tr[j]) * scale;
        }
        loss /= k;
        if (count) correct = row_correct(r, tr, -1, k, threshold);
    }
    add_to_acc(acc, loss, correct, count);
}

// Sigmoid + binary cross-entropy on logits (a prediction is positive where the logit is).
// Launch: the ROW LAUNCH above.
extern "C" __global__ void sigmoid_bce(const float* __restrict__ z, const float* __restrict__ t,
                                       float* __restrict__ dz, double* acc, int n, int k, int count) {
    elementwise_loss<BinaryCrossentropyOnLogits>(z, t, dz, acc, n, k, count, 0.0f);
}

// Mean squared error on outputs y.
// Launch: the ROW LAUNCH above.
extern "C" __global__ void mse(const float* __restrict__ y, const float* __restrict__ t,
                               float* __restrict__ dz, double* acc, int n, int k, int count, float threshold) {
    elementwise_loss<SquaredError>(y, t, dz, acc, n, k, count, threshold);
}
