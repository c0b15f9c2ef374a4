// The CUDA backend's device ops (runtime/cuda/ops.h) against the CPU backend's reference functions
// (runtime/src/ops.h, rope.h, qmodel/runtime/sampler.h) for bf16, fp16 and fp32 activations, on
// seeded random inputs at awkward sizes. Outputs are poisoned with NaN before each launch, so an
// element a kernel never writes fails. Bounds, per dtype:
//  - add_rmsnorm: the residual update is bit-exact; out within 4e-6 relative for fp32 (the fp32
//    block sum of squares vs the CPU's double: <= (n / threads + 5 + threads / 32) * 2^-24 ~ 1.8e-6
//    in mean(x^2), half of it in the scale, plus four roundings) or one ulp of bf16 / fp16 (the two
//    fp32 values can round to neighbours).
//  - rope_store_kv: the same fp32 operations as rope_cos_sin + apply_rope: one ulp of the dtype
//    (bit-exact in practice); the cache rows are bit copies of the rotated k and of v. Partial
//    rotary (rotary_dim < head_dim): the dims past rotary_dim are bit-exact pass-throughs; without
//    inv_freq nothing rotates (q and k bit-exact, k and v stored).
//  - silu_mul: expf (<= 2 ulp) vs the CPU's exp: 1e-6 relative for fp32, one ulp of bf16 / fp16.
//  - convert_to_f32: exact.
//  - sampling: greedy equals runtime::argmax exactly (ties, NaN, inf); the support of the device
//    distribution equals Sampler::probabilities' and its values are within 2e-5 relative; the
//    drawn id equals the CPU draw whenever u is not within 1e-4 of a cumulative boundary (else it
//    must lie in the id's interval within 1e-5).
// Skips (GTEST_SKIP) without a CUDA device (or the emulator); the argument-validation test runs
// everywhere because rejected calls never touch the device. Sizes are kept small enough for the
// CPU emulator of CUDA.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda/ops.h"
#include "gpu_test_util.h"
#include "qmodel/format/half.h"
#include "qmodel/runtime/sampler.h"
#include "src/ops.h"
#include "src/rope.h"

