// CUDA kernels (qmodel/kernels/cuda.h) against the CPU references (ref.h) on fresh normally
// distributed weights quantized with the _ref quantizers: dequantize (bit-exact), decode GEMV and
// prefill GEMM (tolerance + NMSE, bounds below), for NF4, NF4+DQ, FP4, FP4+DQ, INT8 and BF16
// weights at awkward shapes. Every output is poisoned with NaN before the launch, so an element the
// kernel never writes fails. Skips (GTEST_SKIP) without a GPU; the launcher-validation test runs
// everywhere because rejected calls never touch the device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/stored_weight.h"
#include "qmodel/format/half.h"
#include "qmodel/kernels/cuda.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

using testing_store = qmodel::kernels::testing::Stored;

using gpu_test::DeviceBuffer;

// ---- weights --------------------------------------------------------------------------------------
struct Kind {
  const char* name;
  StorageType storage;
  bool double_quant;
};
constexpr Kind kKinds[] = {
    {"nf4", StorageType::kNF4, false}, {"nf4dq", StorageType::kNF4, true},
    {"fp4", StorageType::kFP4, false}, {"fp4dq", StorageType::kFP4, true},
    {"int8", StorageType::kINT8, false}, {"bf16", StorageType::kBF16, false},
};

// A weight quantized on the host (reference blobs + view) and the same blobs on the device.
struct GpuWeight {
  testing_store host;
  DeviceBuffer data, absmax, absmax_codes, nested_absmax, dyn, scb;
  DeviceWeightView view;
};

std::vector<float> normal_floats(size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

GpuWeight make_weight(const Kind& kind, int64_t rows, int64_t cols, int64_t bs, uint32_t seed) {
  const auto w = normal_floats(static_cast<size_t>(rows * cols), seed, 1.0f);
  GpuWeight g;
  g.host = testing::store(kind.storage, w, static_cast<size_t>(rows), static_cast<size_t>(cols),
                          static_cast<size_t>(bs), kind.double_quant);
  const WeightView& hv = g.host.view;
  g.data = DeviceBuffer::upload(g.host.data);
  DeviceWeightView& v = g.view;
  v.storage = kind.storage;
  v.rows = rows;
  v.cols = cols;
  v.data = g.data.get();
  if (is_4bit(kind.storage)) {
    v.block_size = bs;
    std::memcpy(v.code_table, hv.code_table, sizeof(v.code_table));
    if (kind.double_quant) {
      g.absmax_codes = DeviceBuffer::upload(g.host.absmax_codes);
      g.nested_absmax = DeviceBuffer::upload(g.host.nested_absmax);
      g.dyn = DeviceBuffer::upload(g.host.dyn);
      v.absmax_codes = g.absmax_codes.as<uint8_t>();
      v.nested_absmax = g.nested_absmax.as<float>();
      v.nested_code_table = g.dyn.as<float>();
      v.nested_block_size = static_cast<int64_t>(hv.nested_block_size);
      v.nested_offset = hv.nested_offset;
    } else {
      g.absmax = DeviceBuffer::upload(g.host.absmax);
      v.absmax = g.absmax.as<float>();
    }
  } else if (kind.storage == StorageType::kINT8) {
    g.scb = DeviceBuffer::upload(g.host.scb);
    v.row_scale = g.scb.as<float>();
  }
  return g;
}

// Activations rounded to the activation type, as uint16 bits.
std::vector<uint16_t> make_activations(ActType act, size_t n, uint32_t seed) {
  const auto f = normal_floats(n, seed, 1.0f);
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = act == ActType::kBF16 ? float_to_bf16(f[i]) : float_to_f16(f[i]);
  return h;
}

float act_to_float(ActType act, uint16_t h) { return act == ActType::kBF16 ? bf16_to_float(h) : f16_to_float(h); }

// ---- tolerance ---------------------------------------------------------------------------------
// |gpu - ref| <= atol + rtol * |ref| per output, where both sides round an fp32 sum once:
//  - rtol = one ulp of the output type relative to the value: bf16 2^-7, fp16 2^-10 (two fp32
//    sums a hair apart can round to neighbouring 16-bit values);
//  - atol = accumulation-order slack 2^-14 * sum_k |x_k w_k| (fp32 sums in a different order, the
//    4-bit chunk dot scaled by absmax once per chunk instead of per weight, int8 scaled per row:
//    each reassociation moves the sum by a few fp32 ulps of the terms; 2^-14 is ~K*2^-24 at
//    K = 1024 and far above the ~sqrt(K)*2^-24 seen in practice);
//  - GEMM adds the rounding of the dequantized weight to the scratch type (bf16 |dw| <= 2^-9|w|,
//    fp16 2^-12|w|): random per weight, so 8 sigma of that walk, 8 * u * sqrt(sum (x w)^2);
//    and NMSE sum (gpu-ref)^2 / sum ref^2 <= 4 u^2 (expected about u^2/3 + output rounding).
struct Bound {
  double rtol, accum, weight_round;
};
Bound bound_for(ActType act, bool gemm, bool weight_in_place) {
  const double rtol = act == ActType::kBF16 ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
  const double u = (!gemm || weight_in_place) ? 0.0 : (act == ActType::kBF16 ? std::ldexp(1.0, -9) : std::ldexp(1.0, -12));
  return {rtol, std::ldexp(1.0, -14), u};
}

// Compares gpu output y[m, n] (16-bit bits) with matmul_ref's, using the fp32 dequantized weight
// for the per-output scales. Returns the NMSE.
double compare_matmul(ActType act, const std::vector<uint16_t>& x, int64_t m, const std::vector<float>& wf,
                      int64_t n, int64_t k, const std::vector<uint16_t>& ref, const std::vector<uint16_t>& gpu,
                      const Bound& b, const std::string& what) {
  double err2 = 0.0, ref2 = 0.0;
  int n_bad = 0;
  std::vector<float> xf(static_cast<size_t>(m * k));
  for (size_t i = 0; i < xf.size(); ++i) xf[i] = act_to_float(act, x[i]);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double s1 = 0.0, s2 = 0.0;
      const float* xr = xf.data() + i * k;
      const float* wr = wf.data() + r * k;
      for (int64_t kk = 0; kk < k; ++kk) {
        const double t = static_cast<double>(xr[kk]) * wr[kk];
        s1 += std::fabs(t);
        s2 += t * t;
      }
      const double rv = act_to_float(act, ref[static_cast<size_t>(i * n + r)]);
      const double gv = act_to_float(act, gpu[static_cast<size_t>(i * n + r)]);
      const double tol = b.accum * s1 + 8.0 * b.weight_round * std::sqrt(s2) + b.rtol * std::fabs(rv);
      const double diff = std::fabs(gv - rv);
      if (!(diff <= tol)) {  // NaN (an unwritten, poisoned output) fails too
        if (++n_bad <= 5) {
          ADD_FAILURE() << what << ": y[" << i << ", " << r << "] gpu " << gv << " ref " << rv << " |diff| " << diff
                        << " > tol " << tol;
        }
      }
      err2 += (gv - rv) * (gv - rv);
      ref2 += rv * rv;
    }
  }
  EXPECT_EQ(n_bad, 0) << what;
  return ref2 > 0 ? err2 / ref2 : err2;
}

