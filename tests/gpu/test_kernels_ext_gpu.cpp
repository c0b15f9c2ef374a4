// The CUDA kernels' extensions (qmodel/kernels/cuda.h) against the CPU references (ref.h):
//  - fp32 activations in launch_gemv / launch_gemm vs matmul_ref(kF32) for every storage type
//    (tolerance below, plus an NMSE bound tight enough that TF32 products would fail it);
//  - launch_gemv_multi vs separate launch_gemv calls: bit-identical (each weight keeps the block
//    geometry of its own launch, so every fp32 sum is formed in the same order);
//  - launch_gather_rows vs dequantize_ref of the selected rows + one RNE conversion: bit-identical,
//    NaN rows for ids outside [0, rows);
//  - the launchers' error returns (these run without a GPU: rejected calls never touch it).
// Outputs are poisoned first (NaN, or a finite pattern where NaN is the expected value), so an
// element a kernel never writes fails. Sizes stay small:
// under the CPU emulation build (<name>_emu) every CUDA thread is a fiber.
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

using gpu_test::DeviceBuffer;

// ---- weights --------------------------------------------------------------------------------------
struct Kind {
  const char* name;
  StorageType storage;
  bool double_quant;
};
constexpr Kind kKinds[] = {
    {"nf4", StorageType::kNF4, false},   {"nf4dq", StorageType::kNF4, true}, {"fp4", StorageType::kFP4, false},
    {"fp4dq", StorageType::kFP4, true},  {"int8", StorageType::kINT8, false}, {"bf16", StorageType::kBF16, false},
    {"f16", StorageType::kF16, false},   {"f32", StorageType::kF32, false},
};
constexpr int kNumKinds = static_cast<int>(std::size(kKinds));

// A weight quantized on the host (reference blobs + view) and the same blobs on the device.
struct GpuWeight {
  testing::Stored host;
  DeviceBuffer data, absmax, absmax_codes, nested_absmax, dyn, scb;
  DeviceWeightView view;
};