namespace qmodel::runtime {
namespace {

using kernels::ActType;

// |got - ref| <= rel * |ref| + ulps * ulp(act, ref) for each element; NaN fails.
void expect_close(ActType act, const std::vector<float>& got, const std::vector<float>& ref, double rel,
                  double ulps, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  int failures = 0;
  for (size_t i = 0; i < ref.size() && failures < 5; ++i) {
    const double tol = rel * std::fabs(ref[i]) + ulps * ulp(act, std::fabs(ref[i]));
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(diff <= tol) && !(std::isinf(ref[i]) && got[i] == ref[i])) {
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << ", want " << ref[i] << " (tol " << tol << ")";
      ++failures;
    }
  }
}

// ---- add_rmsnorm ------------------------------------------------------------------------------
struct NormShape {
  int64_t m, n;
};

TEST(AddRmsNorm, MatchesRmsnormRows) {
  SKIP_WITHOUT_GPU();
  const NormShape shapes[] = {{1, 1}, {3, 7}, {17, 260}, {1, 4096}, {3, 4096}};
  uint32_t seed = 100;
  for (ActType act : kActs) {
    for (const NormShape& s : shapes) {
      for (bool with_delta : {false, true}) {
        const std::string what = std::string(act_name(act)) + " m=" + std::to_string(s.m) + " n=" +
                                 std::to_string(s.n) + (with_delta ? " +delta" : "");
        const size_t count = static_cast<size_t>(s.m * s.n);
        const std::vector<float> x = normal(count, ++seed, 2.0f, 0.3f);
        const std::vector<uint8_t> delta = encode(act, normal(count, ++seed, 1.0f));
        const std::vector<float> weight = normal(static_cast<size_t>(s.n), ++seed, 0.2f, 1.0f);
        const float eps = 1e-5f;

        std::vector<float> x_ref = x;
        if (with_delta) add_inplace(x_ref.data(), decode(act, delta).data(), count);
        std::vector<float> out_ref(count);
        rmsnorm_rows(x_ref.data(), static_cast<size_t>(s.m), static_cast<size_t>(s.n), weight.data(), eps,
                     out_ref.data());

        DeviceBuffer d_x = DeviceBuffer::upload(x), d_delta = DeviceBuffer::upload(delta),
                     d_w = DeviceBuffer::upload(weight), d_out(count * act_size(act));
        d_out.poison();
        ASSERT_OK(cuda::add_rmsnorm(act, d_x.as<float>(), with_delta ? d_delta.get() : nullptr, s.m, s.n,
                                    d_w.as<float>(), eps, d_out.get(), nullptr));
        const std::vector<float> x_got = d_x.download<float>(count);
        EXPECT_EQ(0, std::memcmp(x_got.data(), x_ref.data(), count * 4)) << what << ": residual not bit-exact";
        const std::vector<float> got = decode(act, d_out.download<uint8_t>(count * act_size(act)));
        if (act == ActType::kF32) {
          expect_close(act, got, out_ref, 4e-6, 0.0, what);
        } else {
          expect_close(act, got, round_to(act, out_ref), 0.0, 1.0, what);
        }
      }
    }
  }
}

// ---- rope_store_kv ----------------------------------------------------------------------------
struct RopeCase {
  int32_t n_heads, n_kv_heads, head_dim;
  int64_t m;
  int32_t start, max_context;
  int32_t rotary_dim = 0;  // 0 = head_dim; -1 = no rotation (inv_freq == nullptr)
};

std::vector<float> default_inv_freq(int32_t head_dim, float theta) {
  std::vector<float> inv(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) {
    inv[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  }
  return inv;
}

TEST(RopeStoreKv, MatchesApplyRopeAndFillsTheCache) {
  SKIP_WITHOUT_GPU();
  const RopeCase cases[] = {
      {4, 2, 128, 1, 0, 4},          // first decode step
      {8, 2, 64, 3, 5, 16},          // GQA, a short prefill chunk
      {2, 2, 8, 17, 30, 40},         // tiny heads; positions 40..46 are past the cache: not written
      {4, 1, 128, 3, 4000, 4096},    // large angles
      {4, 4, 64, 3, 5, 16, 16},      // partial rotary (GPT-NeoX rotary_pct 0.25)
      {8, 2, 80, 7, 100, 120, 18},   // partial, 9 pairs, head_dim not a power of two
      {2, 1, 8, 17, 30, 40, 2},      // one pair per head; rows past the cache not written
      {3, 3, 10, 1, 0, 4, 10},       // rotary_dim == head_dim given explicitly
      {4, 2, 64, 3, 5, 16, -1},      // no rotation (ALiBi / learned positions): store only
      {2, 2, 6, 7, 9, 12, -1},       // no rotation, some rows past the cache
  };
  uint32_t seed = 200;
  for (ActType act : kActs) {
    for (const RopeCase& c : cases) {
      const std::string what = std::string(act_name(act)) + " hd=" + std::to_string(c.head_dim) + " m=" +
                               std::to_string(c.m) + " start=" + std::to_string(c.start) +
                               (c.rotary_dim > 0 ? " rd=" + std::to_string(c.rotary_dim) :
                                                   (c.rotary_dim < 0 ? " no rotation" : ""));
      cuda::DeviceAttentionShape shape;
      shape.n_heads = c.n_heads;
      shape.n_kv_heads = c.n_kv_heads;
      shape.head_dim = c.head_dim;
      shape.max_context = c.max_context;
      shape.rotary_dim = c.rotary_dim > 0 ? c.rotary_dim : 0;
      const bool rotate = c.rotary_dim >= 0;
      const int32_t rotary = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
      const size_t half = static_cast<size_t>(rotary / 2), m = static_cast<size_t>(c.m);
      const size_t q_row = static_cast<size_t>(c.n_heads * c.head_dim), kv_row = static_cast<size_t>(c.n_kv_heads * c.head_dim);
      const size_t ab = act_size(act);
      const std::vector<uint8_t> q = encode(act, normal(m * q_row, ++seed, 1.0f));
      const std::vector<uint8_t> k = encode(act, normal(m * kv_row, ++seed, 1.0f));
      const std::vector<uint8_t> v = encode(act, normal(m * kv_row, ++seed, 1.0f));
      const std::vector<float> inv_freq = default_inv_freq(rotary, 500000.0f);

      std::vector<float> q_ref = decode(act, q), k_ref = decode(act, k);
      std::vector<float> cs(half), sn(half);
      for (size_t t = 0; t < m && rotate; ++t) {
        rope_cos_sin(inv_freq.data(), half, c.start + static_cast<int64_t>(t), cs.data(), sn.data());
        apply_rope(q_ref.data() + t * q_row, static_cast<size_t>(c.n_heads), static_cast<size_t>(c.head_dim),
                   static_cast<size_t>(rotary), cs.data(), sn.data());
        apply_rope(k_ref.data() + t * kv_row, static_cast<size_t>(c.n_kv_heads), static_cast<size_t>(c.head_dim),
                   static_cast<size_t>(rotary), cs.data(), sn.data());
      }

      DeviceBuffer d_q = DeviceBuffer::upload(q), d_k = DeviceBuffer::upload(k), d_v = DeviceBuffer::upload(v),
                   d_inv = DeviceBuffer::upload(inv_freq), d_pos = DeviceBuffer::upload(std::vector<int32_t>{c.start});
      const size_t cache_bytes = static_cast<size_t>(c.max_context) * kv_row * ab;
      DeviceBuffer d_kc(cache_bytes), d_vc(cache_bytes);
      d_kc.poison();
      d_vc.poison();
      ASSERT_OK(cuda::rope_store_kv(act, d_q.get(), d_k.get(), d_v.get(), c.m, shape,
                                    rotate ? d_inv.as<float>() : nullptr, d_pos.as<int32_t>(), d_kc.get(),
                                    d_vc.get(), nullptr));
      const std::vector<uint8_t> k_bytes = d_k.download<uint8_t>(m * kv_row * ab);
      const std::vector<uint8_t> q_bytes = d_q.download<uint8_t>(m * q_row * ab);
      // Dims that do not rotate come back bit for bit (partial rotary's tail; everything without inv_freq).
      const size_t hd = static_cast<size_t>(c.head_dim), rotated = rotate ? static_cast<size_t>(rotary) : 0;
      for (size_t e = 0; e < m * q_row; ++e) {
        if (e % hd >= rotated) {
          ASSERT_EQ(0, std::memcmp(q_bytes.data() + e * ab, q.data() + e * ab, ab)) << what << ": q[" << e << "]";
        }
      }
      for (size_t e = 0; e < m * kv_row; ++e) {
        if (e % hd >= rotated) {
          ASSERT_EQ(0, std::memcmp(k_bytes.data() + e * ab, k.data() + e * ab, ab)) << what << ": k[" << e << "]";
        }
      }
      expect_close(act, decode(act, q_bytes), round_to(act, q_ref), 0.0, 1.0, what + " q");
      expect_close(act, decode(act, k_bytes), round_to(act, k_ref), 0.0, 1.0, what + " k");

      const std::vector<uint8_t> kc = d_kc.download<uint8_t>(cache_bytes), vc = d_vc.download<uint8_t>(cache_bytes);
      const size_t row_bytes = kv_row * ab;
      for (int64_t r = 0; r < c.max_context; ++r) {
        const int64_t t = r - c.start;
        const uint8_t* kr = kc.data() + static_cast<size_t>(r) * row_bytes;
        const uint8_t* vr = vc.data() + static_cast<size_t>(r) * row_bytes;
        if (t >= 0 && t < c.m) {
          EXPECT_EQ(0, std::memcmp(kr, k_bytes.data() + static_cast<size_t>(t) * row_bytes, row_bytes))
              << what << ": k cache row " << r;
          EXPECT_EQ(0, std::memcmp(vr, v.data() + static_cast<size_t>(t) * row_bytes, row_bytes))
              << what << ": v cache row " << r;
        } else {
          const bool untouched = std::all_of(kr, kr + row_bytes, [](uint8_t b) { return b == 0xff; }) &&
                                 std::all_of(vr, vr + row_bytes, [](uint8_t b) { return b == 0xff; });
          EXPECT_TRUE(untouched) << what << ": cache row " << r << " written";
        }
      }
    }
  }
}

// ---- silu_mul / convert_to_f32 ----------------------------------------------------------------
TEST(SiluMul, MatchesCpuAlignedMisalignedAndInPlace) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 300;
  for (ActType act : kActs) {
    const size_t ab = act_size(act);
    for (int64_t count : {1, 7, 260, 4099}) {
      for (int variant = 0; variant < 3; ++variant) {  // 0 aligned, 1 misaligned by one element, 2 out = gate
        const std::string what = std::string(act_name(act)) + " count=" + std::to_string(count) + " variant " +
                                 std::to_string(variant);
        const size_t n = static_cast<size_t>(count), off = variant == 1 ? 1 : 0;
        const std::vector<float> g = round_to(act, normal(n, ++seed, 4.0f)), u = round_to(act, normal(n, ++seed, 1.0f));
        std::vector<float> ref = g;
        silu_mul(ref.data(), u.data(), n);
        ref = act == ActType::kF32 ? ref : round_to(act, ref);

        std::vector<uint8_t> g_bytes((n + off) * ab, 0), u_bytes((n + off) * ab, 0);
        const std::vector<uint8_t> ge = encode(act, g), ue = encode(act, u);
        std::copy(ge.begin(), ge.end(), g_bytes.begin() + static_cast<std::ptrdiff_t>(off * ab));
        std::copy(ue.begin(), ue.end(), u_bytes.begin() + static_cast<std::ptrdiff_t>(off * ab));
        DeviceBuffer d_g = DeviceBuffer::upload(g_bytes), d_u = DeviceBuffer::upload(u_bytes), d_o((n + off) * ab);
        d_o.poison();
        uint8_t* gp = d_g.as<uint8_t>() + off * ab;
        uint8_t* op = variant == 2 ? gp : d_o.as<uint8_t>() + off * ab;
        ASSERT_OK(cuda::silu_mul(act, gp, d_u.as<uint8_t>() + off * ab, count, op, nullptr));
        const DeviceBuffer& src = variant == 2 ? d_g : d_o;
        std::vector<uint8_t> all = src.download<uint8_t>((n + off) * ab);
        const std::vector<float> got = decode(act, std::vector<uint8_t>(all.begin() + static_cast<std::ptrdiff_t>(off * ab), all.end()));
        if (act == ActType::kF32) {
          expect_close(act, got, ref, 1e-6, 0.0, what);
        } else {
          expect_close(act, got, ref, 0.0, 1.0, what);
        }
      }
    }
  }
}

TEST(ConvertToF32, Exact) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 400;
  for (ActType act : kActs) {
    const size_t ab = act_size(act);
    for (int64_t count : {1, 7, 4099}) {
      for (size_t off : {size_t{0}, size_t{1}}) {
        const size_t n = static_cast<size_t>(count);
        std::vector<float> x = round_to(act, normal(n + off, ++seed, 3.0f));
        const std::vector<uint8_t> bytes = encode(act, x);
        DeviceBuffer d_src = DeviceBuffer::upload(bytes), d_dst((n + off) * 4);
        d_dst.poison();
        ASSERT_OK(cuda::convert_to_f32(act, d_src.as<uint8_t>() + off * ab, count, d_dst.as<float>() + off, nullptr));
        const std::vector<float> got = d_dst.download<float>(n + off);
        EXPECT_EQ(0, std::memcmp(got.data() + off, x.data() + off, n * 4))
            << act_name(act) << " count=" << count << " offset " << off;
      }
    }
  }
}

