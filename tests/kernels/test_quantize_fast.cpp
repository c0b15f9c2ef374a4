// The vectorised quantizers (cpu.h) must write exactly the bytes of their scalar references:
// random normal data at every block size, odd lengths, and hand-placed edge values (midpoints,
// zeros, -0, NaN, inf, subnormals, fp16 ties for INT8).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "qmodel/kernels/cpu.h"
#include "qmodel/kernels/ref.h"
#include "stored_weight.h"

namespace qmodel::kernels {
namespace {

using testing::normal_values;

// Sprinkles values that sit on decision boundaries or are special into v.
void add_edge_values(std::vector<float>& v, StorageType storage, unsigned seed) {
  std::mt19937 rng(seed);
  const auto nf4 = nf4_thresholds_ref();
  const auto fp4 = fp4_magnitude_thresholds_ref();
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), -1e-38f,
                            std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < v.size(); i += 1 + rng() % 7) {
    switch (rng() % 4) {
      case 0: v[i] = storage == StorageType::kFP4 ? fp4[rng() % 7] : nf4[rng() % 15]; break;  // midpoint at absmax 1
      case 1: v[i] = -(storage == StorageType::kFP4 ? fp4[rng() % 7] : nf4[rng() % 15]); break;
      case 2: v[i] = specials[rng() % 5]; break;
      default: v[i] = std::nextafter(v[i], 2.0f); break;
    }
  }
}

void expect_same_4bit(StorageType storage, const std::vector<float>& w, size_t bs) {
  const size_t n = w.size();
  std::vector<uint8_t> p_ref(packed_4bit_bytes(n)), p_fast(packed_4bit_bytes(n), 0xAB);
  std::vector<float> a_ref(ceil_div(n, bs)), a_fast(ceil_div(n, bs), -1.0f);
  quantize_4bit_ref(storage, w.data(), n, bs, p_ref.data(), a_ref.data());
  quantize_4bit(storage, w.data(), n, bs, p_fast.data(), a_fast.data());
  ASSERT_EQ(p_ref, p_fast) << storage_type_name(storage) << " n=" << n << " bs=" << bs;
  ASSERT_EQ(0, std::memcmp(a_ref.data(), a_fast.data(), a_ref.size() * 4)) << "absmax differs";
}

TEST(QuantizeFast, FourBitMatchesReferenceOnRandomData) {
  for (StorageType s : {StorageType::kNF4, StorageType::kFP4}) {
    for (size_t bs : {32u, 64u, 128u, 256u, 4096u}) {
      for (size_t n : {size_t{1}, size_t{31}, size_t{64}, size_t{65}, size_t{172 * 3}, size_t{20001}}) {
        expect_same_4bit(s, normal_values(n, static_cast<unsigned>(n + bs)), bs);
      }
    }
  }
}

TEST(QuantizeFast, FourBitMatchesReferenceOnEdgeValues) {
  for (StorageType s : {StorageType::kNF4, StorageType::kFP4}) {
    for (unsigned seed = 0; seed < 20; ++seed) {
      std::vector<float> w = normal_values(4096 + seed * 13, seed, 0.3f);
      add_edge_values(w, s, seed);
      for (size_t i = 0; i < 64 && seed % 2; ++i) w[128 + i] = 0.0f;  // an all-zero block
      if (seed == 7) w[5] = std::numeric_limits<float>::infinity();
      expect_same_4bit(s, w, 64);
      expect_same_4bit(s, w, 32);
    }
  }
}

void expect_same_int8(const std::vector<float>& w, size_t rows, size_t cols) {
  std::vector<int8_t> q_ref(rows * cols), q_fast(rows * cols, 99);
  std::vector<float> s_ref(rows), s_fast(rows, -1.0f);
  quantize_int8_rows_ref(w.data(), rows, cols, q_ref.data(), s_ref.data());
  quantize_int8_rows(w.data(), rows, cols, q_fast.data(), s_fast.data());
  ASSERT_EQ(q_ref, q_fast) << rows << "x" << cols;
  ASSERT_EQ(0, std::memcmp(s_ref.data(), s_fast.data(), rows * 4));
}

TEST(QuantizeFast, Int8MatchesReference) {
  for (size_t cols : {size_t{1}, size_t{7}, size_t{172}, size_t{4097}, size_t{9000}}) {
    const size_t rows = 5;
    std::vector<float> w = normal_values(rows * cols, static_cast<unsigned>(cols), 0.05f);
    for (size_t c = 0; c < cols; ++c) w[2 * cols + c] = 0.0f;  // an all-zero row
    expect_same_int8(w, rows, cols);
  }
  // Ties after fp16 rounding: SCB = 127 makes w * 127/SCB = w, so x.5 values are exact ties.
  std::vector<float> ties = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, 2.5f + 0x1p-11f, 64.5f, -0.0f,
                             1e-8f, 6e-5f, 65504.0f / 600};
  expect_same_int8(ties, 1, ties.size());
}

}  // namespace
}  // namespace qmodel::kernels
