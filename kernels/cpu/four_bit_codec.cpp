// Derives the NF4 / FP4 decision thresholds from the code tables and encodes single values.
// Midpoints are computed in float32 as (a + b) * 0.5f; that equals the double midpoint rounded to
// float32 (scaling by 2 commutes with rounding), i.e. bnb's tree constants for NF4.
#include <algorithm>
#include <numeric>

#include "four_bit_codec.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

template <size_t N>
std::array<uint8_t, N> sorted_order(const float (&values)[N]) {
  std::array<uint8_t, N> order{};
  std::iota(order.begin(), order.end(), uint8_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](uint8_t a, uint8_t b) { return values[a] < values[b]; });
  return order;
}

Nf4Codec build_nf4() {
  Nf4Codec c{};
  c.rank_to_code = sorted_order(kNf4CodeTable);
  for (size_t i = 0; i < c.thresholds.size(); ++i) {
    const float lo = kNf4CodeTable[c.rank_to_code[i]], hi = kNf4CodeTable[c.rank_to_code[i + 1]];
    QMODEL_ASSERT(lo < hi);  // distinct levels, or a midpoint would be meaningless
    c.thresholds[i] = (lo + hi) * 0.5f;
  }
  return c;
}

Fp4Codec build_fp4() {
  // Codes 0..7 carry the magnitudes (bit 3 is the sign); sort them by |value|.
  float magnitude[8];
  for (size_t i = 0; i < 8; ++i) magnitude[i] = std::fabs(kFp4CodeTable[i]);
  Fp4Codec c{};
  c.rank_to_code = sorted_order(magnitude);
  for (size_t i = 0; i < c.thresholds.size(); ++i) {
    const float lo = magnitude[c.rank_to_code[i]], hi = magnitude[c.rank_to_code[i + 1]];
    QMODEL_ASSERT(lo < hi);
    c.thresholds[i] = (lo + hi) * 0.5f;
  }
  QMODEL_ASSERT(c.rank_to_code[0] == kFp4ZeroCode);
  return c;
}

}  // namespace

const Nf4Codec& nf4_codec() {
  static const Nf4Codec codec = build_nf4();
  return codec;
}

const Fp4Codec& fp4_codec() {
  static const Fp4Codec codec = build_fp4();
  return codec;
}

std::array<float, 15> nf4_thresholds_ref() { return nf4_codec().thresholds; }
std::array<float, 7> fp4_magnitude_thresholds_ref() { return fp4_codec().thresholds; }

uint8_t quantize_4bit_value_ref(StorageType storage, float x) {
  QMODEL_ASSERT(is_4bit(storage));
  return storage == StorageType::kNF4 ? nf4_codec().encode(x) : fp4_codec().encode(x);
}

}  // namespace qmodel::kernels