// ---- sampling ---------------------------------------------------------------------------------
// Runs the device sampler on logits already on the device.
struct DeviceSampler {
  explicit DeviceSampler(const std::vector<float>& logits)
      : n(static_cast<int64_t>(logits.size())),
        d_logits(DeviceBuffer::upload(logits)),
        d_params(sizeof(cuda::DeviceStepParams)),
        d_id(4),
        d_probs(logits.size() * 4),
        d_ws(static_cast<size_t>(cuda::sample_workspace_bytes(n))) {}

  void set(float temperature, int32_t top_k, float top_p, float uniform) {
    cuda::DeviceStepParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.uniform = uniform;
    d_params.write(std::vector<cuda::DeviceStepParams>{p});
  }
  int32_t draw() {
    d_id.poison();
    const Status st = cuda::sample_token(d_logits.as<float>(), n, d_params.as<cuda::DeviceStepParams>(),
                                         d_id.as<int32_t>(), d_ws.get(), cuda::sample_workspace_bytes(n), nullptr);
    EXPECT_TRUE(st.ok()) << st.message();
    return d_id.download<int32_t>(1)[0];
  }
  std::vector<float> probabilities() {
    d_probs.poison();
    const Status st = cuda::sample_probabilities(d_logits.as<float>(), n, d_params.as<cuda::DeviceStepParams>(),
                                                 d_probs.as<float>(), d_ws.get(), cuda::sample_workspace_bytes(n),
                                                 nullptr);
    EXPECT_TRUE(st.ok()) << st.message();
    return d_probs.download<float>(static_cast<size_t>(n));
  }

