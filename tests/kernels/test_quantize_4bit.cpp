// NF4 / FP4 quantization against golden blocks computed by hand from the code tables (absmax 2
// makes x = w * 0.5 exact), the derived thresholds against bnb's constants, ties, the FP4 sign
// rule, all-zero / short / odd / row-straddling blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

const float kInf = std::numeric_limits<float>::infinity();

// bnb dQuantizeNF4's tree constants, ascending (shared reference §1.3).
constexpr double kBnbNf4Thresholds[15] = {
    -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
    -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
    0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
    0.5016634166240692, 0.6427869200706482, 0.8614784181118011};
// bnb dQuantizeFP4's literals (kernels.cu), ascending, on |x|.
constexpr float kBnbFp4Literals[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                      0.4166667f,  0.583333f,  0.8333333f};

std::vector<uint8_t> unpack(const std::vector<uint8_t>& packed, size_t n) {
  std::vector<uint8_t> codes(n);
  for (size_t i = 0; i < n; ++i) codes[i] = (i % 2 == 0) ? packed[i / 2] >> 4 : packed[i / 2] & 0xF;
  return codes;
}

struct Quantized {
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
};

Quantized quantize(StorageType s, const std::vector<float>& w, size_t bs) {
  Quantized q;
  q.packed.assign(packed_4bit_bytes(w.size()), 0xAB);
  q.absmax.assign(ceil_div(w.size(), bs), -1.0f);
  quantize_4bit_ref(s, w.data(), w.size(), bs, q.packed.data(), q.absmax.data());
  return q;
}

TEST(Nf4Thresholds, EqualBnbTreeConstants) {
  const auto t = nf4_thresholds_ref();
  for (size_t i = 0; i < 15; ++i) {
    EXPECT_EQ(t[i], static_cast<float>(kBnbNf4Thresholds[i])) << i;
    EXPECT_EQ(t[i], (kNf4CodeTable[i] + kNf4CodeTable[i + 1]) * 0.5f) << i;
  }
}

TEST(Fp4Thresholds, AreTableMidpointsAndWithinSixUlpOfBnbLiterals) {
  // Exact midpoints of {0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1}: 1/384, 33/384, 5/24, 7/24, 5/12,
  // 7/12, 5/6, each computed from the float32 table. bnb's CUDA literals are short decimals: two
  // agree exactly, 0.583333f sits 6 ulp below our 0.58333337f and 0.00260417f 14 ulp above.
  const auto t = fp4_magnitude_thresholds_ref();
  const double kExact[7] = {1.0 / 384, 33.0 / 384, 5.0 / 24, 7.0 / 24, 5.0 / 12, 7.0 / 12, 5.0 / 6};
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_NEAR(t[i], kExact[i], 1e-7) << i;
    EXPECT_NEAR(t[i], kBnbFp4Literals[i], 4e-7) << i;
  }
  EXPECT_EQ(t[1], kBnbFp4Literals[1]);
  EXPECT_EQ(t[4], kBnbFp4Literals[4]);
}

TEST(QuantizeNf4, GoldenBlock) {
  // absmax 2 -> x = w * 0.5 exactly. Expected codes read off the table / thresholds by hand.
  const auto t = nf4_thresholds_ref();
  std::vector<float> w(32, 0.0f);
  std::vector<uint8_t> want(32, 7);  // zeros -> code 7
  const auto set = [&](size_t i, float value, uint8_t code) { w[i] = value; want[i] = code; };
  set(0, 2.0f, 15);                            // x = 1
  set(1, -1.0f, 2);                            // x = -0.5: between t1 -0.61 and t2 -0.46
  set(2, 1.0f, 12);                            // x = 0.5 <= t12 0.5017
  set(3, 0.2f, 8);                             // x = 0.1: t7 0.0398 < x <= t8 0.1203
  set(4, -0.1f, 6);                            // x = -0.05: t5 -0.138 < x <= t6 -0.0455
  set(5, 2 * kNf4CodeTable[8], 8);             // exactly a code value
  set(6, 2 * kNf4CodeTable[1], 1);
  set(7, 2 * t[7], 7);                         // exactly on the 7|8 midpoint: lower code
  set(8, 2 * std::nextafter(t[7], kInf), 8);   // one ulp above: upper code
  set(9, 2 * t[0], 0);                         // exactly on the 0|1 midpoint
  set(10, 2 * t[14], 14);                      // exactly on the 14|15 midpoint
  set(11, 2 * std::nextafter(t[14], kInf), 15);
  set(12, -2.0f, 0);                           // x = -1
  set(13, 2 * t[6], 6);                        // on the 6|7 midpoint (negative side)
  const Quantized q = quantize(StorageType::kNF4, w, 32);
  EXPECT_EQ(q.absmax[0], 2.0f);
  EXPECT_EQ(unpack(q.packed, 32), want);
  EXPECT_EQ(q.packed[0], 0xF2);  // element 0 in the high nibble, element 1 in the low nibble
  EXPECT_EQ(q.packed[15], 0x77);
}

