// Batch gather from a device-resident data set, and the end-of-step counter update.
// Layout: src (rows_total, cols) row-major, uint8 pixels, float32 features or int32 labels;
// perm (rows_total,) int64, this epoch's order; cursor (1,) int64, the first position of the
// batch in perm; out (rows, cols). The step reads cursor on the device, so a captured graph
// replays every batch of an epoch without host involvement.
#include "common.cuh"

// out[i, j] <- src[perm[cursor + i], j] * scale, one thread per element of out.
template <class In, class Out>
__device__ __forceinline__ void gather_rows(const In* __restrict__ src, const long long* __restrict__ perm,
                                            const long long* __restrict__ cursor, Out* __restrict__ out,
                                            int rows, int cols, Out scale) {
    long long start = cursor[0], total = (long long)rows * cols;
    for (long long idx = global_index(); idx < total; idx += grid_stride())
        out[idx] = (Out)src[perm[start + idx / cols] * cols + idx % cols] * scale;
}

// Launch (every gather_rows_*): 1-D grid and block of any size; grid-stride over rows * cols.
// One thread: the elements idx, idx + grid_stride(), ... of out. Pre: cursor + rows <= len(perm),
// every perm entry < rows of src.
// uint8 pixels -> float32 in [0, 1]
extern "C" __global__ void gather_rows_u8(const unsigned char* __restrict__ src, const long long* __restrict__ perm,
                                          const long long* __restrict__ cursor, float* __restrict__ out,
                                          int rows, int cols) {
    gather_rows(src, perm, cursor, out, rows, cols, 1.0f / PIXEL_MAX);
}

// Launch: as gather_rows_u8.
extern "C" __global__ void gather_rows_f32(const float* __restrict__ src, const long long* __restrict__ perm,
                                           const long long* __restrict__ cursor, float* __restrict__ out,
                                           int rows, int cols) {
    gather_rows(src, perm, cursor, out, rows, cols, 1.0f);
}

// int32 labels. Launch: as gather_rows_u8.
extern "C" __global__ void gather_rows_i32(const int* __restrict__ src, const long long* __restrict__ perm,
                                           const long long* __restrict__ cursor, int* __restrict__ out,
                                           int rows, int cols) {
    gather_rows(src, perm, cursor, out, rows, cols, 1);
}

// End of a step, one thread: cursor += n; with count_iteration hyper[HYPER_ITERATIONS] += 1; with
// count_finite acc[ACC_FINITE_STEPS] += 1 while the running loss acc[ACC_LOSS_SUM] is finite
// (x - x == 0 only for finite x), so acc[ACC_FINITE_STEPS] + 1 names the step a run diverged at.
// Launch: grid (1,), block (1,): thread 0 does it all (any other thread does nothing).
extern "C" __global__ void advance(long long* cursor, float* hyper, double* acc, int n, int count_iteration,
                                   int count_finite) {
    if (global_index() == 0) {
        cursor[0] += n;
        if (count_iteration) hyper[HYPER_ITERATIONS] += 1.0f;
        if (count_finite && acc[ACC_LOSS_SUM] - acc[ACC_LOSS_SUM] == 0.0) acc[ACC_FINITE_STEPS] += 1.0;
    }
}
