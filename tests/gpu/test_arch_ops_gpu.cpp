// The device ops of the non-Llama families (runtime/cuda/ops.h: add_norm, activation_mul, split_qkv,
// add_position_rows) against the CPU backend's references (runtime/src/ops.h) for bf16, fp16 and
// fp32 activations, on seeded random inputs at awkward sizes (n = 1, 7, 260, 4096; m = 1, 3, 7),
// outputs poisoned with NaN before each launch. Bounds, per dtype:
//  - add_norm: the residual adds are bit-exact (add_inplace once or twice), so is the write-back
//    of "no norm" and out = act(x) then. RMSNorm as add_rmsnorm (4e-6 relative for fp32, one ulp
//    of bf16 / fp16), and bit-identical to add_rmsnorm itself. LayerNorm: the fp32 block sums
//    (mean, then squared deviations; the CPU sums in double) err by <= gamma = (n / threads + 5 +
//    threads / 32) * 2^-24 (<= 1.8e-6 at n = 4096) of sum |x| and of the variance, so an output
//    y = (x - mean) * inv * w + b is within 4e-6 * (|y| + |w| inv (|x - mean| + mean |x|)) of the
//    CPU's (the mean |x| term: the error of the mean, large next to the spread when the row has an
//    offset; tested with offset rows), plus one ulp of bf16 / fp16 after rounding; the write-back
//    (fp32 y) within the fp32 bound.
//  - activation_mul: the same fp32 expressions, unfused; expf / erff / tanhf within 2 ulp of libm:
//    1e-6 relative for fp32 (one ulp of bf16 / fp16) plus, for the GELUs, 8 * 2^-24 * |x u| / 2
//    (1 + erf / 1 + tanh cancel for negative x: the libm error is absolute there). ReLU exact.
//  - split_qkv and add_position_rows: bit-exact (copies; fp32 adds as add_inplace). Rows of the
//    position table outside [0, rows) leave x untouched.
// Skips (GTEST_SKIP) without a CUDA device (or the emulator); the argument-validation test runs
// everywhere because rejected calls never touch the device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/ops.h"
#include "gpu_test_util.h"
#include "qmodel/format/architecture.h"
#include "qmodel/format/half.h"
#include "src/ops.h"

