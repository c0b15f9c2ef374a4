// __half / __half2 / __nv_bfloat16 / __nv_bfloat162 as trivially copyable 2- and 4-byte structs
// with the hardware's conversions: float -> 16-bit rounds to nearest even (or toward zero for _rz),
// overflow goes to infinity (max finite for _rz), subnormals are kept, and every NaN becomes the
// canonical 0x7fff (what cvt.rn.f16.f32 / cvt.rn.bf16.f32 produce). 16-bit arithmetic computes in
// fp32 (exact for +,-,*, and correctly rounded for /, since fp32 has more than 2p+2 bits) and
// rounds once; fma rounds to odd in double first so it is rounded exactly once as well.
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda_emu/prelude.h"
#include "cuda_emu/vector_types.h"

// The conversions run once per element in emulated kernels: always inlined (GCC's heuristics give
// up on them inside large instrumented kernel bodies).
#define CUDA_EMU_FP16_INLINE inline __attribute__((always_inline))

namespace cuda_emu::fp16 {

enum class Round { kNearestEven, kTowardZero, kUp, kDown };

CUDA_EMU_FP16_INLINE uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
CUDA_EMU_FP16_INLINE float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// q (the truncated magnitude in units of the target ulp) rounded with remainder rem of 2^shift.
CUDA_EMU_FP16_INLINE uint32_t round_magnitude(uint32_t q, uint64_t rem, unsigned shift, bool negative, Round mode) {
  if (rem == 0) return q;
  switch (mode) {
    case Round::kNearestEven: {
      const uint64_t half = uint64_t{1} << (shift - 1);
      return (rem > half || (rem == half && (q & 1u))) ? q + 1 : q;
    }
    case Round::kTowardZero: return q;
    case Round::kUp: return negative ? q : q + 1;
    case Round::kDown: return negative ? q + 1 : q;
  }
  return q;
}

CUDA_EMU_FP16_INLINE uint16_t float_to_half_bits(float f, Round mode = Round::kNearestEven) {
  const uint32_t u = float_bits(f);
  const bool negative = (u >> 31) != 0;
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fffu;  // NaN: canonical
  if (a == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
  const int e = static_cast<int>(a >> 23);
  const uint64_t m = (a & 0x7fffffu) | (e != 0 ? 0x800000u : 0u);
  const int e_eff = e != 0 ? e : 1;       // float subnormals share the smallest exponent
  const int he = e_eff - 127 + 15;        // biased half exponent
  const unsigned shift = 13u + static_cast<unsigned>(he >= 1 ? 0 : 1 - he);
  uint32_t q;
  uint64_t rem;
  if (shift >= 40) {
    q = 0;
    rem = m;  // far below the smallest subnormal: only sticky bits
  } else {
    q = static_cast<uint32_t>(m >> shift);
    rem = m & ((uint64_t{1} << shift) - 1);
  }
  q = round_magnitude(q, rem, shift >= 40 ? 40 : shift, negative, mode);
  // Normal: q carries the implicit bit (2^10), so adding (he - 1) << 10 lands on the biased
  // exponent and a rounding carry moves to the next binade by itself.
  uint32_t bits = he >= 1 ? (static_cast<uint32_t>(he - 1) << 10) + q : q;
  if (bits >= 0x7c00u) {
    const bool to_inf = mode == Round::kNearestEven || (mode == Round::kUp && !negative) ||
                        (mode == Round::kDown && negative);
    bits = to_inf ? 0x7c00u : 0x7bffu;
  }
  return static_cast<uint16_t>(sign | bits);
}

CUDA_EMU_FP16_INLINE float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    exp = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    return bits_float(sign | (exp << 23) | ((mant & 0x3ffu) << 13));
  }
  return bits_float(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

CUDA_EMU_FP16_INLINE uint16_t float_to_bf16_bits(float f, Round mode = Round::kNearestEven) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN: canonical
  const bool negative = (u >> 31) != 0;
  const uint32_t q = round_magnitude((u & 0x7fffffffu) >> 16, u & 0xffffu, 16, negative, mode);
  // A carry out of the mantissa steps the exponent (to infinity from the largest binade).
  return static_cast<uint16_t>(((u >> 16) & 0x8000u) | q);
}

CUDA_EMU_FP16_INLINE float bf16_bits_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// double -> float rounded to odd: exact enough (53 >= 24 + 2) that a later round-to-nearest to a
// 16-bit format is the correctly rounded result of the original double.
CUDA_EMU_FP16_INLINE float double_to_float_odd(double d) {
  float f = static_cast<float>(d);
  if (static_cast<double>(f) == d || f != f) return f;
  uint32_t u = float_bits(f);
  if (static_cast<double>(f) > d ? f > 0 : f < 0) --u;  // rounded away from zero: step back
  return bits_float(u | 1u);
}

// a * b + c rounded to odd in float: the product is exact in double (16-bit inputs); the sum's
// error (TwoSum) decides the sticky bit.
CUDA_EMU_FP16_INLINE float fma_odd(float a, float b, float c) {
  const double p = static_cast<double>(a) * static_cast<double>(b);
  const double s = p + static_cast<double>(c);
  const double bb = s - p;
  const double err = (p - (s - bb)) + (static_cast<double>(c) - bb);
  if (err == 0.0 || s != s) return double_to_float_odd(s);
  // s is inexact: nudge it toward the exact value so that the odd rounding sees the sticky bit.
  double nudged = s;
  uint64_t bits;
  std::memcpy(&bits, &nudged, 8);
  if ((err > 0) == (s > 0)) {
    bits |= 1u;
  } else if ((bits & 1u) == 0) {
    bits -= 1;  // toward zero by one ulp, then odd
    bits |= 1u;
  }
  std::memcpy(&nudged, &bits, 8);
  return double_to_float_odd(nudged);
}

}  // namespace cuda_emu::fp16

