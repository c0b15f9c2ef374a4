// F32/F16/BF16 -> float32 for the converter's hot path. The loops are branch-free over plain
// integer/float ops so the compiler vectorises them; each result is bit-identical to half.h.
#include <cstring>

#include "qmodel/converter/safetensors.h"

namespace qmodel::converter {

namespace {

static_assert(sizeof(float) == 4, "float32 expected");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "F32 is copied as-is: little-endian hosts only");

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline uint16_t load_le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Half -> float without a loop for subnormals (F. Giesen's "half_to_float_fast4"): shift the
// exponent/mantissa into place and rebias; Inf/NaN get the rest of the exponent range; zero and
// subnormals are renormalised by one float subtraction of 2^-14, which is exact.
inline float f16_bits_to_float(uint16_t h) {
  constexpr uint32_t kShiftedExp = 0x7c00u << 13;      // f16 exponent mask after the shift
  constexpr uint32_t kRebias = (127u - 15u) << 23;     // f16 bias 15 -> f32 bias 127
  constexpr uint32_t kInfNanExtra = (128u - 16u) << 23;
  const float kMagic = bits_to_float(113u << 23);      // 2^-14, the smallest normal f16
  uint32_t o = (static_cast<uint32_t>(h) & 0x7fffu) << 13;
  const uint32_t exp = o & kShiftedExp;
  o += kRebias;
  // Selects as masks rather than ?: so the loop stays branch-free and vectorises.
  const uint32_t infnan_mask = 0u - static_cast<uint32_t>(exp == kShiftedExp);
  o += kInfNanExtra & infnan_mask;
  const uint32_t sub = float_to_bits(bits_to_float(o + (1u << 23)) - kMagic);
  const uint32_t zero_mask = 0u - static_cast<uint32_t>(exp == 0);
  o = (sub & zero_mask) | (o & ~zero_mask);
  o |= (static_cast<uint32_t>(h) & 0x8000u) << 16;
  return bits_to_float(o);
}

void f16_to_float_n(const uint8_t* __restrict src, uint64_t count, float* __restrict out) {
  for (uint64_t i = 0; i < count; ++i) out[i] = f16_bits_to_float(load_le16(src + 2 * i));
}

void bf16_to_float_n(const uint8_t* __restrict src, uint64_t count, float* __restrict out) {
  for (uint64_t i = 0; i < count; ++i) out[i] = bits_to_float(static_cast<uint32_t>(load_le16(src + 2 * i)) << 16);
}

void f32_to_float_n(const uint8_t* src, uint64_t count, float* out) {
  std::memcpy(out, src, static_cast<size_t>(count) * 4);  // safetensors is little-endian, as is every host we build for
}

}  // namespace

void convert_to_float(SourceDType dtype, const uint8_t* src, uint64_t count, float* out) {
  if (count == 0) return;
  switch (dtype) {
    case SourceDType::kF32: f32_to_float_n(src, count, out); return;
    case SourceDType::kF16: f16_to_float_n(src, count, out); return;
    case SourceDType::kBF16: bf16_to_float_n(src, count, out); return;
  }
  QMODEL_ASSERT(false && "unknown SourceDType");
}

void to_float(const TensorEntry& entry, uint64_t first, uint64_t count, float* out) {
  const uint64_t n = entry.n_elems();
  QMODEL_ASSERT(first <= n && count <= n - first);
  const size_t elem = source_dtype_size(entry.dtype);
  QMODEL_ASSERT(entry.bytes.size() == n * elem);
  convert_to_float(entry.dtype, entry.bytes.data() + first * elem, count, out);
}

}  // namespace qmodel::converter
