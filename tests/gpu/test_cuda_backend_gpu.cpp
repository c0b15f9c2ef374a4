// The CUDA backend end to end on the real stories260K Llama (shared assets): logits against
// Hugging Face's fp32 reference and against the CPU backend, greedy text, the captured decode
// graph against the uncaptured prefill path, device sampling against the CPU Sampler, and the
// out-of-memory errors. Runs on a GPU (label gpu) and on the CPU emulator of CUDA (label
// emulation, built as test_cuda_backend_gpu_emu); skips without either.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "qmodel/runtime/session.h"
#include "runtime/test_stories_helpers.h"

#if defined(QMODEL_CUDA_EMULATION)
#include "cuda_emu/emulator.h"
#endif

namespace qmodel::runtime {
namespace {

using testing::compare_logits;
using testing::LogitError;

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Session> session;
};

Loaded load(const std::string& assets, StorageType quant, bool dq, Device device, ComputeDType dtype,
            uint32_t prefill_chunk = 256) {
  Loaded l;
  auto path = testing::converted_stories(assets, "f32", quant, dq);
  EXPECT_TRUE(path.ok()) << path.status().to_string();
  if (!path.ok()) return l;
  ModelOptions mo;
  mo.device = device;
  mo.compute_dtype = dtype;
  auto model = Model::open(*path, mo);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return l;
  l.model = std::move(model).value();
  SessionOptions so;
  so.max_context = 512;
  so.prefill_chunk = prefill_chunk;
  auto session = Session::create(*l.model, so);
  EXPECT_TRUE(session.ok()) << session.status().to_string();
  if (session.ok()) l.session = std::move(session).value();
  return l;
}

std::vector<float> all_logits(Session& s, const std::vector<int32_t>& ids) {
  s.reset();
  auto logits = s.prefill(ids, true);
  EXPECT_TRUE(logits.ok()) << logits.status().to_string();
  return logits.ok() ? std::vector<float>(logits->begin(), logits->end()) : std::vector<float>();
}

// fp32 compute: the same arithmetic as the CPU backend up to summation order.
TEST(CudaBackend, F32LogitsMatchTransformersAndGreedyTextIsIdentical) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  Loaded l = load(assets, StorageType::kF32, false, Device::kCuda, ComputeDType::kF32);
  ASSERT_TRUE(l.session);
  const auto got = all_logits(*l.session, ref.input_ids);
  ASSERT_EQ(got.size(), ref.logits.size());
  const LogitError e = compare_logits(got, ref.logits, ref.vocab);
  std::printf("cuda f32: max abs %.3g, rms %.3g, top-1 %zu/%zu\n", e.max_abs, e.rms, e.top1_agree, e.positions);
  EXPECT_LT(e.max_abs, 1e-3);
  EXPECT_EQ(e.top1_agree, e.positions);

  GenerateOptions o;
  o.max_new_tokens = static_cast<uint32_t>(ref.greedy_ids.size() - 1);
  auto r = l.session->generate({ref.greedy_ids[0]}, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->ids, std::vector<int32_t>(ref.greedy_ids.begin() + 1, ref.greedy_ids.end()));
  EXPECT_EQ(r->text, ref.greedy_text);
}

// 16-bit activations and KV cache (weights f32): rounding of every activation to 8 (bf16) or 11
// (fp16) significant bits, accumulated over 5 layers, against logits of |20| (rms 8.3).
// Measured on the CPU emulator of CUDA: bf16 max abs 0.156 (rms 0.042), f16 0.0184 (rms 0.0049),
// top-1 16/16 both; the bounds are ~3x that (a GPU contracts into FMAs where the emulator does not,
// so the last bits may differ).
TEST(CudaBackend, SixteenBitComputeStaysCloseToTransformers) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  struct Case { ComputeDType dtype; const char* name; double max_bound, rms_bound; size_t min_top1; };
  for (Case c : {Case{ComputeDType::kBF16, "bf16", 0.5, 0.13, 15}, Case{ComputeDType::kF16, "f16", 0.06, 0.015, 16}}) {
    Loaded l = load(assets, StorageType::kF32, false, Device::kCuda, c.dtype);
    ASSERT_TRUE(l.session);
    const auto got = all_logits(*l.session, ref.input_ids);
    ASSERT_EQ(got.size(), ref.logits.size());
    const LogitError e = compare_logits(got, ref.logits, ref.vocab);
    std::printf("cuda %s compute: max abs %.3g, rms %.3g, top-1 %zu/%zu\n", c.name, e.max_abs, e.rms, e.top1_agree,
                e.positions);
    EXPECT_LT(e.max_abs, c.max_bound) << c.name;
    EXPECT_LT(e.rms, c.rms_bound) << c.name;
    EXPECT_GE(e.top1_agree, c.min_top1) << c.name;
  }
}

