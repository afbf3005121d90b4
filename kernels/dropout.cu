// Dropout masks from Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32), counter-based:
// element e of draw `counter[0]` is word e % 4 of Philox(counter = (e / 4 as two words, draw as two
// words), key = the layer's seed as two words). The draw counter lives on the device (the model's
// rng_counter, advanced once per training forward pass), so a replayed graph draws a fresh mask.
// mlp_gpu/backend/layer_ops.py is the NumPy reference of exactly this mapping.
// Layout: x, out, mask are n float32, row-major (N, K) batches seen flat; counter (1,) int64.
#include "common.cuh"

struct Philox4 { unsigned x, y, z, w; };

__device__ __forceinline__ unsigned mul_hi_lo(unsigned a, unsigned b, unsigned* hi) {
    unsigned long long p = (unsigned long long)a * b;
    *hi = (unsigned)(p >> 32);
    return (unsigned)p;
}

__device__ __forceinline__ Philox4 philox4x32_10(Philox4 c, unsigned k0, unsigned k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        unsigned hi0, hi1;
        unsigned lo0 = mul_hi_lo(PHILOX_M0, c.x, &hi0);
        unsigned lo1 = mul_hi_lo(PHILOX_M1, c.z, &hi1);
        c = Philox4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    }
    return c;
}

// Raw Philox blocks for the known-answer test: out[4 i .. 4 i + 3] = Philox(ctr[4 i .. 4 i + 3], key).
// Launch: 1-D grid and block of any size; grid-stride over the count blocks. One thread: the blocks
// i, i + grid_stride(), ...  Pre: ctr and out hold 4 * count words each.
extern "C" __global__ void philox_blocks(const unsigned* __restrict__ ctr, unsigned* __restrict__ out,
                                         int count, unsigned key0, unsigned key1) {
    for (long long i = global_index(); i < count; i += grid_stride()) {
        Philox4 r = philox4x32_10(Philox4{ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3]}, key0, key1);
        out[4 * i] = r.x; out[4 * i + 1] = r.y; out[4 * i + 2] = r.z; out[4 * i + 3] = r.w;
    }
}

// mask[e] <- (top DROPOUT_BITS bits of the word >= threshold) ? scale : 0; out[e] <- x[e] * mask[e].
// Launch: 1-D grid and block of any size; grid-stride over the ceil(n / 4) groups of 4 elements.
// One thread: the groups g, g + grid_stride(), ..., one Philox block (4 words) each.
// Pre: x, out and mask hold n floats each; counter holds 1; threshold <= 2^DROPOUT_BITS.
extern "C" __global__ void dropout_forward(const float* __restrict__ x, float* __restrict__ out,
                                           float* __restrict__ mask, const long long* __restrict__ counter,
                                           long long n, unsigned seed_lo, unsigned seed_hi, unsigned threshold,
                                           float scale) {
    unsigned long long draw = (unsigned long long)counter[0];
    long long groups = (n + 3) / 4;
    for (long long g = global_index(); g < groups; g += grid_stride()) {
        unsigned long long ug = (unsigned long long)g;
        Philox4 r = philox4x32_10(Philox4{(unsigned)ug, (unsigned)(ug >> 32), (unsigned)draw, (unsigned)(draw >> 32)},
                                  seed_lo, seed_hi);
        unsigned words[4] = {r.x, r.y, r.z, r.w};
        for (int j = 0; j < 4; ++j) {
            long long e = 4 * g + j;
            if (e < n) {
                float m = (words[j] >> (32 - DROPOUT_BITS)) >= threshold ? scale : 0.0f;
                mask[e] = m;
                out[e] = __fmul_rn(x[e], m);
            }
        }
    }
}

// dx <- dy * mask, element-wise (the mask holds 0 or 1 / (1 - rate)).
// Launch: 1-D grid and block of any size; grid-stride over n. One thread: the elements i,
// i + grid_stride(), ...  Pre: dy, mask and dx hold n floats each.
extern "C" __global__ void dropout_backward(const float* __restrict__ dy, const float* __restrict__ mask,
                                            float* __restrict__ dx, long long n) {
    for (long long i = global_index(); i < n; i += grid_stride()) dx[i] = __fmul_rn(dy[i], mask[i]);
}
