// Next-token sampling on the device (ops.h: sample_token, sample_probabilities), the CPU Sampler's
// semantics without sorting the vocabulary:
//   1. argmax_partial_kernel: a grid-wide pass, one (value, index) per block in runtime::argmax's
//      order (lowest index on ties, NaN never wins, all NaN -> the last index).
//   2. select_kernel, one block of 1024 threads: finishes the argmax (greedy stops here: the decode
//      hot path is one read of the logits plus a tiny reduction). Otherwise, on order-preserving
//      uint32 keys of the logits (NaN -> -inf, -0 -> +0: the CPU's sort key), radix select with
//      11/11/10-bit digits finds the k-th largest key (counts per bucket; ties with it stay), then
//      the top-p threshold (probability mass per bucket, in descending key order); the candidates
//      of the threshold key are taken in index order, as the CPU's stable sort does. A last pass
//      over per-thread contiguous index ranges plus a block scan finds the drawn id.
// Probability mass is exact integer arithmetic on 40-bit fixed-point values of the fp32 softmax
// numerators expf((x - max) / T) <= 1, so every sum is deterministic and order-independent (64-bit
// sums of at most 2^23 such values cannot overflow); ops.h states the difference to the CPU's
// doubles.
#include <cfloat>
#include <cstddef>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using u64 = unsigned long long;  // the type of the 64-bit atomicAdd overload
using detail::kWarp;

constexpr int kPartialThreads = 256;
constexpr int64_t kElementsPerPartial = 1024;
constexpr int kSelectThreads = 1024;
constexpr int kMaxPartials = kSelectThreads;  // the select kernel reads one partial per thread
constexpr int kBuckets = 2048;                // 11-bit digits
constexpr float kFixedOne = 1099511627776.0f; // 2^40, the fixed-point unit of probability mass
constexpr int64_t kMaxVocab = int64_t{1} << 23; // so that 2^40 * vocab fits the 64-bit sums

struct Partial {
  float value;
  int32_t index;
};

int64_t n_partials(int64_t vocab) {
  const int64_t n = (vocab + kElementsPerPartial - 1) / kElementsPerPartial;
  return n < 1 ? 1 : (n > kMaxPartials ? kMaxPartials : n);
}

__device__ __forceinline__ bool is_nan(float x) { return x != x; }

// (av, ai) comes before (bv, bi) in runtime::argmax's order. A strict total order on distinct
// indices, so any reduction tree gives the CPU's answer.
__device__ __forceinline__ bool better(float av, int32_t ai, float bv, int32_t bi) {
  const bool an = is_nan(av), bn = is_nan(bv);
  if (an != bn) return bn;     // a number beats NaN
  if (an) return ai > bi;      // all NaN: argmax's scan ends on the last index
  if (av != bv) return av > bv;
  return ai < bi;
}

// Block-wide argmax; every thread gets the result. (NaN, -1) is the identity.
__device__ __forceinline__ void block_argmax(float& v, int32_t& i, float* s_v, int32_t* s_i) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  if (lane == 0) s_v[warp] = v, s_i[warp] = i;
  __syncthreads();
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) {
    if (better(s_v[w], s_i[w], v, i)) v = s_v[w], i = s_i[w];
  }
  __syncthreads();
}

__device__ __forceinline__ float quiet_nan() { return __uint_as_float(0x7fc00000u); }

// Order-preserving key of a logit with the CPU sort's equalities: NaN sorts as -inf, -0 == +0.
__device__ __forceinline__ uint32_t ordered_key(float x) {
  if (is_nan(x)) x = -__uint_as_float(0x7f800000u);
  if (x == 0.0f) x = 0.0f;
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) != 0 ? (key & 0x7fffffffu) : ~key);
}

// Softmax numerator of logit x as fixed point: expf((x - max) / T) in [0, 1] times 2^40. The
// same float operations everywhere, so one logit always gets the same mass.
__device__ __forceinline__ u64 mass_of(float x, float mx, float temp) {
  if (is_nan(x)) return 0;
  return static_cast<u64>(expf((x - mx) / temp) * kFixedOne);
}