struct __half_raw {
  unsigned short x;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};

struct __half {
  __half() = default;
  constexpr __half(const __half_raw& r) : __x(r.x) {}  // NOLINT: implicit as in CUDA
  __half(float f) : __x(cuda_emu::fp16::float_to_half_bits(f)) {}  // NOLINT
  __half(double d)  // NOLINT
      : __x(cuda_emu::fp16::float_to_half_bits(cuda_emu::fp16::double_to_float_odd(d))) {}
  constexpr operator __half_raw() const { return __half_raw{__x}; }
  operator float() const { return cuda_emu::fp16::half_bits_to_float(__x); }
  __half& operator=(const __half_raw& r) {
    __x = r.x;
    return *this;
  }

 protected:
  unsigned short __x;
};

struct __nv_bfloat16 {
  __nv_bfloat16() = default;
  constexpr __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}  // NOLINT
  __nv_bfloat16(float f) : __x(cuda_emu::fp16::float_to_bf16_bits(f)) {}  // NOLINT
  __nv_bfloat16(double d)  // NOLINT
      : __x(cuda_emu::fp16::float_to_bf16_bits(cuda_emu::fp16::double_to_float_odd(d))) {}
  constexpr operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
  operator float() const { return cuda_emu::fp16::bf16_bits_to_float(__x); }
  __nv_bfloat16& operator=(const __nv_bfloat16_raw& r) {
    __x = r.x;
    return *this;
  }

 protected:
  unsigned short __x;
};

struct alignas(4) __half2 {
  __half x, y;
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

static_assert(sizeof(__half) == 2 && sizeof(__half2) == 4, "half layout");
static_assert(sizeof(__nv_bfloat16) == 2 && sizeof(__nv_bfloat162) == 4, "bfloat16 layout");

// ---- bit casts ----------------------------------------------------------------------------------
CUDA_EMU_FP16_INLINE unsigned short __half_as_ushort(__half h) { return static_cast<__half_raw>(h).x; }
CUDA_EMU_FP16_INLINE short __half_as_short(__half h) { return static_cast<short>(__half_as_ushort(h)); }
CUDA_EMU_FP16_INLINE __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
CUDA_EMU_FP16_INLINE __half __short_as_half(short s) { return __ushort_as_half(static_cast<unsigned short>(s)); }
CUDA_EMU_FP16_INLINE unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return static_cast<__nv_bfloat16_raw>(h).x; }
CUDA_EMU_FP16_INLINE short __bfloat16_as_short(__nv_bfloat16 h) { return static_cast<short>(__bfloat16_as_ushort(h)); }
CUDA_EMU_FP16_INLINE __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
CUDA_EMU_FP16_INLINE __nv_bfloat16 __short_as_bfloat16(short s) { return __ushort_as_bfloat16(static_cast<unsigned short>(s)); }

// ---- conversions ----------------------------------------------------------------------------------
CUDA_EMU_FP16_INLINE __half __float2half_rn(float f) { return __ushort_as_half(cuda_emu::fp16::float_to_half_bits(f)); }
CUDA_EMU_FP16_INLINE __half __float2half(float f) { return __float2half_rn(f); }
CUDA_EMU_FP16_INLINE __half __float2half_rz(float f) {
  return __ushort_as_half(cuda_emu::fp16::float_to_half_bits(f, cuda_emu::fp16::Round::kTowardZero));
}
CUDA_EMU_FP16_INLINE __half __float2half_ru(float f) {
  return __ushort_as_half(cuda_emu::fp16::float_to_half_bits(f, cuda_emu::fp16::Round::kUp));
}
CUDA_EMU_FP16_INLINE __half __float2half_rd(float f) {
  return __ushort_as_half(cuda_emu::fp16::float_to_half_bits(f, cuda_emu::fp16::Round::kDown));
}
CUDA_EMU_FP16_INLINE __half __double2half(double d) { return __half(d); }
CUDA_EMU_FP16_INLINE float __half2float(__half h) { return cuda_emu::fp16::half_bits_to_float(__half_as_ushort(h)); }