TEST(QuantizeNf4, TiesGoToLowerCode) {
  const auto t = nf4_thresholds_ref();
  for (uint8_t i = 0; i < 15; ++i) {
    EXPECT_EQ(quantize_4bit_value_ref(StorageType::kNF4, t[i]), i);
    EXPECT_EQ(quantize_4bit_value_ref(StorageType::kNF4, std::nextafter(t[i], kInf)), i + 1);
    EXPECT_EQ(quantize_4bit_value_ref(StorageType::kNF4, std::nextafter(t[i], -kInf)), i);
  }
}

TEST(QuantizeNf4, NearestCodeOnRandomValues) {
  // Away from the thresholds (where float rounding of the midpoint decides), the encoder is the
  // nearest code in exact arithmetic.
  const auto t = nf4_thresholds_ref();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int k = 0; k < 20000; ++k) {
    const float x = u(rng);
    bool near_threshold = false;
    for (float th : t) near_threshold |= std::fabs(x - th) < 1e-6f;
    if (near_threshold) continue;
    uint8_t best = 0;
    for (uint8_t c = 1; c < 16; ++c) {
      if (std::fabs(double(x) - kNf4CodeTable[c]) < std::fabs(double(x) - kNf4CodeTable[best])) best = c;
    }
    ASSERT_EQ(quantize_4bit_value_ref(StorageType::kNF4, x), best) << x;
  }
}

TEST(QuantizeFp4, GoldenBlock) {
  const auto t = fp4_magnitude_thresholds_ref();
  std::vector<float> w(32, 0.0f);
  std::vector<uint8_t> want(32, 0);  // +0 -> code 0
  const auto set = [&](size_t i, float value, uint8_t code) { w[i] = value; want[i] = code; };
  set(0, 2.0f, 3);                      // x = 1: 0b0011
  set(1, -2.0f, 11);                    // x = -1: sign bit + 3
  set(2, 1.0f, 5);                      // x = 0.5
  set(3, -1.0f, 13);
  set(4, 2 * kFp4CodeTable[2], 2);      // 2/3
  set(5, 0.5f, 7);                      // x = 0.25
  set(6, 2 * kFp4CodeTable[6], 6);      // 1/6
  set(7, 2 * kFp4CodeTable[1], 1);      // 1/192
  set(8, 2 * t[4], 4);                  // on the 1/3|1/2 midpoint: smaller magnitude (1/3 = code 4)
  set(9, -2 * t[4], 12);                // same on the negative side: -1/3
  set(10, 2 * std::nextafter(t[4], kInf), 5);
  set(11, 2 * t[0], 0);                 // on the 0|1/192 midpoint: +0
  set(12, -0.0f, 0);                    // -0.0 is not < 0: code 0
  set(13, -1e-30f, 8);                  // tiny negative rounds to -0: code 8
  set(14, 2 * t[6], 2);                 // on the 2/3|1 midpoint: 2/3
  const Quantized q = quantize(StorageType::kFP4, w, 32);
  EXPECT_EQ(q.absmax[0], 2.0f);
  EXPECT_EQ(unpack(q.packed, 32), want);
  EXPECT_EQ(q.packed[0], 0x3B);
}

TEST(QuantizeFp4, SignRule) {
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, 0.0f), 0);
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, -0.0f), 0);
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, -std::numeric_limits<float>::denorm_min()), 8);
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, -0.27f), 15);  // |x| in (5/24, 7/24]: -1/4
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, -0.3f), 12);   // |x| in (7/24, 5/12]: -1/3
  EXPECT_EQ(quantize_4bit_value_ref(StorageType::kFP4, std::numeric_limits<float>::quiet_NaN()), 0);
}

