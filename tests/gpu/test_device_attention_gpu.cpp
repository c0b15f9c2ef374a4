// CUDA attention (runtime/cuda/attention.h) against the CPU reference attention_head on fresh random
// inputs, rounded to the compute dtype on the host so both sides see the same values, for bf16,
// fp16 and fp32. Decode runs at chunk edges (positions 0, 1, 255, 256, 257, 1000), replays one
// launch (identical arguments) for every position as a captured graph does, and leaves NaN in every
// cache row outside the visible keys, so a kernel that reads past *position or before the window
// fails. Prefill runs m = 1, 3, 17, 64 from start 0 and start > 0. ALiBi (BLOOM's and Falcon-RW's
// scaled form, slopes of format::alibi_slopes for 6 and 12 heads: not powers of two) and a custom
// scale run in both kernels with MQA and GQA. Outputs are poisoned with NaN before each launch.
// Skips (GTEST_SKIP) without a GPU; argument validation runs everywhere because rejected calls
// never touch the device. Shapes are small: under the CPU emulation every CUDA thread is a fiber.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "gpu_test_util.h"
#include "qmodel/format/architecture.h"
#include "qmodel/format/half.h"
#include "src/attention.h"

namespace qmodel::runtime::cuda {
namespace {

const char* act_name(ActType act) { return act == ActType::kBF16 ? "bf16" : act == ActType::kF16 ? "f16" : "f32"; }

// Values in the compute dtype (bytes, as uploaded) and the same values as fp32 (what the reference sees).
struct HostTensor {
  std::vector<uint8_t> bytes;
  std::vector<float> f;
};

HostTensor make_tensor(ActType act, size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  HostTensor t;
  t.bytes.resize(n * static_cast<size_t>(act_bytes(act)));
  t.f.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float x = dist(rng);
    if (act == ActType::kF32) {
      std::memcpy(t.bytes.data() + 4 * i, &x, 4);
      t.f[i] = x;
    } else {
      const uint16_t h = act == ActType::kBF16 ? float_to_bf16(x) : float_to_f16(x);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
      t.f[i] = act == ActType::kBF16 ? bf16_to_float(h) : f16_to_float(h);
    }
  }
  return t;
}

std::vector<float> download_as_float(ActType act, const DeviceBuffer& d, size_t n) {
  std::vector<uint8_t> bytes(n * static_cast<size_t>(act_bytes(act)));
  EXPECT_EQ(cudaMemcpy(bytes.data(), d.get(), bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) {
    if (act == ActType::kF32) {
      std::memcpy(&f[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      f[i] = act == ActType::kBF16 ? bf16_to_float(h) : f16_to_float(h);
    }
  }
  return f;
}

// ---- tolerance ---------------------------------------------------------------------------------
// |gpu - ref| <= out_rtol * |ref| + acc_rtol * sum_j p_j |v_j| + atol, per output element:
//  - the device and attention_head work on identical inputs in fp32 and differ only in the order
//    of the sums, FMA contraction and exp2f(x log2 e) vs exp: ~1e-6 of the scale sum p |v| in
//    practice (an output can cancel to ~0, hence that scale and not |ref|); acc_rtol = 1e-5
//    (the "~1e-5 relative" of fp32), doubled for 16-bit outputs, which round once more:
//  - out_rtol = half an ulp of the output dtype (bf16 2^-8, fp16 2^-11; fp32 1e-5);
//  - atol = half the fp16 subnormal step 2^-25 (an output below 2^-14 rounds absolutely).
//  - ALiBi: the CPU adds alibi_bias(slope, j) to each score in fp32 (slope * j, or Falcon-RW's
//    bf16(bf16(slope) * j) / sqrt(d)), rounded at the magnitude S = |alibi_bias(slope, p)|, while
//    the kernels add alibi_bias(j) - alibi_bias(p): the same softmax in real arithmetic, with a
//    small bias near the query. The scores then differ by <= ~3 ulp(S) ~ 3 * 2^-23 * S, so each
//    p_j by that relatively, and the output by twice that times sum p |v|: + 8 * 2^-24 * S *
//    sum p |v| per (token, head) (2.4e-4 of the scale sum at p = 1000, slope 0.5). Without this term the ALiBi cases fail (differences ~2e-5 at S ~ 420);
//    with it the worst case uses ~1/5 of the bound.
struct Bound {
  double out_rtol, acc_rtol, atol;
};
Bound bound_for(ActType act) {
  switch (act) {
    case ActType::kBF16: return {std::ldexp(1.0, -8), 2e-5, 0.0};
    case ActType::kF16: return {std::ldexp(1.0, -11), 2e-5, std::ldexp(1.0, -25)};
    case ActType::kF32: break;
  }
  return {1e-5, 1e-5, 0.0};
}

// Reference outputs of m tokens at positions start.. : attention_head per (token, head), once with
// V and once with |V| for the per-element scale sum p |v|.
// `extra`: the ALiBi term of the bound (absolute, per element; 0 without ALiBi).
struct Reference {
  std::vector<float> out, scale, extra;
};
// `slopes`: host copy of the ALiBi slopes when s.alibi_slopes is set (s's pointer is device memory).
Reference reference(const DeviceAttentionShape& s, const std::vector<float>& q, int64_t m, int64_t start,
                    const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>& slopes = {}) {
  AttentionShape shape;
  shape.n_heads = static_cast<size_t>(s.n_heads);
  shape.n_kv_heads = static_cast<size_t>(s.n_kv_heads);
  shape.head_dim = static_cast<size_t>(s.head_dim);
  shape.sliding_window = static_cast<size_t>(s.sliding_window);
  shape.scale = s.scale;
  if (s.alibi_slopes != nullptr) {
    EXPECT_EQ(slopes.size(), static_cast<size_t>(s.n_heads));
    shape.alibi_slopes = slopes.data();
    shape.alibi_scaled = s.alibi_scaled != 0;
  }
  std::vector<float> abs_v(v.size());
  for (size_t i = 0; i < v.size(); ++i) abs_v[i] = std::fabs(v[i]);
  const size_t d = shape.head_dim, q_stride = shape.n_heads * d;
  Reference r;
  r.out.resize(static_cast<size_t>(m) * q_stride);
  r.scale.resize(r.out.size());
  r.extra.assign(r.out.size(), 0.0f);
  std::vector<float> scores(static_cast<size_t>(start + m));
  for (size_t t = 0; t < static_cast<size_t>(m); ++t) {
    for (size_t h = 0; h < shape.n_heads; ++h) {
      const size_t off = t * q_stride + h * d, pos = static_cast<size_t>(start) + t;
      attention_head(shape, q.data() + off, pos, k.data(), v.data(), h, scores.data(), r.out.data() + off);
      attention_head(shape, q.data() + off, pos, k.data(), abs_v.data(), h, scores.data(),
                     r.scale.data() + off);
      if (shape.alibi_slopes != nullptr) {
        const double magnitude = std::fabs(alibi_bias(shape, slopes[h], pos));
        for (size_t i = 0; i < d; ++i) {
          r.extra[off + i] = static_cast<float>(8.0 * std::ldexp(magnitude, -24) * r.scale[off + i]);
        }
      }
    }
  }
  return r;
}

void compare(ActType act, const Reference& ref, const std::vector<float>& got, const std::string& what) {
  const Bound b = bound_for(act);
  int n_bad = 0;
  double worst = 0.0;  // largest |diff| / tol
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = ref.out[i], g = got[i];
    const double tol = b.out_rtol * std::fabs(r) + b.acc_rtol * ref.scale[i] + b.atol + ref.extra[i];
    const double diff = std::fabs(g - r);
    if (!(diff <= tol)) {  // NaN (unwritten, or read from a poisoned row) fails too
      if (++n_bad <= 5) ADD_FAILURE() << what << ": out[" << i << "] gpu " << g << " ref " << r << " tol " << tol;
    } else if (tol > 0) {
      worst = std::max(worst, diff / tol);
    }
  }
  EXPECT_EQ(n_bad, 0) << what << " (" << got.size() << " outputs)";
  EXPECT_LT(worst, 1.0) << what;
}

// ALiBi in the test cases: the shape carries a placeholder pointer (kAlibiMarker) that the test
// replaces with device slopes from format::alibi_slopes (alibi_scaled picks the form).
const float* const kAlibiMarker = reinterpret_cast<const float*>(uintptr_t{16});

std::string shape_name(const DeviceAttentionShape& s) {
  std::string scale = s.scale != 0.0f ? "_scale" + std::to_string(static_cast<int>(std::lround(s.scale * 1000))) : "";
  return "h" + std::to_string(s.n_heads) + "kv" + std::to_string(s.n_kv_heads) + "d" + std::to_string(s.head_dim) +
         (s.sliding_window > 0 ? "w" + std::to_string(s.sliding_window) : "") +
         (s.alibi_slopes != nullptr ? (s.alibi_scaled != 0 ? "_alibi_scaled" : "_alibi") : "") + scale;
}

DeviceAttentionShape make_shape(int32_t heads, int32_t kv, int32_t d, int32_t max_context, int32_t window = 0) {
  DeviceAttentionShape s;
  s.n_heads = heads;
  s.n_kv_heads = kv;
  s.head_dim = d;
  s.max_context = max_context;
  s.sliding_window = window;
  return s;
}

// 0: no ALiBi, 1: BLOOM's, 2: Falcon-RW's scaled form; scale 0 = 1 / sqrt(head_dim).
DeviceAttentionShape with_bias(DeviceAttentionShape s, int alibi, float scale = 0.0f) {
  s.alibi_slopes = alibi != 0 ? kAlibiMarker : nullptr;
  s.alibi_scaled = alibi == 2 ? 1 : 0;
  s.scale = scale;
  return s;
}

// The slopes of a case (host) and their device copy, patched into the shape.
struct Slopes {
  std::vector<float> host;
  std::unique_ptr<DeviceBuffer> device;
};
Slopes attach_slopes(DeviceAttentionShape& s) {
  Slopes r;
  if (s.alibi_slopes == nullptr) return r;
  r.host.resize(static_cast<size_t>(s.n_heads));
  format::alibi_slopes(static_cast<uint32_t>(s.n_heads), r.host.data());
  r.device = std::make_unique<DeviceBuffer>(r.host.size() * sizeof(float));
  r.device->write(r.host.data(), r.host.size() * sizeof(float));
  s.alibi_slopes = static_cast<const float*>(r.device->get());
  return r;
}

// Uploads the cache with every row outside the visible keys [first, last] poisoned (NaN).
void upload_cache(DeviceBuffer& d, const HostTensor& h, const DeviceAttentionShape& s, int64_t first, int64_t last) {
  const size_t row = static_cast<size_t>(s.n_kv_heads) * static_cast<size_t>(s.head_dim) * (h.bytes.size() / h.f.size());
  d.poison();
  d.write(h.bytes.data() + static_cast<size_t>(first) * row, static_cast<size_t>(last - first + 1) * row,
          static_cast<size_t>(first) * row);
}

int64_t first_visible(const DeviceAttentionShape& s, int64_t pos) {
  return (s.sliding_window > 0 && pos + 1 > s.sliding_window) ? pos + 1 - s.sliding_window : 0;
}

const ActType kActs[] = {ActType::kBF16, ActType::kF16, ActType::kF32};

void PrintTo(const DeviceAttentionShape& s, std::ostream* os) { *os << shape_name(s) << " ctx " << s.max_context; }

// ---- decode ---------------------------------------------------------------------------------------
struct DecodeCase {
  DeviceAttentionShape shape;
  std::vector<int32_t> positions;
};

void PrintTo(const DecodeCase& c, std::ostream* os) { PrintTo(c.shape, os); }

class DecodeVsRef : public ::testing::TestWithParam<DecodeCase> {};

// All positions of a case go through one set of arguments: only *position changes, as in a graph.
TEST_P(DecodeVsRef, MatchesAttentionHead) {
  SKIP_WITHOUT_GPU();
  const DecodeCase& c = GetParam();
  DeviceAttentionShape s = c.shape;
  const Slopes slopes = attach_slopes(s);
  const size_t q_n = static_cast<size_t>(s.n_heads) * s.head_dim;
  const size_t cache_n = static_cast<size_t>(s.max_context) * s.n_kv_heads * s.head_dim;
  const int64_t ws_floats = attention_decode_workspace_floats(s);
  ASSERT_GT(ws_floats, 0);
  for (ActType act : kActs) {
    const uint32_t seed = static_cast<uint32_t>(s.n_heads * 131 + s.head_dim * 7 + s.max_context) * 3 + static_cast<uint32_t>(act);
    const HostTensor q = make_tensor(act, q_n, seed, 1.5f), k = make_tensor(act, cache_n, seed + 1, 1.0f),
                     v = make_tensor(act, cache_n, seed + 2, 1.0f);
    const size_t eb = static_cast<size_t>(act_bytes(act));
    DeviceBuffer d_q(q_n * eb), d_k(cache_n * eb), d_v(cache_n * eb), d_out(q_n * eb);
    DeviceBuffer d_ws(static_cast<size_t>(ws_floats) * 4), d_pos(sizeof(int32_t));
    d_q.write(q.bytes.data(), q.bytes.size());
    for (int32_t pos : c.positions) {
      const std::string what = std::string(act_name(act)) + " " + shape_name(s) + " position " + std::to_string(pos);
      const int64_t first = first_visible(s, pos);
      upload_cache(d_k, k, s, first, pos);
      upload_cache(d_v, v, s, first, pos);
      d_pos.write(&pos, sizeof(pos));
      d_out.poison();
      d_ws.poison();
      ASSERT_OK(attention_decode(act, s, d_q.get(), d_k.get(), d_v.get(), static_cast<const int32_t*>(d_pos.get()),
                                 static_cast<float*>(d_ws.get()), ws_floats, d_out.get(), nullptr));
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      compare(act, reference(s, q.f, 1, pos, k.f, v.f, slopes.host), download_as_float(act, d_out, q_n), what);
    }
  }
}

std::string decode_name(const ::testing::TestParamInfo<DecodeCase>& info) {
  return shape_name(info.param.shape) + "_ctx" + std::to_string(info.param.shape.max_context);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeVsRef,
    ::testing::Values(
        DecodeCase{make_shape(8, 8, 64, 1001), {0, 1, 255, 256, 257, 1000}},
        DecodeCase{make_shape(32, 8, 128, 1024), {0, 1, 255, 256, 257, 1000}},
        DecodeCase{make_shape(6, 1, 8, 1001), {0, 1, 255, 256, 257, 1000}},
        DecodeCase{make_shape(8, 2, 128, 1100, 300), {0, 299, 300, 555, 1000}},  // window: first 256 at 555
        DecodeCase{make_shape(16, 1, 64, 600), {1, 513}},                      // group 16: two passes of 8
        DecodeCase{make_shape(8, 4, 256, 520), {3, 300}},
        DecodeCase{make_shape(4, 2, 20, 300), {0, 257}},                       // not a multiple of 8: scalar
        DecodeCase{make_shape(2, 1, 250, 270), {258}},                         // scalar, 4 vectors per lane
        // ALiBi (6 and 12 heads: not powers of two), MQA and GQA, both forms; custom scales
        DecodeCase{with_bias(make_shape(6, 1, 8, 1001), 1), {0, 1, 255, 256, 257, 1000}},
        DecodeCase{with_bias(make_shape(12, 4, 64, 600), 1), {0, 300, 599}},
        DecodeCase{with_bias(make_shape(12, 12, 64, 600), 2), {1, 257, 599}},
        DecodeCase{with_bias(make_shape(6, 2, 20, 300, 100), 2, 0.15f), {0, 150, 299}},  // scalar, window
        DecodeCase{with_bias(make_shape(16, 1, 64, 600), 1), {513}},                   // group 16: two passes
        DecodeCase{with_bias(make_shape(8, 2, 64, 300), 0, 0.2f), {0, 299}}),          // scale only
    decode_name);

// The decode launch captured once in a CUDA graph, replayed for two positions.
TEST(DecodeGraph, OneCaptureServesEveryPosition) {
  SKIP_WITHOUT_GPU();
  const ActType act = ActType::kBF16;
  const DeviceAttentionShape s = make_shape(8, 2, 64, 700);
  const size_t q_n = static_cast<size_t>(s.n_heads) * s.head_dim;
  const size_t cache_n = static_cast<size_t>(s.max_context) * s.n_kv_heads * s.head_dim;
  const int64_t ws_floats = attention_decode_workspace_floats(s);
  const HostTensor q = make_tensor(act, q_n, 11, 1.5f), k = make_tensor(act, cache_n, 12, 1.0f),
                   v = make_tensor(act, cache_n, 13, 1.0f);
  DeviceBuffer d_q(q.bytes.size()), d_k(k.bytes.size()), d_v(v.bytes.size()), d_out(q_n * 2);
  DeviceBuffer d_ws(static_cast<size_t>(ws_floats) * 4), d_pos(sizeof(int32_t));
  d_q.write(q.bytes.data(), q.bytes.size());
  d_k.write(k.bytes.data(), k.bytes.size());
  d_v.write(v.bytes.data(), v.bytes.size());

  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  const Status st = attention_decode(act, s, d_q.get(), d_k.get(), d_v.get(), static_cast<const int32_t*>(d_pos.get()),
                                     static_cast<float*>(d_ws.get()), ws_floats, d_out.get(), stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_OK(st);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int32_t pos : {600, 200, 256}) {
    d_pos.write(&pos, sizeof(pos));
    d_out.poison();
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    compare(act, reference(s, q.f, 1, pos, k.f, v.f), download_as_float(act, d_out, q_n),
            "graph replay at position " + std::to_string(pos));
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// ---- prefill --------------------------------------------------------------------------------------
struct PrefillCase {
  DeviceAttentionShape shape;
  std::vector<std::pair<int64_t, int64_t>> m_start;
};

void PrintTo(const PrefillCase& c, std::ostream* os) { PrintTo(c.shape, os); }

class PrefillVsRef : public ::testing::TestWithParam<PrefillCase> {};

TEST_P(PrefillVsRef, MatchesAttentionHead) {
  SKIP_WITHOUT_GPU();
  const PrefillCase& c = GetParam();
  DeviceAttentionShape s = c.shape;
  const Slopes slopes = attach_slopes(s);
  const size_t q_row = static_cast<size_t>(s.n_heads) * s.head_dim;
  const size_t cache_n = static_cast<size_t>(s.max_context) * s.n_kv_heads * s.head_dim;
  for (ActType act : kActs) {
    const size_t eb = static_cast<size_t>(act_bytes(act));
    const uint32_t seed = static_cast<uint32_t>(s.n_heads * 977 + s.head_dim * 13 + s.max_context) * 5 + static_cast<uint32_t>(act);
    const HostTensor k = make_tensor(act, cache_n, seed + 1, 1.0f), v = make_tensor(act, cache_n, seed + 2, 1.0f);
    DeviceBuffer d_k(cache_n * eb), d_v(cache_n * eb);
    for (const auto& [m, start] : c.m_start) {
      const std::string what = std::string(act_name(act)) + " " + shape_name(s) + " m " + std::to_string(m) +
                               " start " + std::to_string(start);
      const HostTensor q = make_tensor(act, static_cast<size_t>(m) * q_row, seed + 3 + static_cast<uint32_t>(m), 1.5f);
      DeviceBuffer d_q(q.bytes.size()), d_out(q.bytes.size());
      d_q.write(q.bytes.data(), q.bytes.size());
      upload_cache(d_k, k, s, 0, start + m - 1);  // rows past the last token are NaN
      upload_cache(d_v, v, s, 0, start + m - 1);
      d_out.poison();
      ASSERT_OK(attention_prefill(act, s, d_q.get(), m, start, d_k.get(), d_v.get(), d_out.get(), nullptr));
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      compare(act, reference(s, q.f, m, start, k.f, v.f, slopes.host),
              download_as_float(act, d_out, static_cast<size_t>(m) * q_row), what);
    }
  }
}

std::string prefill_name(const ::testing::TestParamInfo<PrefillCase>& info) {
  return shape_name(info.param.shape) + "_ctx" + std::to_string(info.param.shape.max_context);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PrefillVsRef,
    ::testing::Values(
        PrefillCase{make_shape(8, 2, 64, 1100), {{1, 0}, {3, 0}, {17, 0}, {64, 0}, {17, 255}, {64, 300}, {3, 1000}}},
        PrefillCase{make_shape(32, 8, 128, 300), {{1, 0}, {3, 0}, {17, 0}, {64, 0}, {17, 240}}},
        PrefillCase{make_shape(6, 1, 8, 1100), {{1, 0}, {3, 0}, {17, 0}, {64, 0}, {64, 1000}}},
        PrefillCase{make_shape(8, 8, 64, 300, 50), {{64, 0}, {17, 100}, {64, 200}}},  // sliding window
        PrefillCase{make_shape(4, 2, 256, 80), {{3, 0}, {17, 40}}},
        PrefillCase{make_shape(4, 2, 20, 80), {{17, 30}}},  // not a multiple of 8: scalar loads
        // ALiBi (6 and 12 heads), MQA and GQA, both forms; custom scales; every head-dim config
        PrefillCase{with_bias(make_shape(6, 1, 8, 1100), 1), {{1, 0}, {17, 0}, {64, 0}, {64, 1000}}},
        PrefillCase{with_bias(make_shape(12, 4, 64, 300), 1), {{3, 0}, {64, 0}, {17, 240}}},
        PrefillCase{with_bias(make_shape(12, 12, 128, 300), 2), {{17, 0}, {33, 200}}},
        PrefillCase{with_bias(make_shape(6, 2, 20, 300, 50), 2, 0.15f), {{64, 0}, {17, 200}}},  // scalar, window
        PrefillCase{with_bias(make_shape(6, 3, 256, 80), 1), {{3, 0}, {17, 40}}},
        PrefillCase{with_bias(make_shape(8, 2, 64, 300), 0, 0.2f), {{17, 0}, {64, 200}}}),       // scale only
    prefill_name);

// ---- misaligned pointers take the scalar path -----------------------------------------------------
TEST(AttentionMisaligned, ScalarPathMatches) {
  SKIP_WITHOUT_GPU();
  const ActType act = ActType::kBF16;
  const DeviceAttentionShape s = make_shape(4, 2, 64, 300);
  const size_t q_row = static_cast<size_t>(s.n_heads) * s.head_dim;
  const size_t cache_n = static_cast<size_t>(s.max_context) * s.n_kv_heads * s.head_dim;
  const int64_t m = 5, start = 260;
  const HostTensor q = make_tensor(act, m * q_row, 21, 1.5f), k = make_tensor(act, cache_n, 22, 1.0f),
                   v = make_tensor(act, cache_n, 23, 1.0f);
  DeviceBuffer d_q(q.bytes.size() + 2), d_k(k.bytes.size() + 2), d_v(v.bytes.size() + 2), d_out(q.bytes.size());
  d_q.write(q.bytes.data(), q.bytes.size(), 2);  // one bf16 past a 16-byte boundary
  d_k.write(k.bytes.data(), k.bytes.size(), 2);
  d_v.write(v.bytes.data(), v.bytes.size(), 2);
  const void* q1 = static_cast<const char*>(d_q.get()) + 2;
  const void* k1 = static_cast<const char*>(d_k.get()) + 2;
  const void* v1 = static_cast<const char*>(d_v.get()) + 2;

  d_out.poison();
  ASSERT_OK(attention_prefill(act, s, q1, m, start, k1, v1, d_out.get(), nullptr));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  compare(act, reference(s, q.f, m, start, k.f, v.f), download_as_float(act, d_out, m * q_row), "prefill misaligned");

  // Decode of the last token, reading its q row (also misaligned).
  const int64_t ws_floats = attention_decode_workspace_floats(s);
  DeviceBuffer d_ws(static_cast<size_t>(ws_floats) * 4), d_pos(4), d_out1(q_row * 2);
  const int32_t pos = static_cast<int32_t>(start + m - 1);
  d_pos.write(&pos, 4);
  d_out1.poison();
  const void* q_last = static_cast<const char*>(q1) + (m - 1) * q_row * 2;
  ASSERT_OK(attention_decode(act, s, q_last, k1, v1, static_cast<const int32_t*>(d_pos.get()),
                             static_cast<float*>(d_ws.get()), ws_floats, d_out1.get(), nullptr));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> q_last_f(q.f.end() - static_cast<std::ptrdiff_t>(q_row), q.f.end());
  compare(act, reference(s, q_last_f, 1, pos, k.f, v.f), download_as_float(act, d_out1, q_row), "decode misaligned");
}

// ---- argument validation (no device needed) -------------------------------------------------------
TEST(AttentionValidation, RejectsBadArguments) {
  // Never dereferenced: every call below fails its host-side checks first.
  const void* p = reinterpret_cast<const void*>(uintptr_t{0x1000});
  void* out = reinterpret_cast<void*>(uintptr_t{0x2000});
  const auto* pos = reinterpret_cast<const int32_t*>(uintptr_t{0x3000});
  float* ws = reinterpret_cast<float*>(uintptr_t{0x4000});
  const ActType act = ActType::kBF16;
  auto decode = [&](const DeviceAttentionShape& s, int64_t ws_floats) {
    return attention_decode(act, s, p, p, p, pos, ws, ws_floats, out, nullptr).code();
  };
  auto prefill = [&](const DeviceAttentionShape& s, int64_t m, int64_t start) {
    return attention_prefill(act, s, p, m, start, p, p, out, nullptr).code();
  };
  const DeviceAttentionShape good = make_shape(8, 2, 64, 512);
  const int64_t ws_floats = attention_decode_workspace_floats(good);
  EXPECT_EQ(ws_floats, 8 * 2 * (64 + 2));

  EXPECT_EQ(decode(make_shape(8, 2, 63, 512), 1 << 20), StatusCode::kUnsupported);   // odd head_dim
  EXPECT_EQ(decode(make_shape(8, 2, 264, 512), 1 << 20), StatusCode::kUnsupported);  // head_dim > 256
  EXPECT_EQ(decode(make_shape(8, 3, 64, 512), 1 << 20), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode(make_shape(8, 2, 64, 0), 1 << 20), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode(make_shape(8, 2, 64, 512, -1), 1 << 20), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode(good, ws_floats - 1), StatusCode::kInvalidArgument);
  DeviceAttentionShape bad_scale = good;
  bad_scale.scale = std::numeric_limits<float>::infinity();
  EXPECT_EQ(decode(bad_scale, ws_floats), StatusCode::kInvalidArgument);
  bad_scale.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(decode(bad_scale, ws_floats), StatusCode::kInvalidArgument);
  EXPECT_EQ(prefill(bad_scale, 4, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_decode(act, good, p, p, p, nullptr, ws, ws_floats, out, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_decode(static_cast<ActType>(7), good, p, p, p, pos, ws, ws_floats, out, nullptr).code(),
            StatusCode::kInvalidArgument);

  EXPECT_EQ(prefill(make_shape(8, 2, 250 + 9, 512), 4, 0), StatusCode::kUnsupported);
  EXPECT_EQ(prefill(good, 10, 503), StatusCode::kInvalidArgument);  // past max_context
  EXPECT_EQ(prefill(good, -1, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(prefill(good, 1, -1), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_prefill(act, good, nullptr, 4, 0, p, p, out, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(prefill(good, 0, 7), StatusCode::kOk);  // nothing to do, nothing launched
}

}  // namespace
}  // namespace qmodel::runtime::cuda