// ---- kernel 1: partial argmax -----------------------------------------------------------------
__global__ void __launch_bounds__(kPartialThreads) argmax_partial_kernel(const float* logits, int64_t n,
                                                                        Partial* partials) {
  __shared__ float s_v[kWarp];
  __shared__ int32_t s_i[kWarp];
  float bv = quiet_nan();
  int32_t bi = -1;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = logits[i];
    if (better(v, static_cast<int32_t>(i), bv, bi)) bv = v, bi = static_cast<int32_t>(i);
  }
  block_argmax(bv, bi, s_v, s_i);
  if (threadIdx.x == 0) partials[blockIdx.x] = Partial{bv, bi};
}

// ---- kernel 2: selection ----------------------------------------------------------------------
struct SelectShared {
  u64 hist[kBuckets];
  u64 scan[kWarp];
  float v[kWarp];
  int32_t i[kWarp];
  int bucket;
  u64 before, at;
  int32_t pick, last;
};

// The bucket, scanning hist[0, nb) from the highest bucket down, where the running total reaches
// `want` (0 < want <= total): sh.bucket, the total of the buckets above it (sh.before) and its own
// (sh.at). Thread t owns the buckets of descending ranks 2t and 2t + 1.
__device__ void find_crossing(SelectShared& sh, int nb, u64 want) {
  const int r = 2 * static_cast<int>(threadIdx.x);
  const u64 h0 = r < nb ? sh.hist[nb - 1 - r] : 0, h1 = r + 1 < nb ? sh.hist[nb - 2 - r] : 0;
  if (threadIdx.x == 0) sh.bucket = 0, sh.before = 0, sh.at = 0;  // visible after the scan's barriers
  u64 total;
  const u64 before = detail::block_exclusive_scan<u64>(h0 + h1, sh.scan, &total);
  if (before < want && want <= before + h0) {
    sh.bucket = nb - 1 - r, sh.before = before, sh.at = h0;
  } else if (before + h0 < want && want <= before + h0 + h1) {
    sh.bucket = nb - 2 - r, sh.before = before + h0, sh.at = h1;
  }
  __syncthreads();
}

struct Selected {
  uint32_t key;  // the threshold key
  u64 above;     // weight of the keys > key
  u64 at;        // weight of the keys == key (whole bucket when `early`)
  u64 want;      // weight still needed from the keys == key
};

// Radix select in descending key order: the key where the cumulative weight of the keys, largest
// first, reaches `want`. weight(x, key) is the element's weight (0: not a candidate). With `early`,
// stops as soon as the whole bucket is taken (then .key is the bucket's lowest key, and every key
// >= it is taken).
template <typename Weight>
__device__ Selected radix_select(SelectShared& sh, const float* logits, int64_t n, u64 want, bool early,
                                 Weight weight) {
  uint32_t prefix = 0, mask = 0;
  u64 above = 0, at = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = pass == 0 ? 21 : (pass == 1 ? 10 : 0);
    const int nb = pass == 2 ? 1024 : 2048;
    for (int b = static_cast<int>(threadIdx.x); b < nb; b += static_cast<int>(blockDim.x)) sh.hist[b] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float x = logits[i];
      const uint32_t key = ordered_key(x);
      if ((key & mask) != prefix) continue;
      const u64 w = weight(x, key);
      if (w != 0) atomicAdd(&sh.hist[(key >> shift) & static_cast<uint32_t>(nb - 1)], w);
    }
    __syncthreads();
    find_crossing(sh, nb, want);
    want -= sh.before;
    above += sh.before;
    at = sh.at;
    prefix |= static_cast<uint32_t>(sh.bucket) << shift;
    mask |= static_cast<uint32_t>(nb - 1) << shift;
    __syncthreads();  // sh.* is rewritten by the next pass
    if (early && at == want) break;
  }
  return Selected{prefix, above, at, want};
}

