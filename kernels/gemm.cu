// Tiled SGEMM for the shapes a training step needs, used where cuBLAS cannot be captured
// into a CUDA graph. C (m, n) row-major with leading dimension ldc <- op(A) @ op(B).
// op(A)[i, p] = a[i * sa0 + p * sa1] and op(B)[p, j] = b[p * sb0 + j * sb1], so one kernel
// serves NN (x @ W), NT (dz @ W^T) and TN (x^T @ dz) by its strides.
#include "common.cuh"

// Launch: block exactly (GEMM_TILE, GEMM_TILE); grid (ceil(n / GEMM_TILE), ceil(m / GEMM_TILE)), so
// ceil(m / GEMM_TILE) <= 65535 (the grid's y limit). One thread: one element C[row, col], the tile
// loads shared by the block. Every thread reaches both __syncthreads (no early return).
// Pre: c does not overlap a or b.
extern "C" __global__ void sgemm_strided(int m, int n, int k,
                                         const float* __restrict__ a, long long sa0, long long sa1,
                                         const float* __restrict__ b, long long sb0, long long sb1,
                                         float* __restrict__ c, long long ldc) {
    __shared__ float as[GEMM_TILE][GEMM_TILE + 1];
    __shared__ float bs[GEMM_TILE][GEMM_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * GEMM_TILE + ty, col = blockIdx.x * GEMM_TILE + tx;
    float acc = 0.0f;
    for (int p0 = 0; p0 < k; p0 += GEMM_TILE) {
        as[ty][tx] = (row < m && p0 + tx < k) ? a[row * sa0 + (p0 + tx) * sa1] : 0.0f;
        bs[ty][tx] = (p0 + ty < k && col < n) ? b[(p0 + ty) * sb0 + col * sb1] : 0.0f;
        __syncthreads();
        for (int p = 0; p < GEMM_TILE; ++p) acc += as[ty][p] * bs[p][tx];
        __syncthreads();
    }
    if (row < m && col < n) c[row * ldc + col] = acc;
}
