// Device code API for the CUDA emulator: built-in indices, barriers, warp shuffles / votes /
// reductions / matches, memory intrinsics (__ldg & co., alignment- and address-checked), atomics
// (real atomics: blocks run concurrently on several OS threads), integer and float intrinsics,
// the CUDA math extras glibc lacks, and the global min / max overloads.
#pragma once

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cuda_emu/device_runtime.h"
#include "cuda_emu/fp16.h"
#include "cuda_emu/qualifiers.h"
#include "cuda_emu/vector_types.h"
#include "cuda_runtime_api.h"

// ---- built-in variables ------------------------------------------------------------------------
#define threadIdx (::cuda_emu::detail::thread_ctx().thread_idx)
#define blockIdx (::cuda_emu::detail::thread_ctx().block_idx)
#define blockDim (::cuda_emu::detail::thread_ctx().block_dim)
#define gridDim (::cuda_emu::detail::thread_ctx().grid_dim)
inline constexpr int warpSize = 32;

// ---- barriers, fences, timing ------------------------------------------------------------------------
inline void __syncthreads() {
  (void)::cuda_emu::detail::block_sync(::cuda_emu::detail::BlockSync::kPlain, 1);
}
inline int __syncthreads_count(int predicate) {
  return ::cuda_emu::detail::block_sync(::cuda_emu::detail::BlockSync::kCount, predicate);
}
inline int __syncthreads_and(int predicate) {
  return ::cuda_emu::detail::block_sync(::cuda_emu::detail::BlockSync::kAnd, predicate);
}
inline int __syncthreads_or(int predicate) {
  return ::cuda_emu::detail::block_sync(::cuda_emu::detail::BlockSync::kOr, predicate);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)::cuda_emu::detail::warp_collective(::cuda_emu::detail::Collective::kSyncWarp, mask, 0, 0, "__syncwarp");
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) { ::cuda_emu::detail::yield_thread(); }
// Nanoseconds of a steady clock: monotonic like the SM cycle counter, not cycles.
inline long long clock64() {
  return static_cast<long long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}
[[noreturn]] inline void __trap() { ::cuda_emu::detail::device_fault(cudaErrorLaunchFailure, "__trap() called"); }

// ---- warp shuffles ----------------------------------------------------------------------------------
namespace cuda_emu::detail {

// The types CUDA overloads the shuffles for (values up to 64 bits).
template <typename T>
struct is_shuffle_type
    : std::integral_constant<bool, std::is_arithmetic<T>::value || std::is_same<T, __half>::value ||
                                       std::is_same<T, __half2>::value ||
                                       std::is_same<T, __nv_bfloat16>::value ||
                                       std::is_same<T, __nv_bfloat162>::value> {};

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "64-bit trivially copyable type");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <typename T>
inline T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

template <typename T>
inline T shuffle(unsigned mask, T var, int src, const char* op) {
  static_assert(is_shuffle_type<T>::value, "no CUDA shuffle for this type");
  return from_bits<T>(warp_collective(Collective::kShfl, mask, to_bits(var), src, op));
}

// Lane index arithmetic of PTX shfl.sync with segments of `width` lanes (a power of two).
inline int segment_start(int lane, int width) { return lane & ~(width - 1); }

}  // namespace cuda_emu::detail

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  const int lane = static_cast<int>(::cuda_emu::detail::thread_ctx().lane);
  const int src = ::cuda_emu::detail::segment_start(lane, width) | (src_lane & (width - 1));
  return ::cuda_emu::detail::shuffle(mask, var, src, "__shfl_sync");
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = static_cast<int>(::cuda_emu::detail::thread_ctx().lane);
  const long j = static_cast<long>(lane) - static_cast<long>(delta);
  const int src = j >= ::cuda_emu::detail::segment_start(lane, width) ? static_cast<int>(j) : lane;
  return ::cuda_emu::detail::shuffle(mask, var, src, "__shfl_up_sync");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = static_cast<int>(::cuda_emu::detail::thread_ctx().lane);
  const long j = static_cast<long>(lane) + static_cast<long>(delta);
  const long max_lane = ::cuda_emu::detail::segment_start(lane, width) + width - 1;
  const int src = j <= max_lane ? static_cast<int>(j) : lane;
  return ::cuda_emu::detail::shuffle(mask, var, src, "__shfl_down_sync");
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  const int lane = static_cast<int>(::cuda_emu::detail::thread_ctx().lane);
  const int j = lane ^ lane_mask;
  const int max_lane = ::cuda_emu::detail::segment_start(lane, width) | (width - 1);
  const int src = (j >= 0 && j <= max_lane) ? j : lane;
  return ::cuda_emu::detail::shuffle(mask, var, src, "__shfl_xor_sync");
}

