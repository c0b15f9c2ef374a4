// Kernel launches: validation of the configuration, then the grid's blocks shared out over the
// thread pool, each block run by the OS thread's BlockRunner.
#include <atomic>
#include <mutex>
#include <string>

#include "block_runner.h"
#include "cuda_emu/launch.h"
#include "device.h"
#include "errors.h"
#include "stream.h"
#include "symbolize.h"
#include "thread_pool.h"

namespace cuda_emu::detail {
namespace {

std::string dims(dim3 d) {
  return "(" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + ")";
}

// CUDA's limits for sm_90; the error a real launch gives for each violation.
cudaError_t validate_launch(const LaunchConfig& c, std::string* why) {
  const dim3 b = c.block, g = c.grid;
  const unsigned long long threads = static_cast<unsigned long long>(b.x) * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
      threads > static_cast<unsigned long long>(kMaxThreadsPerBlock)) {
    *why = "block " + dims(b) + " (1..1024 threads, z <= 64)";
    return cudaErrorInvalidConfiguration;
  }
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    *why = "grid " + dims(g) + " (x <= 2^31-1, y and z <= 65535, none 0)";
    return cudaErrorInvalidConfiguration;
  }
  if (c.shared_bytes > kSharedPerBlockOptin || c.shared_bytes > max_dynamic_shared(c.kernel)) {
    *why = "dynamic shared memory of " + std::to_string(c.shared_bytes) + " bytes (more than 48 KiB needs "
           "cudaFuncAttributeMaxDynamicSharedMemorySize; at most 227 KiB)";
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

Fault run_grid(const LaunchConfig& c, const KernelTask& task) {
  const uint64_t nx = c.grid.x, ny = c.grid.y, total = nx * ny * c.grid.z;
  const BlockShape shape{c.grid, c.block, c.shared_bytes};
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Fault first;
  const std::function<void()> work = [&] {
    BlockRunner& runner = BlockRunner::for_this_thread();
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= total) return;
      const uint3 idx{static_cast<unsigned>(b % nx), static_cast<unsigned>((b / nx) % ny),
                      static_cast<unsigned>(b / (nx * ny))};
      Fault f = runner.run_block(task, shape, idx);
      if (!f.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = std::move(f);
        stop.store(true, std::memory_order_relaxed);
        return;
      }
    }
  };
  ThreadPool& pool = ThreadPool::instance();
  pool.run(work, static_cast<int>(std::min<uint64_t>(total, static_cast<uint64_t>(pool.threads()))));
  if (!first.ok()) first.message = "kernel " + symbol_name(c.kernel) + ": " + first.message;
  return first;
}

}  // namespace

cudaError_t submit_kernel(const LaunchConfig& config, std::shared_ptr<const KernelTask> task) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (tls_thread != nullptr) {
    print_message("launch of " + symbol_name(config.kernel) + " from device code: dynamic parallelism is not emulated");
    return set_error(cudaErrorNotSupported);
  }
  std::string why;
  if (const cudaError_t e = validate_launch(config, &why); e != cudaSuccess) {
    print_message("launch of " + symbol_name(config.kernel) + " rejected: " + why);
    invalidate_capture_of(config.stream);
    return set_error(e);
  }
  auto op = std::make_shared<Op>();
  op->type = cudaGraphNodeTypeKernel;
  op->run = [config, task = std::move(task)] { return run_grid(config, *task); };
  return set_error(enqueue(config.stream, std::move(op)));
}

}  // namespace cuda_emu::detail