struct ShapeParam {
  int kind;
  int64_t block_size, n, k;
};

std::string param_name(const ::testing::TestParamInfo<ShapeParam>& info) {
  const ShapeParam& p = info.param;
  return std::string(kKinds[p.kind].name) + "_bs" + std::to_string(p.block_size) + "_n" + std::to_string(p.n) +
         "_k" + std::to_string(p.k);
}

// 4-bit kinds sweep the block sizes; INT8 and BF16 have none (block_size 0 in the name).
std::vector<ShapeParam> sweep(const std::vector<int64_t>& ns, const std::vector<int64_t>& ks,
                              const std::vector<int64_t>& block_sizes) {
  std::vector<ShapeParam> out;
  for (int kind = 0; kind < static_cast<int>(std::size(kKinds)); ++kind) {
    const bool four_bit = is_4bit(kKinds[kind].storage);
    for (int64_t bs : four_bit ? block_sizes : std::vector<int64_t>{0}) {
      for (int64_t k : ks) {
        for (int64_t n : ns) out.push_back({kind, bs, n, k});
      }
    }
  }
  return out;
}

uint32_t seed_of(const ShapeParam& p, uint32_t salt) {
  return static_cast<uint32_t>(p.kind * 1000003 + p.block_size * 7919 + p.n * 131 + p.k * 17) ^ salt;
}

