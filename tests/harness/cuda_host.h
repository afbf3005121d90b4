// Host-execution harness: runs CUDA kernel sources on the CPU, one std::thread per CUDA
// thread. launch() runs one block after another; launch_cooperative() runs every block of the
// grid at once (a cooperative launch: the blocks are co-resident, so a grid-wide barrier such as
// common.cuh's grid_sync can wait for all of them). Included (g++ -std=c++20 -include) before a
// kernel file, it maps the CUDA names the kernels use onto C++:
//   __shared__            -> static (one copy: right for launch(), whose blocks run one at a time;
//                            a kernel launched cooperatively uses MLP_DYNAMIC_SHARED only)
//   MLP_DYNAMIC_SHARED    -> the calling block's own dynamic shared memory (shared_bytes per block)
//   __syncthreads()       -> a std::barrier per block
//   __shfl_down_sync()    -> a write to a per-warp slot array between two waits on a per-warp barrier
//   atomicAdd(), atomicExch() -> std::atomic_ref (sequentially consistent)
//   __threadfence()       -> std::atomic_thread_fence
//   MLP_SPIN_READ/PAUSE   -> an atomic load / std::this_thread::yield (grid_sync's spin, common.cuh)
// A thread that returns drops out of both barriers, so the others never deadlock.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
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
#define MLP_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(mlp_host::block->shared.get())

namespace mlp_host {
struct Warp {
    explicit Warp(int size) : size(size), barrier(size) {}
    int size;
    std::barrier<> barrier;
    unsigned long long slots[32] = {};
};
struct Block {
    Block(int n, size_t shared_bytes)
        : barrier(n), shared(new std::max_align_t[shared_bytes / sizeof(std::max_align_t) + 1]()) {
        for (int w = 0; w * 32 < n; ++w) warps.push_back(std::make_unique<Warp>(std::min(32, n - w * 32)));
    }
    std::barrier<> barrier;
    std::vector<std::unique_ptr<Warp>> warps;
    std::unique_ptr<std::max_align_t[]> shared;  // this block's dynamic shared memory, zeroed
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

template <class T>
T atomicExch(T* address, T value) { return std::atomic_ref<T>(*address).exchange(value); }

#define MLP_SPIN_READ(p) std::atomic_ref<unsigned>(*(p)).load()
#define MLP_SPIN_PAUSE() std::this_thread::yield()

inline float __fmul_rn(float a, float b) { return a * b; }

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

namespace mlp_host {
// One thread of a block: run the kernel, then drop out of the block's and the warp's barriers, so
// threads that return early never deadlock the others.
inline void run_thread(Block& blk, int t, dim3 block_dim, dim3 block_idx, const std::function<void()>& kernel) {
    block = &blk;
    linear_tid = t;
    threadIdx = {t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y)};
    blockIdx = block_idx;
    kernel();
    blk.barrier.arrive_and_drop();
    blk.warps[t / 32]->barrier.arrive_and_drop();
}

// Run kernel() over the grid: blocks in order, each block's threads concurrently.
inline void launch(dim3 grid, dim3 block_dim, const std::function<void()>& kernel, size_t shared_bytes = 0) {
    gridDim = grid;
    blockDim = block_dim;
    int nthreads = block_dim.x * block_dim.y * block_dim.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block blk(nthreads, shared_bytes);
                std::vector<std::thread> threads;
                threads.reserve(nthreads);
                for (int t = 0; t < nthreads; ++t)
                    threads.emplace_back([&, t, bx, by, bz] { run_thread(blk, t, block_dim, {bx, by, bz}, kernel); });
                for (auto& th : threads) th.join();
            }
}

// A cooperative launch: every block of the grid at once, each with its own barriers and its own
// shared_bytes of dynamic shared memory, so the blocks can wait for each other (grid_sync).
inline void launch_cooperative(dim3 grid, dim3 block_dim, size_t shared_bytes, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block_dim;
    int nthreads = block_dim.x * block_dim.y * block_dim.z;
    std::vector<std::unique_ptr<Block>> blocks;
    std::vector<std::thread> threads;
    threads.reserve((size_t)nthreads * grid.x * grid.y * grid.z);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blocks.push_back(std::make_unique<Block>(nthreads, shared_bytes));
                Block* blk = blocks.back().get();
                for (int t = 0; t < nthreads; ++t)
                    threads.emplace_back([=, &kernel] { run_thread(*blk, t, block_dim, {bx, by, bz}, kernel); });
            }
    for (auto& th : threads) th.join();
}
}  // namespace mlp_host
