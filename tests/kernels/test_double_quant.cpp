// Double quantization of absmax: offset, nested absmax and codes on a hand-checked case, the
// all-equal block, multi-block layout, and the dequantization error bound on random absmax.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

struct DoubleQuant {
  std::vector<uint8_t> codes;
  std::vector<float> nested_absmax;
  float offset = 0.0f;
};

DoubleQuant double_quantize(const std::vector<float>& absmax, const float* code) {
  DoubleQuant d;
  d.codes.assign(absmax.size(), 0xEE);
  d.nested_absmax.assign(ceil_div(absmax.size(), kNestedBlockSize), -1.0f);
  double_quantize_absmax_ref(absmax.data(), absmax.size(), code, d.codes.data(),
                             d.nested_absmax.data(), &d.offset);
  return d;
}

WeightView view_of(const DoubleQuant& d, const float* code, size_t n_blocks) {
  WeightView w;
  w.storage = StorageType::kNF4;
  w.rows = 1;
  w.cols = n_blocks * 64;
  w.block_size = 64;
  w.code_table = kNf4CodeTable;
  w.absmax_codes = d.codes.data();
  w.nested_absmax = d.nested_absmax.data();
  w.nested_code_table = code;
  w.nested_block_size = kNestedBlockSize;
  w.nested_offset = d.offset;
  return w;
}

TEST(DoubleQuant, HandCheckedSmallCase) {
  // absmax {1, 2, 3, 6}: offset 3, centred {-2, -1, 0, 3}, nested absmax 3, x = c * (1/3f) =
  // {-0.6666667, -0.33333334, 0, 1}. Nearest map entries: -0.66953123 (index 23, 0.0029 away vs
  // 0.011 for index 24), -0.33203125 (index 47), 0 (127), 1 (255).
  const auto code = dynamic_map_signed();
  const DoubleQuant d = double_quantize({1.0f, 2.0f, 3.0f, 6.0f}, code.data());
  EXPECT_EQ(d.offset, 3.0f);
  ASSERT_EQ(d.nested_absmax.size(), 1u);
  EXPECT_EQ(d.nested_absmax[0], 3.0f);
  EXPECT_EQ(d.codes, (std::vector<uint8_t>{23, 47, 127, 255}));
  // Dequantized absmax: dyn[q] * 3 + 3 in float32.
  const WeightView w = view_of(d, code.data(), 4);
  EXPECT_EQ(block_absmax_ref(w, 0), code[23] * 3.0f + 3.0f);
  EXPECT_NEAR(block_absmax_ref(w, 0), 0.99140632f, 1e-6f);
  EXPECT_EQ(block_absmax_ref(w, 2), 3.0f);
  EXPECT_EQ(block_absmax_ref(w, 3), 6.0f);
}

TEST(DoubleQuant, OffsetIsCorrectlyRoundedMean) {
  // A float32 running sum would lose the four 1s against 2^24 (mean 3355443.25).
  const auto code = dynamic_map_signed();
  const DoubleQuant d = double_quantize({16777216.0f, 1.0f, 1.0f, 1.0f, 1.0f}, code.data());
  EXPECT_EQ(d.offset, 3355444.0f);
}

TEST(DoubleQuant, AllEqualAbsmaxGivesZeroCodeAndExactOffset) {
  const auto code = dynamic_map_signed();
  const DoubleQuant d = double_quantize(std::vector<float>(300, 0.75f), code.data());
  EXPECT_EQ(d.offset, 0.75f);
  EXPECT_EQ(d.nested_absmax, (std::vector<float>{0.0f, 0.0f}));
  for (uint8_t c : d.codes) EXPECT_EQ(c, 127);
  const WeightView w = view_of(d, code.data(), 300);
  for (size_t b = 0; b < 300; ++b) EXPECT_EQ(block_absmax_ref(w, b), 0.75f);
}

TEST(DoubleQuant, NestedBlocksOf256AndErrorBound) {
  // 600 absmax -> nested blocks of 256, 256, 88. Each nested absmax is the max |a - offset| of its
  // block; the map's widest gap (top decade) is 0.9/64, so |error| <= nested_absmax * 0.9/128
  // (plus float rounding).
  const auto code = dynamic_map_signed();
  std::mt19937 rng(3);
  std::gamma_distribution<float> g(4.0f, 0.02f);
  std::vector<float> absmax(600);
  for (float& a : absmax) a = g(rng);
  const DoubleQuant d = double_quantize(absmax, code.data());
  ASSERT_EQ(d.nested_absmax.size(), 3u);
  double mean = 0.0;
  for (float a : absmax) mean += a;
  EXPECT_EQ(d.offset, static_cast<float>(mean / 600.0));
  const WeightView w = view_of(d, code.data(), 600);
  for (size_t j = 0; j < 3; ++j) {
    float amax = 0.0f;
    for (size_t i = j * 256; i < std::min<size_t>(600, (j + 1) * 256); ++i) {
      amax = std::fmax(amax, std::fabs(absmax[i] - d.offset));
    }
    EXPECT_EQ(d.nested_absmax[j], amax) << j;
  }
  double max_rel = 0.0;
  for (size_t b = 0; b < 600; ++b) {
    const float nested = d.nested_absmax[b / 256];
    const double err = std::fabs(double(block_absmax_ref(w, b)) - absmax[b]);
    EXPECT_LE(err, nested * (0.9 / 128.0) + 1e-6) << b;
    max_rel = std::max(max_rel, err / absmax[b]);
  }
  RecordProperty("max_relative_absmax_error", std::to_string(max_rel));
}

TEST(DoubleQuant, CodesAreDQuantizeOfNormalisedValues) {
  // The codes are exactly dQuantize<0>(code, (a - offset) * (1 / nested_absmax)), element-wise.
  const auto code = dynamic_map_signed();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.01f, 0.2f);
  std::vector<float> absmax(513);
  for (float& a : absmax) a = u(rng);
  const DoubleQuant d = double_quantize(absmax, code.data());
  for (size_t i = 0; i < absmax.size(); ++i) {
    const float inv = 1.0f / d.nested_absmax[i / 256];
    EXPECT_EQ(d.codes[i], quantize_dynamic_value_ref(code.data(), (absmax[i] - d.offset) * inv)) << i;
  }
}

}  // namespace
}  // namespace qmodel::kernels