// data_offset > 0 places the stored values that many bytes into their allocation (misaligned).
GpuWeight make_weight(const Kind& kind, int64_t rows, int64_t cols, int64_t bs, uint32_t seed,
                      size_t data_offset = 0) {
  const auto w = testing::normal_values(static_cast<size_t>(rows * cols), seed);
  GpuWeight g;
  g.host = testing::store(kind.storage, w, static_cast<size_t>(rows), static_cast<size_t>(cols),
                          static_cast<size_t>(bs), kind.double_quant);
  const WeightView& hv = g.host.view;
  g.data = DeviceBuffer::upload(g.host.data, data_offset);
  DeviceWeightView& v = g.view;
  v.storage = kind.storage;
  v.rows = rows;
  v.cols = cols;
  v.data = g.data.as<char>() + data_offset;
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

// ---- activations and outputs as raw bytes of the activation type --------------------------------
size_t act_size(ActType act) { return act == ActType::kF32 ? 4 : 2; }
const char* act_name(ActType act) { return act == ActType::kF32 ? "f32" : act == ActType::kBF16 ? "bf16" : "f16"; }

float act_at(ActType act, const std::vector<uint8_t>& bytes, size_t i) {
  if (act == ActType::kF32) {
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, bytes.data() + 2 * i, 2);
  return act == ActType::kBF16 ? bf16_to_float(h) : f16_to_float(h);
}

std::vector<uint8_t> make_activations(ActType act, size_t n, uint32_t seed) {
  const auto f = testing::normal_values(n, seed);
  std::vector<uint8_t> out(n * act_size(act));
  for (size_t i = 0; i < n; ++i) {
    if (act == ActType::kF32) {
      std::memcpy(out.data() + 4 * i, &f[i], 4);
    } else {
      const uint16_t h = act == ActType::kBF16 ? float_to_bf16(f[i]) : float_to_f16(f[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

// ---- tolerance (as tests/gpu/test_kernels_gpu.cpp, here for fp32 outputs) -------------------------
// |gpu - ref| <= 2^-14 * sum_k |x_k w_k| + 2^-23 |ref|: both sides are fp32 sums of the same
// products in different orders (per-chunk / per-row scaling, split-K, cuBLAS tiling), which
// moves a sum by a few fp32 ulps of its terms; the output is not rounded further. fp32 GEMM
// dequantizes W to fp32 bit-exactly, so no weight-rounding term. And NMSE <= 2^-30: fp32 order
// differences give about K/2 * 2^-48 (2^-37 at K = 4096), TF32 products (10-bit mantissas) about
// 2^-22, so a GEMM silently running in TF32 fails here while the per-element bound would pass.
constexpr double kAccumSlack = 1.0 / 16384.0;
const double kMaxNmseF32 = std::ldexp(1.0, -30);

double compare_f32(const std::vector<uint8_t>& x, int64_t m, const std::vector<float>& wf, int64_t n, int64_t k,
                   const std::vector<uint8_t>& ref, const std::vector<uint8_t>& gpu, const std::string& what) {
  double err2 = 0.0, ref2 = 0.0;
  int n_bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double s1 = 0.0;
      for (int64_t kk = 0; kk < k; ++kk) {
        s1 += std::fabs(static_cast<double>(act_at(ActType::kF32, x, static_cast<size_t>(i * k + kk))) *
                        wf[static_cast<size_t>(r * k + kk)]);
      }
      const size_t o = static_cast<size_t>(i * n + r);
      const double rv = act_at(ActType::kF32, ref, o), gv = act_at(ActType::kF32, gpu, o);
      const double tol = kAccumSlack * s1 + std::ldexp(std::fabs(rv), -23);
      if (!(std::fabs(gv - rv) <= tol) && ++n_bad <= 5) {  // NaN (unwritten output) fails too
        ADD_FAILURE() << what << ": y[" << i << ", " << r << "] gpu " << gv << " ref " << rv << " tol " << tol;
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

// Every kind at every (n, k); 4-bit kinds once per block size, the others with block size 0.
std::vector<ShapeParam> sweep(const std::vector<std::pair<int64_t, int64_t>>& shapes,
                              const std::vector<int64_t>& block_sizes) {
  std::vector<ShapeParam> out;
  for (int kind = 0; kind < kNumKinds; ++kind) {
    const bool four_bit = is_4bit(kKinds[kind].storage);
    for (int64_t bs : four_bit ? block_sizes : std::vector<int64_t>{0}) {
      for (const auto& [n, k] : shapes) out.push_back({kind, bs, n, k});
    }
  }
  return out;
}

uint32_t seed_of(const ShapeParam& p, uint32_t salt) {
  return static_cast<uint32_t>(p.kind * 1000003 + p.block_size * 7919 + p.n * 131 + p.k * 17) ^ salt;
}

std::vector<float> dequantized(const GpuWeight& g) {
  std::vector<float> wf(g.host.view.rows * g.host.view.cols);
  dequantize_ref(g.host.view, 0, wf.size(), wf.data());
  return wf;
}

// ---- fp32 GEMV ----------------------------------------------------------------------------------
// k = 172 and 173 (rows start mid-block, mid-byte for 173: general kernel for every quantized
// kind), 4096 (aligned kernel), 4100 (aligned only for fp32 weights); n = 1 and 33.
class GemvF32VsRef : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(GemvF32VsRef, MatchesMatmulRef) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 1));
  const auto wf = dequantized(g);
  const auto bias = testing::normal_values(static_cast<size_t>(p.n), seed_of(p, 2), 0.5f);
  DeviceBuffer d_bias = DeviceBuffer::upload(bias);
  for (const int64_t m : {1, 2, 3, 7, 8}) {
    const bool with_bias = m == 2 || m == 7;
    const std::string what = "m=" + std::to_string(m) + (with_bias ? " +bias" : "");
    const auto x = make_activations(ActType::kF32, static_cast<size_t>(m * p.k), seed_of(p, 3 + static_cast<uint32_t>(m)));
    std::vector<uint8_t> ref(static_cast<size_t>(m * p.n) * 4);
    matmul_ref(ActType::kF32, x.data(), static_cast<size_t>(m), g.host.view, with_bias ? bias.data() : nullptr,
               ref.data(), 0, static_cast<size_t>(p.n));
    DeviceBuffer d_x = DeviceBuffer::upload(x);
    DeviceBuffer d_y(ref.size());
    d_y.poison();
    ASSERT_OK(launch_gemv(ActType::kF32, d_x.get(), m, g.view, with_bias ? d_bias.as<float>() : nullptr, d_y.get(),
                          nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const double nmse = compare_f32(x, m, wf, p.n, p.k, ref, d_y.download<uint8_t>(ref.size()), what);
    EXPECT_LE(nmse, kMaxNmseF32) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemvF32VsRef,
                         ::testing::ValuesIn(sweep({{1, 172}, {33, 172}, {5, 173}, {1, 4096}, {33, 4096}, {9, 4100}},
                                                   {64, 4096})),
                         param_name);

// fp32 activations at an offset of 4 bytes: the aligned kernel's 16-byte loads are not allowed, the
// general kernel must take over and still be right.
TEST(GemvF32Misc, MisalignedActivationsTakeTheGeneralPath) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p{7, 0, 16, 256};  // f32 weights
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, 77);
  const auto x = make_activations(ActType::kF32, static_cast<size_t>(p.k), 78);
  std::vector<uint8_t> ref(static_cast<size_t>(p.n) * 4);
  matmul_ref(ActType::kF32, x.data(), 1, g.host.view, nullptr, ref.data(), 0, static_cast<size_t>(p.n));
  DeviceBuffer d_x = DeviceBuffer::upload(x, 4);
  DeviceBuffer d_y(ref.size());
  d_y.poison();
  ASSERT_OK(launch_gemv(ActType::kF32, d_x.as<char>() + 4, 1, g.view, nullptr, d_y.get(), nullptr));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  compare_f32(x, 1, dequantized(g), p.n, p.k, ref, d_y.download<uint8_t>(ref.size()), "misaligned x");
}

// ---- fp32 GEMM ----------------------------------------------------------------------------------
class GemmF32VsRef : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(GemmF32VsRef, MatchesMatmulRef) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 5));
  const auto wf = dequantized(g);
  const auto bias = testing::normal_values(static_cast<size_t>(p.n), seed_of(p, 6), 0.5f);
  DeviceBuffer d_bias = DeviceBuffer::upload(bias);
  auto ctx = GemmContext::create();
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  const int64_t scratch_bytes = gemm_scratch_bytes(g.view, ActType::kF32);
  EXPECT_EQ(scratch_bytes, kKinds[p.kind].storage == StorageType::kF32 ? 0 : p.n * p.k * 4);
  DeviceBuffer scratch(static_cast<size_t>(scratch_bytes));

  std::vector<int64_t> ms = {1, 2, 3, 7, 17};
  if (p.n * p.k <= 64 * 256) ms.push_back(512);  // the reference costs 2*m*n*k flops
  for (const int64_t m : ms) {
    const bool with_bias = m != 3;
    const std::string what = "m=" + std::to_string(m) + (with_bias ? " +bias" : "");
    const auto x = make_activations(ActType::kF32, static_cast<size_t>(m * p.k), seed_of(p, 7 + static_cast<uint32_t>(m)));
    std::vector<uint8_t> ref(static_cast<size_t>(m * p.n) * 4);
    matmul_ref(ActType::kF32, x.data(), static_cast<size_t>(m), g.host.view, with_bias ? bias.data() : nullptr,
               ref.data(), 0, static_cast<size_t>(p.n));
    DeviceBuffer d_x = DeviceBuffer::upload(x);
    DeviceBuffer d_y(ref.size());
    d_y.poison();
    ASSERT_OK(launch_gemm(*ctx, ActType::kF32, d_x.get(), m, g.view, with_bias ? d_bias.as<float>() : nullptr,
                          d_y.get(), scratch.get(), scratch_bytes, nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const double nmse = compare_f32(x, m, wf, p.n, p.k, ref, d_y.download<uint8_t>(ref.size()), what);
    EXPECT_LE(nmse, kMaxNmseF32) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmF32VsRef,
                         ::testing::ValuesIn(sweep({{7, 172}, {40, 256}, {24, 4096}}, {64})), param_name);

// ---- multi-GEMV: bit-identical to separate launches ----------------------------------------------
struct MultiParam {
  int kind;
  ActType act;
  int64_t k;
};

std::string multi_name(const ::testing::TestParamInfo<MultiParam>& info) {
  return std::string(kKinds[info.param.kind].name) + "_" + act_name(info.param.act) + "_k" +
         std::to_string(info.param.k);
}

std::vector<MultiParam> multi_sweep() {
  std::vector<MultiParam> out;
  for (int kind = 0; kind < kNumKinds; ++kind) {
    for (ActType act : {ActType::kBF16, ActType::kF32}) {
      for (int64_t k : {172, 256}) out.push_back({kind, act, k});
    }
  }
  out.push_back({1, ActType::kF16, 256});
  return out;
}

// Runs launch_gemv_multi over `weights` and launch_gemv on each, and expects the same bytes.
void expect_multi_matches_single(ActType act, int64_t m, const std::vector<const GpuWeight*>& weights,
                                 const std::vector<const float*>& biases, uint32_t seed, const std::string& what) {
  const int count = static_cast<int>(weights.size());
  const int64_t k = weights[0]->view.cols;
  const auto x = make_activations(act, static_cast<size_t>(m * k), seed);
  DeviceBuffer d_x = DeviceBuffer::upload(x);
  std::vector<DeviceWeightView> ws;
  std::vector<DeviceBuffer> y_multi, y_single;
  std::vector<void*> ys;
  for (int j = 0; j < count; ++j) {
    ws.push_back(weights[static_cast<size_t>(j)]->view);
    const size_t bytes = static_cast<size_t>(m * ws.back().rows) * act_size(act);
    y_multi.emplace_back(bytes);
    y_single.emplace_back(bytes);
    y_multi.back().poison();
    y_single.back().poison();
    ys.push_back(y_multi.back().get());
  }
  ASSERT_OK(launch_gemv_multi(act, d_x.get(), m, ws.data(), biases.empty() ? nullptr : biases.data(), ys.data(),
                              count, nullptr));
  for (int j = 0; j < count; ++j) {
    ASSERT_OK(launch_gemv(act, d_x.get(), m, ws[static_cast<size_t>(j)],
                          biases.empty() ? nullptr : biases[static_cast<size_t>(j)], y_single[static_cast<size_t>(j)].get(),
                          nullptr));
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (int j = 0; j < count; ++j) {
    const size_t n_out = static_cast<size_t>(m * ws[static_cast<size_t>(j)].rows);
    const auto a = y_multi[static_cast<size_t>(j)].download<uint8_t>(n_out * act_size(act));
    const auto b = y_single[static_cast<size_t>(j)].download<uint8_t>(n_out * act_size(act));
    int n_bad = 0;
    for (size_t i = 0; i < n_out; ++i) {
      const float fa = act_at(act, a, i), fb = act_at(act, b, i);
      if (std::isnan(fa) || std::memcmp(a.data() + i * act_size(act), b.data() + i * act_size(act), act_size(act)) != 0) {
        if (++n_bad <= 3) ADD_FAILURE() << what << " weight " << j << " [" << i << "] multi " << fa << " single " << fb;
      }
    }
    EXPECT_EQ(n_bad, 0) << what << " weight " << j;
  }
}

class GemvMultiVsSingle : public ::testing::TestWithParam<MultiParam> {};

TEST_P(GemvMultiVsSingle, BitIdentical) {
  SKIP_WITHOUT_GPU();
  const MultiParam p = GetParam();
  const Kind& kind = kKinds[p.kind];
  const int64_t bs = is_4bit(kind.storage) ? 64 : 0;
  const auto seed = static_cast<uint32_t>(p.kind * 97 + p.k + static_cast<int>(p.act) * 7);
  // q/k/v-like: a long weight and two short ones (grids of different sizes and warps per row).
  GpuWeight q = make_weight(kind, 40, p.k, bs, seed + 1);
  GpuWeight kw = make_weight(kind, 8, p.k, bs, seed + 2);
  GpuWeight v = make_weight(kind, 17, p.k, bs, seed + 3);
  const auto b0 = testing::normal_values(40, seed + 4), b2 = testing::normal_values(17, seed + 5);
  DeviceBuffer d_b0 = DeviceBuffer::upload(b0), d_b2 = DeviceBuffer::upload(b2);
  for (const int64_t m : {1, 3}) {
    const std::string what = "m=" + std::to_string(m);
    expect_multi_matches_single(p.act, m, {&q, &kw, &v}, {d_b0.as<float>(), nullptr, d_b2.as<float>()},
                                seed + 10 + static_cast<uint32_t>(m), what + " count=3");
    expect_multi_matches_single(p.act, m, {&kw, &q}, {}, seed + 20 + static_cast<uint32_t>(m), what + " count=2");
    expect_multi_matches_single(p.act, m, {&v}, {d_b2.as<float>()}, seed + 30 + static_cast<uint32_t>(m),
                                what + " count=1");
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, GemvMultiVsSingle, ::testing::ValuesIn(multi_sweep()), multi_name);

// One weight of the batch stored at a misaligned address takes the general kernel (a second
// launch inside the call) while the others stay on the aligned one; still bit-identical, and the
// batch also matches matmul_ref.
TEST(GemvMultiMisc, MixedAlignmentSplitsIntoTwoLaunches) {
  SKIP_WITHOUT_GPU();
  const Kind& kind = kKinds[4];  // int8: 16-byte chunks need a 16-byte aligned blob
  GpuWeight a = make_weight(kind, 24, 256, 0, 1);
  GpuWeight b = make_weight(kind, 9, 256, 0, 2, /*data_offset=*/8);
  GpuWeight c = make_weight(kind, 16, 256, 0, 3);
  for (ActType act : {ActType::kBF16, ActType::kF32}) {
    expect_multi_matches_single(act, 2, {&a, &b, &c}, {}, 11, std::string("mixed alignment ") + act_name(act));
  }
}

// Weights whose own launches get different split-K (warps per row 1, 4 and 2 with fp32 weights at
// k = 1024 on a 132-SM device such as an H100 or the emulator: 256 chunks per row, rows against
// 32 warps x 132 SMs) keep it inside the batch, so the fp32 sums are still formed in the same order.
TEST(GemvMultiMisc, WeightsWithDifferentSplitK) {
  SKIP_WITHOUT_GPU();
  const Kind& kind = kKinds[7];  // f32
  GpuWeight a = make_weight(kind, 4300, 1024, 0, 21);
  GpuWeight b = make_weight(kind, 40, 1024, 0, 22);
  GpuWeight c = make_weight(kind, 2200, 1024, 0, 23);
  for (ActType act : {ActType::kBF16, ActType::kF32}) {
    expect_multi_matches_single(act, 1, {&a, &b, &c}, {}, 12, std::string("split-K mix ") + act_name(act));
  }
}

// ---- gather rows: bit-identical to dequantize_ref of the row ---------------------------------------
class GatherVsRef : public ::testing::TestWithParam<ShapeParam> {};

// Expected bytes of one output element for a reference fp32 value.
void put_expected(ActType out, float v, uint8_t* dst) {
  if (out == ActType::kF32) {
    std::memcpy(dst, &v, 4);
  } else {
    const uint16_t h = out == ActType::kBF16 ? float_to_bf16(v) : float_to_f16(v);
    std::memcpy(dst, &h, 2);
  }
}

TEST_P(GatherVsRef, BitExactRowsAndNanForBadIds) {
  SKIP_WITHOUT_GPU();
  const ShapeParam p = GetParam();
  GpuWeight g = make_weight(kKinds[p.kind], p.n, p.k, p.block_size, seed_of(p, 9));
  const auto rows = static_cast<int32_t>(p.n);
  // Repeats, both ends, and ids outside [0, rows) (including the int32 extremes).
  const std::vector<int32_t> ids = {3, 0, rows - 1, 3, -1, rows, 1, INT32_MAX, INT32_MIN, rows / 2};
  DeviceBuffer d_ids = DeviceBuffer::upload(ids);
  const auto n_ids = static_cast<int64_t>(ids.size());
  const size_t row_elems = static_cast<size_t>(p.k);
  std::vector<float> row(row_elems);
  for (ActType out : {ActType::kF32, ActType::kBF16, ActType::kF16}) {
    // offset 0: the vector path where cols allow it; offset one element: always the scalar path.
    for (const size_t offset : {size_t{0}, act_size(out)}) {
      const std::string what = std::string(act_name(out)) + " offset " + std::to_string(offset);
      const size_t bytes = static_cast<size_t>(n_ids) * row_elems * act_size(out);
      DeviceBuffer d_out(offset + bytes);
      // Finite in every output type (0x5a5a5a5a, 0x5a5a): NaN rows must be written by the kernel,
      // and valid rows are compared bit-exactly, so an unwritten element fails either way.
      d_out.fill(0x5a);
      ASSERT_OK(launch_gather_rows(g.view, d_ids.as<int32_t>(), n_ids, out, d_out.as<char>() + offset, nullptr));
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto got = d_out.download<uint8_t>(bytes, offset);
      int n_bad = 0;
      std::vector<uint8_t> want(act_size(out));
      for (size_t i = 0; i < ids.size(); ++i) {
        const bool valid = ids[i] >= 0 && ids[i] < rows;
        if (valid) dequantize_ref(g.host.view, static_cast<size_t>(ids[i]) * row_elems, row_elems, row.data());
        for (size_t c = 0; c < row_elems; ++c) {
          const size_t e = i * row_elems + c;
          bool ok;
          if (valid) {
            put_expected(out, row[c], want.data());
            ok = std::memcmp(got.data() + e * act_size(out), want.data(), act_size(out)) == 0;
          } else {
            ok = std::isnan(act_at(out, got, e));
          }
          if (!ok && ++n_bad <= 5) {
            ADD_FAILURE() << what << ": id " << ids[i] << " col " << c << " got " << act_at(out, got, e)
                          << (valid ? " want " + std::to_string(row[c]) : std::string(" want NaN"));
          }
        }
      }
      EXPECT_EQ(n_bad, 0) << what;
    }
  }
}

// cols 173: rows start mid-byte; 172 / 67 and block size 4096: blocks straddle rows; 4096: aligned.
INSTANTIATE_TEST_SUITE_P(Shapes, GatherVsRef,
                         ::testing::ValuesIn(sweep({{11, 172}, {11, 173}, {13, 67}, {11, 4096}}, {32, 4096})),
                         param_name);

// The ids are read when the kernel runs: a captured graph replayed after new ids were copied in
// gathers the new rows (the embedding lookup inside the runtime's decode graph).
TEST(GatherMisc, CapturedGraphReadsIdsAtReplay) {
  SKIP_WITHOUT_GPU();
  GpuWeight g = make_weight(kKinds[1], 20, 96, 64, 5);  // nf4dq
  std::vector<int32_t> ids = {2, 7};
  DeviceBuffer d_ids = DeviceBuffer::upload(ids);
  DeviceBuffer d_out(ids.size() * 96 * 4);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const Status st = launch_gather_rows(g.view, d_ids.as<int32_t>(), 2, ActType::kF32, d_out.get(), stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_OK(st);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (const std::vector<int32_t>& step : {std::vector<int32_t>{2, 7}, std::vector<int32_t>{19, 0}}) {
    ASSERT_EQ(cudaMemcpyAsync(d_ids.get(), step.data(), 8, cudaMemcpyHostToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const auto got = d_out.download<uint8_t>(2 * 96 * 4);
    std::vector<float> want(96);
    for (size_t i = 0; i < 2; ++i) {
      dequantize_ref(g.host.view, static_cast<size_t>(step[i]) * 96, 96, want.data());
      EXPECT_EQ(std::memcmp(got.data() + i * 96 * 4, want.data(), 96 * 4), 0) << "id " << step[i];
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// ---- launcher validation (runs without a GPU: rejected calls never reach the device) --------------
DeviceWeightView fake_weight(StorageType s, int64_t rows, int64_t cols) {
  static float fake_f[16];
  static uint8_t fake_b[16];
  DeviceWeightView w;
  w.storage = s;
  w.rows = rows;
  w.cols = cols;
  w.data = fake_b;
  if (is_4bit(s)) {
    w.block_size = 64;
    w.absmax = fake_f;
  } else if (s == StorageType::kINT8) {
    w.row_scale = fake_f;
  }
  return w;
}

StatusCode multi_code(ActType act, int64_t m, const std::vector<DeviceWeightView>& ws, int count,
                      bool null_ys = false) {
  static uint8_t fake[16];
  void* ys[kMaxGemvMulti + 2] = {fake, fake, fake, fake, fake};
  return launch_gemv_multi(act, fake, m, ws.data(), nullptr, null_ys ? nullptr : ys, count, nullptr).code();
}

TEST(KernelExtLaunchers, GemvMultiRejectsBadArguments) {
  const DeviceWeightView nf4 = fake_weight(StorageType::kNF4, 8, 64);
  const std::vector<DeviceWeightView> three(3, nf4), four(4, nf4);
  EXPECT_EQ(multi_code(ActType::kBF16, 1, three, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(multi_code(ActType::kBF16, 1, three, -1), StatusCode::kInvalidArgument);
  EXPECT_EQ(multi_code(ActType::kBF16, 1, four, 4), StatusCode::kUnsupported);
  EXPECT_EQ(multi_code(ActType::kBF16, 1, three, 3, /*null_ys=*/true), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gemv_multi(ActType::kBF16, nf4.data, 1, nullptr, nullptr, nullptr, 1, nullptr).code(),
            StatusCode::kInvalidArgument);

  // Mixed storage type, mixed double quantization: the caller's fallback is separate launches.
  std::vector<DeviceWeightView> mixed = three;
  mixed[2] = fake_weight(StorageType::kFP4, 8, 64);
  EXPECT_EQ(multi_code(ActType::kBF16, 1, mixed, 3), StatusCode::kUnsupported);
  mixed[2] = fake_weight(StorageType::kBF16, 8, 64);
  EXPECT_EQ(multi_code(ActType::kF32, 1, mixed, 3), StatusCode::kUnsupported);
  mixed[2] = nf4;
  mixed[1].absmax = nullptr;
  mixed[1].absmax_codes = static_cast<const uint8_t*>(nf4.data);
  mixed[1].nested_absmax = nf4.absmax;
  mixed[1].nested_code_table = nf4.absmax;
  mixed[1].nested_block_size = 256;
  EXPECT_EQ(multi_code(ActType::kBF16, 1, mixed, 3), StatusCode::kUnsupported);

  // Different cols (x is shared), an invalid weight, a null output, bad m / act / x.
  std::vector<DeviceWeightView> cols = three;
  cols[1].cols = 128;
  EXPECT_EQ(multi_code(ActType::kBF16, 1, cols, 3), StatusCode::kInvalidArgument);
  std::vector<DeviceWeightView> invalid = three;
  invalid[2].absmax = nullptr;
  EXPECT_EQ(multi_code(ActType::kBF16, 1, invalid, 3), StatusCode::kInvalidArgument);
  invalid[2] = nf4;
  invalid[2].block_size = 48;
  EXPECT_EQ(multi_code(ActType::kBF16, 1, invalid, 3), StatusCode::kUnsupported);
  {
    static uint8_t fake[16];
    void* ys[3] = {fake, nullptr, fake};
    EXPECT_EQ(launch_gemv_multi(ActType::kBF16, fake, 1, three.data(), nullptr, ys, 3, nullptr).code(),
              StatusCode::kInvalidArgument);
    void* ok_ys[3] = {fake, fake, fake};
    EXPECT_EQ(launch_gemv_multi(ActType::kBF16, nullptr, 1, three.data(), nullptr, ok_ys, 3, nullptr).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(launch_gemv_multi(static_cast<ActType>(9), fake, 1, three.data(), nullptr, ok_ys, 3, nullptr).code(),
              StatusCode::kUnsupported);
  }
  EXPECT_EQ(multi_code(ActType::kBF16, 0, three, 3), StatusCode::kInvalidArgument);
  EXPECT_EQ(multi_code(ActType::kBF16, kMaxGemvRows + 1, three, 3), StatusCode::kUnsupported);
}

TEST(KernelExtLaunchers, GemvAndGemmAcceptF32) {
  const DeviceWeightView nf4 = fake_weight(StorageType::kNF4, 8, 64);
  static uint8_t fake[16];
  // Everything but the activation type valid: only an unknown type is refused before the device.
  EXPECT_EQ(launch_gemv(static_cast<ActType>(9), fake, 1, nf4, nullptr, fake, nullptr).code(), StatusCode::kUnsupported);
  EXPECT_EQ(launch_gemv(ActType::kF32, fake, 1, nf4, nullptr, nullptr, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gemv(ActType::kF32, nullptr, 1, nf4, nullptr, fake, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gemv(ActType::kF32, fake, 9, nf4, nullptr, fake, nullptr).code(), StatusCode::kUnsupported);

  // Scratch: 4 bytes per element for fp32 activations, none when W is stored fp32.
  EXPECT_EQ(gemm_scratch_bytes(nf4, ActType::kF32), 8 * 64 * 4);
  EXPECT_EQ(gemm_scratch_bytes(fake_weight(StorageType::kF32, 8, 64), ActType::kF32), 0);
  EXPECT_EQ(gemm_scratch_bytes(fake_weight(StorageType::kF32, 8, 64), ActType::kBF16), 8 * 64 * 2);
  EXPECT_EQ(gemm_scratch_bytes(fake_weight(StorageType::kBF16, 8, 64), ActType::kF32), 8 * 64 * 4);
  EXPECT_EQ(gemm_scratch_bytes(fake_weight(StorageType::kINT8, 8, 64), ActType::kF32), 8 * 64 * 4);
}

TEST(KernelExtLaunchers, GemmF32RejectsSmallScratch) {
  SKIP_WITHOUT_GPU();
  auto ctx = GemmContext::create();
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  GpuWeight g = make_weight(kKinds[0], 16, 64, 64, 1);
  DeviceBuffer buf(1 << 16);
  // 16*64*2 bytes would do for bf16 but not for fp32.
  EXPECT_EQ(launch_gemm(*ctx, ActType::kF32, buf.get(), 4, g.view, nullptr, buf.get(), buf.get(), 16 * 64 * 2, nullptr)
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(KernelExtLaunchers, GatherRejectsBadArguments) {
  const DeviceWeightView nf4 = fake_weight(StorageType::kNF4, 8, 64);
  static int32_t ids[4];
  static uint8_t out[16];
  EXPECT_EQ(launch_gather_rows(nf4, ids, -1, ActType::kF32, out, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gather_rows(nf4, nullptr, 2, ActType::kF32, out, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gather_rows(nf4, ids, 2, ActType::kF32, nullptr, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launch_gather_rows(nf4, ids, 2, static_cast<ActType>(9), out, nullptr).code(), StatusCode::kUnsupported);
  EXPECT_TRUE(launch_gather_rows(nf4, nullptr, 0, ActType::kBF16, nullptr, nullptr).ok());  // nothing to do
  DeviceWeightView bad = nf4;
  bad.absmax = nullptr;
  EXPECT_EQ(launch_gather_rows(bad, ids, 2, ActType::kF32, out, nullptr).code(), StatusCode::kInvalidArgument);
  bad = nf4;
  bad.block_size = 16;
  EXPECT_EQ(launch_gather_rows(bad, ids, 2, ActType::kF32, out, nullptr).code(), StatusCode::kUnsupported);
  DeviceWeightView huge = fake_weight(StorageType::kBF16, 1, INT64_C(1) << 40);
  EXPECT_EQ(launch_gather_rows(huge, ids, INT64_C(1) << 30, ActType::kF32, out, nullptr).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace qmodel::kernels
