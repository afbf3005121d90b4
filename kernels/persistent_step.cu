// The persistent route (issue 28): a block of training steps of a Dense stack in one cooperative launch,
// weight-stationary. mlp_gpu/backend/cuda/persistent_step.py builds every buffer and the launch.
// Layout (every buffer is the caller's; the kernel owns scratch and bar for the length of its launch):
//   src_x (rows_total, s0) uint8 pixels (scaled by 1 / PIXEL_MAX) or float32 features, row-major;
//   src_y (rows_total,) int32 labels, or (rows_total, sL) float32 targets; perm (rows_total,) int64;
//   cursor (1,) int64: step i of the launch trains rows perm[cursor + i * rows ...][:rows];
//   net (PERSIST_NET_INTS,) int32: [L, s0, s1, ..., sL, act_0, ..., act_{L-1}], L <= PERSIST_MAX_LAYERS
//     Dense layers, their widths and ACT_* codes (the last layer's is unused: its logits go to the loss);
//   params (P,) float32, the model's flat buffer: per layer its kernel (s_l, s_{l+1}) row-major then its bias
//     (s_{l+1},), i.e. the row-major (s_l + 1, s_{l+1}) matrix [kernel; bias] at offset sum_i (s_i + 1) s_{i+1};
//   state (slots, P) float32, the optimizer's slots (SGD momentum: velocity; Adam: m, v), indexed as params;
//   hyper (HYPER_SIZE,) float32, read at the start (HYPER_ITERATIONS += steps at the end);
//   acc (ACC_SIZE,) float64: += the summed row losses, the correct rows (with count), the finite steps;
//   scratch float32: act_l (rows, s_{l+1}) row-major for l < L one after another (act_{L-1} holds the logits),
//     then two partial-gradient buffers of G * rows * hmax floats, hmax = max(s_1 .. s_{L-1}): layer l's
//     input gradient as the blocks' partial sums, [block][row][unit of layer l-1] with row stride s_l;
//   bar (2,) unsigned, grid_sync's count (zero between launches: each barrier resets it) and generation (any).
// Ownership: of G blocks, block b owns units [b s / G, (b + 1) s / G) of each layer of s units: those columns
// of the layer's [kernel; bias] live in its shared memory for the whole launch, with their optimizer state,
// and only it updates them. Its shared memory (the launch's shared_mem bytes, persistent_step.py:layout):
//   batch row indices (rows,) int64 | table (PERSIST_TABLE_INTS,) int32 | row stats (2 rows) | sums (blockDim.x)
//   | dz (rows * cmax) | per layer: (1 + slots) copies of its (s_l + 1) x cnt_l slice, row-major (k, unit).
// A step: forward, layer by layer (block: its columns of act_l for every row; a grid barrier after each);
// the output's fused softmax cross-entropy (each block its own columns, block 0 the loss and the counts);
// backward, layer l from L - 1 down: the block's columns of dz_l, its partial of the input gradient through
// its columns of the kernel before they change, then the weight gradient and the update in place; a grid
// barrier after each layer but the first. 2L - 1 grid barriers a step (one more when L == 1).
// Sums are float32 in a fixed order (deterministic launch to launch; the order is not NumPy's BLAS').
#include "common.cuh"
// activate, activation_derivative: generated from mlp_gpu/activations.py
#include "activations.cuh"

