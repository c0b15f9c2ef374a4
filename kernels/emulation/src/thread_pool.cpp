#include "thread_pool.h"

#include <algorithm>
#include <cstdlib>

#include "cuda_emu/emulator.h"

namespace cuda_emu::detail {
namespace {

int configured_threads() {
  if (const char* env = std::getenv("QMODEL_EMU_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1) return static_cast<int>(std::min(n, 256L));
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(configured_threads());
  return pool;
}

ThreadPool::ThreadPool(int n_threads) {
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || (generation_ != seen && open_slots_ > 0); });
    if (stop_) return;
    seen = generation_;
    --open_slots_;
    ++running_;
    const std::function<void()>* job = job_;
    lock.unlock();
    (*job)();
    lock.lock();
    if (--running_ == 0) done_.notify_all();
  }
}

void ThreadPool::run(const std::function<void()>& work, int participants) {
  std::lock_guard<std::mutex> serial(job_mutex_);
  const int helpers = std::min(participants - 1, static_cast<int>(workers_.size()));
  if (helpers > 0) {
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = &work;
      ++generation_;
      open_slots_ = helpers;
    }
    wake_.notify_all();
  }
  work();
  if (helpers > 0) {
    std::unique_lock<std::mutex> lock(m_);
    open_slots_ = 0;  // the work is shared out: workers that have not woken up yet need not join
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }
}

}  // namespace cuda_emu::detail

namespace cuda_emu {
int worker_threads() { return detail::ThreadPool::instance().threads(); }
}  // namespace cuda_emu
