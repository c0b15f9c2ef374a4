#include "linear.h"

#include <algorithm>

#include "qmodel/kernels/cpu.h"
#include "qmodel/thread_pool.h"

namespace qmodel::runtime {

namespace {
// Below this many multiply-adds per thread, waking workers costs more than it saves.
constexpr size_t kMinMacsPerThread = size_t{1} << 15;
}  // namespace

void linear(ThreadPool& pool, const float* x, size_t m, const kernels::WeightView& w, const float* bias, float* y) {
  const size_t macs = m * w.rows * w.cols;
  const unsigned parts = static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(pool.size(), macs / kMinMacsPerThread)));
  pool.parallel_for_ranges(
      w.rows,
      [&](unsigned, size_t begin, size_t end) {
        kernels::matmul(x, m, w, bias, y, begin, end);
      },
      parts);
}

}  // namespace qmodel::runtime