namespace persist {

static_assert(3 + 7 * PERSIST_MAX_LAYERS < PERSIST_TABLE_INTS, "the block's table overlaps its last slot");

// Where the block's table lives in shared memory: widths, activations, the slice of each layer.
struct Table {
    int* t;
    __device__ int layers() const { return t[0]; }
    __device__ int width(int i) const { return t[1 + i]; }             // s_i, i <= L
    __device__ int act(int l) const { return t[2 + PERSIST_MAX_LAYERS + l]; }
    __device__ int& lo(int l) const { return t[2 + 2 * PERSIST_MAX_LAYERS + l]; }   // first unit owned
    __device__ int& cnt(int l) const { return t[2 + 3 * PERSIST_MAX_LAYERS + l]; }  // units owned
    __device__ int& woff(int l) const { return t[2 + 4 * PERSIST_MAX_LAYERS + l]; } // float offset of the slice
    __device__ int& poff(int l) const { return t[2 + 5 * PERSIST_MAX_LAYERS + l]; } // offset in params
    __device__ int& aoff(int l) const { return t[2 + 6 * PERSIST_MAX_LAYERS + l]; } // act_l in scratch, l <= L
    __device__ int& params() const { return t[PERSIST_TABLE_INTS - 1]; }            // P
};

// int32 labels (sparse targets) or float32 targets.
template <class Y> struct Labels { static constexpr bool value = false; };
template <> struct Labels<int> { static constexpr bool value = true; };

// sink(p, sum_{k < K} term(p, k)) for every p < P, by the whole block: S threads an output (S = blockDim.x / P
// when that is more than 1, at most K), thread t summing the terms k = t % S, t % S + S, ... of output
// base + t / S; the S partial sums meet in red (blockDim.x floats), added in order. Every thread of the block
// must call it with the same P and K (it synchronizes the block when S > 1).
template <class Term, class Sink>
__device__ __forceinline__ void block_sums(int P, int K, float* red, Term term, Sink sink) {
    int T = blockDim.x;
    int S = P > 0 ? T / P : T;
    S = S < 1 ? 1 : (S > K ? (K > 0 ? K : 1) : S);
    int per_round = T / S, q = threadIdx.x / S, c = threadIdx.x % S;
    for (int base = 0; base < P; base += per_round) {
        int p = base + q;
        bool mine = q < per_round && p < P;
        float s = 0.0f;
        if (mine)
            for (int k = c; k < K; k += S) s += term(p, k);
        if (S == 1) {
            if (mine) sink(p, s);
            continue;
        }
        red[threadIdx.x] = s;
        __syncthreads();
        if (mine && c == 0) {
            float total = red[threadIdx.x];
            for (int i = 1; i < S; ++i) total += red[threadIdx.x + i];
            sink(p, total);
        }
        __syncthreads();
    }
}

// One optimizer update of a weight w with gradient g, state st0/st1 in shared memory; the formulas of
// kernels/optimizer.cu (sgd_update, sgd_momentum_update, adam_update), __fmul_rn as there.
__device__ __forceinline__ void update(float* w, float* st0, float* st1, float g, int optimizer, int nesterov,
                                       float lr, float mom, float b1, float b2, float eps, float alpha) {
    if (optimizer == PERSIST_OPT_SGD) {
        *w = *w - __fmul_rn(lr, g);
    } else if (optimizer == PERSIST_OPT_SGD_MOMENTUM) {
        float step = __fmul_rn(lr, g);
        float vi = __fmul_rn(mom, *st0) - step;
        *st0 = vi;
        *w = nesterov ? (*w - step) + __fmul_rn(mom, vi) : *w + vi;
    } else {
        float mi = __fmul_rn(b1, *st0) + __fmul_rn(1.0f - b1, g);
        float vi = __fmul_rn(b2, *st1) + __fmul_rn(1.0f - b2, __fmul_rn(g, g));
        *st0 = mi;
        *st1 = vi;
        *w = *w - __fmul_rn(alpha, mi) / (sqrtf(vi) + eps);
    }
}

template <class In, class Y>
__device__ __forceinline__ void run(const In* __restrict__ src_x, const Y* __restrict__ src_y,
                                    const long long* __restrict__ perm, long long* cursor, const int* __restrict__ net,
                                    float* params, float* state, float* hyper, double* acc, float* scratch,
                                    unsigned* bar, int rows, int steps, int optimizer, int nesterov, int count,
                                    int slots, float scale) {
    MLP_DYNAMIC_SHARED(long long, smem);
    long long* idx = smem;
    Table tab{(int*)(smem + rows)};
    const int G = gridDim.x, b = blockIdx.x, T = blockDim.x, tid = threadIdx.x;
    if (tid == 0) {  // the block's table: widths and activations, then its slices
        int L = net[0];
        tab.t[0] = L;
        for (int i = 0; i <= L; ++i) tab.t[1 + i] = net[1 + i];
        for (int l = 0; l < L; ++l) tab.t[2 + PERSIST_MAX_LAYERS + l] = net[2 + L + l];
        int cmax = 0;
        for (int l = 0; l < L; ++l) {
            int s = net[2 + l];
            tab.lo(l) = (int)((long long)s * b / G);
            tab.cnt(l) = (int)((long long)s * (b + 1) / G) - tab.lo(l);
            cmax = tab.cnt(l) > cmax ? tab.cnt(l) : cmax;
        }
        int w = 2 * rows + T + rows * cmax, p = 0, a = 0;
        for (int l = 0; l < L; ++l) {
            tab.woff(l) = w;
            tab.poff(l) = p;
            tab.aoff(l) = a;
            w += (1 + slots) * (net[1 + l] + 1) * tab.cnt(l);
            p += (net[1 + l] + 1) * net[2 + l];
            a += rows * net[2 + l];
        }
        tab.aoff(L) = a;
        tab.params() = p;
    }
    __syncthreads();
    const int L = tab.layers();
    const long long P = tab.params();
    float* fs = (float*)(tab.t + PERSIST_TABLE_INTS);
    float* stats = fs;                 // (max, sum of exp) of each row's logits
    float* red = fs + 2 * rows;
    float* dz = red + T;               // the block's columns of the current layer's dz, (rows, cnt)
    // Load the block's slices of [kernel; bias] and their state.
    for (int l = 0; l < L; ++l) {
        int cnt = tab.cnt(l), n = tab.width(l + 1), lo = tab.lo(l);
        int size = (tab.width(l) + 1) * cnt;
        float* w = fs + tab.woff(l);
        for (int e = tid; e < size; e += T) {
            long long g = tab.poff(l) + (long long)(e / cnt) * n + lo + e % cnt;
            w[e] = params[g];
            for (int q = 0; q < slots; ++q) w[(1 + q) * size + e] = state[q * P + g];
        }
    }
    int hmax = 0;
    for (int l = 1; l < L; ++l) hmax = tab.width(l) > hmax ? tab.width(l) : hmax;
    float* partial_base = scratch + tab.aoff(L);
    const long long start = cursor[0];
    const float it0 = hyper[HYPER_ITERATIONS];
    const float lr = hyper[HYPER_LR], mom = hyper[HYPER_MOMENTUM], b1 = hyper[HYPER_BETA_1];
    const float b2 = hyper[HYPER_BETA_2], eps = hyper[HYPER_EPSILON];
    const int s0 = tab.width(0), sL = tab.width(L);
    const float inv_n = 1.0f / rows;

    for (int step = 0; step < steps; ++step) {
        for (int r = tid; r < rows; r += T) idx[r] = perm[start + (long long)step * rows + r];
        __syncthreads();
        // ---- forward: act_l[:, own columns] = act(in @ kernel + bias)
        for (int l = 0; l < L; ++l) {
            int cnt = tab.cnt(l), n = tab.width(l + 1), lo = tab.lo(l), fan_in = tab.width(l);
            int a = l == L - 1 ? ACT_LINEAR : tab.act(l);
            const float* w = fs + tab.woff(l);
            float* out = scratch + tab.aoff(l);
            const float* in = scratch + (l ? tab.aoff(l - 1) : 0);
            block_sums(rows * cnt, fan_in, red,
                [&](int p, int k) {
                    int r = p / cnt;
                    float x = l ? in[(long long)r * fan_in + k] : (float)src_x[idx[r] * s0 + k] * scale;
                    return x * w[k * cnt + p % cnt];
                },
                [&](int p, float z) {
                    int r = p / cnt, j = p % cnt;
                    out[(long long)r * n + lo + j] = activate(z + w[fan_in * cnt + j], a);
                });
            grid_sync(bar);
        }
        // ---- the loss: row stats over the logits, then each block its columns of dz_{L-1}
        const float* logits = scratch + tab.aoff(L - 1);
        float loss = 0.0f, correct = 0.0f;
        for (int r = tid; r < rows; r += T) {
            const float* z = logits + (long long)r * sL;
            float m = z[0];
            for (int j = 1; j < sL; ++j) m = fmaxf(m, z[j]);
            float s = 0.0f;
            for (int j = 0; j < sL; ++j) s += expf(z[j] - m);
            stats[2 * r] = m;
            stats[2 * r + 1] = s;
            if (b == 0) {  // block 0 sums the loss and the correct count, as kernels/loss.cu's rows do
                float log_s = logf(s);
                int best = 0;
                for (int j = 1; j < sL; ++j) if (z[j] > z[best]) best = j;
                if constexpr (Labels<Y>::value) {
                    int label = (int)src_y[idx[r]];
                    loss += log_s - (z[label] - m);
                    correct += best == label ? 1.0f : 0.0f;
                } else {
                    const Y* t = src_y + idx[r] * sL;
                    float tsum = 0.0f, picked = 0.0f;
                    int label = 0;
                    for (int j = 0; j < sL; ++j) {
                        tsum += (float)t[j];
                        picked += (z[j] - m) * (float)t[j];
                        if (t[j] > t[label]) label = j;
                    }
                    loss += log_s * tsum - picked;
                    correct += best == label ? 1.0f : 0.0f;
                }
            }
        }
        if (b == 0) {
            loss = warp_sum(loss);
            correct = warp_sum(correct);
            if ((tid & 31) == 0) {
                atomicAdd(acc + ACC_LOSS_SUM, (double)loss);
                if (count) atomicAdd(acc + ACC_CORRECT, (double)correct);
            }
        }
        __syncthreads();
        if (b == 0 && tid == 0 && acc[ACC_LOSS_SUM] - acc[ACC_LOSS_SUM] == 0.0) acc[ACC_FINITE_STEPS] += 1.0;
        {
            int cnt = tab.cnt(L - 1), lo = tab.lo(L - 1);
            for (int p = tid; p < rows * cnt; p += T) {
                int r = p / cnt, u = lo + p % cnt;
                float e = expf(logits[(long long)r * sL + u] - stats[2 * r]) * (1.0f / stats[2 * r + 1]);
                float t;
                if constexpr (Labels<Y>::value) t = (int)src_y[idx[r]] == u ? 1.0f : 0.0f;
                else t = (float)src_y[idx[r] * sL + u];
                dz[p] = (e - t) * inv_n;
            }
        }
        __syncthreads();
        // ---- backward, layer by layer
        // Adam's step size at t = iterations + 1, in double as the NumPy reference computes it (a float32
        // 1 - b^t loses digits early on), once a step
        const double t_adam = (double)it0 + step + 1.0;
        const float alpha = optimizer == PERSIST_OPT_ADAM
            ? (float)((double)lr * sqrt(1.0 - pow((double)b2, t_adam)) / (1.0 - pow((double)b1, t_adam))) : 0.0f;
        for (int l = L - 1; l >= 0; --l) {
            int cnt = tab.cnt(l), n = tab.width(l + 1), lo = tab.lo(l), fan_in = tab.width(l);
            float* w = fs + tab.woff(l);
            const float* in = scratch + (l ? tab.aoff(l - 1) : 0);
            if (l < L - 1) {  // dz_l[:, own] = act'(act_l) * (the blocks' partials of dz_{l+1} @ kernel_{l+1}^T)
                const float* part = partial_base + (long long)((l + 1) & 1) * G * rows * hmax;
                const float* y = scratch + tab.aoff(l);
                int a = tab.act(l);
                block_sums(rows * cnt, G, red,
                    [&](int p, int g) { return part[((long long)g * rows + p / cnt) * n + lo + p % cnt]; },
                    [&](int p, float v) {
                        dz[p] = v * activation_derivative(y[(long long)(p / cnt) * n + lo + p % cnt], a);
                    });
                __syncthreads();
            }
            if (l > 0) {  // this block's partial of dz_l @ kernel_l^T, through the kernel before its update
                float* part = partial_base + (long long)(l & 1) * G * rows * hmax + (long long)b * rows * fan_in;
                block_sums(rows * fan_in, cnt, red,
                    [&](int p, int j) { return dz[(p / fan_in) * cnt + j] * w[(p % fan_in) * cnt + j]; },
                    [&](int p, float v) { part[p] = v; });
                __syncthreads();
            }
            // weight gradient [in, 1]^T @ dz_l[:, own] and the update where the weights live
            int size = (fan_in + 1) * cnt;
            block_sums(size, rows, red,
                [&](int p, int r) {
                    int k = p / cnt;
                    float x = k == fan_in ? 1.0f
                            : l ? in[(long long)r * fan_in + k] : (float)src_x[idx[r] * s0 + k] * scale;
                    return x * dz[r * cnt + p % cnt];
                },
                [&](int p, float g) {
                    update(w + p, w + size + p, w + 2 * size + p, g, optimizer, nesterov, lr, mom, b1, b2, eps,
                           alpha);
                });
            if (l > 0) grid_sync(bar);
            else __syncthreads();
        }
        if (L == 1) grid_sync(bar);  // the next step's forward rewrites the logits every block has read
    }
    // Write the slices back to the flat buffers; block 0 advances the cursor and the iteration count (every
    // block read both before its first grid barrier).
    for (int l = 0; l < L; ++l) {
        int cnt = tab.cnt(l), n = tab.width(l + 1), lo = tab.lo(l);
        int size = (tab.width(l) + 1) * cnt;
        const float* w = fs + tab.woff(l);
        for (int e = tid; e < size; e += T) {
            long long g = tab.poff(l) + (long long)(e / cnt) * n + lo + e % cnt;
            params[g] = w[e];
            for (int q = 0; q < slots; ++q) state[q * P + g] = w[(1 + q) * size + e];
        }
    }
    if (b == 0 && tid == 0 && steps > 0) {
        cursor[0] = start + (long long)steps * rows;
        hyper[HYPER_ITERATIONS] = it0 + (float)steps;
    }
}

}  // namespace persist