TEST(Quantize4bit, AllZeroBlockWritesZeroCode) {
  const std::vector<float> w(64, 0.0f);
  Quantized nf4 = quantize(StorageType::kNF4, w, 64), fp4 = quantize(StorageType::kFP4, w, 64);
  EXPECT_EQ(nf4.absmax[0], 0.0f);
  EXPECT_EQ(fp4.absmax[0], 0.0f);
  for (uint8_t b : nf4.packed) EXPECT_EQ(b, 0x77);
  for (uint8_t b : fp4.packed) EXPECT_EQ(b, 0x00);
}

TEST(Quantize4bit, ShortLastBlockUsesItsValidElements) {
  // n = 70, block 64: the second block holds 6 values and its absmax is theirs alone.
  std::vector<float> w(70, 8.0f);  // first block: absmax 8, every x = 1
  const float tail[6] = {0.5f, -0.25f, 0.0f, 0.125f, -0.5f, 0.25f};
  for (size_t i = 0; i < 6; ++i) w[64 + i] = tail[i];
  const Quantized q = quantize(StorageType::kNF4, w, 64);
  ASSERT_EQ(q.absmax.size(), 2u);
  EXPECT_EQ(q.absmax[0], 8.0f);
  EXPECT_EQ(q.absmax[1], 0.5f);
  // x = w * 2: 1 -> 15, -0.5 -> 2, 0 -> 7, 0.25 -> 10 (t9 0.2035 < x <= t10 0.292), -1 -> 0, 0.5 -> 12
  const std::vector<uint8_t> codes = unpack(q.packed, 70);
  EXPECT_EQ(std::vector<uint8_t>(codes.begin() + 64, codes.end()),
            (std::vector<uint8_t>{15, 2, 7, 10, 0, 12}));
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(codes[i], 15);
}

TEST(Quantize4bit, OddCountPadsLowNibbleWithZeroCode) {
  std::vector<float> w(69, 1.0f);
  w[68] = -1.0f;
  const Quantized nf4 = quantize(StorageType::kNF4, w, 64);
  const Quantized fp4 = quantize(StorageType::kFP4, w, 64);
  ASSERT_EQ(nf4.packed.size(), 35u);
  EXPECT_EQ(nf4.packed[34], 0x07);  // element 68 -> code 0 (x = -1), pad -> 7
  EXPECT_EQ(fp4.packed[34], 0xB0);  // element 68 -> code 11, pad -> 0
  EXPECT_EQ(nf4.absmax[1], 1.0f);
}

TEST(Quantize4bit, BlocksStraddleRows) {
  // 3 x 172, block 64: block 2 covers flat [128, 192) = row 0 cols 128..171 (tiny values) and
  // row 1 cols 0..19 (large ones). bnb flattens, so the tiny values share the large absmax.
  const size_t rows = 3, cols = 172;
  std::vector<float> w(rows * cols);
  for (size_t c = 0; c < cols; ++c) {
    w[c] = 1e-3f * static_cast<float>(c % 7) - 3e-3f;
    w[cols + c] = 10.0f - static_cast<float>(c % 5);
    w[2 * cols + c] = -0.5f;
  }
  const Quantized q = quantize(StorageType::kNF4, w, 64);
  ASSERT_EQ(q.absmax.size(), 9u);  // ceil(516 / 64)
  EXPECT_EQ(q.absmax[2], 10.0f);
  EXPECT_EQ(q.absmax[8], 0.5f);  // short last block: 4 values of row 2
  const std::vector<uint8_t> codes = unpack(q.packed, w.size());
  for (size_t i = 128; i < 172; ++i) EXPECT_EQ(codes[i], 7) << i;  // |x| <= 3e-4: code 7
  EXPECT_EQ(codes[172], 15);                                          // row 1 col 0: x = 1
  // Quantizing the tensor in two calls split at a block boundary gives the same bytes.
  Quantized parts;
  parts.packed.assign(q.packed.size(), 0);
  parts.absmax.assign(q.absmax.size(), 0.0f);
  quantize_4bit_ref(StorageType::kNF4, w.data(), 192, 64, parts.packed.data(), parts.absmax.data());
  quantize_4bit_ref(StorageType::kNF4, w.data() + 192, w.size() - 192, 64,
                    parts.packed.data() + 96, parts.absmax.data() + 3);
  EXPECT_EQ(parts.packed, q.packed);
  EXPECT_EQ(parts.absmax, q.absmax);
}

}  // namespace
}  // namespace qmodel::kernels