  int64_t n;
  DeviceBuffer d_logits, d_params, d_id, d_probs, d_ws;
};

Sampler cpu_sampler(float temperature, int32_t top_k, float top_p, uint64_t seed = 0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  Result<Sampler> s = Sampler::create(o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(s).value();
}

// Sampler::sample's walk for a given u.
int32_t cpu_draw(const std::vector<float>& probs, double u) {
  double cumulative = 0.0;
  int32_t last = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0f) continue;
    cumulative += probs[i];
    last = static_cast<int32_t>(i);
    if (u < cumulative) return last;
  }
  return last;
}

std::vector<float> greedy_case(size_t n, int kind, uint32_t seed) {
  std::vector<float> x = normal(n, seed, 2.0f);
  std::mt19937 rng(seed ^ 0x9e3779b9u);
  auto at = [&](size_t lo, size_t hi) { return lo + rng() % std::max<size_t>(1, hi - lo); };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  switch (kind) {
    case 0: break;                                           // plain
    case 1: {                                                // ties of the max, scattered
      const float top = *std::max_element(x.begin(), x.end()) + 1.0f;
      for (int i = 0; i < 5; ++i) x[at(0, n)] = top;
      break;
    }
    case 2:                                                  // NaN first, at the max, anywhere
      x[0] = nan;
      for (int i = 0; i < 7; ++i) x[at(0, n)] = nan;
      break;
    case 3: std::fill(x.begin(), x.end(), nan); break;       // all NaN: the last index
    case 4:                                                  // +inf ties and -inf
      x[at(0, n)] = inf;
      x[at(0, n)] = inf;
      x[at(0, n)] = -inf;
      break;
    case 5: std::fill(x.begin(), x.end(), -inf); x[at(0, n)] = nan; break;  // -inf ties with NaN mixed in
    case 6:                                                  // -0 / +0 ties as the max
      for (float& f : x) f = -std::fabs(f) - 1.0f;
      x[at(0, n)] = -0.0f;
      x[at(0, n)] = 0.0f;
      break;
  }
  return x;
}

