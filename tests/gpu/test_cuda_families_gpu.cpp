// The CUDA backend on every model family (tests/runtime/family_goldens.h): fp32 compute against
// transformers (logits within 1e-3, identical greedy tokens, decode through the captured graph),
// bf16 / fp16 compute within the bounds those dtypes imply, and NF4, NF4+DQ, FP4 and INT8
// conversions against the CPU backend on the same file. Runs on a GPU (label gpu) and on the CPU
// emulator of CUDA (test_cuda_families_gpu_emu, label emulation); skips without either.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "qmodel/runtime/session.h"
#include "runtime/family_goldens.h"
#include "support/temp_dir.h"

namespace qmodel::runtime {
namespace {

ModelOptions on(Device device, ComputeDType dtype) {
  ModelOptions o;
  o.device = device;
  o.compute_dtype = dtype;
  return o;
}

class CudaFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaFamilies, F32ComputeMatchesTransformers) {
  SKIP_WITHOUT_GPU();
  const testing::FamilyGolden g = testing::load_family_golden(GetParam());
  ASSERT_FALSE(g.logits.empty());
  testing::TempDir tmp;
  ASSERT_TRUE(testing::convert_family(GetParam(), tmp.file("m.qmodel"), StorageType::kF32).ok());
  // A 5-token prefill chunk: the prompt runs as GEMMs over several chunks, then 24 graph decodes.
  const testing::FamilyRun r = testing::run_family_model(tmp.file("m.qmodel"), g, on(Device::kCuda, ComputeDType::kF32), 5);
  const float err = testing::max_abs_diff(r.logits, g.logits);
  std::printf("%s cuda f32: max abs %.3g\n", GetParam().c_str(), err);
  EXPECT_LE(err, 1e-3f);
  EXPECT_EQ(r.greedy, g.greedy_ids);
}

// bf16 / fp16 activations and KV cache, fp32 weights: every activation rounded to 8 / 11
// significant bits over 2-3 blocks, against logits of magnitude ~10-30.
TEST_P(CudaFamilies, SixteenBitComputeStaysClose) {
  SKIP_WITHOUT_GPU();
  const testing::FamilyGolden g = testing::load_family_golden(GetParam());
  ASSERT_FALSE(g.logits.empty());
  testing::TempDir tmp;
  ASSERT_TRUE(testing::convert_family(GetParam(), tmp.file("m.qmodel"), StorageType::kF32).ok());
  // Bounds relative to the largest reference logit (measured under the emulator: bf16 at most
  // 7.9% and fp16 1.0% of it, both on the unscaled-attention GPT-2; 3% and 0.4% for the others).
  const float scale = testing::max_abs(g.logits);
  for (const auto& [dtype, bound] :
       {std::pair{ComputeDType::kBF16, 0.12f * scale}, std::pair{ComputeDType::kF16, 0.02f * scale}}) {
    const testing::FamilyRun r = testing::run_family_model(tmp.file("m.qmodel"), g, on(Device::kCuda, dtype));
    const float err = testing::max_abs_diff(r.logits, g.logits);
    std::printf("%s cuda %s: max abs %.3g\n", GetParam().c_str(), compute_dtype_name(dtype), err);
    EXPECT_LE(err, bound) << compute_dtype_name(dtype);
    EXPECT_EQ(r.greedy.size(), g.greedy_ids.size());
  }
}

// Quantized weights, fp32 compute: the CUDA kernels read the stored blocks exactly as the CPU
// backend does, so the two agree to fp32 summation-order noise.
TEST_P(CudaFamilies, QuantizedConversionsMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  const testing::FamilyGolden g = testing::load_family_golden(GetParam());
  ASSERT_FALSE(g.logits.empty());
  testing::TempDir tmp;
  const std::pair<StorageType, bool> kinds[] = {
      {StorageType::kNF4, false}, {StorageType::kNF4, true}, {StorageType::kFP4, false}, {StorageType::kINT8, false}};
  for (const auto& [quant, dq] : kinds) {
    const std::string what = std::string(storage_type_name(quant)) + (dq ? "+dq" : "");
    const std::string path = tmp.file("q.qmodel");
    ASSERT_TRUE(testing::convert_family(GetParam(), path, quant, dq).ok());
    const testing::FamilyRun cpu = testing::run_family_model(path, g, on(Device::kCpu, ComputeDType::kF32));
    const testing::FamilyRun gpu = testing::run_family_model(path, g, on(Device::kCuda, ComputeDType::kF32));
    const float err = testing::max_abs_diff(gpu.logits, cpu.logits);
    std::printf("%s %s: cuda vs cpu max abs %.3g\n", GetParam().c_str(), what.c_str(), err);
    EXPECT_LE(err, 1e-3f) << what;
    EXPECT_EQ(gpu.greedy, cpu.greedy) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaFamilies, ::testing::ValuesIn(testing::family_variants()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace qmodel::runtime
