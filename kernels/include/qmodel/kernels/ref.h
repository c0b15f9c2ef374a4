// CPU reference kernels: the numerical truth for the converter (quantizers), the CPU runtime
// backend (dequantize, y = x·Wᵀ straight from quantized W) and the CUDA kernels' tests.
// bitsandbytes-exact, see shared reference §1-3. Inputs are raw pointers + dims; nothing here
// knows about files. All functions are single-threaded and deterministic; callers parallelise over
// disjoint ranges (block-aligned for the quantizers, row ranges for the matmuls).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "qmodel/format/quant_blocks.h"

namespace qmodel::kernels {

// ---------------------------------------------------------------------------------------------
// Quantization (converter)

// bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted
// float32 values, index 127 = 0, index 255 = 1. Used for double quantization of absmax.
std::array<float, kDynamicMapSize> dynamic_map_signed();

// kQuantizeBlockwise semantics for NF4 / FP4 (storage must be kNF4 or kFP4) over n flat values:
// absmax per block of `block_size` (a short last block uses its valid elements only), x = w *
// (1/absmax), code = nearest code with ties to the lower code (strict `>` against midpoints
// derived from the code table), element 2j in the high nibble. An all-zero block gets absmax 0
// and the zero code. Writes packed_4bit_bytes(n) bytes and ceil(n/block_size) absmax values.
// A caller may quantize a sub-range whose start is a multiple of block_size (block_size is even).
void quantize_4bit_ref(StorageType storage, const float* w, size_t n, size_t block_size,
                       uint8_t* packed, float* absmax);

// Double quantization of first-level absmax (bitsandbytes quantize_4bit(compress_statistics=True)):
// offset = mean(absmax); (absmax - offset) quantized blockwise (blocks of kNestedBlockSize) with
// `code` (the signed dynamic map) exactly as bnb's dQuantize<0>. Writes n_blocks codes and
// ceil(n_blocks/256) nested absmax values.
void double_quantize_absmax_ref(const float* absmax, size_t n_blocks, const float* code,
                                uint8_t* absmax_codes, float* nested_absmax, float* offset);
// Its two steps, so callers can parallelise the second over ranges that start on a multiple of
// kNestedBlockSize: the mean (double accumulator, then rounded to float), and the blockwise
// 8-bit quantization of (absmax - offset) for a range.
float absmax_mean_ref(const float* absmax, size_t n_blocks);
void quantize_nested_absmax_ref(const float* absmax, size_t n_blocks, const float* code, float offset,
                                uint8_t* absmax_codes, float* nested_absmax);

// LLM.int8 weight format: each value is first rounded to fp16 (bnb casts the weight to fp16),
// SCB[r] = max|w_row|, q = round_half_even(w * (127 / SCB)); an all-zero row gives SCB 0, q 0.
void quantize_int8_rows_ref(const float* w, size_t rows, size_t cols, int8_t* q, float* scb);

// ---------------------------------------------------------------------------------------------
// A quantized (or plain) weight [rows = out, cols = in] as stored, pointers into its blobs.
struct WeightView {
  StorageType storage = StorageType::kF32;
  size_t rows = 0, cols = 0;
  const void* data = nullptr;              // f32/f16/bf16 values, packed 4-bit codes, or int8
  // NF4 / FP4
  size_t block_size = 0;
  const float* code_table = nullptr;       // 16 entries
  const float* absmax = nullptr;           // without double quantization
  const uint8_t* absmax_codes = nullptr;   // with double quantization
  const float* nested_absmax = nullptr;    // with double quantization
  const float* nested_code_table = nullptr;// 256 entries
  size_t nested_block_size = 0;
  float nested_offset = 0.0f;
  // INT8
  const float* row_scale = nullptr;        // SCB per row
};

// absmax of 4-bit block b, double quantization resolved: dyn[q]*nested[b/256] + offset.
float block_absmax_ref(const WeightView& w, size_t block);

// Dequantizes flat elements [first, first + count) of w to fp32 (any range, any storage).
// INT8 dequantizes as q * SCB * (1/127) (bnb's 7.874015718698502e-3).
void dequantize_ref(const WeightView& w, size_t first, size_t count, float* out);

// Activation element types for the matmul references.
enum class ActType : uint8_t { kF32, kF16, kBF16 };

// y[m, r] = sum_k x[m, k] * W[r, k] (+ bias[r]) for output rows r in [row_begin, row_end),
// m = number of activation rows (1 = decode GEMV). x is [m, cols] row-major of `act` type, y is
// [m, rows] of the same type (fp32 accumulation, one rounding at the end), bias (nullable) is fp32.
// Reads W one block at a time: no dequantized copy of the matrix is made.
void matmul_ref(ActType act, const void* x, size_t m, const WeightView& w, const float* bias,
                void* y, size_t row_begin, size_t row_end);

// ---------------------------------------------------------------------------------------------
// Element-level helpers (added for the CUDA kernels' tests and the quantizer tests).

// NF4 decision thresholds: the 15 float32 midpoints (a+b)*0.5f of adjacent sorted code values,
// ascending, derived from kNf4CodeTable (bnb's dQuantizeNF4 tree compares `x > t` against them).
std::array<float, 15> nf4_thresholds_ref();
// FP4 magnitude thresholds: the 7 float32 midpoints of adjacent sorted |code| values of
// kFp4CodeTable, ascending; the sign is decided separately (x < 0 ? 8 : 0), as bnb's dQuantizeFP4.
std::array<float, 7> fp4_magnitude_thresholds_ref();
// 4-bit code of one normalised value x = w * (1/absmax): strict `>`, so a value exactly on a
// midpoint gets the lower code (for FP4: the smaller magnitude). NaN gives code 0, as in CUDA.
uint8_t quantize_4bit_value_ref(StorageType storage, float x);
// bnb dQuantize<0> over a sorted 256-entry code: 7-step binary search from pivot 127, then the
// midpoint test against the neighbour; a value exactly on a midpoint keeps the search's pivot.
uint8_t quantize_dynamic_value_ref(const float* code, float x);

}  // namespace qmodel::kernels