// ---- dequantize: bit-exact ----------------------------------------------------------------------
class DequantizeVsRef : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(DequantizeVsRef, BitExactForAnyRange) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 1));
  const int64_t n = p.n * p.k;
  // Whole tensor, then ranges starting mid-byte, mid-block and mid-row, and ending likewise.
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, n}, {1, n - 2}, {n / 2 | 1, n / 3}, {8, n - 11}, {std::min<int64_t>(n - 1, 37), 1}};
  for (const auto& [first, count] : ranges) {
    if (first < 0 || count <= 0 || first + count > n) continue;
    std::vector<float> ref(static_cast<size_t>(count));
    dequantize_ref(g.host.view, static_cast<size_t>(first), static_cast<size_t>(count), ref.data());
    const std::string what = "range [" + std::to_string(first) + ", +" + std::to_string(count) + ")";
    for (ActType out : {ActType::kF32, ActType::kBF16, ActType::kF16}) {
      const size_t elem = out == ActType::kF32 ? 4 : 2;
      DeviceBuffer d(static_cast<size_t>(count) * elem);
      d.poison();
      ASSERT_OK(launch_dequantize(g.view, first, count, out, d.get(), nullptr));
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      int n_bad = 0;
      if (out == ActType::kF32) {
        const auto got = d.download<float>(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
          if (!(got[static_cast<size_t>(i)] == ref[static_cast<size_t>(i)]) && ++n_bad <= 5) {
            ADD_FAILURE() << what << " f32 [" << i << "] gpu " << got[static_cast<size_t>(i)] << " ref "
                          << ref[static_cast<size_t>(i)];
          }
        }
      } else {
        const auto got = d.download<uint16_t>(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
          const float r = ref[static_cast<size_t>(i)];
          const uint16_t want = out == ActType::kBF16 ? float_to_bf16(r) : float_to_f16(r);
          if (got[static_cast<size_t>(i)] != want && ++n_bad <= 5) {
            ADD_FAILURE() << what << (out == ActType::kBF16 ? " bf16" : " f16") << " [" << i << "] gpu 0x"
                          << std::hex << got[static_cast<size_t>(i)] << " want 0x" << want << std::dec;
          }
        }
      }
      EXPECT_EQ(n_bad, 0) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DequantizeVsRef,
                         ::testing::ValuesIn(sweep({1, 7, 512}, {172, 4096}, {32, 64, 128, 4096})), param_name);

// ---- decode GEMV ----------------------------------------------------------------------------------
class GemvVsRef : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(GemvVsRef, MatchesMatmulRef) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 2));
  std::vector<float> wf(static_cast<size_t>(p.n * p.k));
  dequantize_ref(g.host.view, 0, wf.size(), wf.data());
  const auto bias = normal_floats(static_cast<size_t>(p.n), seed_of(p, 3), 0.5f);
  DeviceBuffer d_bias = DeviceBuffer::upload(bias);

  struct Run {
    ActType act;
    int64_t m;
    bool with_bias;
  };
  const Run runs[] = {{ActType::kBF16, 1, false}, {ActType::kBF16, 2, true}, {ActType::kBF16, 3, false},
                      {ActType::kBF16, 7, true},  {ActType::kBF16, 8, false}, {ActType::kF16, 1, true},
                      {ActType::kF16, 3, false}};
  for (const Run& run : runs) {
    const std::string what = std::string(run.act == ActType::kBF16 ? "bf16" : "f16") + " m=" +
                             std::to_string(run.m) + (run.with_bias ? " +bias" : "");
    const auto x = make_activations(run.act, static_cast<size_t>(run.m * p.k), seed_of(p, 4 + static_cast<uint32_t>(run.m)));
    std::vector<uint16_t> ref(static_cast<size_t>(run.m * p.n));
    matmul_ref(run.act, x.data(), static_cast<size_t>(run.m), g.host.view, run.with_bias ? bias.data() : nullptr,
               ref.data(), 0, static_cast<size_t>(p.n));
    DeviceBuffer d_x = DeviceBuffer::upload(x);
    DeviceBuffer d_y(ref.size() * 2);
    d_y.poison();
    ASSERT_OK(launch_gemv(run.act, d_x.get(), run.m, g.view, run.with_bias ? d_bias.as<float>() : nullptr, d_y.get(),
                          nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto got = d_y.download<uint16_t>(ref.size());
    compare_matmul(run.act, x, run.m, wf, p.n, p.k, ref, got, bound_for(run.act, false, true), what);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemvVsRef,
                         ::testing::ValuesIn(sweep({1, 7, 512, 4096}, {172, 4096}, {32, 64, 128, 4096})),
                         param_name);

// The aligned fast path needs 16-byte aligned activations; an offset pointer must fall back to
// the general path and still be right.
TEST(GemvVsRefMisc, MisalignedActivationsTakeTheGeneralPath) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p{1, 64, 96, 4096};  // nf4dq
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, 99);
  std::vector<float> wf(static_cast<size_t>(p.n * p.k));
  dequantize_ref(g.host.view, 0, wf.size(), wf.data());
  const auto x = make_activations(ActType::kBF16, static_cast<size_t>(p.k + 1), 5);
  const std::vector<uint16_t> x_row(x.begin() + 1, x.end());
  std::vector<uint16_t> ref(static_cast<size_t>(p.n));
  matmul_ref(ActType::kBF16, x_row.data(), 1, g.host.view, nullptr, ref.data(), 0, static_cast<size_t>(p.n));
  DeviceBuffer d_x = DeviceBuffer::upload(x);
  DeviceBuffer d_y(ref.size() * 2);
  d_y.poison();
  ASSERT_OK(launch_gemv(ActType::kBF16, d_x.as<uint16_t>() + 1, 1, g.view, nullptr, d_y.get(), nullptr));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  compare_matmul(ActType::kBF16, x_row, 1, wf, p.n, p.k, ref, d_y.download<uint16_t>(ref.size()),
                 bound_for(ActType::kBF16, false, true), "misaligned x");
}

