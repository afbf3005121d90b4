// Host-execution harness: runs CUDA kernel sources on the CPU, one std::thread per CUDA
// thread and one block after another. Included (g++ -std=c++20 -include) before a kernel
// file, it maps the CUDA names the kernels use onto C++:
//   __shared__            -> static (blocks run one at a time, so one copy is enough)
//   __syncthreads()       -> a std::barrier per block
//   __shfl_down_sync()    -> a write to a per-warp slot array between two waits on a per-warp barrier
//   atomicAdd()           -> std::atomic_ref
//   __threadfence()       -> std::atomic_thread_fence
// A thread that returns drops out of both barriers, so the others never deadlock.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
using uint3 = dim3;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

namespace mlp_host {
struct Warp {
    explicit Warp(int size) : size(size), barrier(size) {}
    int size;
    std::barrier<> barrier;
    unsigned long long slots[32] = {};
};
struct Block {
    explicit Block(int n) : barrier(n) {}
    std::barrier<> barrier;
    std::vector<std::unique_ptr<Warp>> warps;
};
inline thread_local Block* block = nullptr;
inline thread_local int linear_tid = 0;
}  // namespace mlp_host

inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncthreads() { mlp_host::block->barrier.arrive_and_wait(); }

template <class T>
T __shfl_down_sync(unsigned, T value, int delta) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    mlp_host::Warp& w = *mlp_host::block->warps[mlp_host::linear_tid / 32];
    int lane = mlp_host::linear_tid % 32;
    std::memcpy(&w.slots[lane], &value, sizeof(T));
    w.barrier.arrive_and_wait();
    T out = value;  // lanes past the end of the warp keep their own value, as in CUDA
    if (lane + delta < w.size) std::memcpy(&out, &w.slots[lane + delta], sizeof(T));
    w.barrier.arrive_and_wait();
    return out;
}

template <class T>
T atomicAdd(T* address, T value) { return std::atomic_ref<T>(*address).fetch_add(value); }

inline float __fmul_rn(float a, float b) { return a * b; }

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

namespace mlp_host {
// Run kernel() over the grid: blocks in order, each block's threads concurrently.
inline void launch(dim3 grid, dim3 block_dim, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block_dim;
    int nthreads = block_dim.x * block_dim.y * block_dim.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block blk(nthreads);
                for (int w = 0; w * 32 < nthreads; ++w)
                    blk.warps.push_back(std::make_unique<Warp>(std::min(32, nthreads - w * 32)));
                std::vector<std::thread> threads;
                threads.reserve(nthreads);
                for (int t = 0; t < nthreads; ++t)
                    threads.emplace_back([&, t, bx, by, bz] {
                        block = &blk;
                        linear_tid = t;
                        threadIdx = {t % block_dim.x, (t / block_dim.x) % block_dim.y,
                                     t / (block_dim.x * block_dim.y)};
                        blockIdx = {bx, by, bz};
                        kernel();
                        blk.barrier.arrive_and_drop();
                        blk.warps[t / 32]->barrier.arrive_and_drop();
                    });
                for (auto& th : threads) th.join();
            }
}
}  // namespace mlp_host
