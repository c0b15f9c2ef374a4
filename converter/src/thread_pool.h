// A fixed pool of workers for data-parallel loops. parallel_for hands out task indices from an
// atomic counter; results must go to disjoint, index-determined places so the output does not
// depend on the thread count or the scheduling.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qmodel::converter {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return n_threads_; }
  // Runs fn(task, worker) for task in [0, n_tasks) on all workers (the caller is worker 0) and
  // returns when every task is done. worker < size() indexes per-thread scratch buffers.
  void parallel_for(size_t n_tasks, const std::function<void(size_t task, unsigned worker)>& fn);

 private:
  void worker_loop(unsigned worker);
  void run_tasks(unsigned worker);

  unsigned n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t, unsigned)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_task_{0};
  unsigned busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace qmodel::converter
