// Which tensor gets which storage (DESIGN.md "What is quantized").
#include <gtest/gtest.h>

#include "qmodel/converter/planner.h"

namespace qmodel::converter {
namespace {

TensorEntry entry(const std::string& name, std::vector<uint64_t> shape, SourceDType dtype = SourceDType::kBF16) {
  TensorEntry e;
  e.name = name;
  e.shape = std::move(shape);
  e.dtype = dtype;
  return e;
}

TEST(Planner, BlockLinearWeightsOnly) {
  EXPECT_TRUE(is_block_linear_weight("model.layers.0.self_attn.q_proj.weight", {64, 64}));
  EXPECT_TRUE(is_block_linear_weight("model.layers.31.mlp.down_proj.weight", {4096, 14336}));
  EXPECT_TRUE(is_block_linear_weight("transformer.h.3.attn.c_attn.weight", {768, 2304}));
  EXPECT_FALSE(is_block_linear_weight("model.layers.0.input_layernorm.weight", {64}));
  EXPECT_FALSE(is_block_linear_weight("model.layers.0.self_attn.q_proj.bias", {64}));
  EXPECT_FALSE(is_block_linear_weight("model.embed_tokens.weight", {512, 64}));
  EXPECT_FALSE(is_block_linear_weight("lm_head.weight", {512, 64}));
  EXPECT_FALSE(is_block_linear_weight("model.norm.weight", {64}));
  EXPECT_FALSE(is_block_linear_weight("model.mylayers.0.x.weight", {4, 4}));
}

TEST(Planner, SkipPatternsMatchSubstringsAndGlobs) {
  EXPECT_TRUE(skip_pattern_matches("down_proj", "model.layers.3.mlp.down_proj.weight"));
  EXPECT_TRUE(skip_pattern_matches("model.layers.3.mlp.down_proj", "model.layers.3.mlp.down_proj.weight"));
  EXPECT_TRUE(skip_pattern_matches("*.layers.0.*", "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(skip_pattern_matches("model.layers.?.mlp.up_proj", "model.layers.7.mlp.up_proj.weight"));
  EXPECT_FALSE(skip_pattern_matches("model.layers.?.mlp.up_proj", "model.layers.17.mlp.up_proj.weight"));
  EXPECT_FALSE(skip_pattern_matches("", "model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(skip_pattern_matches("gate_proj", "model.layers.0.mlp.up_proj.weight"));
}

TEST(Planner, AssignsStorage) {
  std::vector<TensorEntry> tensors = {
      entry("model.embed_tokens.weight", {512, 64}), entry("model.layers.0.self_attn.q_proj.weight", {64, 64}),
      entry("model.layers.0.self_attn.q_proj.bias", {64}), entry("model.layers.0.mlp.down_proj.weight", {64, 172}),
      entry("model.layers.0.input_layernorm.weight", {64}, SourceDType::kF32), entry("lm_head.weight", {512, 64})};
  format::ModelConfig config;
  ConvertOptions o;
  o.quant = StorageType::kNF4;
  o.skip_patterns = {"down_proj"};
  auto plan = plan_tensors(tensors, config, o);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan->tensors.size(), 6u);
  EXPECT_EQ(plan->tensors[0].storage, StorageType::kBF16);  // embedding kept
  EXPECT_EQ(plan->tensors[1].storage, StorageType::kNF4);
  EXPECT_EQ(plan->tensors[2].storage, StorageType::kBF16);  // bias kept
  EXPECT_EQ(plan->tensors[3].storage, StorageType::kBF16);  // skipped
  EXPECT_EQ(plan->tensors[4].storage, StorageType::kF32);   // norm kept in its own dtype
  EXPECT_EQ(plan->tensors[5].storage, StorageType::kBF16);  // lm_head kept by default

  o.quantize_lm_head = true;
  o.skip_patterns.clear();
  plan = plan_tensors(tensors, config, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tensors[3].storage, StorageType::kNF4);
  EXPECT_EQ(plan->tensors[5].storage, StorageType::kNF4);

  o.quant = StorageType::kF16;  // a float target converts everything
  plan = plan_tensors(tensors, config, o);
  ASSERT_TRUE(plan.ok());
  for (const auto& p : plan->tensors) EXPECT_EQ(p.storage, StorageType::kF16) << p.source->name;
}

TEST(Planner, TiedLmHeadStoredOnce) {
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint8_t other[8] = {1, 2, 3, 4, 5, 6, 7, 9};
  std::vector<TensorEntry> tensors = {entry("model.embed_tokens.weight", {2, 2}), entry("lm_head.weight", {2, 2})};
  tensors[0].bytes = ByteSpan(bytes, 8);
  tensors[1].bytes = ByteSpan(bytes, 8);
  format::ModelConfig config;
  config.tie_word_embeddings = true;
  ConvertOptions o;
  auto plan = plan_tensors(tensors, config, o);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->tensors.size(), 1u);
  EXPECT_EQ(plan->tensors[0].source->name, "model.embed_tokens.weight");

  tensors[1].bytes = ByteSpan(other, 8);  // config says tied, bytes differ: keep both, warn
  plan = plan_tensors(tensors, config, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tensors.size(), 2u);
  EXPECT_EQ(plan->warnings.size(), 1u);
}

}  // namespace
}  // namespace qmodel::converter
