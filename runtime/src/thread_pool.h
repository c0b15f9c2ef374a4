// A fixed set of worker threads for the CPU backend. parallel_for splits [0, n) into one
// contiguous chunk per thread (the caller runs chunk 0), so work is deterministic: each output is
// always produced by the same arithmetic whatever the thread count.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qmodel::runtime {

class ThreadPool {
 public:
  // fn(worker, begin, end): worker in [0, size()), [begin, end) non-empty.
  using RangeFn = std::function<void(unsigned worker, size_t begin, size_t end)>;

  // n_threads counts the caller; 0 = hardware concurrency. Falls back to fewer threads when the
  // system refuses to create more.
  explicit ThreadPool(unsigned n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }
  // Blocks until every chunk is done. Uses at most max_parts chunks (0 = size()), fewer when n is
  // small, so tiny jobs do not pay for waking every thread.
  void parallel_for(size_t n, const RangeFn& fn, unsigned max_parts = 0);

 private:
  void worker_loop(unsigned index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const RangeFn* job_ = nullptr;
  size_t job_n_ = 0;
  unsigned job_parts_ = 0;
  uint64_t generation_ = 0;
  unsigned pending_ = 0;
  bool stop_ = false;
};

}  // namespace qmodel::runtime
