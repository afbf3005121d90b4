// Gradient-side ops over the model's flat buffers, reference in mlp_gpu/backend/layer_ops.py
// (regularize) and optimizer_ops.py (clipping). Layout: w, g are (size,) float32 (a weight's view,
// or the whole flat buffer); acc is the (ACC_SIZE,) float64 step accumulator; segments (count + 1,)
// int64 offsets into g. Reductions run in double over blocks of exactly REDUCE_BLOCK threads, a power
// of two (block_total's shared array and tree are sized by it).
#include "common.cuh"
#include "optimizer_steps.cuh"

// Tree sum over the block (REDUCE_BLOCK threads, a power of two); every thread gets the total.
__device__ __forceinline__ double block_total(double* part, double v) {
    part[threadIdx.x] = v;
    __syncthreads();
    for (int half = REDUCE_BLOCK / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    double total = part[0];
    __syncthreads();
    return total;
}

// want_grad: g += l1 sign(w) + 2 l2 w.  want_penalty: acc[loss] += rows (l1 sum|w| + l2 sum w^2).
// Launch: 1-D grid of any size, block exactly (REDUCE_BLOCK,); grid-stride over size. One thread: the
// elements i, i + grid_stride(), ...; with want_penalty each block then adds its tree sum with one
// atomic (want_penalty is the same for every thread, so all or none reach the barriers).
// Pre: g holds size floats where want_grad; acc holds ACC_SIZE doubles where want_penalty.
extern "C" __global__ void regularize(const float* __restrict__ w, float* __restrict__ g, double* __restrict__ acc,
                                      long long size, float l1, float l2, double rows, int want_grad,
                                      int want_penalty) {
    __shared__ double part[REDUCE_BLOCK];
    double penalty = 0.0;
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float wi = w[i];
        if (want_grad) {
            float sign = wi > 0.0f ? 1.0f : (wi < 0.0f ? -1.0f : 0.0f);
            g[i] += __fmul_rn(l1, sign) + __fmul_rn(2.0f * l2, wi);
        }
        penalty += (double)l1 * fabs((double)wi) + (double)l2 * (double)wi * (double)wi;
    }
    if (!want_penalty) return;  // uniform across the block: no thread waits at a barrier alone
    double total = block_total(part, penalty);
    if (threadIdx.x == 0) atomicAdd(acc + ACC_LOSS_SUM, rows * total);
}

// g <- clip(g, -v, v), NaN stays NaN.
// Launch: 1-D grid and block of any size; grid-stride over size. One thread: the elements i,
// i + grid_stride(), ...
extern "C" __global__ void clip_by_value(float* __restrict__ g, long long size, float v) {
    for (long long i = global_index(); i < size; i += grid_stride()) {
        float gi = g[i];
        g[i] = gi < -v ? -v : (gi > v ? v : gi);
    }
}

// One block per segment: seg <- seg * clipnorm / norm(seg) when the norm exceeds clipnorm (NaN when
// the norm is not finite, as Keras' clip_by_global_norm). One segment over everything: global_clipnorm.
// Launch: grid (count,), one block a segment; block exactly (REDUCE_BLOCK,). One thread: the elements
// start + threadIdx.x, + REDUCE_BLOCK, ... of its segment; every thread reaches block_total (the early
// return comes after it). Pre: 0 <= segments[0] <= ... <= segments[count] <= the size of g (values on
// the device: the caller's to keep, not checked at launch).
extern "C" __global__ void clip_by_norm(float* __restrict__ g, const long long* __restrict__ segments,
                                        double clipnorm) {
    __shared__ double part[REDUCE_BLOCK];
    long long start = segments[blockIdx.x], end = segments[blockIdx.x + 1];
    double sq = 0.0;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) sq += (double)g[i] * (double)g[i];
    double norm = sqrt(block_total(part, sq));
    if (norm <= clipnorm) return;  // NaN compares false: it goes on to scale by NaN
    float scale = (float)(clipnorm / norm + (norm - norm));  // Keras' trick: NaN for an infinite norm
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) g[i] *= scale;
}