// ---- votes, reductions, matches --------------------------------------------------------------------
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(::cuda_emu::detail::warp_collective(::cuda_emu::detail::Collective::kVote, mask,
                                                                    predicate != 0, 0, "__ballot_sync"));
}
inline int __any_sync(unsigned mask, int predicate) {
  const uint64_t r = ::cuda_emu::detail::warp_collective(::cuda_emu::detail::Collective::kVote, mask,
                                                         predicate != 0, 0, "__any_sync");
  return static_cast<uint32_t>(r) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  const uint64_t r = ::cuda_emu::detail::warp_collective(::cuda_emu::detail::Collective::kVote, mask,
                                                         predicate != 0, 0, "__all_sync");
  return static_cast<uint32_t>(r) == static_cast<uint32_t>(r >> 32);
}

#define CUDA_EMU_REDUCE(name, T, kind)                                                              \
  inline T name(unsigned mask, T value) {                                                          \
    return static_cast<T>(static_cast<uint32_t>(::cuda_emu::detail::warp_collective(               \
        ::cuda_emu::detail::Collective::kind, mask, static_cast<uint32_t>(value), 0, #name)));     \
  }
CUDA_EMU_REDUCE(__reduce_add_sync, unsigned, kReduceAddU)
CUDA_EMU_REDUCE(__reduce_add_sync, int, kReduceAddU)
CUDA_EMU_REDUCE(__reduce_min_sync, unsigned, kReduceMinU)
CUDA_EMU_REDUCE(__reduce_min_sync, int, kReduceMinS)
CUDA_EMU_REDUCE(__reduce_max_sync, unsigned, kReduceMaxU)
CUDA_EMU_REDUCE(__reduce_max_sync, int, kReduceMaxS)
CUDA_EMU_REDUCE(__reduce_and_sync, unsigned, kReduceAnd)
CUDA_EMU_REDUCE(__reduce_or_sync, unsigned, kReduceOr)
CUDA_EMU_REDUCE(__reduce_xor_sync, unsigned, kReduceXor)
#undef CUDA_EMU_REDUCE

template <typename T>
inline unsigned __match_any_sync(unsigned mask, T value) {
  static_assert(std::is_arithmetic<T>::value && sizeof(T) >= 4, "__match_any_sync: 32/64-bit value");
  return static_cast<unsigned>(::cuda_emu::detail::warp_collective(
      ::cuda_emu::detail::Collective::kMatchAny, mask, ::cuda_emu::detail::to_bits(value), 0, "__match_any_sync"));
}
template <typename T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {
  static_assert(std::is_arithmetic<T>::value && sizeof(T) >= 4, "__match_all_sync: 32/64-bit value");
  const auto r = static_cast<unsigned>(::cuda_emu::detail::warp_collective(
      ::cuda_emu::detail::Collective::kMatchAll, mask, ::cuda_emu::detail::to_bits(value), 0, "__match_all_sync"));
  *pred = r != 0;
  return r;
}

// ---- global memory intrinsics ------------------------------------------------------------------------
namespace cuda_emu::detail {

// The types CUDA provides __ldg / __ldcs / __stcs / ... for.
template <typename T>
struct is_ldg_type
    : std::integral_constant<
          bool, std::is_arithmetic<T>::value || std::is_same<T, char2>::value || std::is_same<T, char4>::value ||
                    std::is_same<T, uchar2>::value || std::is_same<T, uchar4>::value ||
                    std::is_same<T, short2>::value || std::is_same<T, short4>::value ||
                    std::is_same<T, ushort2>::value || std::is_same<T, ushort4>::value ||
                    std::is_same<T, int2>::value || std::is_same<T, int4>::value || std::is_same<T, uint2>::value ||
                    std::is_same<T, uint4>::value || std::is_same<T, longlong2>::value ||
                    std::is_same<T, ulonglong2>::value || std::is_same<T, float2>::value ||
                    std::is_same<T, float4>::value || std::is_same<T, double2>::value ||
                    std::is_same<T, __half>::value || std::is_same<T, __half2>::value ||
                    std::is_same<T, __nv_bfloat16>::value || std::is_same<T, __nv_bfloat162>::value> {};

template <typename T>
inline T checked_load(const T* p, const char* op) {
  static_assert(is_ldg_type<T>::value, "no CUDA load intrinsic for this type");
  // Vector loads need their natural alignment (the size for these types), as on the GPU.
  check_global_access(p, sizeof(T), sizeof(T), op);
  return *p;
}
template <typename T>
inline void checked_store(T* p, T v, const char* op) {
  static_assert(is_ldg_type<T>::value, "no CUDA store intrinsic for this type");
  check_global_access(p, sizeof(T), sizeof(T), op);
  *p = v;
}

}  // namespace cuda_emu::detail

template <typename T>
inline T __ldg(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldg"); }
template <typename T>
inline T __ldcg(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldcg"); }
template <typename T>
inline T __ldca(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldca"); }
template <typename T>
inline T __ldcs(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldcs"); }
template <typename T>
inline T __ldlu(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldlu"); }
template <typename T>
inline T __ldcv(const T* p) { return ::cuda_emu::detail::checked_load(p, "__ldcv"); }
template <typename T>
inline void __stcg(T* p, T v) { ::cuda_emu::detail::checked_store(p, v, "__stcg"); }
template <typename T>
inline void __stcs(T* p, T v) { ::cuda_emu::detail::checked_store(p, v, "__stcs"); }
template <typename T>
inline void __stwb(T* p, T v) { ::cuda_emu::detail::checked_store(p, v, "__stwb"); }
template <typename T>
inline void __stwt(T* p, T v) { ::cuda_emu::detail::checked_store(p, v, "__stwt"); }

// ---- bit casts and conversions ----------------------------------------------------------------------
inline unsigned __float_as_uint(float f) { return ::cuda_emu::fp16::float_bits(f); }
inline float __uint_as_float(unsigned u) { return ::cuda_emu::fp16::bits_float(u); }
inline int __float_as_int(float f) { return static_cast<int>(::cuda_emu::fp16::float_bits(f)); }
inline float __int_as_float(int i) { return ::cuda_emu::fp16::bits_float(static_cast<unsigned>(i)); }
inline long long __double_as_longlong(double d) {
  long long v;
  std::memcpy(&v, &d, 8);
  return v;
}
inline double __longlong_as_double(long long v) {
  double d;
  std::memcpy(&d, &v, 8);
  return d;
}

namespace cuda_emu::detail {
// The hardware's float -> integer conversion: NaN gives 0, out-of-range values saturate.
template <typename I, typename F>
inline I saturate_cast(F rounded) {
  if (rounded != rounded) return 0;
  if (rounded <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (rounded >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(rounded);
}
}  // namespace cuda_emu::detail

#define CUDA_EMU_F2I(suffix, round)                                                                             \
  inline int __float2int_##suffix(float f) { return ::cuda_emu::detail::saturate_cast<int>(round(f)); }          \
  inline unsigned __float2uint_##suffix(float f) {                                                              \
    return ::cuda_emu::detail::saturate_cast<unsigned>(round(f));                                               \
  }                                                                                                             \
  inline long long __float2ll_##suffix(float f) { return ::cuda_emu::detail::saturate_cast<long long>(round(f)); } \
  inline unsigned long long __float2ull_##suffix(float f) {                                                     \
    return ::cuda_emu::detail::saturate_cast<unsigned long long>(round(f));                                     \
  }                                                                                                             \
  inline int __double2int_##suffix(double d) { return ::cuda_emu::detail::saturate_cast<int>(round(d)); }
CUDA_EMU_F2I(rn, std::nearbyint)
CUDA_EMU_F2I(rz, std::trunc)
CUDA_EMU_F2I(rd, std::floor)
CUDA_EMU_F2I(ru, std::ceil)
#undef CUDA_EMU_F2I
inline float __int2float_rn(int i) { return static_cast<float>(i); }
inline float __uint2float_rn(unsigned u) { return static_cast<float>(u); }
inline float __ll2float_rn(long long i) { return static_cast<float>(i); }
inline float __ull2float_rn(unsigned long long u) { return static_cast<float>(u); }
inline float __double2float_rn(double d) { return static_cast<float>(d); }

// ---- float intrinsics (the _rn ones are plain IEEE ops: the emulated sources build with
// -ffp-contract=off, so a * b + c is never fused behind their back) ----------------------------------
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frsqrt_rn(float a) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(a))); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
// The fast approximations are computed exactly (the GPU's error bounds allow it).
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float saturate(float x) { return __saturatef(x); }

// ---- integer intrinsics -----------------------------------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) |
         __brev(static_cast<unsigned>(x >> 32));
}
// Byte n of the result is byte (s >> 4n) & 7 of the 8-byte value {y:x}.
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int n = 0; n < 4; ++n) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * n)) & 7u))) & 0xffu) << (8 * n);
  return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift & 31u)) >> 32);
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift < 32u ? shift : 32u)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift & 31u));
}
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift < 32u ? shift : 32u));
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
__extension__ typedef unsigned __int128 cuda_emu_u128;
__extension__ typedef __int128 cuda_emu_i128;
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<cuda_emu_u128>(a) * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) {
  return static_cast<long long>((static_cast<cuda_emu_i128>(a) * b) >> 64);
}
// 24-bit multiplies: the low 24 bits of each operand (sign-extended for __mul24), low 32 bits.
inline int __mul24(int a, int b) {
  const long long sa = static_cast<long long>(static_cast<unsigned>(a) << 8) << 32 >> 40;
  const long long sb = static_cast<long long>(static_cast<unsigned>(b) << 8) << 32 >> 40;
  return static_cast<int>(static_cast<unsigned>(static_cast<unsigned long long>(sa * sb)));
}
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline unsigned __sad(int x, int y, unsigned z) {
  return (x > y ? static_cast<unsigned>(x) - static_cast<unsigned>(y) : static_cast<unsigned>(y) - static_cast<unsigned>(x)) + z;
}
inline unsigned __usad(unsigned x, unsigned y, unsigned z) { return (x > y ? x - y : y - x) + z; }
// Four-way byte dot product with 32-bit accumulate.
inline int __dp4a(int a, int b, int c) {
  int r = c;
  for (int i = 0; i < 4; ++i) {
    r += static_cast<int>(static_cast<signed char>((static_cast<unsigned>(a) >> (8 * i)) & 0xffu)) *
         static_cast<int>(static_cast<signed char>((static_cast<unsigned>(b) >> (8 * i)) & 0xffu));
  }
  return r;
}
inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  unsigned r = c;
  for (int i = 0; i < 4; ++i) r += ((a >> (8 * i)) & 0xffu) * ((b >> (8 * i)) & 0xffu);
  return r;
}

