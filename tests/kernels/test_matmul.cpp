// matmul_ref against a naive double-precision dot over the dequantized weight, for every storage
// type, activation type (f32 / f16 / bf16), m = 1, 2, 3, 7, 17, K = 172 (rows straddle blocks),
// block sizes 32 / 64 / 128 / 4096, with bias; plus row sub-ranges and a K larger than one chunk.
// Error bound: |y - ref| <= 1e-6 * S + rounding of the output type, S = sum_k |x_k w_k| + |bias|
// (fp32 accumulation over <= 2048 terms gives about K * 2^-24 * S); the output rounding adds
// 2^-24 |ref| (f32), 2^-11 |ref| + 2^-25 (f16, incl. subnormals), 2^-8 |ref| (bf16).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qmodel/format/half.h"
#include "qmodel/kernels/ref.h"
#include "stored_weight.h"

namespace qmodel::kernels {
namespace {

using testing::Stored;
using testing::store;

// Activations in the given type; returns the raw buffer and the fp32 values the kernel sees.
std::vector<uint8_t> make_activations(ActType act, const std::vector<float>& x, std::vector<float>& seen) {
  seen.resize(x.size());
  std::vector<uint8_t> raw(x.size() * (act == ActType::kF32 ? 4 : 2));
  for (size_t i = 0; i < x.size(); ++i) {
    if (act == ActType::kF32) {
      std::memcpy(raw.data() + 4 * i, &x[i], 4);
      seen[i] = x[i];
    } else {
      const uint16_t h = act == ActType::kF16 ? float_to_f16(x[i]) : float_to_bf16(x[i]);
      std::memcpy(raw.data() + 2 * i, &h, 2);
      seen[i] = act == ActType::kF16 ? f16_to_float(h) : bf16_to_float(h);
    }
  }
  return raw;
}

float read_output(ActType act, const std::vector<uint8_t>& y, size_t i) {
  if (act == ActType::kF32) { float f; std::memcpy(&f, y.data() + 4 * i, 4); return f; }
  uint16_t h;
  std::memcpy(&h, y.data() + 2 * i, 2);
  return act == ActType::kF16 ? f16_to_float(h) : bf16_to_float(h);
}

double output_rounding(ActType act, double ref) {
  switch (act) {
    case ActType::kF32: return std::ldexp(std::fabs(ref), -24);
    case ActType::kF16: return std::ldexp(std::fabs(ref), -11) + std::ldexp(1.0, -25);
    case ActType::kBF16: return std::ldexp(std::fabs(ref), -8);
  }
  return 0.0;
}

void check_matmul(StorageType s, bool dq, size_t bs, ActType act, size_t m, size_t rows, size_t cols,
                  size_t row_begin, size_t row_end, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(rows * cols), x(m * cols), bias(rows);
  for (float& v : w) v = 0.05f * nd(rng);
  for (float& v : x) v = nd(rng);
  for (float& v : bias) v = nd(rng);
  Stored st = store(s, w, rows, cols, bs, dq);
  std::vector<float> wd(rows * cols), xs;
  dequantize_ref(st.view, 0, wd.size(), wd.data());
  const std::vector<uint8_t> xraw = make_activations(act, x, xs);
  const size_t out_bytes = act == ActType::kF32 ? 4 : 2;
  std::vector<uint8_t> y(m * rows * out_bytes, 0xCD);
  matmul_ref(act, xraw.data(), m, st.view, bias.data(), y.data(), row_begin, row_end);
  const std::string where = "storage " + std::to_string(static_cast<int>(s)) + (dq ? "+dq" : "") +
                            " bs " + std::to_string(bs) + " act " + std::to_string(static_cast<int>(act)) +
                            " m " + std::to_string(m);
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < rows; ++r) {
      const size_t idx = i * rows + r;
      if (r < row_begin || r >= row_end) {  // rows outside the range are untouched
        for (size_t b = 0; b < out_bytes; ++b) ASSERT_EQ(y[idx * out_bytes + b], 0xCD) << where;
        continue;
      }
      double ref = bias[r], mag = std::fabs(bias[r]);
      for (size_t k = 0; k < cols; ++k) {
        ref += double(xs[i * cols + k]) * wd[r * cols + k];
        mag += std::fabs(double(xs[i * cols + k]) * wd[r * cols + k]);
      }
      const double bound = 1e-6 * mag + output_rounding(act, ref);
      ASSERT_LE(std::fabs(read_output(act, y, idx) - ref), bound) << where << " i " << i << " r " << r;
    }
  }
}

struct WeightKind {
  StorageType storage;
  bool double_quant;
};
constexpr WeightKind kWeightKinds[] = {
    {StorageType::kNF4, false}, {StorageType::kNF4, true}, {StorageType::kFP4, false},
    {StorageType::kFP4, true},  {StorageType::kINT8, false}, {StorageType::kF16, false},
    {StorageType::kBF16, false}, {StorageType::kF32, false}};
constexpr ActType kActTypes[] = {ActType::kF32, ActType::kF16, ActType::kBF16};

TEST(MatmulRef, MatchesDoubleDotForAllTypesAndShapes) {
  unsigned seed = 1;
  for (const WeightKind& k : kWeightKinds) {
    const bool is4 = is_4bit(k.storage);
    for (size_t bs : {32u, 64u, 128u, 4096u}) {
      if (!is4 && bs != 64) continue;  // block size only matters for 4-bit
      for (ActType act : kActTypes) {
        for (size_t m : {1u, 2u, 3u, 7u, 17u}) {
          check_matmul(k.storage, k.double_quant, bs, act, m, 5, 172, 0, 5, seed++);
        }
      }
    }
  }
}

TEST(MatmulRef, RowSubrangeWritesOnlyThoseRows) {
  check_matmul(StorageType::kNF4, true, 64, ActType::kBF16, 3, 9, 172, 2, 7, 91);
  check_matmul(StorageType::kINT8, false, 0, ActType::kF16, 1, 9, 172, 8, 9, 92);
}

TEST(MatmulRef, ColumnsSpanSeveralChunks) {
  // K = 2500 crosses the 1024-column chunk boundary twice, mid-block for block size 64.
  check_matmul(StorageType::kNF4, false, 64, ActType::kF32, 2, 3, 2500, 0, 3, 93);
  check_matmul(StorageType::kFP4, true, 128, ActType::kF16, 1, 3, 2500, 0, 3, 94);
  check_matmul(StorageType::kF32, false, 0, ActType::kBF16, 4, 3, 2500, 0, 3, 95);
}

TEST(MatmulRef, NullBias) {
  const size_t rows = 2, cols = 64;
  std::vector<float> w(rows * cols, 0.5f), x(cols, 1.0f), y(rows, -1.0f);
  Stored st = store(StorageType::kNF4, w, rows, cols, 64, false);
  matmul_ref(ActType::kF32, x.data(), 1, st.view, nullptr, y.data(), 0, rows);
  EXPECT_EQ(y, (std::vector<float>{32.0f, 32.0f}));  // 0.5 is exactly code 15 * absmax 0.5
}

}  // namespace
}  // namespace qmodel::kernels
