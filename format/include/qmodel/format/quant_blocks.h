// The one definition of every storage type, block layout and 4-bit code book (bitsandbytes-exact,
// see shared reference §1-3). The converter, the CPU references and the CUDA kernels include this
// header; nothing else hand-copies these constants. Header-only, no dependencies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qmodel {

// Values match schemas/qmodel.fbs (static_asserts in format/src/fb_convert.cpp keep them in step).
enum class SourceDType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2 };
enum class StorageType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kNF4 = 3, kFP4 = 4, kINT8 = 5 };
enum class ComputeDType : uint8_t { kBF16 = 0, kF16 = 1, kF32 = 2 };

inline bool is_4bit(StorageType s) { return s == StorageType::kNF4 || s == StorageType::kFP4; }
inline bool is_float_storage(StorageType s) {
  return s == StorageType::kF32 || s == StorageType::kF16 || s == StorageType::kBF16;
}
inline size_t float_storage_bytes(StorageType s) { return s == StorageType::kF32 ? 4 : 2; }

// Lower-case names used on command lines and in listings ("nf4", "bf16", ...).
inline const char* storage_type_name(StorageType s) {
  switch (s) {
    case StorageType::kF32: return "f32";
    case StorageType::kF16: return "f16";
    case StorageType::kBF16: return "bf16";
    case StorageType::kNF4: return "nf4";
    case StorageType::kFP4: return "fp4";
    case StorageType::kINT8: return "int8";
  }
  return "?";
}
inline const char* source_dtype_name(SourceDType d) {
  switch (d) {
    case SourceDType::kF32: return "f32";
    case SourceDType::kF16: return "f16";
    case SourceDType::kBF16: return "bf16";
  }
  return "?";
}
inline const char* compute_dtype_name(ComputeDType d) {
  switch (d) {
    case ComputeDType::kBF16: return "bf16";
    case ComputeDType::kF16: return "f16";
    case ComputeDType::kF32: return "f32";
  }
  return "?";
}

// bitsandbytes get_4bit_type("nf4") / nf4_dequantization_lut, index = 4-bit code.
inline constexpr float kNf4CodeTable[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
static_assert(sizeof(kNf4CodeTable) / sizeof(float) == 16, "NF4 has 16 codes");

// bitsandbytes FP4 (sign bit 3, 2 exponent bits, 1 mantissa bit), as its stored quant_map: the
// 16 values in code order divided by the format's absmax (12).
inline constexpr float kFp4CodeTable[16] = {
    0.0f, 0.0625f / 12.0f, 8.0f / 12.0f, 12.0f / 12.0f, 4.0f / 12.0f, 6.0f / 12.0f, 2.0f / 12.0f, 3.0f / 12.0f,
    -0.0f, -0.0625f / 12.0f, -8.0f / 12.0f, -12.0f / 12.0f, -4.0f / 12.0f, -6.0f / 12.0f, -2.0f / 12.0f, -3.0f / 12.0f};
static_assert(sizeof(kFp4CodeTable) / sizeof(float) == 16, "FP4 has 16 codes");

inline constexpr uint8_t kNf4ZeroCode = 7;   // code of 0.0: pads the low nibble of an odd count
inline constexpr uint8_t kFp4ZeroCode = 0;

inline constexpr uint32_t kDefaultBlockSize = 64;   // bnb default (transformers cannot change it)
inline constexpr uint32_t kMinBlockSize = 32;
inline constexpr uint32_t kMaxBlockSize = 4096;
inline constexpr uint32_t kNestedBlockSize = 256;   // double quantization of absmax
inline constexpr size_t kDynamicMapSize = 256;      // create_dynamic_map(signed=True)

// bnb accepts {32, 64, ..., 4096} for 4-bit.
inline bool is_valid_4bit_block_size(uint64_t bs) {
  return bs >= kMinBlockSize && bs <= kMaxBlockSize && (bs & (bs - 1)) == 0;
}

inline constexpr uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
// Element 2j goes to the high nibble of byte j, 2j+1 to the low nibble; odd counts pad one nibble.
inline constexpr uint64_t packed_4bit_bytes(uint64_t n_elems) { return (n_elems + 1) / 2; }

}  // namespace qmodel