CUDA_EMU_FP16_INLINE __nv_bfloat16 __float2bfloat16_rn(float f) {
  return __ushort_as_bfloat16(cuda_emu::fp16::float_to_bf16_bits(f));
}
CUDA_EMU_FP16_INLINE __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
CUDA_EMU_FP16_INLINE __nv_bfloat16 __float2bfloat16_rz(float f) {
  return __ushort_as_bfloat16(cuda_emu::fp16::float_to_bf16_bits(f, cuda_emu::fp16::Round::kTowardZero));
}
CUDA_EMU_FP16_INLINE __nv_bfloat16 __float2bfloat16_ru(float f) {
  return __ushort_as_bfloat16(cuda_emu::fp16::float_to_bf16_bits(f, cuda_emu::fp16::Round::kUp));
}
CUDA_EMU_FP16_INLINE __nv_bfloat16 __float2bfloat16_rd(float f) {
  return __ushort_as_bfloat16(cuda_emu::fp16::float_to_bf16_bits(f, cuda_emu::fp16::Round::kDown));
}
CUDA_EMU_FP16_INLINE __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
CUDA_EMU_FP16_INLINE float __bfloat162float(__nv_bfloat16 h) {
  return cuda_emu::fp16::bf16_bits_to_float(__bfloat16_as_ushort(h));
}

CUDA_EMU_FP16_INLINE __half2 __halves2half2(__half lo, __half hi) { return __half2{lo, hi}; }
CUDA_EMU_FP16_INLINE __half2 __half2half2(__half h) { return __half2{h, h}; }
CUDA_EMU_FP16_INLINE __half2 __floats2half2_rn(float lo, float hi) { return __half2{__float2half_rn(lo), __float2half_rn(hi)}; }
CUDA_EMU_FP16_INLINE __half2 __float22half2_rn(float2 f) { return __floats2half2_rn(f.x, f.y); }
CUDA_EMU_FP16_INLINE __half2 __float2half2_rn(float f) { return __floats2half2_rn(f, f); }
CUDA_EMU_FP16_INLINE float2 __half22float2(__half2 h) { return make_float2(__half2float(h.x), __half2float(h.y)); }
CUDA_EMU_FP16_INLINE __half __low2half(__half2 h) { return h.x; }
CUDA_EMU_FP16_INLINE __half __high2half(__half2 h) { return h.y; }
CUDA_EMU_FP16_INLINE float __low2float(__half2 h) { return __half2float(h.x); }
CUDA_EMU_FP16_INLINE float __high2float(__half2 h) { return __half2float(h.y); }

CUDA_EMU_FP16_INLINE __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) { return __nv_bfloat162{lo, hi}; }
CUDA_EMU_FP16_INLINE __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 h) { return __nv_bfloat162{h, h}; }
CUDA_EMU_FP16_INLINE __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
CUDA_EMU_FP16_INLINE __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
CUDA_EMU_FP16_INLINE __nv_bfloat162 __float2bfloat162_rn(float f) { return __floats2bfloat162_rn(f, f); }
CUDA_EMU_FP16_INLINE float2 __bfloat1622float2(__nv_bfloat162 h) {
  return make_float2(__bfloat162float(h.x), __bfloat162float(h.y));
}
CUDA_EMU_FP16_INLINE __nv_bfloat16 __low2bfloat16(__nv_bfloat162 h) { return h.x; }
CUDA_EMU_FP16_INLINE __nv_bfloat16 __high2bfloat16(__nv_bfloat162 h) { return h.y; }
CUDA_EMU_FP16_INLINE float __low2float(__nv_bfloat162 h) { return __bfloat162float(h.x); }
CUDA_EMU_FP16_INLINE float __high2float(__nv_bfloat162 h) { return __bfloat162float(h.y); }

