#include "qmodel/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <system_error>

namespace qmodel {

namespace {

// The pool whose job this thread is running, and its worker index there: a worker thread is
// bound to its pool for life, a caller for the duration of its call. Detects nested calls.
thread_local const ThreadPool* t_pool = nullptr;
thread_local unsigned t_worker = 0;

class BindCaller {
 public:
  BindCaller(const ThreadPool* pool, unsigned worker) : pool_(t_pool), worker_(t_worker) {
    t_pool = pool;
    t_worker = worker;
  }
  ~BindCaller() {
    t_pool = pool_;
    t_worker = worker_;
  }
  BindCaller(const BindCaller&) = delete;
  BindCaller& operator=(const BindCaller&) = delete;

 private:
  const ThreadPool* pool_;
  unsigned worker_;
};

struct TaskJob {
  const ThreadPool::TaskFn* fn;
  size_t n;
  std::atomic<size_t> next{0};
};

void run_tasks(void* ctx, unsigned worker) {
  TaskJob& job = *static_cast<TaskJob*>(ctx);
  for (size_t task = job.next.fetch_add(1, std::memory_order_relaxed); task < job.n;
       task = job.next.fetch_add(1, std::memory_order_relaxed)) {
    try {
      (*job.fn)(task, worker);
    } catch (...) {
      job.next.store(job.n, std::memory_order_relaxed);  // nobody claims another task
      throw;
    }
  }
}

struct RangeJob {
  const ThreadPool::RangeFn* fn;
  size_t n;
  unsigned parts;
};

// floor(n * p / parts) without overflow: n = q * parts + r, and r * p < parts^2 <= 2^64.
size_t chunk_begin(size_t n, unsigned parts, unsigned p) {
  return n / parts * p + n % parts * p / parts;
}

void run_range(void* ctx, unsigned part) {
  const RangeJob& job = *static_cast<const RangeJob*>(ctx);
  (*job.fn)(part, chunk_begin(job.n, job.parts, part), chunk_begin(job.n, job.parts, part + 1));
}

}  // namespace

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

void ThreadPool::parallel_for(size_t n_tasks, const TaskFn& fn) {
  if (n_tasks == 0) return;
  if (t_pool == this) {  // nested: everything on this thread, under its own worker index
    for (size_t task = 0; task < n_tasks; ++task) fn(task, t_worker);
    return;
  }
  TaskJob job{&fn, n_tasks};
  run(static_cast<unsigned>(std::min<size_t>(size(), n_tasks)), run_tasks, &job);
}

void ThreadPool::parallel_for_ranges(size_t n, const RangeFn& fn, unsigned max_parts) {
  if (n == 0) return;
  if (t_pool == this) {
    fn(t_worker, 0, n);
    return;
  }
  unsigned parts = size();
  if (max_parts != 0) parts = std::min(parts, max_parts);
  if (n < parts) parts = static_cast<unsigned>(n);
  RangeJob job{&fn, n, parts};
  run(parts, run_range, &job);
}

void ThreadPool::run(unsigned parts, Job job, void* ctx) {
  std::lock_guard<std::mutex> serial(run_mutex_);
  BindCaller bind(this, 0);
  if (parts <= 1) {
    job(ctx, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = job;
    ctx_ = ctx;
    parts_ = parts;
    pending_ = parts - 1;
    error_ = nullptr;
    ++generation_;
  }
  start_cv_.notify_all();
  std::exception_ptr error;
  try {
    job(ctx, 0);
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    if (!error) error = error_;
    error_ = nullptr;
    job_ = nullptr;
    ctx_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_loop(unsigned index) {
  t_pool = this;
  t_worker = index;
  uint64_t seen = 0;
  for (;;) {
    Job job = nullptr;
    void* ctx = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      // A worker that slept through a job it had no part in may see the next one directly; the
      // caller cannot publish a job before every part of the previous one is done.
      if (index >= parts_) continue;
      job = job_;
      ctx = ctx_;
    }
    std::exception_ptr error;
    try {
      job(ctx, index);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (error && !error_) error_ = error;
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

}  // namespace qmodel
