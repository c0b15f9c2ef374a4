// qmodel::ThreadPool (format/include/qmodel/thread_pool.h), the pool the converter and the CPU
// runtime share: every task / index exactly once for n = 0, 1, small and large with 1, 2 and many
// threads; worker indices below size() and never in use by two threads at once; the contiguous
// split and max_parts; concurrent calls from two threads serialised; nested calls inline;
// exceptions from tasks rethrown on the caller with the pool still usable.
#include "qmodel/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace qmodel {
namespace {

constexpr unsigned kThreadCounts[] = {1, 2, 3, 8, 33};
constexpr size_t kSizes[] = {0, 1, 2, 3, 7, 64, 1000, 100003};

// One flag per worker index: a task marks its worker busy while it runs, so two threads running
// with the same index at the same time are caught.
class WorkerGuard {
 public:
  explicit WorkerGuard(unsigned n) : busy_(n) {}
  void enter(unsigned worker) {
    ASSERT_LT(worker, busy_.size());
    if (busy_[worker].exchange(true)) clash_ = true;
  }
  void leave(unsigned worker) { busy_[worker].store(false); }
  bool clash() const { return clash_.load(); }

 private:
  std::vector<std::atomic<bool>> busy_;
  std::atomic<bool> clash_{false};
};

std::string label(unsigned threads, size_t n) {
  return "threads " + std::to_string(threads) + " n " + std::to_string(n);
}

TEST(ThreadPool, SizeCountsTheCallerAndZeroMeansHardwareConcurrency) {
  for (unsigned t : kThreadCounts) EXPECT_EQ(ThreadPool(t).size(), t);
  EXPECT_EQ(ThreadPool(0).size(), std::max(1u, std::thread::hardware_concurrency()));
}

TEST(ThreadPool, ParallelForRunsEveryTaskOnce) {
  for (unsigned threads : kThreadCounts) {
    ThreadPool pool(threads);
    for (size_t n : kSizes) {
      std::vector<std::atomic<int>> runs(n);
      WorkerGuard guard(pool.size());
      std::atomic<bool> bad_worker{false};
      pool.parallel_for(n, [&](size_t task, unsigned worker) {
        if (worker >= pool.size()) {
          bad_worker = true;
          return;
        }
        guard.enter(worker);
        runs[task].fetch_add(1);
        guard.leave(worker);
      });
      EXPECT_FALSE(bad_worker) << label(threads, n);
      EXPECT_FALSE(guard.clash()) << label(threads, n);
      size_t wrong = 0;
      for (const auto& r : runs) wrong += r.load() != 1;
      EXPECT_EQ(wrong, 0u) << label(threads, n);
    }
  }
}

TEST(ThreadPool, ParallelForUsesEveryWorkerOnLongJobs) {
  // Not a guarantee of the interface, but a pool that never hands work out is broken: with tasks
  // that each wait until a second worker has joined in, the job only finishes if one did.
  ThreadPool pool(4);
  std::atomic<unsigned> seen_mask{0};
  pool.parallel_for(64, [&](size_t, unsigned worker) {
    seen_mask.fetch_or(1u << worker);
    while (__builtin_popcount(seen_mask.load()) < 2) std::this_thread::yield();
  });
  EXPECT_GE(__builtin_popcount(seen_mask.load()), 2);
}

TEST(ThreadPool, RangesCoverEveryIndexOnceInContiguousChunks) {
  for (unsigned threads : kThreadCounts) {
    ThreadPool pool(threads);
    for (size_t n : kSizes) {
      for (unsigned max_parts : {0u, 1u, 2u, 5u, 1000u}) {
        const std::string what = label(threads, n) + " max_parts " + std::to_string(max_parts);
        std::vector<std::atomic<int>> runs(n);
        std::vector<std::pair<size_t, size_t>> chunk(pool.size(), {0, 0});
        std::vector<int> calls(pool.size(), 0);
        std::mutex m;
        WorkerGuard guard(pool.size());
        std::atomic<bool> bad_worker{false};
        pool.parallel_for_ranges(
            n,
            [&](unsigned worker, size_t begin, size_t end) {
              if (worker >= pool.size()) {
                bad_worker = true;
                return;
              }
              guard.enter(worker);
              for (size_t i = begin; i < end && i < n; ++i) runs[i].fetch_add(1);
              {
                std::lock_guard<std::mutex> lock(m);
                chunk[worker] = {begin, end};
                ++calls[worker];
              }
              guard.leave(worker);
            },
            max_parts);
        ASSERT_FALSE(bad_worker) << what;
        EXPECT_FALSE(guard.clash()) << what;
        size_t wrong = 0;
        for (const auto& r : runs) wrong += r.load() != 1;
        EXPECT_EQ(wrong, 0u) << what;

        // parts = min(size, max_parts (0: none), n); part p on worker p, [n*p/parts, n*(p+1)/parts).
        size_t parts = pool.size();
        if (max_parts != 0) parts = std::min<size_t>(parts, max_parts);
        parts = std::min(parts, n);
        for (size_t w = 0; w < pool.size(); ++w) {
          if (w >= parts) {
            EXPECT_EQ(calls[w], 0) << what << " worker " << w;
            continue;
          }
          EXPECT_EQ(calls[w], 1) << what << " worker " << w;
          EXPECT_EQ(chunk[w].first, n * w / parts) << what << " worker " << w;
          EXPECT_EQ(chunk[w].second, n * (w + 1) / parts) << what << " worker " << w;
          EXPECT_LT(chunk[w].first, chunk[w].second) << what << " worker " << w << ": empty chunk";
        }
      }
    }
  }
}

TEST(ThreadPool, RangeBoundsDoNotOverflowForHugeN) {
  ThreadPool pool(3);
  const size_t n = SIZE_MAX - 5;
  std::vector<std::pair<size_t, size_t>> chunk(3);
  pool.parallel_for_ranges(n, [&](unsigned worker, size_t begin, size_t end) { chunk[worker] = {begin, end}; });
  EXPECT_EQ(chunk[0].first, 0u);
  EXPECT_EQ(chunk[0].second, chunk[1].first);
  EXPECT_EQ(chunk[1].second, chunk[2].first);
  EXPECT_EQ(chunk[2].second, n);
  // n = 3q + r: the exact floor(n * p / 3) for p = 1, 2.
  const size_t q = n / 3, r = n % 3;
  EXPECT_EQ(chunk[1].first, q + r / 3);
  EXPECT_EQ(chunk[2].first, 2 * q + 2 * r / 3);
}

TEST(ThreadPool, ManySmallJobsInARow) {
  // Lost or stale wake-ups would hang or run a job twice; alternate the two kinds and part counts.
  ThreadPool pool(6);
  std::vector<int> hits(37);
  for (int round = 0; round < 3000; ++round) {
    const size_t n = static_cast<size_t>(round % 37) + 1;
    std::atomic<size_t> sum{0};
    if (round % 2 == 0) {
      pool.parallel_for(n, [&](size_t task, unsigned) { sum.fetch_add(task + 1); });
    } else {
      pool.parallel_for_ranges(
          n,
          [&](unsigned, size_t begin, size_t end) {
            for (size_t i = begin; i < end; ++i) sum.fetch_add(i + 1);
          },
          static_cast<unsigned>(round % 7));
    }
    ASSERT_EQ(sum.load(), n * (n + 1) / 2) << "round " << round;
  }
}

TEST(ThreadPool, ConcurrentCallsFromTwoThreadsAreSerialised) {
  ThreadPool pool(4);
  std::atomic<int> in_flight[2] = {{0}, {0}};
  std::atomic<bool> overlap{false}, miscount{false};
  auto caller = [&](int me) {
    for (int round = 0; round < 300; ++round) {
      const size_t n = 50 + static_cast<size_t>(round % 13);
      std::vector<std::atomic<int>> runs(n);
      auto task = [&](size_t i) {
        in_flight[me].fetch_add(1);
        if (in_flight[1 - me].load() != 0) overlap = true;
        runs[i].fetch_add(1);
        in_flight[me].fetch_sub(1);
      };
      if (round % 2 == 0) {
        pool.parallel_for(n, [&](size_t i, unsigned) { task(i); });
      } else {
        pool.parallel_for_ranges(n, [&](unsigned, size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) task(i);
        });
      }
      for (const auto& r : runs) {
        if (r.load() != 1) miscount = true;
      }
    }
  };
  std::thread a(caller, 0), b(caller, 1);
  a.join();
  b.join();
  EXPECT_FALSE(overlap) << "tasks of two calls ran at the same time";
  EXPECT_FALSE(miscount);
}