// What every persistent_step_* entry point passes on: its parameters, named alike in each.
#define PERSISTENT_STEP_ARGS src_x, src_y, perm, cursor, net, params, state, hyper, acc, scratch, bar, rows, steps, \
                     optimizer, nesterov, count, slots

// Launch (every persistent_step_*): cooperative (all G blocks resident at once: cuLaunchCooperativeKernel, or
// the harness' launch_cooperative); 1-D grid of G blocks, G <= the resident blocks the occupancy API allows;
// 1-D block of whole warps; shared_mem = persistent_step.py:layout's bytes for (net, rows, G, blockDim.x,
// slots). One block: the units it owns (the header above); thread t: elements t, t + blockDim.x, ... of each
// block-wide loop. Pre: bar == {0, 0}; steps >= 0; cursor + steps * rows <= rows_total; 1 <= L <=
// PERSIST_MAX_LAYERS; the fused softmax cross-entropy is the loss; optimizer a PERSIST_OPT_* code with
// slots = its state slots (0, 1, 2); every block reaches every grid_sync (no early return).
// The pre bar == {0, 0} is for the first launch: later ones find the count at 0 and any generation.
// uint8 pixels, int32 labels.
extern "C" __global__ void persistent_step_u8_i32(const unsigned char* __restrict__ src_x,
        const int* __restrict__ src_y, const long long* __restrict__ perm, long long* cursor,
        const int* __restrict__ net, float* params, float* state, float* hyper, double* acc, float* scratch,
        unsigned* bar, int rows, int steps, int optimizer, int nesterov, int count, int slots) {
    persist::run(PERSISTENT_STEP_ARGS, 1.0f / PIXEL_MAX);
}

