// Vectorised NF4/FP4 and INT8 quantizers for the converter, bit-identical to the scalar _ref
// versions (tests/kernels/test_quantize_fast.cpp checks it). AVX2 paths with intrinsics, chosen at
// run time, with scalar fallbacks: absmax as an integer max over the |bit patterns| (fmax is a libm
// call and GCC does not vectorise the select form), ranks by counting compares against the
// thresholds, a scalar pass that maps ranks to codes and packs nibbles. F16C does the INT8 path's
// fp16 pre-rounding in hardware (the same round-to-nearest-even as half.h).
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "four_bit_codec.h"
#include "qmodel/format/half.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/cpu.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

constexpr uint32_t kAbsMask = 0x7fffffffu;
constexpr uint32_t kInfBits = 0x7f800000u;

// max|w| over n floats, ignoring NaN like fmax: on non-negative IEEE floats the integer order of
// the bit patterns is the numeric order, and NaN patterns (> inf) are masked to 0.
float abs_max_scalar(const float* w, size_t n, uint32_t m = 0) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &w[i], 4);
    b &= kAbsMask;
    b = b > kInfBits ? 0u : b;
    m = b > m ? b : m;
  }
  float f;
  std::memcpy(&f, &m, 4);
  return f;
}

__attribute__((target("avx2"))) float abs_max_avx2(const float* w, size_t n) {
  const __m256i abs_mask = _mm256_set1_epi32(static_cast<int>(kAbsMask));
  const __m256i inf = _mm256_set1_epi32(static_cast<int>(kInfBits));
  __m256i m = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)), abs_mask);
    v = _mm256_andnot_si256(_mm256_cmpgt_epi32(v, inf), v);  // NaN -> 0 (signed compare: v >= 0)
    m = _mm256_max_epu32(m, v);
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint32_t best = 0;
  for (uint32_t l : lanes) best = l > best ? l : best;
  return abs_max_scalar(w + i, n - i, best);
}

// NF4: rank[i] = number of the 15 thresholds strictly below x = w[i] * inv (NaN -> 0).
// FP4: magnitude rank of |x| among 7 thresholds, plus 8 when x < 0 (-0.0 is not < 0).
template <int kThresholds, bool kSigned>
void ranks_scalar(const float* w, size_t n, float inv, const float* t, int32_t* rank) {
  for (size_t i = 0; i < n; ++i) {
    const float x = w[i] * inv;
    const float a = kSigned ? std::fabs(x) : x;
    int32_t r = kSigned && x < 0.0f ? 8 : 0;
    for (int k = 0; k < kThresholds; ++k) r += a > t[k] ? 1 : 0;
    rank[i] = r;
  }
}

template <int kThresholds, bool kSigned>
__attribute__((target("avx2"))) void ranks_avx2(const float* w, size_t n, float inv, const float* t, int32_t* rank) {
  __m256 thr[kThresholds];
  for (int k = 0; k < kThresholds; ++k) thr[k] = _mm256_set1_ps(t[k]);
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(kAbsMask)));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(w + i), vinv);
    const __m256 a = kSigned ? _mm256_and_ps(x, sign_mask) : x;
    __m256i r = _mm256_setzero_si256();
    for (int k = 0; k < kThresholds; ++k) {  // a true compare is all ones (-1): subtract it
      r = _mm256_sub_epi32(r, _mm256_castps_si256(_mm256_cmp_ps(a, thr[k], _CMP_GT_OQ)));
    }
    if (kSigned) {
      const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
      r = _mm256_add_epi32(r, _mm256_and_si256(neg, _mm256_set1_epi32(8)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rank + i), r);
  }
  ranks_scalar<kThresholds, kSigned>(w + i, n - i, inv, t, rank + i);
}

// CPU features, probed once (__builtin_cpu_init makes this safe during static initialisation).
bool have_avx2() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") != 0);
  return yes;
}
bool have_avx2_f16c() {
  // F16C through cpuid: clang's __builtin_cpu_supports does not know the "f16c" name.
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return have_avx2() && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  }();
  return yes;
}

float abs_max(const float* w, size_t n) { return have_avx2() ? abs_max_avx2(w, n) : abs_max_scalar(w, n); }

// Rank -> code through a 16-entry table, two codes per byte, high nibble first.
void pack_codes(const int32_t* rank, size_t n, const uint8_t* rank_to_code, uint8_t zero_code, uint8_t* out) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) {
    out[i / 2] = static_cast<uint8_t>((rank_to_code[rank[i]] << 4) | rank_to_code[rank[i + 1]]);
  }
  if (i < n) out[i / 2] = static_cast<uint8_t>((rank_to_code[rank[i]] << 4) | zero_code);
}

}  // namespace