// Quantized weights, fp32 compute: the CUDA kernels read the stored blocks exactly as the CPU
// backend does, so the logits agree to fp32 summation-order noise, not to the quantization error
// (measured on the emulator: max abs 6.7e-6 to 8.7e-6 against 3.7 for NF4 vs the fp32 model).
TEST(CudaBackend, QuantizedModelsMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  struct Case { StorageType quant; bool dq; const char* name; };
  for (Case c : {Case{StorageType::kNF4, false, "nf4"}, Case{StorageType::kNF4, true, "nf4-dq"},
                 Case{StorageType::kFP4, false, "fp4"}, Case{StorageType::kINT8, false, "int8"},
                 Case{StorageType::kBF16, false, "bf16"}}) {
    Loaded gpu = load(assets, c.quant, c.dq, Device::kCuda, ComputeDType::kF32);
    Loaded cpu = load(assets, c.quant, c.dq, Device::kCpu, ComputeDType::kF32);
    ASSERT_TRUE(gpu.session && cpu.session) << c.name;
    const auto want = all_logits(*cpu.session, ref.input_ids);
    const auto got = all_logits(*gpu.session, ref.input_ids);
    ASSERT_EQ(got.size(), want.size());
    const LogitError e = compare_logits(got, want, ref.vocab);
    std::printf("cuda vs cpu %-7s: max abs %.3g, top-1 %zu/%zu\n", c.name, e.max_abs, e.top1_agree, e.positions);
    EXPECT_LT(e.max_abs, 1e-4) << c.name;
    EXPECT_EQ(e.top1_agree, e.positions) << c.name;
  }
}

// The captured decode graph (flash-decoding attention, GEMV, device-side position) gives the
// logits the uncaptured prefill path gives for the same positions; prefill in chunks of 3 tokens
// (GEMV path) and of 16 (GEMM path) agree too.
TEST(CudaBackend, DecodeGraphAndChunkedPrefillMatchOnePrefill) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  const size_t vocab = ref.vocab, n = ref.input_ids.size();
  Loaded whole = load(assets, StorageType::kNF4, false, Device::kCuda, ComputeDType::kF32);
  ASSERT_TRUE(whole.session);
  const auto want = all_logits(*whole.session, ref.input_ids);
  ASSERT_EQ(want.size(), n * vocab);

  Loaded stepped = load(assets, StorageType::kNF4, false, Device::kCuda, ComputeDType::kF32);
  ASSERT_TRUE(stepped.session);
  const size_t first = 5;
  ASSERT_TRUE(stepped.session->prefill(std::vector<int32_t>(ref.input_ids.begin(), ref.input_ids.begin() + first)).ok());
  for (size_t p = first; p < n; ++p) {
    auto logits = stepped.session->decode_step(ref.input_ids[p]);
    ASSERT_TRUE(logits.ok()) << logits.status().to_string();
    double max_abs = 0;
    for (size_t i = 0; i < vocab; ++i) max_abs = std::max(max_abs, std::fabs(double((*logits)[i]) - want[p * vocab + i]));
    EXPECT_LT(max_abs, 1e-4) << "position " << p;
  }

  for (uint32_t chunk : {3u, 16u}) {
    Loaded chunked = load(assets, StorageType::kNF4, false, Device::kCuda, ComputeDType::kF32, chunk);
    ASSERT_TRUE(chunked.session);
    const auto got = all_logits(*chunked.session, ref.input_ids);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LT(compare_logits(got, want, vocab).max_abs, 1e-4) << "chunk " << chunk;
  }
}