namespace qmodel::runtime {
namespace {

using format::Activation;
using format::NormKind;
using format::QkvLayout;
using kernels::ActType;

// |got - ref| <= tol[i] (NaN fails); reports the first few failures.
void expect_within(const std::vector<float>& got, const std::vector<float>& ref, const std::vector<double>& tol,
                   const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  int failures = 0;
  for (size_t i = 0; i < ref.size() && failures < 5; ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (!(diff <= tol[i])) {
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << ", want " << ref[i] << " (tol " << tol[i] << ")";
      ++failures;
    }
  }
}

// ---- add_norm -----------------------------------------------------------------------------------
struct NormCase {
  const char* name;
  bool has_norm;
  NormKind kind;
  bool weight, bias;
};

constexpr NormCase kNorms[] = {
    {"none", false, NormKind::kRMSNorm, false, false},
    {"rms", true, NormKind::kRMSNorm, true, false},
    {"layer", true, NormKind::kLayerNorm, true, true},
    {"layer_w", true, NormKind::kLayerNorm, true, false},
    {"layer_plain", true, NormKind::kLayerNorm, false, false},
};

// Residual variants: which deltas, and write_back.
struct ResidualCase {
  bool delta, delta2, write_back;
};
constexpr ResidualCase kResiduals[] = {
    {false, false, false}, {true, false, true}, {true, true, false}, {false, true, true}, {true, true, true}};

TEST(AddNorm, MatchesNormRows) {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t m, n;
    float offset;  // row mean: LayerNorm's cancellation
  };
  const Shape shapes[] = {{1, 1, 0.3f}, {3, 7, 0.3f}, {7, 260, 0.3f}, {3, 260, 8.0f}, {2, 4096, 0.3f}};
  uint32_t seed = 1000;
  for (ActType act : kActs) {
    const size_t ab = act_size(act);
    for (const Shape& s : shapes) {
      for (const NormCase& nc : kNorms) {
        for (const ResidualCase& rc : kResiduals) {
          const std::string what = std::string(act_name(act)) + " m=" + std::to_string(s.m) + " n=" +
                                   std::to_string(s.n) + " offset " + std::to_string(s.offset) + " " + nc.name +
                                   (rc.delta ? " +delta" : "") + (rc.delta2 ? " +delta2" : "") +
                                   (rc.write_back ? " write_back" : "");
          const size_t count = static_cast<size_t>(s.m * s.n), n = static_cast<size_t>(s.n);
          const std::vector<float> x = normal(count, ++seed, 2.0f, s.offset);
          const std::vector<uint8_t> delta = encode(act, normal(count, ++seed, 1.0f));
          const std::vector<uint8_t> delta2 = encode(act, normal(count, ++seed, 0.5f));
          const std::vector<float> weight = normal(n, ++seed, 0.2f, 1.0f), bias = normal(n, ++seed, 0.5f);
          const float eps = 1e-5f;

          std::vector<float> x_ref = x;
          if (rc.delta) add_inplace(x_ref.data(), decode(act, delta).data(), count);
          if (rc.delta2) add_inplace(x_ref.data(), decode(act, delta2).data(), count);
          std::vector<float> y_ref = x_ref;
          const float* w = nc.weight ? weight.data() : nullptr;
          const float* b = nc.bias ? bias.data() : nullptr;
          if (nc.has_norm) norm_rows(nc.kind, x_ref.data(), static_cast<size_t>(s.m), n, w, b, eps, y_ref.data());

          // Per element fp32 bound (act ulps added below).
          std::vector<double> tol32(count, 0.0);
          if (nc.has_norm && nc.kind == NormKind::kRMSNorm) {
            for (size_t i = 0; i < count; ++i) tol32[i] = 4e-6 * std::fabs(y_ref[i]);
          } else if (nc.has_norm) {
            for (size_t r = 0; r < static_cast<size_t>(s.m); ++r) {
              const float* xr = x_ref.data() + r * n;
              double mean = 0.0, mean_abs = 0.0, var = 0.0;
              for (size_t i = 0; i < n; ++i) mean += xr[i], mean_abs += std::fabs(xr[i]);
              mean /= static_cast<double>(n);
              mean_abs /= static_cast<double>(n);
              for (size_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
              const double inv = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
              for (size_t i = 0; i < n; ++i) {
                const double wi = w != nullptr ? std::fabs(w[i]) : 1.0;
                tol32[r * n + i] =
                    4e-6 * (std::fabs(y_ref[r * n + i]) + wi * inv * (std::fabs(xr[i] - mean) + mean_abs));
              }
            }
          }

          DeviceBuffer d_x = DeviceBuffer::upload(x), d_delta = DeviceBuffer::upload(delta),
                       d_delta2 = DeviceBuffer::upload(delta2), d_w = DeviceBuffer::upload(weight),
                       d_b = DeviceBuffer::upload(bias), d_out(count * ab);
          d_out.poison();
          cuda::DeviceNorm norm;
          norm.kind = nc.kind;
          norm.weight = nc.weight ? d_w.as<float>() : nullptr;
          norm.bias = nc.bias ? d_b.as<float>() : nullptr;
          norm.eps = eps;
          ASSERT_OK(cuda::add_norm(act, nc.has_norm ? &norm : nullptr, d_x.as<float>(),
                                   rc.delta ? d_delta.get() : nullptr, rc.delta2 ? d_delta2.get() : nullptr, s.m,
                                   s.n, rc.write_back, d_out.get(), nullptr));
          const std::vector<float> x_got = d_x.download<float>(count);
          const std::vector<float> got = decode(act, d_out.download<uint8_t>(count * ab));
          if (!nc.has_norm) {  // y = x: everything bit-exact
            EXPECT_EQ(0, std::memcmp(x_got.data(), x_ref.data(), count * 4)) << what << ": residual";
            EXPECT_EQ(0, std::memcmp(got.data(), round_to(act, x_ref).data(), count * 4)) << what << ": out";
            continue;
          }
          if (rc.write_back) {
            expect_within(x_got, y_ref, tol32, what + " write-back");
          } else {
            EXPECT_EQ(0, std::memcmp(x_got.data(), x_ref.data(), count * 4)) << what << ": residual not bit-exact";
          }
          if (act == ActType::kF32) {
            expect_within(got, y_ref, tol32, what);
          } else {
            const std::vector<float> rounded = round_to(act, y_ref);
            std::vector<double> tol(count);
            for (size_t i = 0; i < count; ++i) tol[i] = tol32[i] + ulp(act, std::fabs(rounded[i]));
            expect_within(got, rounded, tol, what);
          }
        }
      }
    }
  }
}

// RMSNorm without delta2 or write-back is add_rmsnorm, bit for bit (residual and output).
TEST(AddNorm, RmsIsAddRmsnormBitForBit) {
  SKIP_WITHOUT_GPU();
  uint32_t seed = 1100;
  for (ActType act : kActs) {
    for (int64_t n : {int64_t{7}, int64_t{260}, int64_t{4096}}) {
      const int64_t m = 3;
      const size_t count = static_cast<size_t>(m * n), ab = act_size(act);
      const std::vector<float> x = normal(count, ++seed, 2.0f, 0.3f);
      const std::vector<float> weight = normal(static_cast<size_t>(n), ++seed, 0.2f, 1.0f);
      const std::vector<uint8_t> delta = encode(act, normal(count, ++seed, 1.0f));
      DeviceBuffer d_x1 = DeviceBuffer::upload(x), d_x2 = DeviceBuffer::upload(x);
      DeviceBuffer d_delta = DeviceBuffer::upload(delta), d_w = DeviceBuffer::upload(weight);
      DeviceBuffer d_o1(count * ab), d_o2(count * ab);
      d_o1.poison();
      d_o2.poison();
      cuda::DeviceNorm norm;
      norm.kind = NormKind::kRMSNorm;
      norm.weight = d_w.as<float>();
      norm.eps = 1e-6f;
      ASSERT_OK(cuda::add_rmsnorm(act, d_x1.as<float>(), d_delta.get(), m, n, d_w.as<float>(), 1e-6f, d_o1.get(),
                                  nullptr));
      ASSERT_OK(cuda::add_norm(act, &norm, d_x2.as<float>(), d_delta.get(), nullptr, m, n, false, d_o2.get(), nullptr));
      EXPECT_EQ(d_x1.download<uint8_t>(count * 4), d_x2.download<uint8_t>(count * 4)) << act_name(act) << " n=" << n;
      EXPECT_EQ(d_o1.download<uint8_t>(count * ab), d_o2.download<uint8_t>(count * ab)) << act_name(act) << " n=" << n;
    }
  }
}

// ---- activation_mul -----------------------------------------------------------------------------
TEST(ActivationMul, MatchesActivate) {
  SKIP_WITHOUT_GPU();
  const Activation fns[] = {Activation::kSilu, Activation::kGeluExact, Activation::kGeluTanh, Activation::kRelu};
  uint32_t seed = 1200;
  for (ActType act : kActs) {
    const size_t ab = act_size(act);
    for (Activation fn : fns) {
      for (bool with_up : {true, false}) {
        for (int64_t count : {1, 7, 260, 4099}) {
          // 0 aligned, 1 misaligned by one element, 2 out = gate, 3 out = up (or gate without up)
          for (int variant = 0; variant < 4; ++variant) {
            const std::string what = std::string(act_name(act)) + " " + format::activation_name(fn) +
                                     (with_up ? " *up" : "") + " count=" + std::to_string(count) + " variant " +
                                     std::to_string(variant);
            const size_t n = static_cast<size_t>(count), off = variant == 1 ? 1 : 0;
            const std::vector<float> g = round_to(act, normal(n, ++seed, 4.0f));
            const std::vector<float> u = round_to(act, normal(n, ++seed, 1.0f));
            std::vector<float> ref = g;
            activation_mul(fn, ref.data(), with_up ? u.data() : nullptr, n);
            const bool gelu = fn == Activation::kGeluExact || fn == Activation::kGeluTanh;
            std::vector<double> tol(n);
            const std::vector<float> want = act == ActType::kF32 ? ref : round_to(act, ref);
            for (size_t i = 0; i < n; ++i) {
              const double magnitude = 0.5 * std::fabs(g[i]) * (with_up ? std::fabs(u[i]) : 1.0);
              const double cancel = gelu ? 8.0 * std::ldexp(magnitude, -24) : 0.0;
              tol[i] = cancel + (act == ActType::kF32 ? 1e-6 * std::fabs(ref[i]) : ulp(act, std::fabs(want[i])));
            }

            std::vector<uint8_t> g_bytes((n + off) * ab, 0), u_bytes((n + off) * ab, 0);
            const std::vector<uint8_t> ge = encode(act, g), ue = encode(act, u);
            std::copy(ge.begin(), ge.end(), g_bytes.begin() + static_cast<std::ptrdiff_t>(off * ab));
            std::copy(ue.begin(), ue.end(), u_bytes.begin() + static_cast<std::ptrdiff_t>(off * ab));
            DeviceBuffer d_g = DeviceBuffer::upload(g_bytes), d_u = DeviceBuffer::upload(u_bytes), d_o((n + off) * ab);
            d_o.poison();
            uint8_t* gp = d_g.as<uint8_t>() + off * ab;
            uint8_t* up = d_u.as<uint8_t>() + off * ab;
            const DeviceBuffer* result = &d_o;
            uint8_t* op = d_o.as<uint8_t>() + off * ab;
            if (variant == 2 || (variant == 3 && !with_up)) {
              op = gp, result = &d_g;
            } else if (variant == 3) {
              op = up, result = &d_u;
            }
            ASSERT_OK(cuda::activation_mul(act, fn, gp, with_up ? up : nullptr, count, op, nullptr));
            const std::vector<uint8_t> all = result->download<uint8_t>((n + off) * ab);
            const std::vector<float> got =
                decode(act, std::vector<uint8_t>(all.begin() + static_cast<std::ptrdiff_t>(off * ab), all.end()));
            expect_within(got, want, tol, what);
          }
        }
      }
    }
  }
}

// SiLU with up is silu_mul (same expression); the generic path agrees with it bit for bit.
TEST(ActivationMul, SiluIsSiluMul) {
  SKIP_WITHOUT_GPU();
  for (ActType act : kActs) {
    const size_t n = 1031, ab = act_size(act);
    const std::vector<uint8_t> g = encode(act, normal(n, 1300, 4.0f)), u = encode(act, normal(n, 1301, 1.0f));
    DeviceBuffer d_g = DeviceBuffer::upload(g), d_u = DeviceBuffer::upload(u), d_o1(n * ab), d_o2(n * ab);
    ASSERT_OK(cuda::silu_mul(act, d_g.get(), d_u.get(), static_cast<int64_t>(n), d_o1.get(), nullptr));
    ASSERT_OK(cuda::activation_mul(act, Activation::kSilu, d_g.get(), d_u.get(), static_cast<int64_t>(n), d_o2.get(),
                                   nullptr));
    EXPECT_EQ(d_o1.download<uint8_t>(n * ab), d_o2.download<uint8_t>(n * ab)) << act_name(act);
  }
}

// ---- split_qkv ----------------------------------------------------------------------------------
struct SplitCase {
  QkvLayout layout;
  int32_t n_heads, n_kv, head_dim;
};

TEST(SplitQkv, MatchesCpuBitForBit) {
  SKIP_WITHOUT_GPU();
  const SplitCase cases[] = {
      {QkvLayout::kConcat, 4, 4, 8},      // GPT-2
      {QkvLayout::kConcat, 6, 2, 6},      // GQA, 12-byte heads in 16-bit
      {QkvLayout::kPerHead, 3, 3, 10},    // GPT-NeoX / BLOOM
      {QkvLayout::kPerHead, 2, 2, 64},
      {QkvLayout::kGroupedKv, 8, 2, 8},   // Falcon new arch
      {QkvLayout::kGroupedKv, 6, 1, 4},   // Falcon-7B MQA
      {QkvLayout::kGroupedKv, 4, 4, 6},   // group 1
      {QkvLayout::kGroupedKv, 12, 3, 1},  // head_dim 1: 2-byte units
  };
  uint32_t seed = 1400;
  for (ActType act : kActs) {
    const size_t ab = act_size(act);
    for (const SplitCase& c : cases) {
      for (int64_t m : {int64_t{1}, int64_t{7}}) {
        for (size_t off : {size_t{0}, size_t{1}}) {  // element offset of every pointer
          const std::string what = std::string(act_name(act)) + " " + format::qkv_layout_name(c.layout) + " h" +
                                   std::to_string(c.n_heads) + " kv" + std::to_string(c.n_kv) + " d" +
                                   std::to_string(c.head_dim) + " m=" + std::to_string(m) + " offset " +
                                   std::to_string(off);
          const size_t d = static_cast<size_t>(c.head_dim), q_dim = static_cast<size_t>(c.n_heads) * d,
                       kv_dim = static_cast<size_t>(c.n_kv) * d, rows = static_cast<size_t>(m);
          const std::vector<float> qkv = round_to(act, normal(rows * (q_dim + 2 * kv_dim), ++seed, 1.0f));
          std::vector<float> q(rows * q_dim), k(rows * kv_dim), v(rows * kv_dim);
          split_qkv(c.layout, qkv.data(), rows, static_cast<size_t>(c.n_heads), static_cast<size_t>(c.n_kv), d,
                    q.data(), k.data(), v.data());

          std::vector<uint8_t> src(off * ab);
          const std::vector<uint8_t> enc = encode(act, qkv);
          src.insert(src.end(), enc.begin(), enc.end());
          DeviceBuffer d_qkv = DeviceBuffer::upload(src), d_q((off + q.size()) * ab), d_k((off + k.size()) * ab),
                       d_v((off + v.size()) * ab);
          d_q.poison();
          d_k.poison();
          d_v.poison();
          cuda::DeviceAttentionShape shape;
          shape.n_heads = c.n_heads;
          shape.n_kv_heads = c.n_kv;
          shape.head_dim = c.head_dim;
          shape.max_context = 1;
          ASSERT_OK(cuda::split_qkv(act, c.layout, d_qkv.as<uint8_t>() + off * ab, m, shape,
                                    d_q.as<uint8_t>() + off * ab, d_k.as<uint8_t>() + off * ab,
                                    d_v.as<uint8_t>() + off * ab, nullptr));
          auto check = [&](const DeviceBuffer& buf, const std::vector<float>& want, const char* name) {
            const std::vector<uint8_t> all = buf.download<uint8_t>((off + want.size()) * ab);
            EXPECT_TRUE(std::all_of(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(off * ab),
                                    [](uint8_t x) { return x == 0xff; }))
                << what << ": " << name << " written before its start";
            const std::vector<uint8_t> got(all.begin() + static_cast<std::ptrdiff_t>(off * ab), all.end());
            EXPECT_EQ(got, encode(act, want)) << what << ": " << name;
          };
          check(d_q, q, "q");
          check(d_k, k, "k");
          check(d_v, v, "v");
        }
      }
    }
  }
}

// ---- add_position_rows --------------------------------------------------------------------------
TEST(AddPositionRows, AddsTableRowsBitForBit) {
  SKIP_WITHOUT_GPU();
  struct Case {
    int64_t m, n;
    int32_t start, offset;
  };
  const int64_t rows = 12;
  const Case cases[] = {
      {1, 1, 0, 0}, {3, 7, 4, 2}, {7, 260, 0, 2}, {1, 260, 9, 2},  // OPT's offset 2: the last row
      {7, 7, 8, 0},                                                // rows 12..14 past the table
      {3, 7, -3, 2},                                               // row -1 before it
  };
  const StorageType storages[] = {StorageType::kF32, StorageType::kF16, StorageType::kBF16};
  uint32_t seed = 1500;
  for (StorageType st : storages) {
    for (const Case& c : cases) {
      const std::string what = std::string(storage_type_name(st)) + " m=" + std::to_string(c.m) + " n=" +
                               std::to_string(c.n) + " start=" + std::to_string(c.start) + " offset=" +
                               std::to_string(c.offset);
      const size_t n = static_cast<size_t>(c.n), count = static_cast<size_t>(c.m) * n;
      const ActType as_act =
          st == StorageType::kF32 ? ActType::kF32 : (st == StorageType::kF16 ? ActType::kF16 : ActType::kBF16);
      const std::vector<float> table = round_to(as_act, normal(static_cast<size_t>(rows) * n, ++seed, 0.5f));
      const std::vector<float> x = normal(count, ++seed, 1.0f);
      std::vector<float> want = x;
      for (int64_t t = 0; t < c.m; ++t) {
        const int64_t r = int64_t{c.start} + c.offset + t;
        if (r < 0 || r >= rows) continue;
        add_inplace(want.data() + static_cast<size_t>(t) * n, table.data() + static_cast<size_t>(r) * n, n);
      }
      DeviceBuffer d_table = DeviceBuffer::upload(encode(as_act, table)), d_x = DeviceBuffer::upload(x),
                   d_pos = DeviceBuffer::upload(std::vector<int32_t>{c.start});
      kernels::DeviceWeightView view;
      view.storage = st;
      view.rows = rows;
      view.cols = c.n;
      view.data = d_table.get();
      ASSERT_OK(cuda::add_position_rows(view, d_pos.as<int32_t>(), c.offset, c.m, c.n, d_x.as<float>(), nullptr));
      const std::vector<float> got = d_x.download<float>(count);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), count * 4)) << what;
    }
  }
}