TEST(SampleToken, GreedyIsArgmax) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 500;
  for (size_t n : {size_t{1}, size_t{7}, size_t{32000}, size_t{128256}}) {
    for (int kind = 0; kind < 7; ++kind) {
      const std::vector<float> x = greedy_case(n, kind, ++seed);
      DeviceSampler ds(x);
      ds.set(0.0f, 0, 1.0f, 0.5f);
      EXPECT_EQ(ds.draw(), argmax(x.data(), n)) << "n=" << n << " kind " << kind;
      if (kind >= 3 && kind <= 5) {  // a non-finite max: the degenerate softmax falls back to argmax
        ds.set(0.8f, 3, 0.9f, 0.5f);
        EXPECT_EQ(ds.draw(), cpu_sampler(0.8f, 3, 0.9f).sample(x.data(), n)) << "n=" << n << " kind " << kind << " T>0";
      }
    }
  }
}

struct SampleCase {
  float temperature;
  int32_t top_k;
  float top_p;
};

// Distance of top_p from the CPU's cumulative masses around the nucleus cut (descending order, the
// stable sort of Sampler::probabilities); +inf when top-p is off.
double top_p_margin(const std::vector<float>& x, const SampleCase& c) {
  if (!(c.top_p < 1.0f)) return std::numeric_limits<double>::infinity();
  const std::vector<float> p = cpu_sampler(c.temperature, c.top_k, 1.0f).probabilities(x.data(), x.size());
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  double cum = 0.0, margin = std::numeric_limits<double>::infinity();
  for (size_t i : order) {
    cum += p[i];
    margin = std::min(margin, std::fabs(cum - c.top_p));
    if (cum >= c.top_p + 1e-3) break;
  }
  return margin;
}

