// Metrics summed on the device beside the loss (mlp_gpu/metrics.py): each adds, over the rows of a
// batch, the row mean of an element-wise value of (prediction, target) to one accumulator slot.
// Layout: z (n, k) row-major float32, the last layer's pre-activation when the loss fused the
// activation (act says which to apply: ACT_LINEAR, ACT_SIGMOID or ACT_SOFTMAX) or its outputs
// (ACT_LINEAR); t (n, k) float32 targets; acc float64, owned by the caller and only added to:
// acc[slot] += sum over rows of mean_j f(p[j], t[j]), p = act(z row).
// The value f is chosen by kind (METRIC_*, from the metric kinds in mlp_gpu/backend/shared_constants.py):
// METRIC_ABS_ERROR |p - t|, METRIC_SQUARED_ERROR (p - t)^2, METRIC_BINARY_HITS t == (p > threshold).
#include "common.cuh"

__device__ __forceinline__ float metric_value(int kind, float p, float t, float threshold) {
    float d = p - t;
    if (kind == METRIC_ABS_ERROR) return fabsf(d);
    if (kind == METRIC_SQUARED_ERROR) return d * d;
    return t == (p > threshold ? 1.0f : 0.0f) ? 1.0f : 0.0f;  // METRIC_BINARY_HITS
}

// Launch contract, the ROW LAUNCH of loss.cu: 1-D grid with grid * block >= n (no grid stride),
// 1-D block of whole warps (a multiple of 32: warp_sum shuffles all 32 lanes). One thread: row
// global_index() if it is < n, else only its share of the warp sum; each warp adds its sum with
// one atomic, so no thread may return early. Pre: 0 <= slot < the length of acc.
extern "C" __global__ void metric_rows(const float* __restrict__ z, const float* __restrict__ t, double* acc,
                                       int n, int k, int kind, int act, float threshold, int slot) {
    long long row = global_index();
    float value = 0.0f;
    if (row < n) {
        const float* r = z + row * k;
        const float* tr = t + row * k;
        float m = r[0], s = 1.0f;
        if (act == ACT_SOFTMAX) {
            for (int j = 1; j < k; ++j) m = fmaxf(m, r[j]);
            s = 0.0f;
            for (int j = 0; j < k; ++j) s += expf(r[j] - m);
        }
        for (int j = 0; j < k; ++j) {
            float p = r[j];
            if (act == ACT_SIGMOID) p = sigmoidf_stable(p);
            else if (act == ACT_SOFTMAX) p = expf(p - m) / s;
            value += metric_value(kind, p, tr[j], threshold);
        }
        value /= k;
    }
    value = warp_sum(value);
    if ((threadIdx.x & 31) == 0) atomicAdd(acc + slot, (double)value);
}
