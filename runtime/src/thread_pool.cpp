#include "thread_pool.h"

#include <algorithm>
#include <cstdint>
#include <system_error>

namespace qmodel::runtime {

ThreadPool::ThreadPool(unsigned n_threads) {
  if (n_threads == 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(n_threads - 1);
  for (unsigned i = 1; i < n_threads; ++i) {
    try {
      workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::system_error&) {
      break;  // run with the threads we got
    }
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

namespace {
// Chunk p of n split into parts: sizes differ by at most one.
inline void chunk_bounds(size_t n, unsigned parts, unsigned p, size_t* begin, size_t* end) {
  *begin = n * p / parts;
  *end = n * (p + 1) / parts;
}
}  // namespace

void ThreadPool::parallel_for(size_t n, const RangeFn& fn, unsigned max_parts) {
  if (n == 0) return;
  unsigned parts = size();
  if (max_parts != 0) parts = std::min(parts, max_parts);
  if (n < parts) parts = static_cast<unsigned>(n);
  if (parts <= 1) {
    fn(0, 0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_parts_ = parts;
    pending_ = parts - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  size_t begin, end;
  chunk_bounds(n, parts, 0, &begin, &end);
  fn(0, begin, end);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    const RangeFn* job;
    size_t n;
    unsigned parts;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      parts = job_parts_;
    }
    if (index < parts) {
      size_t begin, end;
      chunk_bounds(n, parts, index, &begin, &end);
      (*job)(index, begin, end);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace qmodel::runtime