// ---- min / max (CUDA declares these in the global namespace for every integer and float type) ----
#define CUDA_EMU_MINMAX(T)                                 \
  inline T min(T a, T b) { return b < a ? b : a; }        \
  inline T max(T a, T b) { return a < b ? b : a; }
CUDA_EMU_MINMAX(int)
CUDA_EMU_MINMAX(unsigned int)
CUDA_EMU_MINMAX(long)
CUDA_EMU_MINMAX(unsigned long)
CUDA_EMU_MINMAX(long long)
CUDA_EMU_MINMAX(unsigned long long)
#undef CUDA_EMU_MINMAX
inline unsigned int min(int a, unsigned int b) { return min(static_cast<unsigned int>(a), b); }
inline unsigned int min(unsigned int a, int b) { return min(a, static_cast<unsigned int>(b)); }
inline unsigned int max(int a, unsigned int b) { return max(static_cast<unsigned int>(a), b); }
inline unsigned int max(unsigned int a, int b) { return max(a, static_cast<unsigned int>(b)); }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline double min(float a, double b) { return std::fmin(static_cast<double>(a), b); }
inline double min(double a, float b) { return std::fmin(a, static_cast<double>(b)); }
inline double max(float a, double b) { return std::fmax(static_cast<double>(a), b); }
inline double max(double a, float b) { return std::fmax(a, static_cast<double>(b)); }
inline unsigned umin(unsigned a, unsigned b) { return min(a, b); }
inline unsigned umax(unsigned a, unsigned b) { return max(a, b); }
inline long long llmin(long long a, long long b) { return min(a, b); }
inline long long llmax(long long a, long long b) { return max(a, b); }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return min(a, b); }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return max(a, b); }