// ---- arithmetic, comparisons and classification (both 16-bit types) ------------------------------------
#define CUDA_EMU_FP16_OPS(T, TO_F, FROM_F, AS_U, FROM_U)                                                   \
  inline T __hadd(T a, T b) { return FROM_F(TO_F(a) + TO_F(b)); }                                      \
  inline T __hsub(T a, T b) { return FROM_F(TO_F(a) - TO_F(b)); }                                      \
  inline T __hmul(T a, T b) { return FROM_F(TO_F(a) * TO_F(b)); }                                      \
  inline T __hdiv(T a, T b) { return FROM_F(TO_F(a) / TO_F(b)); }                                      \
  inline T __hfma(T a, T b, T c) { return FROM_F(cuda_emu::fp16::fma_odd(TO_F(a), TO_F(b), TO_F(c))); } \
  inline T __hneg(T a) { return FROM_U(static_cast<unsigned short>(AS_U(a) ^ 0x8000u)); }              \
  inline T __habs(T a) { return FROM_U(static_cast<unsigned short>(AS_U(a) & 0x7fffu)); }              \
  inline bool __hisnan(T a) { return TO_F(a) != TO_F(a); }                                             \
  inline int __hisinf(T a) {                                                                           \
    const float f = TO_F(a);                                                                           \
    return f == __builtin_inff() ? 1 : (f == -__builtin_inff() ? -1 : 0);                              \
  }                                                                                                    \
  inline T __hmax(T a, T b) {                                                                          \
    return __hisnan(a) ? b : (__hisnan(b) ? a : (TO_F(a) > TO_F(b) ? a : b));                          \
  }                                                                                                    \
  inline T __hmin(T a, T b) {                                                                          \
    return __hisnan(a) ? b : (__hisnan(b) ? a : (TO_F(a) < TO_F(b) ? a : b));                          \
  }                                                                                                    \
  inline bool __heq(T a, T b) { return TO_F(a) == TO_F(b); }                                           \
  inline bool __hne(T a, T b) { return TO_F(a) != TO_F(b) && !__hisnan(a) && !__hisnan(b); }           \
  inline bool __hlt(T a, T b) { return TO_F(a) < TO_F(b); }                                            \
  inline bool __hle(T a, T b) { return TO_F(a) <= TO_F(b); }                                           \
  inline bool __hgt(T a, T b) { return TO_F(a) > TO_F(b); }                                            \
  inline bool __hge(T a, T b) { return TO_F(a) >= TO_F(b); }                                           \
  inline T operator+(const T& a, const T& b) { return __hadd(a, b); }                                  \
  inline T operator-(const T& a, const T& b) { return __hsub(a, b); }                                  \
  inline T operator*(const T& a, const T& b) { return __hmul(a, b); }                                  \
  inline T operator/(const T& a, const T& b) { return __hdiv(a, b); }                                  \
  inline T operator-(const T& a) { return __hneg(a); }                                                 \
  inline T operator+(const T& a) { return a; }                                                         \
  inline T& operator+=(T& a, const T& b) { return a = __hadd(a, b); }                                  \
  inline T& operator-=(T& a, const T& b) { return a = __hsub(a, b); }                                  \
  inline T& operator*=(T& a, const T& b) { return a = __hmul(a, b); }                                  \
  inline T& operator/=(T& a, const T& b) { return a = __hdiv(a, b); }                                  \
  inline bool operator==(const T& a, const T& b) { return __heq(a, b); }                               \
  inline bool operator!=(const T& a, const T& b) { return !__heq(a, b); }                              \
  inline bool operator<(const T& a, const T& b) { return __hlt(a, b); }                                \
  inline bool operator<=(const T& a, const T& b) { return __hle(a, b); }                               \
  inline bool operator>(const T& a, const T& b) { return __hgt(a, b); }                                \
  inline bool operator>=(const T& a, const T& b) { return __hge(a, b); }

CUDA_EMU_FP16_OPS(__half, __half2float, __float2half_rn, __half_as_ushort, __ushort_as_half)
CUDA_EMU_FP16_OPS(__nv_bfloat16, __bfloat162float, __float2bfloat16_rn, __bfloat16_as_ushort, __ushort_as_bfloat16)
#undef CUDA_EMU_FP16_OPS

#define CUDA_EMU_FP16X2_OPS(T2)                                                                      \
  inline T2 __hadd2(T2 a, T2 b) { return T2{__hadd(a.x, b.x), __hadd(a.y, b.y)}; }                  \
  inline T2 __hsub2(T2 a, T2 b) { return T2{__hsub(a.x, b.x), __hsub(a.y, b.y)}; }                  \
  inline T2 __hmul2(T2 a, T2 b) { return T2{__hmul(a.x, b.x), __hmul(a.y, b.y)}; }                  \
  inline T2 __h2div(T2 a, T2 b) { return T2{__hdiv(a.x, b.x), __hdiv(a.y, b.y)}; }                  \
  inline T2 __hfma2(T2 a, T2 b, T2 c) { return T2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)}; } \
  inline T2 __hneg2(T2 a) { return T2{__hneg(a.x), __hneg(a.y)}; }                                  \
  inline T2 __lowhigh2highlow(T2 a) { return T2{a.y, a.x}; }

CUDA_EMU_FP16X2_OPS(__half2)
CUDA_EMU_FP16X2_OPS(__nv_bfloat162)
#undef CUDA_EMU_FP16X2_OPS