// The learning rate of the schedule in `table` at `step` (reference: mlp_gpu/schedules.py's evaluate).
// table: SCHEDULE_HEADER doubles [kind, lr, p1..p5, n] then n boundaries and n + 1 values.
__device__ double schedule_lr(const double* tb, double step) {
    int kind = (int)tb[0];
    double lr = tb[1], p1 = tb[2], p2 = tb[3], p3 = tb[4], p4 = tb[5], p5 = tb[6];
    if (kind == SCHEDULE_EXPONENTIAL || kind == SCHEDULE_INVERSE_TIME) {
        double p = step / p1;
        if (p3 != 0.0) p = floor(p);
        return kind == SCHEDULE_EXPONENTIAL ? lr * pow(p2, p) : lr / (1.0 + p2 * p);
    }
    if (kind == SCHEDULE_PIECEWISE) {
        int n = (int)tb[7];
        for (int i = 0; i < n; ++i)
            if (step <= tb[SCHEDULE_HEADER + i]) return tb[SCHEDULE_HEADER + n + i];
        return tb[SCHEDULE_HEADER + 2 * n];
    }
    if (kind == SCHEDULE_COSINE) {
        const double pi = 3.141592653589793;
        if (p3 == 0.0) {
            double f = (step < p1 ? step : p1) / p1;
            return lr * ((1.0 - p2) * (0.5 * (1.0 + cos(pi * f))) + p2);
        }
        if (step > p1 + p5) step = p1 + p5;
        if (step < p5) return (p4 - lr) * (step / p5) + lr;
        return p4 * ((1.0 - p2) * (0.5 * (1.0 + cos(pi * ((step - p5) / p1)))) + p2);
    }
    if (kind == SCHEDULE_POLYNOMIAL) {  // p1 decay_steps, p2 end_learning_rate, p3 power, p4 cycle
        double steps = p1;
        if (p4 != 0.0) steps *= step == 0.0 ? 1.0 : ceil(step / p1);
        else if (step > p1) step = p1;
        return (lr - p2) * pow(1.0 - step / steps, p3) + p2;
    }
    if (kind == SCHEDULE_COSINE_RESTARTS) {  // p1 first_decay_steps, p2 t_mul, p3 m_mul, p4 alpha
        const double pi = 3.141592653589793;
        double f = step / p1, restart;
        if (p2 == 1.0) {
            restart = floor(f);
            f -= restart;
        } else {
            restart = floor(log(1.0 - f * (1.0 - p2)) / log(p2));
            f = (f - (1.0 - pow(p2, restart)) / (1.0 - p2)) / pow(p2, restart);
        }
        return lr * ((1.0 - p4) * (0.5 * pow(p3, restart) * (1.0 + cos(pi * f))) + p4);
    }
    return lr;
}

// Start of an update, one thread: hyper[lr] <- the schedule in `table` at hyper[iterations]
// (has_table), and for Nadam hyper[u_product] *= beta_1 (1 - 0.5 * NADAM_DECAY^(updates + 1)) on an update
// step (optimizer_steps.cuh); hyper[ema_reseed] 1 -> -1 (this step restarts the EMA), -1 -> 0.
// Launch: grid (1,), block (1,): thread 0 does it all (any other thread does nothing).
// Pre: hyper holds HYPER_SIZE floats; where has_table, table holds a whole schedule table.
extern "C" __global__ void optimizer_prepare(float* __restrict__ hyper, const double* __restrict__ table,
                                             int has_table, int nadam) {
    if (global_index() != 0) return;
    double step = (double)hyper[HYPER_ITERATIONS];
    if (has_table) hyper[HYPER_LR] = (float)schedule_lr(table, step);  // Keras: the schedule counts every step
    float reseed = hyper[HYPER_EMA_RESEED];  // armed by a restored state: this step's EMA restarts (ema_update)
    hyper[HYPER_EMA_RESEED] = reseed > 0.0f ? -1.0f : 0.0f;
    if (nadam && !skipped(hyper)) {  // Keras: the product advances with the updates only
        float u = hyper[HYPER_BETA_1] * (1.0f - 0.5f * (float)pow(NADAM_DECAY, update_count(hyper) + 1.0));
        hyper[HYPER_U_PRODUCT] = hyper[HYPER_U_PRODUCT] * u;
    }
}