// ---- prefill GEMM --------------------------------------------------------------------------------
class GemmVsRef : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(GemmVsRef, MatchesMatmulRef) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 5));
  std::vector<float> wf(static_cast<size_t>(p.n * p.k));
  dequantize_ref(g.host.view, 0, wf.size(), wf.data());
  const auto bias = normal_floats(static_cast<size_t>(p.n), seed_of(p, 6), 0.5f);
  DeviceBuffer d_bias = DeviceBuffer::upload(bias);
  auto ctx = GemmContext::create();
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();

  struct Run {
    ActType act;
    int64_t m;
    bool with_bias;
  };
  // M = 512 only at the small k / n cases' cost budget: the CPU reference does 2*m*n*k flops.
  std::vector<Run> runs = {{ActType::kBF16, 1, false}, {ActType::kBF16, 2, true}, {ActType::kBF16, 3, false},
                           {ActType::kBF16, 7, true},  {ActType::kBF16, 17, false}, {ActType::kF16, 17, true}};
  if (p.n * p.k <= 512 * 4096) runs.push_back({ActType::kBF16, 512, true});
  for (const Run& run : runs) {
    const std::string what = std::string(run.act == ActType::kBF16 ? "bf16" : "f16") + " m=" +
                             std::to_string(run.m) + (run.with_bias ? " +bias" : "");
    const auto x = make_activations(run.act, static_cast<size_t>(run.m * p.k), seed_of(p, 7 + static_cast<uint32_t>(run.m)));
    std::vector<uint16_t> ref(static_cast<size_t>(run.m * p.n));
    matmul_ref(run.act, x.data(), static_cast<size_t>(run.m), g.host.view, run.with_bias ? bias.data() : nullptr,
               ref.data(), 0, static_cast<size_t>(p.n));
    const int64_t scratch_bytes = gemm_scratch_bytes(g.view, run.act);
    DeviceBuffer scratch(static_cast<size_t>(scratch_bytes));
    DeviceBuffer d_x = DeviceBuffer::upload(x);
    DeviceBuffer d_y(ref.size() * 2);
    d_y.poison();
    ASSERT_OK(launch_gemm(*ctx, run.act, d_x.get(), run.m, g.view, run.with_bias ? d_bias.as<float>() : nullptr,
                          d_y.get(), scratch.get(), scratch_bytes, nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const Bound b = bound_for(run.act, true, scratch_bytes == 0);
    const double nmse = compare_matmul(run.act, x, run.m, wf, p.n, p.k, ref, d_y.download<uint16_t>(ref.size()), b, what);
    const double u_out = run.act == ActType::kBF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
    const double max_nmse = 4.0 * (b.weight_round * b.weight_round + u_out * u_out);
    EXPECT_LE(nmse, max_nmse) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmVsRef, ::testing::ValuesIn(sweep({7, 512, 4096}, {172, 4096}, {64, 4096})),
                         param_name);

// ---- launcher validation (runs without a GPU: rejected calls never reach the device) --------------
TEST(KernelLaunchers, RejectUnsupportedShapesAndArguments) {
  static float fake_f[16];
  static uint8_t fake_b[16];
  DeviceWeightView w;
  w.storage = StorageType::kNF4;
  w.rows = 8;
  w.cols = 64;
  w.data = fake_b;
  w.block_size = 64;
  w.absmax = fake_f;
  const void* x = fake_b;
  void* y = fake_b;

  auto code = [](const Status& s) { return s.code(); };
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, kMaxGemvRows + 1, w, nullptr, y, nullptr)), StatusCode::kUnsupported);
  // fp32 activations are supported (tests/gpu/test_kernels_ext_gpu.cpp); an unknown type is not.
  EXPECT_EQ(code(launch_gemv(static_cast<ActType>(9), x, 1, w, nullptr, y, nullptr)), StatusCode::kUnsupported);
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 0, w, nullptr, y, nullptr)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, nullptr, 1, w, nullptr, y, nullptr)), StatusCode::kInvalidArgument);

  DeviceWeightView bad_bs = w;
  bad_bs.block_size = 16;
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, bad_bs, nullptr, y, nullptr)), StatusCode::kUnsupported);
  EXPECT_EQ(code(launch_dequantize(bad_bs, 0, 8, ActType::kF32, y, nullptr)), StatusCode::kUnsupported);
  bad_bs.block_size = 96;  // not a power of two
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, bad_bs, nullptr, y, nullptr)), StatusCode::kUnsupported);
  bad_bs.block_size = 8192;
  EXPECT_EQ(code(launch_dequantize(bad_bs, 0, 8, ActType::kBF16, y, nullptr)), StatusCode::kUnsupported);

  DeviceWeightView dq = w;
  dq.absmax = nullptr;
  dq.absmax_codes = fake_b;
  dq.nested_absmax = fake_f;
  dq.nested_code_table = fake_f;
  dq.nested_block_size = 128;
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, dq, nullptr, y, nullptr)), StatusCode::kUnsupported);
  dq.nested_code_table = nullptr;
  dq.nested_block_size = 256;
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, dq, nullptr, y, nullptr)), StatusCode::kInvalidArgument);

  DeviceWeightView no_absmax = w;
  no_absmax.absmax = nullptr;
  EXPECT_EQ(code(launch_dequantize(no_absmax, 0, 8, ActType::kF32, y, nullptr)), StatusCode::kInvalidArgument);
  DeviceWeightView int8 = w;
  int8.storage = StorageType::kINT8;
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, int8, nullptr, y, nullptr)), StatusCode::kInvalidArgument);

  EXPECT_EQ(code(launch_dequantize(w, 0, w.rows * w.cols + 1, ActType::kF32, y, nullptr)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(launch_dequantize(w, -1, 4, ActType::kF32, y, nullptr)), StatusCode::kInvalidArgument);
  DeviceWeightView empty = w;
  empty.rows = 0;
  EXPECT_EQ(code(launch_gemv(ActType::kBF16, x, 1, empty, nullptr, y, nullptr)), StatusCode::kInvalidArgument);

  EXPECT_EQ(gemm_scratch_bytes(w, ActType::kBF16), w.rows * w.cols * 2);
  DeviceWeightView bf16 = w;
  bf16.storage = StorageType::kBF16;
  EXPECT_EQ(gemm_scratch_bytes(bf16, ActType::kBF16), 0);
  EXPECT_EQ(gemm_scratch_bytes(bf16, ActType::kF16), w.rows * w.cols * 2);
}

TEST(KernelLaunchers, GemmRejectsUnsupportedArguments) {
  SKIP_WITHOUT_GPU();
  auto ctx = GemmContext::create();
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  const Kind kind{"nf4", StorageType::kNF4, false};
  GpuWeight g = make_weight(kind, 16, 64, 64, 1);
  DeviceBuffer buf(1 << 16);
  EXPECT_EQ(launch_gemm(*ctx, static_cast<ActType>(9), buf.get(), 4, g.view, nullptr, buf.get(), buf.get(), 1 << 16, nullptr).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(launch_gemm(*ctx, ActType::kBF16, buf.get(), 4, g.view, nullptr, buf.get(), buf.get(), 16, nullptr).code(),
            StatusCode::kInvalidArgument);  // scratch too small
  EXPECT_EQ(launch_gemm(*ctx, ActType::kBF16, buf.get(), 0, g.view, nullptr, buf.get(), buf.get(), 1 << 16, nullptr).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qmodel::kernels
