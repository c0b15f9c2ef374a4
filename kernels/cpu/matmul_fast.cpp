// The CPU runtime's linear: y = x·Wᵀ (+ bias) with fp32 activations, straight from the stored
// weight like matmul_ref, but with an AVX2 dequantizer (4-bit codes expanded 8 at a time and looked
// up with two permutes; bf16 by shifting) that is bit-identical to dequantize_ref, and AVX2+FMA
// dot products. Each weight row is dequantized one 1024-column chunk at a time into a stack buffer
// (L1) and reused for all m activation rows. Falls back to matmul_ref without AVX2/FMA.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/kernels/cpu.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

constexpr size_t kChunk = 1024;  // floats per dequantized chunk: 4 KiB, stays in L1

bool have_avx2_fma() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  return yes;
}

// 4-bit: [first, first + count) with first % 8 == 0, every group of 8 inside one block (block
// sizes are multiples of 8). Same arithmetic as dequantize_ref: lut[code] * absmax, one rounding.
__attribute__((target("avx2"))) void dequantize_4bit_avx2(const WeightView& w, size_t first, size_t count, float* out) {
  const uint8_t* codes = static_cast<const uint8_t*>(w.data) + first / 2;
  const __m256 lut_lo = _mm256_loadu_ps(w.code_table);
  const __m256 lut_hi = _mm256_loadu_ps(w.code_table + 8);
  // Byte j of the 4 loaded goes to lanes 2j and 2j+1; even lanes take the high nibble.
  const __m128i spread = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
  const __m256i nibble = _mm256_set1_epi32(0xF);
  size_t block = SIZE_MAX;
  __m256 scale = _mm256_setzero_ps();
  for (size_t i = 0; i + 8 <= count; i += 8) {
    const size_t b = (first + i) / w.block_size;
    if (b != block) {
      block = b;
      scale = _mm256_set1_ps(block_absmax_ref(w, b));
    }
    int32_t four;
    std::memcpy(&four, codes + i / 2, 4);
    const __m256i bytes = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(four), spread));
    const __m256i code = _mm256_and_si256(_mm256_srlv_epi32(bytes, shifts), nibble);
    const __m256 lo = _mm256_permutevar8x32_ps(lut_lo, code);
    const __m256 hi = _mm256_permutevar8x32_ps(lut_hi, code);
    const __m256 value = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));  // bit 3 -> sign
    _mm256_storeu_ps(out + i, _mm256_mul_ps(value, scale));
  }
}

__attribute__((target("avx2"))) void dequantize_bf16_avx2(const uint16_t* h, size_t count, float* out) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
  for (; i < count; ++i) {
    const uint32_t bits = static_cast<uint32_t>(h[i]) << 16;
    std::memcpy(out + i, &bits, 4);
  }
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(acc0, acc1));
  float sum = 0.0f;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

void dequantize(const WeightView& w, size_t first, size_t count, float* out) {
  if (!have_avx2_fma()) return dequantize_ref(w, first, count, out);
  if (is_4bit(w.storage) && first % 8 == 0 && w.block_size % 8 == 0) {
    const size_t vec = count / 8 * 8;
    dequantize_4bit_avx2(w, first, vec, out);
    if (vec < count) dequantize_ref(w, first + vec, count - vec, out + vec);
    return;
  }
  if (w.storage == StorageType::kBF16) {
    return dequantize_bf16_avx2(static_cast<const uint16_t*>(w.data) + first, count, out);
  }
  dequantize_ref(w, first, count, out);
}

void matmul(const float* x, size_t m, const WeightView& w, const float* bias, float* y, size_t row_begin,
            size_t row_end) {
  QMODEL_ASSERT(row_begin <= row_end && row_end <= w.rows);
  if (!have_avx2_fma()) return matmul_ref(ActType::kF32, x, m, w, bias, y, row_begin, row_end);
  const size_t k = w.cols;
  alignas(64) float chunk[kChunk];
  thread_local std::vector<float> acc;
  acc.resize(m);
  for (size_t r = row_begin; r < row_end; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (size_t k0 = 0; k0 < k; k0 += kChunk) {
      const size_t len = std::min(kChunk, k - k0);
      const float* wrow = chunk;
      if (w.storage == StorageType::kF32) {
        wrow = static_cast<const float*>(w.data) + r * k + k0;  // already fp32: read in place
      } else {
        dequantize(w, r * k + k0, len, chunk);
      }
      for (size_t i = 0; i < m; ++i) acc[i] += dot_avx2(x + i * k + k0, wrow, len);
    }
    const float b = bias != nullptr ? bias[r] : 0.0f;
    for (size_t i = 0; i < m; ++i) y[i * w.rows + r] = acc[i] + b;
  }
}

}  // namespace qmodel::kernels
