// LLM.int8 weight quantization: round half to even on constructed ties, fp16 pre-rounding of the
// weights (and hence of SCB), all-zero rows, negative maxima, and the dequantization constant.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

struct Int8Rows {
  std::vector<int8_t> q;
  std::vector<float> scb;
};

Int8Rows quantize(const std::vector<float>& w, size_t rows, size_t cols) {
  Int8Rows r;
  r.q.assign(rows * cols, 99);
  r.scb.assign(rows, -1.0f);
  quantize_int8_rows_ref(w.data(), rows, cols, r.q.data(), r.scb.data());
  return r;
}

TEST(QuantizeInt8, RoundHalfToEvenOnTies) {
  // Row 0: SCB 127 -> scale exactly 1, w*scale = w. Row 1: SCB 254 -> scale 0.5: 5 -> 2.5, 7 -> 3.5.
  const std::vector<float> w = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -0.5f,
                                254.0f, 5.0f, 7.0f, -5.0f, -7.0f, 1.0f, 3.0f, 9.0f};
  const Int8Rows r = quantize(w, 2, 8);
  EXPECT_EQ(r.scb, (std::vector<float>{127.0f, 254.0f}));
  EXPECT_EQ(r.q, (std::vector<int8_t>{127, 2, 4, -2, -4, 0, 2, 0, 127, 2, 4, -2, -4, 0, 2, 4}));
}

TEST(QuantizeInt8, WeightsAreRoundedToFp16First) {
  // 127.03 is 127 in fp16 (ulp 0.0625), so SCB = 127 and scale = 1. 2.5 + 2^-11 is 2.5 in fp16
  // (ulp 2^-9): a tie that rounds to 2, where the unrounded value would give 3.
  const std::vector<float> w = {127.03f, 2.5f + std::ldexp(1.0f, -11), 1.0f + std::ldexp(1.0f, -12)};
  const Int8Rows r = quantize(w, 1, 3);
  EXPECT_EQ(r.scb[0], 127.0f);
  EXPECT_EQ(r.q, (std::vector<int8_t>{127, 2, 1}));
}

TEST(QuantizeInt8, ZeroRowAndNegativeMaximum) {
  const std::vector<float> w = {0.0f, -0.0f, 0.0f, -3.0f, 1.0f, 1.5f};
  const Int8Rows r = quantize(w, 2, 3);
  EXPECT_EQ(r.scb, (std::vector<float>{0.0f, 3.0f}));
  // 1 * (127/3) = 42.33 -> 42; 1.5 * (127/3) = 63.5 (to float rounding) -> 64 or 63: computed.
  const float scale = 127.0f / 3.0f;
  EXPECT_EQ(r.q, (std::vector<int8_t>{0, 0, 0, -127, 42,
                                      static_cast<int8_t>(std::nearbyint(1.5f * scale))}));
}

TEST(QuantizeInt8, DequantizeUsesBnbConstant) {
  const std::vector<float> w = {0.3f, -1.7f, 0.9f, 2.2f, 0.0f, 0.0f, 0.0f, 0.0f};
  const Int8Rows r = quantize(w, 2, 4);
  WeightView v;
  v.storage = StorageType::kINT8;
  v.rows = 2;
  v.cols = 4;
  v.data = r.q.data();
  v.row_scale = r.scb.data();
  std::vector<float> out(8);
  dequantize_ref(v, 0, 8, out.data());
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(out[i], static_cast<float>(r.q[i]) * r.scb[i / 4] * 7.874015718698502e-3f) << i;
    EXPECT_LE(std::fabs(out[i] - w[i]), r.scb[i / 4] / 254.0f + 1e-3f) << i;  // fp16 + half step
  }
}

}  // namespace
}  // namespace qmodel::kernels
