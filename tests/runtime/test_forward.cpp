// CPU forward building blocks (RoPE, RMSNorm, attention) against hand computations and naive
// implementations, and the whole Llama graph on tiny in-memory weights against a naive forward
// over dequantized matrices. White-box: includes the runtime's private headers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../../runtime/src/attention.h"
#include "../../runtime/src/forward.h"
#include "../../runtime/src/ops.h"
#include "../../runtime/src/rope.h"
#include "qmodel/format/tensor_roles.h"
#include "qmodel/kernels/ref.h"
#include "qmodel/thread_pool.h"

namespace qmodel::runtime {
namespace {

constexpr double kPi = 3.14159265358979323846;

// ---------------------------------------------------------------------------------------------
// RoPE

TEST(Rope, DefaultFrequencies) {
  format::ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0f;
  auto inv = rope_inv_freq(c, c.head_dim);
  ASSERT_TRUE(inv.ok());
  ASSERT_EQ(inv->size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR((*inv)[i], std::pow(10000.0, -2.0 * i / 8.0), 1e-7) << i;
}

TEST(Rope, LinearDividesByFactor) {
  format::ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0f;
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0f;
  auto inv = rope_inv_freq(c, c.head_dim);
  ASSERT_TRUE(inv.ok());
  for (int i = 0; i < 4; ++i) EXPECT_NEAR((*inv)[i], std::pow(10000.0, -2.0 * i / 8.0) / 4.0, 1e-7) << i;
}

// Llama 3.1 8B: theta 500000, head_dim 128, factor 8, low 1, high 4, original context 8192.
// Hand computation of _compute_llama3_parameters in double: wavelengths below 8192/4 = 2048 keep
// their frequency, above 8192/1 are divided by 8, in between blend with
// s = (8192 / wavelen - 1) / (4 - 1): f' = (1 - s) f / 8 + s f.
TEST(Rope, Llama3ScalingMatchesHandComputedFrequencies) {
  format::ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0f;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto inv = rope_inv_freq(c, c.head_dim);
  ASSERT_TRUE(inv.ok()) << inv.status().to_string();
  ASSERT_EQ(inv->size(), 64u);
  int n_high = 0, n_low = 0, n_mid = 0;
  for (int i = 0; i < 64; ++i) {
    const double f = std::pow(500000.0, -2.0 * i / 128.0);
    const double wavelen = 2 * kPi / f;
    double want;
    if (wavelen < 2048.0) {
      want = f, ++n_high;
    } else if (wavelen > 8192.0) {
      want = f / 8.0, ++n_low;
    } else {
      const double s = (8192.0 / wavelen - 1.0) / 3.0;
      want = (1 - s) * f / 8.0 + s * f, ++n_mid;
    }
    EXPECT_NEAR((*inv)[i], want, 2e-6 * want) << "i=" << i;
  }
  // The three regimes are all exercised (the Llama 3.1 table has each).
  EXPECT_GT(n_high, 0);
  EXPECT_GT(n_low, 0);
  EXPECT_GT(n_mid, 0);
  // Spot values: i = 0 is untouched (f = 1); i = 63 is divided by 8.
  EXPECT_FLOAT_EQ((*inv)[0], 1.0f);
  EXPECT_NEAR((*inv)[63], std::pow(500000.0, -126.0 / 128.0) / 8.0, 1e-12);
}

TEST(Rope, RejectsUnknownTypeAndBadParameters) {
  format::ModelConfig c;
  c.head_dim = 8;
  c.rope_scaling.type = "dynamic";
  c.rope_scaling.factor = 2.0f;
  EXPECT_EQ(rope_inv_freq(c, c.head_dim).status().code(), StatusCode::kUnsupported);
  c.rope_scaling.type = "llama3";  // original_max_position_embeddings missing
  EXPECT_EQ(rope_inv_freq(c, c.head_dim).status().code(), StatusCode::kCorruptFile);
}

TEST(Rope, RotatesHalfPairs) {
  // head_dim 4: pairs (0, 2) and (1, 3); position 1, inv_freq {1, 0.5}.
  const float inv[2] = {1.0f, 0.5f};
  float cs[2], sn[2];
  rope_cos_sin(inv, 2, 1, cs, sn);
  float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  apply_rope(x, 1, 4, 4, cs, sn);
  EXPECT_NEAR(x[0], 1 * std::cos(1.0) - 3 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(1.0) + 1 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(0.5) - 4 * std::sin(0.5), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(0.5) + 2 * std::sin(0.5), 1e-6);
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

TEST(RmsNorm, MatchesHandComputation) {
  const float x[2][4] = {{1, 2, 3, 4}, {-1, 0, 0, 1}};
  const float w[4] = {1.0f, 0.5f, 2.0f, -1.0f};
  float out[2][4];
  const float eps = 1e-5f;
  rmsnorm_rows(&x[0][0], 2, 4, w, eps, &out[0][0]);
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int i = 0; i < 4; ++i) ms += x[r][i] * x[r][i] / 4.0;
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[r][i], w[i] * x[r][i] / std::sqrt(ms + eps), 1e-6);
  }
}

// ---------------------------------------------------------------------------------------------
// Attention

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Full causal GQA attention for positions [start, start + m) computed the obvious way.
std::vector<float> naive_attention(const AttentionShape& s, const std::vector<float>& q, size_t m, size_t start,
                                   const std::vector<float>& k, const std::vector<float>& v) {
  const size_t d = s.head_dim, group = s.n_heads / s.n_kv_heads;
  std::vector<float> out(m * s.n_heads * d, 0.0f);
  for (size_t t = 0; t < m; ++t) {
    const size_t p = start + t;
    for (size_t h = 0; h < s.n_heads; ++h) {
      const size_t kvh = h / group;
      std::vector<double> w;
      std::vector<size_t> js;
      for (size_t j = 0; j <= p; ++j) {
        if (s.sliding_window && p - j >= s.sliding_window) continue;
        double dot = 0;
        for (size_t i = 0; i < d; ++i) dot += q[(t * s.n_heads + h) * d + i] * k[(j * s.n_kv_heads + kvh) * d + i];
        w.push_back(dot / std::sqrt(double(d)));
        js.push_back(j);
      }
      double mx = -1e300, sum = 0;
      for (double x : w) mx = std::max(mx, x);
      for (double& x : w) sum += (x = std::exp(x - mx));
      for (size_t a = 0; a < js.size(); ++a) {
        for (size_t i = 0; i < d; ++i) out[(t * s.n_heads + h) * d + i] += float(w[a] / sum * v[(js[a] * s.n_kv_heads + kvh) * d + i]);
      }
    }
  }
  return out;
}

TEST(Attention, GroupedQueryCausalMatchesNaive) {
  std::mt19937 rng(1);
  for (size_t window : {size_t{0}, size_t{3}}) {
    AttentionShape s;
    s.n_heads = 6;
    s.n_kv_heads = 2;
    s.head_dim = 8;
    s.sliding_window = window;
    const size_t start = 2, m = 5, ctx = start + m;
    const auto q = random_vector(m * s.n_heads * s.head_dim, rng);
    const auto k = random_vector(ctx * s.n_kv_heads * s.head_dim, rng);
    const auto v = random_vector(ctx * s.n_kv_heads * s.head_dim, rng);
    ThreadPool pool(3);
    std::vector<float> scores(pool.size() * ctx), out(q.size());
    attention_cpu(pool, s, q.data(), m, start, k.data(), v.data(), scores.data(), out.data());
    const auto want = naive_attention(s, q, m, start, k, v);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-5) << "window " << window << " i " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// The whole graph on tiny weights

struct TinyWeights {
  format::ModelConfig config;
  format::ArchSpec arch;
  std::vector<std::vector<float>> f32;       // owned fp32 tensors
  std::vector<std::vector<uint8_t>> bytes;   // owned quantized blobs
  ModelWeights views;
};

kernels::WeightView f32_view(TinyWeights& tw, std::vector<float> values, size_t rows, size_t cols) {
  tw.f32.push_back(std::move(values));
  kernels::WeightView w;
  w.storage = StorageType::kF32;
  w.rows = rows;
  w.cols = cols;
  w.data = tw.f32.back().data();
  return w;
}

// NF4, blocksize 64 over the flat index (blocks straddle rows when cols is not a multiple of 64).
kernels::WeightView nf4_view(TinyWeights& tw, const std::vector<float>& values, size_t rows, size_t cols) {
  const size_t n = rows * cols, bs = 64;
  tw.bytes.emplace_back(packed_4bit_bytes(n));
  tw.f32.emplace_back(ceil_div(n, bs));
  kernels::quantize_4bit_ref(StorageType::kNF4, values.data(), n, bs, tw.bytes.back().data(), tw.f32.back().data());
  kernels::WeightView w;
  w.storage = StorageType::kNF4;
  w.rows = rows;
  w.cols = cols;
  w.data = tw.bytes.back().data();
  w.block_size = bs;
  w.code_table = kNf4CodeTable;
  w.absmax = tw.f32.back().data();
  return w;
}

// Tiny Llama (Qwen2-style q/k/v biases when `bias`); `nf4` stores the Linear weights as NF4.
std::unique_ptr<TinyWeights> make_tiny(bool bias, bool nf4, uint32_t seed) {
  auto tw = std::make_unique<TinyWeights>();
  format::ModelConfig& c = tw->config;
  c.architecture = bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  tw->arch = format::llama_arch(c.head_dim, c.hidden_size, c.rms_norm_eps);
  tw->f32.reserve(256);
  tw->bytes.reserve(64);
  std::mt19937 rng(seed);
  const size_t h = 16, q = 16, kv = 8, inter = 40, vocab = 32;
  auto matrix = [&](size_t rows, size_t cols) {
    auto v = random_vector(rows * cols, rng, 0.3f);
    return nf4 ? nf4_view(*tw, v, rows, cols) : f32_view(*tw, v, rows, cols);
  };
  auto norm = [&] {
    auto v = random_vector(h, rng, 0.1f);
    for (float& x : v) x += 1.0f;
    return f32_view(*tw, v, 1, h);
  };
  tw->views.embed = f32_view(*tw, random_vector(vocab * h, rng), vocab, h);
  tw->views.final_norm = norm();
  tw->views.lm_head = matrix(vocab, h);
  tw->views.layers.resize(c.n_layers);
  for (LayerWeights& l : tw->views.layers) {
    l.attn_norm = norm();
    l.mlp_norm = norm();
    l.wq = matrix(q, h);
    l.wk = matrix(kv, h);
    l.wv = matrix(kv, h);
    l.wo = matrix(h, q);
    if (bias) {
      l.bq = f32_view(*tw, random_vector(q, rng, 0.2f), 1, q);
      l.bk = f32_view(*tw, random_vector(kv, rng, 0.2f), 1, kv);
      l.bv = f32_view(*tw, random_vector(kv, rng, 0.2f), 1, kv);
    }
    l.w_gate = matrix(inter, h);
    l.w_up = matrix(inter, h);
    l.w_down = matrix(h, inter);
  }
  return tw;
}

std::vector<float> dense(const kernels::WeightView& w) {
  std::vector<float> out(w.rows * w.cols);
  kernels::dequantize_ref(w, 0, out.size(), out.data());
  return out;
}

// y = x Wᵀ + b over dequantized W, in double.
std::vector<float> naive_linear(const std::vector<float>& x, size_t m, const kernels::WeightView& w,
                                const kernels::WeightView& b) {
  const auto wd = dense(w);
  const auto bd = b.data ? dense(b) : std::vector<float>(w.rows, 0.0f);
  std::vector<float> y(m * w.rows);
  for (size_t t = 0; t < m; ++t) {
    for (size_t r = 0; r < w.rows; ++r) {
      double acc = bd[r];
      for (size_t i = 0; i < w.cols; ++i) acc += double(x[t * w.cols + i]) * wd[r * w.cols + i];
      y[t * w.rows + r] = float(acc);
    }
  }
  return y;
}

std::vector<float> naive_rmsnorm(const std::vector<float>& x, size_t m, size_t n, const kernels::WeightView& w) {
  const auto wd = dense(w);
  std::vector<float> out(x.size());
  for (size_t t = 0; t < m; ++t) {
    double ms = 0;
    for (size_t i = 0; i < n; ++i) ms += double(x[t * n + i]) * x[t * n + i] / n;
    for (size_t i = 0; i < n; ++i) out[t * n + i] = float(wd[i] * x[t * n + i] / std::sqrt(ms + 1e-5));
  }
  return out;
}

void naive_rope(std::vector<float>& x, size_t m, size_t n_heads, size_t d) {
  for (size_t t = 0; t < m; ++t) {
    for (size_t h = 0; h < n_heads; ++h) {
      float* v = &x[(t * n_heads + h) * d];
      for (size_t i = 0; i < d / 2; ++i) {
        const double a = double(t) * std::pow(10000.0, -2.0 * i / d);
        const double x1 = v[i], x2 = v[i + d / 2];
        v[i] = float(x1 * std::cos(a) - x2 * std::sin(a));
        v[i + d / 2] = float(x2 * std::cos(a) + x1 * std::sin(a));
      }
    }
  }
}

// Logits of every position of `ids` (no cache: the whole sequence at once).
std::vector<float> naive_forward(const TinyWeights& tw, const std::vector<int32_t>& ids) {
  const format::ModelConfig& c = tw.config;
  const size_t m = ids.size(), h = c.hidden_size;
  const auto emb = dense(tw.views.embed);
  std::vector<float> x(m * h);
  for (size_t t = 0; t < m; ++t) std::copy(&emb[ids[t] * h], &emb[ids[t] * h] + h, &x[t * h]);
  AttentionShape s;
  s.n_heads = c.n_heads;
  s.n_kv_heads = c.n_kv_heads;
  s.head_dim = c.head_dim;
  for (const LayerWeights& l : tw.views.layers) {
    auto xn = naive_rmsnorm(x, m, h, l.attn_norm);
    auto q = naive_linear(xn, m, l.wq, l.bq), k = naive_linear(xn, m, l.wk, l.bk), v = naive_linear(xn, m, l.wv, l.bv);
    naive_rope(q, m, c.n_heads, c.head_dim);
    naive_rope(k, m, c.n_kv_heads, c.head_dim);
    const auto att = naive_attention(s, q, m, 0, k, v);
    const auto o = naive_linear(att, m, l.wo, l.bo);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    xn = naive_rmsnorm(x, m, h, l.mlp_norm);
    auto g = naive_linear(xn, m, l.w_gate, {}), u = naive_linear(xn, m, l.w_up, {});
    for (size_t i = 0; i < g.size(); ++i) g[i] = float(g[i] / (1.0 + std::exp(-double(g[i]))) * u[i]);
    const auto d = naive_linear(g, m, l.w_down, {});
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  return naive_linear(naive_rmsnorm(x, m, h, tw.views.final_norm), m, tw.views.lm_head, {});
}

void expect_forward_matches_naive(bool bias, bool nf4) {
  auto tw = make_tiny(bias, nf4, 7);
  const std::vector<int32_t> ids = {1, 5, 31, 0, 7, 7, 12, 3, 9};
  const auto want = naive_forward(*tw, ids);
  const size_t vocab = tw->config.vocab_size;
  // Chunk sizes 16 (one pass), 4 (chunked prefill) and 1 (token by token) give the same logits.
  for (size_t chunk : {size_t{16}, size_t{4}, size_t{1}}) {
    for (unsigned threads : {1u, 3u}) {
      ThreadPool pool(threads);
      auto fwd = CpuForward::create(tw->config, tw->arch, tw->views, pool, 32, chunk);
      ASSERT_TRUE(fwd.ok()) << fwd.status().to_string();
      std::vector<float> logits(ids.size() * vocab);
      for (size_t off = 0; off < ids.size(); off += chunk) {
        const size_t m = std::min(chunk, ids.size() - off);
        ASSERT_TRUE((*fwd)->run(ids.data() + off, m, off, true, logits.data() + off * vocab).ok());
      }
      double max_err = 0;
      for (size_t i = 0; i < logits.size(); ++i) max_err = std::max(max_err, double(std::fabs(logits[i] - want[i])));
      EXPECT_LT(max_err, 1e-4) << "bias " << bias << " nf4 " << nf4 << " chunk " << chunk << " threads " << threads;
      // Last-position-only mode returns the last row of the all-positions run (up to rounding:
      // matmul_ref may order an m-row product differently from a 1-row one).
      std::vector<float> last(vocab);
      const size_t m0 = std::min(chunk, ids.size());
      ASSERT_TRUE((*fwd)->run(ids.data(), m0, 0, false, last.data()).ok());
      for (size_t i = 0; i < vocab; ++i) ASSERT_NEAR(last[i], logits[(m0 - 1) * vocab + i], 1e-5);
    }
  }
}

TEST(Forward, LlamaF32MatchesNaive) { expect_forward_matches_naive(false, false); }
TEST(Forward, Qwen2BiasesMatchNaive) { expect_forward_matches_naive(true, false); }
TEST(Forward, Nf4WeightsStraddlingRowsMatchNaiveOverDequantized) { expect_forward_matches_naive(false, true); }

TEST(Forward, OtherThreadCountsGiveBitIdenticalLogits) {
  auto tw = make_tiny(true, true, 3);
  const std::vector<int32_t> ids = {2, 4, 6, 8, 10};
  std::vector<std::vector<float>> results;
  for (unsigned threads : {1u, 2u, 5u}) {
    ThreadPool pool(threads);
    auto fwd = CpuForward::create(tw->config, tw->arch, tw->views, pool, 8, 8);
    ASSERT_TRUE(fwd.ok());
    std::vector<float> logits(ids.size() * tw->config.vocab_size);
    ASSERT_TRUE((*fwd)->run(ids.data(), ids.size(), 0, true, logits.data()).ok());
    results.push_back(logits);
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

}  // namespace
}  // namespace qmodel::runtime
