// half.h conversions: every fp16 pattern round-trips, and float -> fp16 / bf16 agree with
// correctly rounded references (gcc's _Float16 conversion; an exact bf16 reference below) on ties,
// subnormals, overflow and NaN, plus random floats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "qmodel/format/half.h"

namespace qmodel {
namespace {

float bits_to_float(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
uint32_t float_to_bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }

uint16_t gcc_float_to_f16(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

float gcc_f16_to_float(uint16_t b) {
  _Float16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}

// Round-to-nearest-even bf16 by comparing the two candidates' distances in double (exact there).
uint16_t reference_float_to_bf16(float f) {
  const uint32_t bits = float_to_bits(f);
  const uint16_t lo = static_cast<uint16_t>(bits >> 16);  // truncation toward zero
  if (std::isnan(f)) return lo;                           // only NaN-ness is compared
  if (std::isinf(f) || (bits & 0xffffu) == 0) return lo;
  const double lo_val = std::fabs(static_cast<double>(bf16_to_float(lo)));
  const int exp_field = static_cast<int>((bits >> 23) & 0xffu);
  const double ulp = std::ldexp(1.0, (exp_field == 0 ? 1 : exp_field) - 127 - 7);
  const double hi_val = lo_val + ulp;  // may be 2^128: the next step up is then inf
  const double a = std::fabs(static_cast<double>(f));
  const double d_lo = a - lo_val, d_hi = hi_val - a;
  const bool up = d_hi < d_lo || (d_hi == d_lo && (lo & 1u));
  return static_cast<uint16_t>(lo + (up ? 1 : 0));
}

void expect_same_f16(float f) {
  const uint16_t got = float_to_f16(f), want = gcc_float_to_f16(f);
  if (std::isnan(f)) {
    EXPECT_TRUE(std::isnan(f16_to_float(got))) << std::hexfloat << f;
    EXPECT_EQ(got & 0x8000u, want & 0x8000u);
  } else {
    EXPECT_EQ(got, want) << std::hexfloat << f << " bits " << std::hex << float_to_bits(f);
  }
}

void expect_same_bf16(float f) {
  const uint16_t got = float_to_bf16(f);
  if (std::isnan(f)) {
    EXPECT_TRUE(std::isnan(bf16_to_float(got)));
    EXPECT_EQ(got & 0x8000u, (float_to_bits(f) >> 16) & 0x8000u);
  } else {
    EXPECT_EQ(got, reference_float_to_bf16(f)) << std::hexfloat << f;
  }
}

// Edge floats: zeros, infinities, NaNs, limits of both formats, and their neighbours.
std::vector<float> edge_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                          bits_to_float(0x7f800001u), bits_to_float(0xffc00000u),
                          std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::max(), 65504.0f, 65519.996f, 65520.0f, 65536.0f,
                          std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(3.0f, -26),
                          std::ldexp(1.0f, -14), std::ldexp(1.0f, -15), 1.0f + std::ldexp(1.0f, -11),
                          1.0f + std::ldexp(3.0f, -11), 1.0f + std::ldexp(1.0f, -8),
                          1.0f + std::ldexp(3.0f, -8), bits_to_float(0x7f7f8000u)};
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) {
    v.push_back(std::nextafter(v[i], inf));
    v.push_back(std::nextafter(v[i], -inf));
    v.push_back(-v[i]);
  }
  return v;
}

TEST(HalfF16, EveryPatternRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    const float f = f16_to_float(h);
    const float want = gcc_f16_to_float(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << b;
      ASSERT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
      continue;
    }
    ASSERT_EQ(float_to_bits(f), float_to_bits(want)) << std::hex << b;
    ASSERT_EQ(float_to_f16(f), h) << std::hex << b;
  }
}

TEST(HalfF16, TiesAroundEveryValueMatchGcc) {
  // Exactly half-way between consecutive fp16 values, and one float ulp either side of it.
  const float inf = std::numeric_limits<float>::infinity();
  for (uint32_t b = 0; b < 0x7c00u; ++b) {
    const double lo = f16_to_float(static_cast<uint16_t>(b));
    const double hi = b + 1 == 0x7c00u ? 65536.0 : f16_to_float(static_cast<uint16_t>(b + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact in float
    for (float f : {mid, std::nextafter(mid, inf), std::nextafter(mid, -inf)}) {
      expect_same_f16(f);
      expect_same_f16(-f);
    }
  }
}

TEST(HalfF16, EdgeAndRandomFloatsMatchGcc) {
  for (float f : edge_floats()) expect_same_f16(f);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_int_distribution<uint32_t> near_f16_range(0x33000000u, 0x47800000u);  // 2^-25..2^16
  for (int i = 0; i < 200000; ++i) {
    expect_same_f16(bits_to_float(any_bits(rng)));
    const uint32_t b = near_f16_range(rng) | (any_bits(rng) & 0x80000000u);
    expect_same_f16(bits_to_float(b));
  }
}

TEST(HalfBf16, EdgeAndRandomFloatsMatchReference) {
  for (float f : edge_floats()) expect_same_bf16(f);
  // Ties: low 16 bits exactly 0x8000, on odd and even bf16 mantissas, incl. subnormals and max.
  for (uint32_t hi : {0x00000000u, 0x00010000u, 0x3f800000u, 0x3f810000u, 0x7f7e0000u, 0x7f7f0000u}) {
    expect_same_bf16(bits_to_float(hi | 0x8000u));
    expect_same_bf16(bits_to_float(hi | 0x7fffu));
    expect_same_bf16(bits_to_float(hi | 0x8001u));
  }
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 400000; ++i) expect_same_bf16(bits_to_float(any_bits(rng)));
}

TEST(HalfBf16, EveryPatternRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    const float f = bf16_to_float(h);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(float_to_bf16(f), h) << std::hex << b;
  }
}

}  // namespace
}  // namespace qmodel