// ---- atomics (device scope, relaxed, as on the GPU) ---------------------------------------------------
namespace cuda_emu::detail {
template <typename T, typename F>
inline T atomic_update(T* address, F f) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(address, &old, f(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename Bits, typename F>
inline F atomic_float_add(F* address, F value) {
  static_assert(sizeof(Bits) == sizeof(F), "bit width");
  const Bits old = atomic_update(reinterpret_cast<Bits*>(address), [value](Bits b) {
    F f;
    std::memcpy(&f, &b, sizeof(F));
    f += value;
    Bits r;
    std::memcpy(&r, &f, sizeof(F));
    return r;
  });
  F f;
  std::memcpy(&f, &old, sizeof(F));
  return f;
}
}  // namespace cuda_emu::detail

#define CUDA_EMU_ATOMIC_INT(T)                                                                            \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                    \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }                  \
  inline T atomicMin(T* a, T v) {                                                                         \
    return ::cuda_emu::detail::atomic_update(a, [v](T o) { return v < o ? v : o; });                      \
  }                                                                                                       \
  inline T atomicMax(T* a, T v) {                                                                         \
    return ::cuda_emu::detail::atomic_update(a, [v](T o) { return o < v ? v : o; });                      \
  }                                                                                                       \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                    \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                      \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                    \
  inline T atomicCAS(T* a, T compare, T v) {                                                              \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);               \
    return compare;                                                                                       \
  }
CUDA_EMU_ATOMIC_INT(int)
CUDA_EMU_ATOMIC_INT(unsigned int)
CUDA_EMU_ATOMIC_INT(unsigned long long)
#undef CUDA_EMU_ATOMIC_INT
inline long long atomicMin(long long* a, long long v) {
  return ::cuda_emu::detail::atomic_update(a, [v](long long o) { return v < o ? v : o; });
}
inline long long atomicMax(long long* a, long long v) {
  return ::cuda_emu::detail::atomic_update(a, [v](long long o) { return o < v ? v : o; });
}
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }
inline unsigned short atomicCAS(unsigned short* a, unsigned short compare, unsigned short v) {
  __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
// ((old >= limit) ? 0 : old + 1) and (((old == 0) || (old > limit)) ? limit : old - 1), as in CUDA.
inline unsigned atomicInc(unsigned* a, unsigned limit) {
  return ::cuda_emu::detail::atomic_update(a, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
  return ::cuda_emu::detail::atomic_update(a, [limit](unsigned o) { return (o == 0 || o > limit) ? limit : o - 1; });
}
inline float atomicAdd(float* a, float v) { return ::cuda_emu::detail::atomic_float_add<uint32_t>(a, v); }
inline double atomicAdd(double* a, double v) { return ::cuda_emu::detail::atomic_float_add<uint64_t>(a, v); }
inline float atomicExch(float* a, float v) {
  uint32_t bits = __atomic_exchange_n(reinterpret_cast<uint32_t*>(a), __float_as_uint(v), __ATOMIC_RELAXED);
  return __uint_as_float(bits);
}
