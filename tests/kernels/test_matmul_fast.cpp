// The runtime's CPU linear (cpu.h): dequantize must equal dequantize_ref bit for bit; matmul must
// equal matmul_ref up to fp32 summation order, for every storage type and awkward shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "qmodel/kernels/cpu.h"
#include "qmodel/kernels/ref.h"
#include "stored_weight.h"

namespace qmodel::kernels {
namespace {

using testing::Stored;
using testing::store;
using testing::normal_values;

struct Kind {
  StorageType storage;
  bool double_quant;
};
const Kind kKinds[] = {{StorageType::kNF4, false}, {StorageType::kNF4, true}, {StorageType::kFP4, false},
                       {StorageType::kFP4, true},  {StorageType::kINT8, false}, {StorageType::kBF16, false},
                       {StorageType::kF16, false}, {StorageType::kF32, false}};

TEST(DequantizeFast, BitIdenticalToReference) {
  std::mt19937 rng(3);
  for (const Kind& kind : kKinds) {
    for (size_t bs : {32u, 64u, 128u, 4096u}) {
      const size_t rows = 9, cols = 172 + 4;  // blocks straddle rows
      const std::vector<float> w = normal_values(rows * cols, static_cast<unsigned>(bs));
      const Stored st = store(kind.storage, w, rows, cols, bs, kind.double_quant);
      const size_t n = rows * cols;
      for (int trial = 0; trial < 200; ++trial) {
        size_t first = rng() % (n - 1);
        if (trial % 2) first &= ~size_t{7};  // the vector path's alignment
        const size_t count = 1 + rng() % (n - first);
        std::vector<float> ref(count), fast(count, -7.0f);
        dequantize_ref(st.view, first, count, ref.data());
        dequantize(st.view, first, count, fast.data());
        ASSERT_EQ(0, std::memcmp(ref.data(), fast.data(), count * 4))
            << storage_type_name(kind.storage) << (kind.double_quant ? "+dq" : "") << " bs " << bs << " range "
            << first << "+" << count;
      }
    }
  }
}

TEST(MatmulFast, MatchesReferenceUpToSummationOrder) {
  for (const Kind& kind : kKinds) {
    for (size_t k : {size_t{172}, size_t{2048 + 64}}) {
      const size_t rows = 13;
      const std::vector<float> w = normal_values(rows * k, static_cast<unsigned>(k));
      const Stored st = store(kind.storage, w, rows, k, 64, kind.double_quant);
      std::vector<float> bias = normal_values(rows, 5);
      for (size_t m : {1u, 2u, 3u, 7u, 17u}) {
        const std::vector<float> x = normal_values(m * k, static_cast<unsigned>(m));
        std::vector<float> ref(m * rows), fast(m * rows);
        matmul_ref(ActType::kF32, x.data(), m, st.view, bias.data(), ref.data(), 0, rows);
        matmul(x.data(), m, st.view, bias.data(), fast.data(), 0, rows);
        // Both sum the same fp32 products in different orders: |error| <= 2k * eps * sum|x*w|,
        // bounded loosely by 1e-5 * sqrt(k) * |scale| for N(0,1) data; use the exact S bound.
        for (size_t i = 0; i < m; ++i) {
          for (size_t r = 0; r < rows; ++r) {
            std::vector<float> wr(k);
            dequantize_ref(st.view, r * k, k, wr.data());
            double s = std::fabs(bias[r]);
            for (size_t c = 0; c < k; ++c) s += std::fabs(x[i * k + c] * wr[c]);
            const double bound = 2.0 * static_cast<double>(k) * 0x1p-24 * s;
            ASSERT_LE(std::fabs(fast[i * rows + r] - ref[i * rows + r]), bound)
                << storage_type_name(kind.storage) << " k " << k << " m " << m << " row " << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qmodel::kernels