void check_sampling(const std::vector<float>& x, const SampleCase& c, int n_draws, uint32_t seed,
                    const std::string& what) {
  const size_t n = x.size();
  DeviceSampler ds(x);
  ds.set(c.temperature, c.top_k, c.top_p, 0.0f);
  const std::vector<float> cpu = cpu_sampler(c.temperature, c.top_k, c.top_p).probabilities(x.data(), n);
  const std::vector<float> gpu = ds.probabilities();
  if (top_p_margin(x, c) < 1e-5) {
    GTEST_LOG_(INFO) << what << ": top_p within 1e-5 of a cumulative mass; support not compared";
  } else {
    int failures = 0;
    for (size_t i = 0; i < n && failures < 5; ++i) {
      const bool ok = (cpu[i] > 0.0f) == (gpu[i] > 0.0f) && std::fabs(gpu[i] - cpu[i]) <= 2e-5 * cpu[i] + 1e-12;
      if (!ok) {
        ADD_FAILURE() << what << ": p[" << i << "] = " << gpu[i] << ", CPU " << cpu[i] << " (logit " << x[i] << ")";
        ++failures;
      }
    }
  }
  // Cumulative boundaries of the CPU's walk in index order.
  std::vector<double> bounds{0.0};
  for (float p : cpu) {
    if (p > 0.0f) bounds.push_back(bounds.back() + p);
  }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  int exact = 0;
  for (int d = 0; d < n_draws; ++d) {
    const float u = d == 0 ? 0.0f : (d == 1 ? 0x1.fffffep-1f : uni(rng));
    ds.set(c.temperature, c.top_k, c.top_p, u);
    const int32_t got = ds.draw();
    const int32_t want = cpu_draw(cpu, u);
    double nearest = std::numeric_limits<double>::infinity();
    for (double b : bounds) nearest = std::min(nearest, std::fabs(b - u));
    if (nearest >= 1e-4) {
      EXPECT_EQ(got, want) << what << ": u = " << u;
      ++exact;
    } else {
      ASSERT_GE(got, 0) << what;
      ASSERT_LT(static_cast<size_t>(got), n) << what;
      double below = 0.0;
      for (int32_t i = 0; i < got; ++i) below += cpu[static_cast<size_t>(i)] > 0.0f ? cpu[static_cast<size_t>(i)] : 0.0f;
      EXPECT_GT(cpu[static_cast<size_t>(got)], 0.0f) << what << ": drew a filtered id, u = " << u;
      EXPECT_TRUE(u >= below - 1e-5 && u < below + cpu[static_cast<size_t>(got)] + 1e-5)
          << what << ": u = " << u << " outside id " << got << "'s interval";
    }
  }
  EXPECT_GT(exact, 0) << what << ": every draw was near a boundary";
}

TEST(SampleToken, MatchesCpuSampler) {
  SKIP_WITHOUT_GPU();
  const SampleCase cases[] = {
      {1.0f, 0, 1.0f},   {0.7f, 50, 1.0f}, {1.0f, 0, 0.9f}, {0.8f, 40, 0.95f},
      {1.3f, 1, 1.0f},   {0.5f, 0, 0.5f},  {2.0f, 7, 0.6f},
  };
  uint32_t seed = 600;
  for (size_t n : {size_t{7}, size_t{32000}}) {
    for (const SampleCase& c : cases) {
      // Peaked logits (stddev 3) so that a few ids carry most of the mass, as real logits do.
      const std::vector<float> x = normal(n, ++seed, 3.0f);
      const std::string what = "n=" + std::to_string(n) + " T=" + std::to_string(c.temperature) +
                               " k=" + std::to_string(c.top_k) + " p=" + std::to_string(c.top_p);
      check_sampling(x, c, n == 7 ? 24 : 12, seed, what);
    }
  }
  const std::vector<float> big = normal(128256, ++seed, 3.0f);
  check_sampling(big, {0.9f, 50, 0.9f}, 6, seed, "n=128256 k=50 p=0.9");
  check_sampling(big, {1.0f, 0, 0.8f}, 4, seed + 1, "n=128256 p=0.8");
}