// Sampling on the device draws the same tokens as the CPU Sampler with the same seed (the host
// supplies the same uniforms; probabilities agree to fp32 rounding, far from any boundary here).
TEST(CudaBackend, DeviceSamplingFollowsTheCpuSampler) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  Loaded gpu = load(assets, StorageType::kF32, false, Device::kCuda, ComputeDType::kF32);
  Loaded cpu = load(assets, StorageType::kF32, false, Device::kCpu, ComputeDType::kF32);
  ASSERT_TRUE(gpu.session && cpu.session);
  struct Case { float temperature; int32_t top_k; float top_p; };
  for (Case c : {Case{1.0f, 0, 1.0f}, Case{0.8f, 40, 1.0f}, Case{0.9f, 0, 0.9f}, Case{1.2f, 20, 0.8f}}) {
    GenerateOptions o;
    o.max_new_tokens = 24;
    o.use_default_stop_ids = false;
    o.sampling.temperature = c.temperature;
    o.sampling.top_k = c.top_k;
    o.sampling.top_p = c.top_p;
    o.sampling.seed = 1234;
    auto want = cpu.session->generate({1}, o);
    auto got = gpu.session->generate({1}, o);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_EQ(got->ids, want->ids) << "temperature " << c.temperature << " top_k " << c.top_k << " top_p " << c.top_p;
  }
}

TEST(CudaBackend, ASessionThatDoesNotFitNamesTheShortfall) {
  SKIP_WITHOUT_GPU();
  QMODEL_REQUIRE_ASSETS(assets);
  auto path = testing::converted_stories(assets, "f32", StorageType::kNF4, false);
  ASSERT_TRUE(path.ok());
  ModelOptions mo;
  mo.device = Device::kCuda;
  auto model = Model::open(*path, mo);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  SessionOptions so;
  so.max_context = 1u << 30;  // a 1G-token KV cache: terabytes
  auto session = Session::create(**model, so);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(session.status().message().find("KV cache"), std::string::npos) << session.status().message();
  EXPECT_NE(session.status().message().find("short by"), std::string::npos) << session.status().message();

  // What fits runs, and the stats account for the device memory.
  so.max_context = 256;
  auto ok_session = Session::create(**model, so);
  ASSERT_TRUE(ok_session.ok()) << ok_session.status().to_string();
  ASSERT_TRUE((*ok_session)->prefill({1, 2, 3}).ok());
  const Stats s = (*ok_session)->stats();
  EXPECT_GE(s.device_weight_bytes, s.weight_bytes);
  EXPECT_EQ(s.device_allocated_bytes, s.device_weight_bytes + s.kv_cache_bytes + s.scratch_bytes);
}

#if defined(QMODEL_CUDA_EMULATION)
// Only the emulator can shrink the device: a device whose free memory is within the safety margin,
// or whose budget (free less the margin) is below even the streaming minimum, is refused at open().
TEST(CudaBackend, WeightsThatDoNotFitAreRefusedAtOpen) {
  QMODEL_REQUIRE_ASSETS(assets);
  auto path = testing::converted_stories(assets, "f32", StorageType::kF32, false);
  ASSERT_TRUE(path.ok());
  ModelOptions mo;
  mo.device = Device::kCuda;
  size_t previous = cuda_emu::set_device_memory_capacity(cuda_emu::device_memory_used() + (64 << 10));
  auto model = Model::open(*path, mo);
  cuda_emu::set_device_memory_capacity(previous);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(model.status().message().find("no more than the safety margin"), std::string::npos) << model.status().message();

  previous = cuda_emu::set_device_memory_capacity(cuda_emu::device_memory_used() + kDefaultSafetyMarginBytes + (64 << 10));
  model = Model::open(*path, mo);
  cuda_emu::set_device_memory_capacity(previous);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(model.status().message().find("the minimum is"), std::string::npos) << model.status().message();
}
#endif

}  // namespace
}  // namespace qmodel::runtime