// One capture, replayed for several positions written to device memory (a decode graph).
TEST(AddPositionRows, CapturedGraphReadsThePosition) {
  SKIP_WITHOUT_GPU();
  const int64_t rows = 20, n = 9;
  const std::vector<float> table = normal(static_cast<size_t>(rows * n), 1600, 0.5f), x = normal(n, 1601, 1.0f);
  DeviceBuffer d_table = DeviceBuffer::upload(table), d_x(n * 4), d_pos(4);
  kernels::DeviceWeightView view;
  view.storage = StorageType::kF32;
  view.rows = rows;
  view.cols = n;
  view.data = d_table.get();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  cudaGraph_t graph = nullptr;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    (void)cudaGetLastError();
    cudaStreamDestroy(stream);
    GTEST_SKIP() << "stream capture not available";
  }
  const Status st = cuda::add_position_rows(view, d_pos.as<int32_t>(), 2, 1, n, d_x.as<float>(), stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_OK(st);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int32_t pos : {0, 17, 5}) {
    d_x.write(x);
    d_pos.write(std::vector<int32_t>{pos});
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<float> want = x;
    add_inplace(want.data(), table.data() + static_cast<size_t>(pos + 2) * n, static_cast<size_t>(n));
    const std::vector<float> got = d_x.download<float>(static_cast<size_t>(n));
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), static_cast<size_t>(n) * 4)) << "position " << pos;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// ---- argument validation (no device needed) -----------------------------------------------------
TEST(ArchOps, LaunchersValidateArguments) {
  void* p = reinterpret_cast<void*>(uintptr_t{256});  // never dereferenced: every call below is rejected
  float* f = static_cast<float*>(p);
  const int32_t* pos = static_cast<const int32_t*>(p);
  auto code = [](const Status& s) { return s.code(); };
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument, kUnsupported = StatusCode::kUnsupported;
  const ActType bad_act = static_cast<ActType>(9);

  cuda::DeviceNorm rms;
  rms.kind = NormKind::kRMSNorm;
  rms.weight = f;
  cuda::DeviceNorm layer;
  layer.kind = NormKind::kLayerNorm;
  EXPECT_EQ(code(cuda::add_norm(ActType::kBF16, &rms, nullptr, p, p, 1, 8, false, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_norm(ActType::kBF16, &rms, f, p, p, 1, 8, false, nullptr, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_norm(ActType::kBF16, &rms, f, p, p, 0, 8, false, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_norm(ActType::kBF16, &layer, f, p, p, 1, -1, true, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_norm(bad_act, &layer, f, p, p, 1, 8, false, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_norm(ActType::kBF16, nullptr, f, p, p, int64_t{1} << 40, 8, false, p, nullptr)),
            kUnsupported);
  cuda::DeviceNorm bad = rms;
  bad.weight = nullptr;  // RMSNorm needs its weight
  EXPECT_EQ(code(cuda::add_norm(ActType::kF32, &bad, f, nullptr, nullptr, 1, 8, false, p, nullptr)), kInvalid);
  bad.kind = static_cast<NormKind>(7);
  bad.weight = f;
  EXPECT_EQ(code(cuda::add_norm(ActType::kF32, &bad, f, nullptr, nullptr, 1, 8, false, p, nullptr)), kInvalid);

  EXPECT_EQ(code(cuda::activation_mul(ActType::kF16, Activation::kGeluTanh, nullptr, p, 4, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::activation_mul(ActType::kF16, Activation::kRelu, p, nullptr, 4, nullptr, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::activation_mul(ActType::kF16, Activation::kSilu, p, p, 0, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::activation_mul(bad_act, Activation::kSilu, p, p, 4, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::activation_mul(ActType::kF32, static_cast<Activation>(9), p, p, 4, p, nullptr)), kInvalid);

  cuda::DeviceAttentionShape s;
  s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 8, s.max_context = 1;
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kSeparate, p, 1, s, p, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, static_cast<QkvLayout>(9), p, 1, s, p, p, p, nullptr)), kInvalid);
  // kPerHead needs n_kv == n_heads
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kPerHead, p, 1, s, p, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kConcat, nullptr, 1, s, p, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kConcat, p, 1, s, p, p, nullptr, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kConcat, p, 0, s, p, p, p, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::split_qkv(bad_act, QkvLayout::kConcat, p, 1, s, p, p, p, nullptr)), kInvalid);
  cuda::DeviceAttentionShape bad_s = s;
  bad_s.n_kv_heads = 3;
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kGroupedKv, p, 1, bad_s, p, p, p, nullptr)), kInvalid);
  bad_s = s;
  bad_s.head_dim = 0;
  EXPECT_EQ(code(cuda::split_qkv(ActType::kF16, QkvLayout::kConcat, p, 1, bad_s, p, p, p, nullptr)), kInvalid);

  kernels::DeviceWeightView table;
  table.storage = StorageType::kF16;
  table.rows = 10;
  table.cols = 8;
  table.data = p;
  EXPECT_EQ(code(cuda::add_position_rows(table, nullptr, 0, 1, 8, f, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_position_rows(table, pos, 0, 1, 8, nullptr, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_position_rows(table, pos, 0, 0, 8, f, nullptr)), kInvalid);
  EXPECT_EQ(code(cuda::add_position_rows(table, pos, 0, 1, 7, f, nullptr)), kInvalid);  // width != n
  kernels::DeviceWeightView bad_table = table;
  bad_table.data = nullptr;
  EXPECT_EQ(code(cuda::add_position_rows(bad_table, pos, 0, 1, 8, f, nullptr)), kInvalid);
  bad_table = table;
  bad_table.storage = StorageType::kNF4;
  EXPECT_EQ(code(cuda::add_position_rows(bad_table, pos, 0, 1, 8, f, nullptr)), kUnsupported);
  bad_table.storage = StorageType::kINT8;
  EXPECT_EQ(code(cuda::add_position_rows(bad_table, pos, 0, 1, 8, f, nullptr)), kUnsupported);
}

}  // namespace
}  // namespace qmodel::runtime
