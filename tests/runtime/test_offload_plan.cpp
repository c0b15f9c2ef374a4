// The offload plan (qmodel/runtime/offload_plan.h): numbers consistent with the file, the KV cache
// formula, the edges of the budget (everything resident, exactly k blocks, everything streamed,
// below the minimum) and the budget parser. No GPU needed: the plan is arithmetic over the header.
#include <gtest/gtest.h>

#include "qmodel/format/reader.h"
#include "qmodel/runtime/offload_plan.h"
#include "support/temp_dir.h"
#include "test_model_fixture.h"

namespace qmodel::runtime {
namespace {

using testing::TempDir;

std::unique_ptr<format::ModelFile> tiny(const TempDir& dir, StorageType storage, bool dq = false,
                                        uint32_t n_layers = 2) {
  testing::TinyModelSpec spec;
  spec.n_layers = n_layers;
  spec.linear_storage = storage;
  spec.double_quant = dq;
  spec.tied = false;
  const std::string path = dir.file("tiny.qmodel");
  EXPECT_TRUE(testing::write_tiny_model(path, spec).ok());
  auto file = format::ModelFile::open(path);
  EXPECT_TRUE(file.ok()) << file.status().to_string();
  return file.ok() ? std::move(file).value() : nullptr;
}

OffloadOptions options(uint64_t budget, uint32_t context = 32, ComputeDType dtype = ComputeDType::kF32) {
  OffloadOptions o;
  o.budget_bytes = budget;
  o.context = context;
  o.prefill_chunk = 16;
  o.compute_dtype = dtype;
  return o;
}

TEST(OffloadPlan, NumbersFollowTheFile) {
  TempDir dir;
  for (const auto& [storage, dq] : {std::pair{StorageType::kF32, false}, std::pair{StorageType::kNF4, true},
                                    std::pair{StorageType::kINT8, false}}) {
    auto file = tiny(dir, storage, dq);
    ASSERT_NE(file, nullptr);
    const format::ModelHeader& h = file->header();
    auto plan = plan_offload(h, options(uint64_t{1} << 30));
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    // KV cache = 2 x layers x context x kv_heads x head_dim x dtype bytes.
    EXPECT_EQ(plan->kv_cache_bytes, 2ull * h.config.n_layers * 32 * h.config.n_kv_heads * h.config.head_dim * 4);
    auto bf16 = plan_offload(h, options(uint64_t{1} << 30, 100, ComputeDType::kBF16));
    ASSERT_TRUE(bf16.ok());
    EXPECT_EQ(bf16->kv_cache_bytes, 2ull * h.config.n_layers * 100 * h.config.n_kv_heads * h.config.head_dim * 2);
    // Each block's bytes are its matrices as uploaded; everything else is always resident.
    std::vector<uint64_t> per_layer(h.config.n_layers, 0);
    uint64_t rest = 0, stored = 0;
    for (const format::TensorInfo& t : h.tensors) {
      for (const format::BlobRef& b : t.blobs) stored += b.raw_size;
      const uint64_t table = t.quant.double_quant ? 1024 : 0;
      if (t.layer >= 0 && t.shape.size() == 2) {
        per_layer[static_cast<size_t>(t.layer)] += device_tensor_bytes(t) - table;
        rest += table;
      } else {
        rest += device_tensor_bytes(t);
      }
    }
    EXPECT_EQ(plan->layer_bytes, per_layer);
    EXPECT_EQ(plan->always_resident_bytes, rest);
    EXPECT_EQ(plan->stored_weight_bytes, stored);
    // A budget above everything: nothing streams.
    EXPECT_EQ(plan->n_streamed, 0u);
    EXPECT_EQ(plan->n_slots, 0u);
    EXPECT_EQ(plan->bus_bytes_per_token, 0u);
    EXPECT_EQ(plan->weight_device_bytes, rest + per_layer[0] + per_layer[1]);
  }
}

TEST(OffloadPlan, BudgetEdges) {
  TempDir dir;
  auto file = tiny(dir, StorageType::kNF4, false, 6);
  ASSERT_NE(file, nullptr);
  const format::ModelHeader& h = file->header();
  auto big = plan_offload(h, options(uint64_t{1} << 30));
  ASSERT_TRUE(big.ok());
  const uint64_t fixed = big->always_resident_bytes + big->kv_cache_bytes + big->workspace_bytes;
  const uint64_t b = big->layer_bytes[0];
  for (uint64_t l : big->layer_bytes) ASSERT_EQ(l, b);  // same shapes
  auto resident_with = [&](uint64_t budget) {
    auto p = plan_offload(h, options(budget));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return p.ok() ? static_cast<int>(p->n_resident) : -1;
  };
  // Exactly everything: zero streamed.
  auto all = plan_offload(h, options(fixed + 6 * b));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->n_resident, 6u);
  EXPECT_EQ(all->n_slots, 0u);
  EXPECT_EQ(all->device_total_bytes, fixed + 6 * b);
  // Streaming one or two blocks needs slots as large as they are and saves nothing: one byte
  // short of everything streams three blocks through two slots.
  auto short_one = plan_offload(h, options(fixed + 6 * b - 1));
  ASSERT_TRUE(short_one.ok());
  EXPECT_EQ(short_one->n_resident, 3u);
  EXPECT_EQ(short_one->n_streamed, 3u);
  EXPECT_EQ(short_one->n_slots, 2u);
  EXPECT_TRUE(short_one->resident[2]);
  EXPECT_FALSE(short_one->resident[3]);
  EXPECT_EQ(short_one->bus_bytes_per_token, 3 * b);
  EXPECT_EQ(short_one->slot_bytes, b);
  EXPECT_EQ(short_one->device_total_bytes, fixed + 5 * b);
  // Exactly one block resident; then none (the minimum: two slots).
  EXPECT_EQ(resident_with(fixed + 3 * b), 1);
  EXPECT_EQ(resident_with(fixed + 3 * b - 1), 0);
  EXPECT_EQ(short_one->minimum_budget_bytes, fixed + 2 * b);
  auto none = plan_offload(h, options(fixed + 2 * b));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->n_resident, 0u);
  EXPECT_EQ(none->n_streamed, 6u);
  EXPECT_EQ(none->n_slots, 2u);
  EXPECT_EQ(none->bus_bytes_per_token, 6 * b);
  EXPECT_EQ(none->device_total_bytes, none->minimum_budget_bytes);
  // Below it: refused, naming the minimum.
  auto below = plan_offload(h, options(fixed + 2 * b - 1));
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(below.status().message().find("minimum"), std::string::npos) << below.status().message();
  // The decode estimate: bus-bound once blocks stream.
  EXPECT_GT(all->decode_tokens_per_s, none->decode_tokens_per_s);
  EXPECT_NEAR(none->decode_tokens_per_s, 54e9 / static_cast<double>(6 * b), 1e-6 * none->decode_tokens_per_s);
  EXPECT_EQ(plan_offload(h, options(0)).status().code(), StatusCode::kInvalidArgument);
}

TEST(OffloadPlan, ParsesBudgets) {
  EXPECT_EQ(parse_memory_budget("6GiB")->bytes, 6ull << 30);
  EXPECT_EQ(parse_memory_budget("5000MB")->bytes, 5000000000ull);
  EXPECT_EQ(parse_memory_budget("1.5 GB")->bytes, 1500000000ull);
  EXPECT_EQ(parse_memory_budget("4096")->bytes, 4096ull);
  EXPECT_EQ(parse_memory_budget("512m")->bytes, 512ull << 20);
  EXPECT_DOUBLE_EQ(parse_memory_budget("90%")->fraction, 0.9);
  for (const char* bad : {"", "abc", "0", "-1GiB", "150%", "6 parsecs", "nan", "1e30TB"}) {
    EXPECT_EQ(parse_memory_budget(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace qmodel::runtime