template <bool kProbs>
__global__ void __launch_bounds__(kSelectThreads, 1)
    select_kernel(const float* logits, int64_t n, const Partial* partials, int n_partials,
                  const DeviceStepParams* params, int32_t* out_id, float* probs) {
  __shared__ SelectShared sh;
  const int tid = static_cast<int>(threadIdx.x);

  float mx = quiet_nan();
  int32_t arg = -1;
  if (tid < n_partials) mx = partials[tid].value, arg = partials[tid].index;
  block_argmax(mx, arg, sh.v, sh.i);

  const DeviceStepParams prm = *params;
  const float temp = prm.temperature;
  // Greedy, or the CPU's degenerate softmax (a non-finite max logit): argmax. Block-uniform.
  if (!(temp > 0.0f && temp <= FLT_MAX) || !(mx - mx == 0.0f)) {
    if constexpr (kProbs) {
      for (int64_t i = tid; i < n; i += blockDim.x) probs[i] = i == arg ? 1.0f : 0.0f;
    } else {
      if (tid == 0) *out_id = arg;
    }
    return;
  }

  // Top-k: kept = keys >= the k-th largest key (all when off).
  uint32_t tau = 0;
  if (prm.top_k > 0 && prm.top_k < n) {
    tau = radix_select(sh, logits, n, static_cast<u64>(prm.top_k), /*early=*/true,
                       [](float, uint32_t) -> u64 { return 1; })
              .key;
  }
  // Softmax denominator over the kept candidates.
  u64 sum = 0;
  for (int64_t i = tid; i < n; i += blockDim.x) {
    const float x = logits[i];
    if (ordered_key(x) >= tau) sum += mass_of(x, mx, temp);
  }
  u64 total;
  (void)detail::block_exclusive_scan<u64>(sum, sh.scan, &total);

  // Top-p: threshold key tau, of whose candidates only the first `tie_limit` in index order are
  // kept (unlimited when every one is), and the kept mass.
  u64 kept_mass = total, tie_limit = ~u64{0};
  if (prm.top_p < 1.0f) {
    // The CPU keeps the shortest prefix with cumulative p / sum >= top_p: mass >= top_p * sum.
    const double t = ceil(static_cast<double>(prm.top_p) * static_cast<double>(total));
    const u64 want = t < 1.0 ? 1 : (t >= static_cast<double>(total) ? total : static_cast<u64>(t));
    const uint32_t tau_k = tau;
    const Selected s = radix_select(sh, logits, n, want, /*early=*/false, [=](float x, uint32_t key) -> u64 {
      return key >= tau_k ? mass_of(x, mx, temp) : 0;
    });
    tau = s.key;
    u64 q = mass_of(key_value(tau), mx, temp);  // > 0: the selected key carries mass
    if (q == 0) q = 1;                          // (unreachable; no division by zero regardless)
    const u64 ties = s.at / q, take = (s.want + q - 1) / q;
    tie_limit = take < ties ? take : ~u64{0};
    kept_mass = s.above + (take < ties ? take : ties) * q;
  }

  // Final pass over contiguous per-thread index ranges, so the kept ids are walked in index order.
  const int64_t chunk = (n + blockDim.x - 1) / blockDim.x;
  const int64_t lo = tid * chunk < n ? tid * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
  u64 rank0 = 0;  // candidates with key == tau before this thread's range
  if (tie_limit != ~u64{0}) {
    u64 ties = 0;
    for (int64_t i = lo; i < hi; ++i) ties += ordered_key(logits[i]) == tau ? 1 : 0;
    u64 unused;
    rank0 = detail::block_exclusive_scan<u64>(ties, sh.scan, &unused);
  }
  auto kept = [&](uint32_t key, u64& rank) { return key > tau || (key == tau && rank++ < tie_limit); };

  if constexpr (kProbs) {
    const float denom = static_cast<float>(static_cast<double>(kept_mass) / static_cast<double>(kFixedOne));
    u64 rank = rank0;
    for (int64_t i = lo; i < hi; ++i) {
      const float x = logits[i];
      probs[i] = kept(ordered_key(x), rank) && !is_nan(x) ? expf((x - mx) / temp) / denom : 0.0f;
    }
  } else {
    u64 mine = 0, rank = rank0;
    int32_t last = -1;  // the last kept id with mass: the CPU's fallback when u is above the total
    for (int64_t i = lo; i < hi; ++i) {
      const float x = logits[i];
      if (!kept(ordered_key(x), rank)) continue;
      const u64 w = mass_of(x, mx, temp);
      mine += w;
      if (w != 0) last = static_cast<int32_t>(i);
    }
    if (tid == 0) sh.pick = -1, sh.last = -1;  // visible after the scan's barriers
    const u64 before = detail::block_exclusive_scan<u64>(mine, sh.scan, &total);
    atomicMax(&sh.last, last);
    // The CPU returns the first kept id whose cumulative probability exceeds u: with integer
    // masses, the first whose cumulative mass exceeds floor(u * total).
    const double ut = static_cast<double>(prm.uniform) * static_cast<double>(total);
    const u64 d = ut > 0.0 ? (ut < static_cast<double>(total) ? static_cast<u64>(ut) : total) : 0;
    if (d < total && before <= d && d < before + mine) {
      u64 cum = before;
      rank = rank0;
      for (int64_t i = lo; i < hi; ++i) {
        const float x = logits[i];
        if (!kept(ordered_key(x), rank)) continue;
        cum += mass_of(x, mx, temp);
        if (cum > d) {
          sh.pick = static_cast<int32_t>(i);
          break;
        }
      }
    }
    __syncthreads();
    if (tid == 0) *out_id = sh.pick >= 0 ? sh.pick : (sh.last >= 0 ? sh.last : arg);
  }
}

