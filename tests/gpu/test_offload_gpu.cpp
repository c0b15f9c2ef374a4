// Streaming blocks the GPU budget cannot hold (offload_plan.h, runtime/cuda): under a budget
// smaller than the weights the logits equal the fully resident run exactly (same kernels, same
// order; only where the weights sit differs), the loader does what the plan says, the budget
// edges work and a budget below the minimum is a clear error. Runs on a GPU and on the CPU
// emulator of CUDA (test_offload_gpu_emu); skips without either.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>

#include "gpu_test_util.h"
#include "qmodel/format/reader.h"
#include "qmodel/runtime/model.h"
#include "qmodel/runtime/offload_plan.h"
#include "qmodel/runtime/session.h"
#include "runtime/test_model_fixture.h"
#include "support/temp_dir.h"

namespace qmodel::runtime {
namespace {

constexpr uint32_t kContext = 24;
const std::vector<int32_t> kPrompt = {1, 5, 9, 3, 17, 2, 8};

struct RunResult {
  std::vector<float> logits;  // every prompt position
  std::vector<int32_t> ids;   // greedy continuation (decode graph)
  Stats stats;
  OffloadPlan plan;
};

OffloadOptions plan_options(uint64_t budget) {
  OffloadOptions o;
  o.budget_bytes = budget;
  o.context = kContext;
  o.prefill_chunk = 4;
  o.compute_dtype = ComputeDType::kF32;
  return o;
}

Result<RunResult> run(const std::string& path, uint64_t budget) {
  ModelOptions mo;
  mo.device = Device::kCuda;
  mo.compute_dtype = ComputeDType::kF32;
  mo.gpu_memory.bytes = budget;
  mo.reserve_context = kContext;
  mo.reserve_prefill_chunk = 4;
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::open(path, mo));
  SessionOptions so;
  so.max_context = kContext;
  so.prefill_chunk = 4;  // the prompt runs as two chunks, the rest through the decode graph
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::create(*model, so));
  RunResult r;
  GenerateOptions gen;
  gen.max_new_tokens = 10;
  gen.use_default_stop_ids = false;
  gen.on_prompt_logits = [&](Span<const float> logits, size_t, size_t) { r.logits.assign(logits.begin(), logits.end()); };
  QMODEL_ASSIGN_OR_RETURN(GenerateResult g, session->generate(kPrompt, gen));
  r.ids = g.ids;
  r.stats = session->stats();
  if (model->offload_plan() == nullptr) return Status(StatusCode::kInvalidArgument, "no plan");
  r.plan = *model->offload_plan();
  return r;
}

class Offload : public ::testing::TestWithParam<StorageType> {};

TEST_P(Offload, StreamedBlocksGiveTheResidentLogitsExactly) {
  SKIP_WITHOUT_GPU();
  testing::TempDir dir;
  testing::TinyModelSpec spec;
  spec.linear_storage = GetParam();
  spec.tied = false;
  spec.n_layers = 6;
  const std::string path = dir.file("m.qmodel");
  ASSERT_TRUE(testing::write_tiny_model(path, spec).ok());
  auto file = format::ModelFile::open(path);
  ASSERT_TRUE(file.ok());
  auto full = plan_offload((*file)->header(), plan_options(uint64_t{1} << 30));
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  const uint64_t fixed = full->always_resident_bytes + full->kv_cache_bytes + full->workspace_bytes;
  const uint64_t block = full->layer_bytes[0];

  auto resident = run(path, uint64_t{1} << 30);
  ASSERT_TRUE(resident.ok()) << resident.status().to_string();
  EXPECT_EQ(resident->plan.n_streamed, 0u);
  ASSERT_EQ(resident->logits.size(), kPrompt.size() * spec.vocab_size);

  // Budgets: every block streamed (the minimum), exactly one resident, half resident. (Streaming
  // only one or two of equal blocks needs slots as large as they are, so the plan keeps them.)
  for (const uint32_t n_resident : {0u, 1u, 3u}) {
    SCOPED_TRACE("resident blocks " + std::to_string(n_resident));
    const uint32_t streamed = 6 - n_resident;
    const uint64_t budget = fixed + n_resident * block + std::min<uint32_t>(streamed, 2) * block;
    auto plan = plan_offload((*file)->header(), plan_options(budget));
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    ASSERT_EQ(plan->n_resident, n_resident);
    auto r = run(path, budget);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    // The loader did what the plan says.
    EXPECT_EQ(r->plan.n_resident, plan->n_resident);
    EXPECT_EQ(r->plan.bus_bytes_per_token, plan->bus_bytes_per_token);
    EXPECT_EQ(r->stats.device_weight_bytes, plan->weight_device_bytes);
    EXPECT_EQ(r->stats.kv_cache_bytes, plan->kv_cache_bytes);
    EXPECT_LE(r->stats.device_allocated_bytes, plan->device_total_bytes);
    // Same kernels in the same order: bit-identical logits and the same greedy tokens.
    ASSERT_EQ(r->logits.size(), resident->logits.size());
    EXPECT_EQ(std::memcmp(r->logits.data(), resident->logits.data(), r->logits.size() * sizeof(float)), 0);
    EXPECT_EQ(r->ids, resident->ids);
  }

  // Below the minimum: refused, naming it.
  auto below = run(path, full->minimum_budget_bytes - 1);
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(below.status().message().find("minimum"), std::string::npos) << below.status().message();
}

INSTANTIATE_TEST_SUITE_P(Storage, Offload, ::testing::Values(StorageType::kF32, StorageType::kNF4, StorageType::kINT8),
                         [](const ::testing::TestParamInfo<StorageType>& info) {
                           return std::string(storage_type_name(info.param));
                         });

}  // namespace
}  // namespace qmodel::runtime