// float32 features, int32 labels. Launch: as above (every persistent_step_*).
extern "C" __global__ void persistent_step_f32_i32(const float* __restrict__ src_x,
        const int* __restrict__ src_y, const long long* __restrict__ perm, long long* cursor,
        const int* __restrict__ net, float* params, float* state, float* hyper, double* acc, float* scratch,
        unsigned* bar, int rows, int steps, int optimizer, int nesterov, int count, int slots) {
    persist::run(PERSISTENT_STEP_ARGS, 1.0f);
}

// uint8 pixels, float32 targets (categorical cross-entropy). Launch: as above.
extern "C" __global__ void persistent_step_u8_f32(const unsigned char* __restrict__ src_x,
        const float* __restrict__ src_y, const long long* __restrict__ perm, long long* cursor,
        const int* __restrict__ net, float* params, float* state, float* hyper, double* acc, float* scratch,
        unsigned* bar, int rows, int steps, int optimizer, int nesterov, int count, int slots) {
    persist::run(PERSISTENT_STEP_ARGS, 1.0f / PIXEL_MAX);
}

// float32 features and targets. Launch: as above.
extern "C" __global__ void persistent_step_f32_f32(const float* __restrict__ src_x,
        const float* __restrict__ src_y, const long long* __restrict__ perm, long long* cursor,
        const int* __restrict__ net, float* params, float* state, float* hyper, double* acc, float* scratch,
        unsigned* bar, int rows, int steps, int optimizer, int nesterov, int count, int slots) {
    persist::run(PERSISTENT_STEP_ARGS, 1.0f);
}