Status check_sample_args(const float* logits, int64_t vocab, const DeviceStepParams* params, const void* out,
                         const void* workspace, int64_t workspace_bytes) {
  if (logits == nullptr || params == nullptr || out == nullptr || workspace == nullptr) {
    return detail::invalid("sample_token: null pointer");
  }
  if (vocab <= 0) return detail::invalid("sample_token: vocab must be positive");
  if (vocab > kMaxVocab) return Status(StatusCode::kUnsupported, "sample_token: vocab above 2^23");
  if (workspace_bytes < sample_workspace_bytes(vocab)) {
    return detail::invalid("sample_token: workspace smaller than sample_workspace_bytes(vocab)");
  }
  if (!detail::aligned_to(workspace, alignof(Partial))) return detail::invalid("sample_token: misaligned workspace");
  return Status();
}

template <bool kProbs>
Status launch_sampling(const float* logits, int64_t vocab, const DeviceStepParams* params, int32_t* out_id,
                       float* probs, void* workspace, cudaStream_t stream) {
  const int n_part = static_cast<int>(n_partials(vocab));
  Partial* partials = static_cast<Partial*>(workspace);
  QMODEL_LAUNCH(dim3(n_part), dim3(kPartialThreads), 0, stream, argmax_partial_kernel)(logits, vocab, partials);
  QMODEL_RETURN_IF_ERROR(detail::check_launch("argmax_partial_kernel", stream));
  QMODEL_LAUNCH(dim3(1), dim3(kSelectThreads), 0, stream, select_kernel<kProbs>)
  (logits, vocab, partials, n_part, params, out_id, probs);
  return detail::check_launch("sample select_kernel", stream);
}

}  // namespace

int64_t sample_workspace_bytes(int64_t vocab) {
  return vocab <= 0 ? 0 : n_partials(vocab) * static_cast<int64_t>(sizeof(Partial));
}

Status sample_token(const float* logits, int64_t vocab, const DeviceStepParams* params, int32_t* out_id,
                    void* workspace, int64_t workspace_bytes, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(check_sample_args(logits, vocab, params, out_id, workspace, workspace_bytes));
  return launch_sampling<false>(logits, vocab, params, out_id, nullptr, workspace, stream);
}

Status sample_probabilities(const float* logits, int64_t vocab, const DeviceStepParams* params, float* probs,
                            void* workspace, int64_t workspace_bytes, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(check_sample_args(logits, vocab, params, probs, workspace, workspace_bytes));
  return launch_sampling<true>(logits, vocab, params, nullptr, probs, workspace, stream);
}

}  // namespace qmodel::runtime::cuda
