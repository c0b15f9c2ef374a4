// The one pool of worker threads for the data-parallel loops of the converter and the CPU runtime
// (it lives in qmodel_format because both link it). Two ways to split a loop, on one mechanism:
// a call publishes a job to its first `parts` workers (the caller is worker 0), each runs it once
// with its own index, and the call returns when all of them are done.
//
//  - parallel_for(n, fn(task, worker)): tasks are claimed one at a time from a shared counter
//    (dynamic load balancing). Which worker runs a task varies from run to run, so fn must write
//    to task-determined places and use `worker` only to pick per-thread scratch; then the result
//    does not depend on the thread count or the scheduling (the converter's output bytes).
//  - parallel_for_ranges(n, fn(worker, begin, end), max_parts): [0, n) in `parts` contiguous,
//    non-empty chunks, parts = min(size(), max_parts (0 = no limit), n); chunk p is always
//    [n*p/parts, n*(p+1)/parts) and runs on worker p. The split is a function of n and parts
//    only (the CPU runtime's chunking).
//
// Guarantees and rules:
//  - worker < size(), and at any moment at most one thread runs with a given worker index, so fn
//    may index per-worker scratch buffers by it.
//  - n == 0 calls fn not at all; a job with one part runs on the caller alone, nobody is woken.
//  - Calls from different threads on one pool are serialised: one call runs at a time, whole.
//  - A call made from inside a task of the same pool (nesting) does not deadlock: it runs inline
//    on the calling thread with that thread's worker index, as one part ([0, n) for ranges).
//  - fn may throw (std::bad_alloc, say): once one task has thrown, parallel_for claims no further
//    tasks, the call waits for the workers still running, then rethrows on the caller (the
//    caller's own exception if it threw one, else the first a worker reported). Chunks of
//    parallel_for_ranges other than the throwing one still run.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qmodel {

class ThreadPool {
 public:
  using TaskFn = std::function<void(size_t task, unsigned worker)>;
  using RangeFn = std::function<void(unsigned worker, size_t begin, size_t end)>;

  // n_threads counts the caller; 0 = std::thread::hardware_concurrency(). Runs with fewer threads
  // (at least the caller) when the system refuses to create more.
  explicit ThreadPool(unsigned n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // fn(task, worker) once for every task in [0, n_tasks), claimed dynamically; blocks until done.
  void parallel_for(size_t n_tasks, const TaskFn& fn);
  // fn(worker, begin, end) once per contiguous chunk of [0, n), at most max_parts chunks
  // (0 = size()), fewer when n is small, so tiny jobs do not pay for waking every thread.
  void parallel_for_ranges(size_t n, const RangeFn& fn, unsigned max_parts = 0);

 private:
  using Job = void (*)(void* ctx, unsigned worker);
  // Runs job(ctx, w) for w in [0, parts) (1 <= parts <= size()), w = 0 on the caller.
  void run(unsigned parts, Job job, void* ctx);
  void worker_loop(unsigned index);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // serialises calls from different threads
  std::mutex mutex_;      // guards the fields below
  std::condition_variable start_cv_, done_cv_;
  Job job_ = nullptr;
  void* ctx_ = nullptr;
  unsigned parts_ = 0;
  unsigned pending_ = 0;  // workers 1..parts_-1 not yet done with the current job
  uint64_t generation_ = 0;
  std::exception_ptr error_;  // first exception a worker reported for the current job
  bool stop_ = false;
};

}  // namespace qmodel