TEST(ThreadPool, NestedCallsRunInlineOnTheCallingWorker) {
  for (unsigned threads : {1u, 2u, 5u}) {
    ThreadPool pool(threads);
    const size_t outer = 16, inner = 9;
    std::vector<std::atomic<int>> runs(outer * inner);
    std::atomic<bool> wrong_worker{false};
    pool.parallel_for(outer, [&](size_t o, unsigned worker) {
      pool.parallel_for(inner, [&](size_t i, unsigned w) {
        if (w != worker) wrong_worker = true;
        runs[o * inner + i].fetch_add(1);
      });
      pool.parallel_for_ranges(inner, [&](unsigned w, size_t b, size_t e) {
        if (w != worker || b != 0 || e != inner) wrong_worker = true;
      });
    });
    EXPECT_FALSE(wrong_worker) << "threads " << threads;
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1) << "threads " << threads;
  }
}

TEST(ThreadPool, TwoPoolsNestAcrossEachOther) {
  ThreadPool outer(3), inner(2);
  std::atomic<int> total{0};
  outer.parallel_for(6, [&](size_t, unsigned) {
    // Calls into another pool from several threads at once: serialised there, not nested.
    inner.parallel_for(4, [&](size_t, unsigned w) {
      EXPECT_LT(w, inner.size());
      total.fetch_add(1);
    });
  });
  EXPECT_EQ(total.load(), 24);
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
  for (unsigned threads : {1u, 2u, 4u}) {
    ThreadPool pool(threads);
    for (size_t thrower : {size_t{0}, size_t{5}, size_t{99}}) {
      EXPECT_THROW(pool.parallel_for(100,
                                     [&](size_t task, unsigned) {
                                       if (task == thrower) throw std::runtime_error("task");
                                     }),
                   std::runtime_error)
          << "threads " << threads << " thrower " << thrower;
      // Every chunk but the throwing one still runs.
      std::vector<std::atomic<int>> runs(100);
      EXPECT_THROW(pool.parallel_for_ranges(100,
                                            [&](unsigned, size_t b, size_t e) {
                                              if (b <= thrower && thrower < e) throw std::bad_alloc();
                                              for (size_t i = b; i < e; ++i) runs[i].fetch_add(1);
                                            }),
                   std::bad_alloc)
          << "threads " << threads << " thrower " << thrower;
      size_t first = 0, last = 0;  // the throwing chunk [first, last)
      for (size_t p = 0; p < pool.size(); ++p) {
        const size_t b = 100 * p / pool.size(), e = 100 * (p + 1) / pool.size();
        if (b <= thrower && thrower < e) first = b, last = e;
      }
      for (size_t i = 0; i < 100; ++i) {
        EXPECT_EQ(runs[i].load(), i >= first && i < last ? 0 : 1) << "threads " << threads << " index " << i;
      }
    }
    // Still usable afterwards.
    std::atomic<int> count{0};
    pool.parallel_for(1000, [&](size_t, unsigned) { count.fetch_add(1); });
    EXPECT_EQ(count.load(), 1000);
  }
}

TEST(ThreadPool, AfterAThrowNoFurtherTasksAreClaimed) {
  {
    ThreadPool pool(1);  // one thread: tasks run in order, so the count is exact
    int ran = 0;
    EXPECT_THROW(pool.parallel_for(1000,
                                   [&](size_t task, unsigned) {
                                     ++ran;
                                     if (task == 10) throw std::runtime_error("stop");
                                   }),
                 std::runtime_error);
    EXPECT_EQ(ran, 11);
  }
  // Several threads: the others finish the task in hand and stop. Tasks take 200 us, so running
  // them all would take 20000 * 200 us / 4 = 1 s; after the throw only a handful more run.
  ThreadPool pool(4);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.parallel_for(20000,
                                 [&](size_t task, unsigned) {
                                   ran.fetch_add(1);
                                   if (task == 3) throw std::runtime_error("stop");
                                   std::this_thread::sleep_for(std::chrono::microseconds(200));
                                 }),
               std::runtime_error);
  EXPECT_LT(ran.load(), 10000);
}

}  // namespace
}  // namespace qmodel
