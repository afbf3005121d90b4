// The first node of a training step on the cuBLASLt route (mlp_gpu/backend/step_plan.py): the batch
// gather and the step's bookkeeping in one launch.
// Layout: src_x (rows_total, cols) uint8 pixels or float32 features; src_y (rows_total, y_cols) int32
// labels or float32 targets; perm (rows_total,) int64; cursor (1,) int64, the batch's first position in
// perm; x (rows, ld) float32 row-major, the layer input whose column `cols` holds the constant 1 that
// carries the bias through the GEMM (set once by the host, never written here); y (rows, y_cols);
// ticket (1,) uint32, zero between launches; hyper (HYPER_SIZE,) float32 optimizer scalars; acc (ACC_SIZE,)
// float64; scalars (4,) float32 read by the GEMMs in pointer mode DEVICE, slots LT_SCALAR_* (shared_constants).
// The caller owns every buffer.
#include "common.cuh"

// x[i, j] <- src_x[perm[cursor + i], j] * scale for j < cols; y[i, :] <- src_y[perm[cursor + i], :].
// Then the last block to finish (every block has read the cursor by then) ends the previous step's
// bookkeeping and opens this one: cursor += rows; with count_iteration hyper[iterations] += 1; where the
// cursor was past the epoch's start, acc[2] += 1 while the running loss acc[0] is still finite (so the
// count is that of the steps before this one, as `advance` leaves it after them); scalars[NEG_LR] <-
// -hyper[lr], which the weight-gradient GEMMs read as alpha.
// Launch (every gather_step_*): 1-D grid of any size, 1-D block of any size (grid-stride over the rows);
// one thread: elements idx, idx + grid_stride(), ... of x and y, and thread 0 of each block takes a
// ticket. Pre: ticket[0] == 0; ld > cols; every block reaches __syncthreads (no early return).
template <class In, class T>
__device__ __forceinline__ void gather_step(const In* __restrict__ src_x, const T* __restrict__ src_y,
                                            const long long* __restrict__ perm, long long* cursor,
                                            float* __restrict__ x, T* __restrict__ y, int rows, int cols, int ld,
                                            int y_cols, unsigned* ticket, float* hyper, double* acc,
                                            float* scalars, int count_iteration, float scale) {
    long long start = cursor[0];
    long long total = (long long)rows * cols;
    for (long long idx = global_index(); idx < total; idx += grid_stride()) {
        long long r = idx / cols, c = idx % cols;
        x[r * ld + c] = (float)src_x[perm[start + r] * cols + c] * scale;
    }
    long long y_total = (long long)rows * y_cols;
    for (long long idx = global_index(); idx < y_total; idx += grid_stride())
        y[idx] = src_y[perm[start + idx / y_cols] * y_cols + idx % y_cols];
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(ticket, 1u) == gridDim.x - 1) {
            cursor[0] = start + rows;
            if (count_iteration) hyper[HYPER_ITERATIONS] += 1.0f;
            if (start > 0 && acc[ACC_LOSS_SUM] - acc[ACC_LOSS_SUM] == 0.0) acc[ACC_FINITE_STEPS] += 1.0;
            scalars[LT_SCALAR_NEG_LR] = -hyper[HYPER_LR];
            ticket[0] = 0u;
        }
    }
}

// What every gather_step_* entry point passes on: its parameters, named alike in each.
#define GATHER_STEP_ARGS src_x, src_y, perm, cursor, x, y, rows, cols, ld, y_cols, ticket, hyper, acc, scalars, \
                         count_iteration

// uint8 pixels -> float32 in [0, 1], int32 labels. Launch: as above (every gather_step_*).
extern "C" __global__ void gather_step_u8_i32(const unsigned char* __restrict__ src_x, const int* __restrict__ src_y,
        const long long* __restrict__ perm, long long* cursor, float* __restrict__ x, int* __restrict__ y,
        int rows, int cols, int ld, int y_cols, unsigned* ticket, float* hyper, double* acc, float* scalars,
        int count_iteration) {
    gather_step(GATHER_STEP_ARGS, 1.0f / PIXEL_MAX);
}

// float32 features, int32 labels. Launch: as above.
extern "C" __global__ void gather_step_f32_i32(const float* __restrict__ src_x, const int* __restrict__ src_y,
        const long long* __restrict__ perm, long long* cursor, float* __restrict__ x, int* __restrict__ y,
        int rows, int cols, int ld, int y_cols, unsigned* ticket, float* hyper, double* acc, float* scalars,
        int count_iteration) {
    gather_step(GATHER_STEP_ARGS, 1.0f);
}

// uint8 pixels, float32 targets. Launch: as above.
extern "C" __global__ void gather_step_u8_f32(const unsigned char* __restrict__ src_x, const float* __restrict__ src_y,
        const long long* __restrict__ perm, long long* cursor, float* __restrict__ x, float* __restrict__ y,
        int rows, int cols, int ld, int y_cols, unsigned* ticket, float* hyper, double* acc, float* scalars,
        int count_iteration) {
    gather_step(GATHER_STEP_ARGS, 1.0f / PIXEL_MAX);
}

// float32 features and targets. Launch: as above.
extern "C" __global__ void gather_step_f32_f32(const float* __restrict__ src_x, const float* __restrict__ src_y,
        const long long* __restrict__ perm, long long* cursor, float* __restrict__ x, float* __restrict__ y,
        int rows, int cols, int ld, int y_cols, unsigned* ticket, float* hyper, double* acc, float* scalars,
        int count_iteration) {
    gather_step(GATHER_STEP_ARGS, 1.0f);
}
