// The OS threads that run a grid's blocks (and the emulated cuBLASLt's columns): workers plus the
// launching thread. QMODEL_EMU_THREADS sets the total (default hardware_concurrency; 1 runs
// everything on the launching thread).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cuda_emu::detail {

class ThreadPool {
 public:
  static ThreadPool& instance();
  ~ThreadPool();

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs `work` on up to `participants` threads at once (the caller is one of them) and returns
  // when every copy has returned. `work` shares out the items itself (an atomic counter).
  // One job at a time: concurrent callers queue.
  void run(const std::function<void()>& work, int participants);

 private:
  explicit ThreadPool(int n_threads);
  void worker_loop();

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // serialises run()
  std::mutex m_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  uint64_t generation_ = 0;
  int open_slots_ = 0;  // workers still allowed to join the current job
  int running_ = 0;     // workers inside the current job
  bool stop_ = false;
};

}  // namespace cuda_emu::detail