TEST(SampleToken, TiesAtTheThresholds) {
  SKIP_WITHOUT_GPU();
  // Logits on a coarse grid: the k-th largest and the nucleus cut fall inside groups of equal
  // logits, which the CPU keeps whole (top-k) or takes in index order (top-p).
  uint32_t seed = 700;
  const SampleCase cases[] = {{1.0f, 5, 1.0f}, {1.0f, 0, 0.7f}, {0.6f, 12, 0.8f}, {1.0f, 3, 0.3f}, {1.0f, 0, 1.0f}};
  for (size_t n : {size_t{7}, size_t{2000}}) {
    for (const SampleCase& c : cases) {
      std::vector<float> x = normal(n, ++seed, 1.5f);
      for (float& f : x) f = std::round(f * 2.0f) / 2.0f;
      // NaN at id 0: with no filter it is a kept candidate without mass, which a draw at u = 0
      // must step over inside the walking thread's range (n = 2000: two ids per thread).
      x[0] = x[n / 2] = std::numeric_limits<float>::quiet_NaN();
      const std::string what = "ties n=" + std::to_string(n) + " k=" + std::to_string(c.top_k) +
                               " p=" + std::to_string(c.top_p);
      check_sampling(x, c, 12, seed, what);
    }
  }
}

TEST(SampleToken, SignedZerosAndNonFiniteLogits) {
  SKIP_WITHOUT_GPU();
  // -0 and +0 are one key (the zero group straddles the k-th largest and the nucleus cut, taken in
  // index order from id 2, a -0); NaN and -inf are kept candidates without mass when top-k is off,
  // so the draw at u = 0 must skip ids 0 and 1.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {nan, -inf, -0.0f, 1.0f, 0.0f, -1.0f, 0.0f, -0.0f, 2.0f};
  const SampleCase cases[] = {{1.0f, 4, 1.0f}, {1.0f, 0, 0.75f}, {1.0f, 0, 1.0f}, {1.0f, 5, 0.8f}};
  uint32_t seed = 750;
  for (const SampleCase& c : cases) {
    check_sampling(x, c, 12, ++seed, "zeros k=" + std::to_string(c.top_k) + " p=" + std::to_string(c.top_p));
  }
}