void quantize_4bit(StorageType storage, const float* w, size_t n, size_t block_size, uint8_t* packed,
                   float* absmax) {
  QMODEL_ASSERT(is_4bit(storage));
  QMODEL_ASSERT(block_size >= 2 && block_size % 2 == 0 && block_size <= kMaxBlockSize);
  const bool nf4 = storage == StorageType::kNF4;
  const uint8_t zero_code = nf4 ? kNf4ZeroCode : kFp4ZeroCode;
  // One table for both: NF4 maps rank -> code; FP4 maps (sign | magnitude rank) -> code.
  uint8_t rank_to_code[16];
  if (nf4) {
    std::copy(nf4_codec().rank_to_code.begin(), nf4_codec().rank_to_code.end(), rank_to_code);
  } else {
    for (int r = 0; r < 16; ++r) rank_to_code[r] = static_cast<uint8_t>(fp4_codec().rank_to_code[r & 7] | (r & 8));
  }
  int32_t rank[kMaxBlockSize];
  for (size_t start = 0, b = 0; start < n; start += block_size, ++b) {
    const size_t len = std::min(block_size, n - start);
    const float amax = abs_max(w + start, len);
    absmax[b] = amax;
    uint8_t* out = packed + start / 2;
    if (amax == 0.0f) {  // all-zero block: the zero code, as quantize_4bit_ref
      std::memset(out, zero_code * 0x11, len / 2);
      if (len % 2) out[len / 2] = static_cast<uint8_t>(zero_code * 0x11);
      continue;
    }
    const float inv = 1.0f / amax;
    const float* blk = w + start;
    if (nf4) {
      const float* t = nf4_codec().thresholds.data();
      have_avx2() ? ranks_avx2<15, false>(blk, len, inv, t, rank) : ranks_scalar<15, false>(blk, len, inv, t, rank);
    } else {
      const float* t = fp4_codec().thresholds.data();
      have_avx2() ? ranks_avx2<7, true>(blk, len, inv, t, rank) : ranks_scalar<7, true>(blk, len, inv, t, rank);
    }
    pack_codes(rank, len, rank_to_code, zero_code, out);
  }
}

namespace {

// Rounds n floats to fp16 precision (round to nearest even, as float_to_f16) and back.
__attribute__((target("avx2,f16c"))) void round_to_f16_f16c(const float* w, size_t n, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(w + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = f16_to_float(float_to_f16(w[i]));
}

void round_to_f16_scalar(const float* w, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(float_to_f16(w[i]));
}

__attribute__((target("avx2"))) void scale_round_int8_avx2(const float* v, size_t n, float scale, int8_t* q) {
  for (size_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(v[i] * scale));
}

void scale_round_int8(const float* v, size_t n, float scale, int8_t* q) {
  for (size_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(v[i] * scale));
}

}  // namespace

void quantize_int8_rows(const float* w, size_t rows, size_t cols, int8_t* q, float* scb) {
  const bool have_f16c = have_avx2_f16c();
  constexpr size_t kChunk = 4096;
  float rounded[kChunk];
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    int8_t* qrow = q + r * cols;
    // Pass 1: SCB over the fp16-rounded row (rounding is monotonic, so max of rounded = rounded
    // max, but we keep the reference's order of operations literally).
    float amax = 0.0f;
    for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
      const size_t n = std::min(kChunk, cols - c0);
      if (have_f16c) round_to_f16_f16c(row + c0, n, rounded);
      else round_to_f16_scalar(row + c0, n, rounded);
      amax = std::max(amax, abs_max(rounded, n));
    }
    QMODEL_ASSERT(std::isfinite(amax));  // the converter rejects values beyond the fp16 range
    scb[r] = amax;
    if (amax == 0.0f) {
      std::memset(qrow, 0, cols);
      continue;
    }
    const float scale = 127.0f / amax;
    for (size_t c0 = 0; c0 < cols; c0 += kChunk) {
      const size_t n = std::min(kChunk, cols - c0);
      if (have_f16c) round_to_f16_f16c(row + c0, n, rounded);
      else round_to_f16_scalar(row + c0, n, rounded);
      if (have_avx2()) scale_round_int8_avx2(rounded, n, scale, qrow + c0);
      else scale_round_int8(rounded, n, scale, qrow + c0);
    }
  }
}

}  // namespace qmodel::kernels