TEST(SampleToken, RealSamplerDraws) {
  SKIP_WITHOUT_GPU();
  // Sampler::sample itself, the device given the same draw (Sampler::next_uniform of that seed).
  const std::vector<float> x = normal(32000, 800, 3.0f);
  DeviceSampler ds(x);
  const SampleCase c{0.9f, 40, 0.9f};
  const std::vector<float> cpu = cpu_sampler(c.temperature, c.top_k, c.top_p).probabilities(x.data(), x.size());
  int compared = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const double u = cpu_sampler(c.temperature, c.top_k, c.top_p, seed).next_uniform();
    double cum = 0.0, nearest = std::fabs(u);
    for (float p : cpu) {
      if (p > 0.0f) cum += p, nearest = std::min(nearest, std::fabs(cum - u));
    }
    if (nearest < 1e-4) continue;
    ds.set(c.temperature, c.top_k, c.top_p, static_cast<float>(u));
    EXPECT_EQ(ds.draw(), cpu_sampler(c.temperature, c.top_k, c.top_p, seed).sample(x.data(), x.size())) << "seed " << seed;
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

// ---- CUDA graph capture -----------------------------------------------------------------------
TEST(DeviceOps, CapturedGraphReadsStepParamsFromDevice) {
  SKIP_WITHOUT_GPU();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  const std::vector<float> x = normal(1000, 900, 3.0f);
  DeviceSampler ds(x);
  cudaGraph_t graph = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    (void)cudaGetLastError();
    cudaStreamDestroy(stream);
    GTEST_SKIP() << "stream capture not available";
  }
  const Status st = cuda::sample_token(ds.d_logits.as<float>(), ds.n, ds.d_params.as<cuda::DeviceStepParams>(),
                                       ds.d_id.as<int32_t>(), ds.d_ws.get(), cuda::sample_workspace_bytes(ds.n), stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_OK(st);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int step = 0; step < 3; ++step) {
    const SampleCase c = step == 0 ? SampleCase{0.0f, 0, 1.0f} : SampleCase{1.0f, 20, 0.9f};
    const float u = step == 1 ? 0.25f : 0.75f;
    ds.set(c.temperature, c.top_k, c.top_p, u);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const std::vector<float> cpu = cpu_sampler(c.temperature, c.top_k, c.top_p).probabilities(x.data(), x.size());
    EXPECT_EQ(ds.d_id.download<int32_t>(1)[0], cpu_draw(cpu, u)) << "step " << step;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// ---- argument validation (no device needed) ---------------------------------------------------
TEST(DeviceOps, LaunchersValidateArguments) {
  void* p = reinterpret_cast<void*>(uintptr_t{256});  // never dereferenced: every call below is rejected
  float* f = static_cast<float*>(p);
  const int32_t* pos = static_cast<const int32_t*>(p);
  auto code = [](const Status& s) { return s.code(); };
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument, kUnsupported = StatusCode::kUnsupported;

  EXPECT_EQ(code(cuda::add_rmsnorm(ActType::kBF16, nullptr, p, 1, 8, f, 1e-5f, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_rmsnorm(ActType::kBF16, f, p, 1, 8, nullptr, 1e-5f, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_rmsnorm(ActType::kBF16, f, p, 0, 8, f, 1e-5f, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_rmsnorm(ActType::kBF16, f, p, 1, -1, f, 1e-5f, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_rmsnorm(static_cast<ActType>(9), f, p, 1, 8, f, 1e-5f, p, nullptr)), kInvalid);

  cuda::DeviceAttentionShape s;
  s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 64, s.max_context = 16;
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, s, f, nullptr, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, nullptr, p, 1, s, f, pos, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 0, s, f, pos, p, p, nullptr)), kInvalid);
  cuda::DeviceAttentionShape bad = s;
  bad.max_context = 0;
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kInvalid);
  bad = s;
  bad.head_dim = 63;
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kUnsupported);
  bad.head_dim = 1024;
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kUnsupported);
  bad = s;
  bad.rotary_dim = 15;  // odd
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kInvalid);
  bad.rotary_dim = 66;  // > head_dim
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kInvalid);
  bad.rotary_dim = -2;
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, bad, f, pos, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::rope_store_kv(ActType::kF16, p, p, p, 1, s, nullptr, nullptr, p, p, nullptr)), kInvalid);

  EXPECT_EQ(code(cuda::silu_mul(ActType::kF32, nullptr, p, 4, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::silu_mul(ActType::kF32, p, p, 0, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::convert_to_f32(ActType::kF16, p, 4, nullptr, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::convert_to_f32(ActType::kF16, p, -4, f, nullptr)), kInvalid);

  const auto* params = static_cast<const cuda::DeviceStepParams*>(p);
  int32_t* id = static_cast<int32_t*>(p);
  const int64_t ws = cuda::sample_workspace_bytes(32000);
  EXPECT_GT(ws, 0);
  EXPECT_EQ(cuda::sample_workspace_bytes(0), 0);
  EXPECT_EQ(code(cuda::sample_token(nullptr, 32000, params, id, p, ws, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::sample_token(f, 32000, nullptr, id, p, ws, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::sample_token(f, 0, params, id, p, ws, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::sample_token(f, 32000, params, id, p, ws - 1, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::sample_token(f, int64_t{1} << 40, params, id, p, int64_t{1} << 40, nullptr)), kUnsupported);
  EXPECT_EQ(code(cuda::sample_probabilities(f, 32000, params, nullptr, p, ws, nullptr)), kInvalid);
}

}  // namespace
}  // namespace qmodel::runtime
