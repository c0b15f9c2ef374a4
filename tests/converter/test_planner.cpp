// Which tensor gets which role and storage (DESIGN.md "What is quantized"; format/tensor_roles.h).
#include <gtest/gtest.h>

#include "qmodel/converter/planner.h"
#include "qmodel/format/tensor_roles.h"

namespace qmodel::converter {
namespace {

using format::TensorRole;

TensorEntry entry(const std::string& name, std::vector<uint64_t> shape, SourceDType dtype = SourceDType::kBF16) {
  TensorEntry e;
  e.name = name;
  e.shape = std::move(shape);
  e.dtype = dtype;
  return e;
}

// One complete Llama block plus embedding, final norm and lm_head.
std::vector<TensorEntry> llama_tensors() {
  const std::string p = "model.layers.0.";
  return {entry("model.embed_tokens.weight", {512, 64}),
          entry(p + "self_attn.q_proj.weight", {64, 64}),
          entry(p + "self_attn.q_proj.bias", {64}),
          entry(p + "self_attn.k_proj.weight", {64, 64}),
          entry(p + "self_attn.v_proj.weight", {64, 64}),
          entry(p + "self_attn.o_proj.weight", {64, 64}),
          entry(p + "mlp.gate_proj.weight", {172, 64}),
          entry(p + "mlp.up_proj.weight", {172, 64}),
          entry(p + "mlp.down_proj.weight", {64, 172}),
          entry(p + "input_layernorm.weight", {64}, SourceDType::kF32),
          entry(p + "post_attention_layernorm.weight", {64}, SourceDType::kF32),
          entry("model.norm.weight", {64}),
          entry("lm_head.weight", {512, 64})};
}

format::ModelConfig one_layer_config() {
  format::ModelConfig c;
  c.n_layers = 1;
  return c;
}

const format::ArchSpec kLlama = format::llama_arch(16, 64, 1e-5f);

TEST(Planner, RolesFromTheFamilyTables) {
  auto m = format::match_tensor_role("llama", "model.layers.12.mlp.down_proj.weight");
  EXPECT_EQ(m.role, TensorRole::kDown);
  EXPECT_EQ(m.layer, 12);
  EXPECT_EQ(format::match_tensor_role("llama", "lm_head.weight").role, TensorRole::kLmHead);
  EXPECT_EQ(format::match_tensor_role("llama", "model.layers.01.mlp.down_proj.weight").role, TensorRole::kNone);
  EXPECT_EQ(format::match_tensor_role("llama", "model.layers.x.mlp.down_proj.weight").role, TensorRole::kNone);
  EXPECT_EQ(format::match_tensor_role("llama", "model.layers.99999999999.mlp.down_proj.weight").role, TensorRole::kNone);
  // GPT-2 with and without the "transformer." prefix; Conv1D weights are transposed, biases not.
  m = format::match_tensor_role("gpt2", "transformer.h.3.attn.c_attn.weight");
  EXPECT_EQ(m.role, TensorRole::kQkv);
  EXPECT_EQ(m.layer, 3);
  EXPECT_TRUE(m.transpose);
  m = format::match_tensor_role("gpt2", "h.3.attn.c_attn.bias");
  EXPECT_EQ(m.role, TensorRole::kQkvBias);
  EXPECT_FALSE(m.transpose);
  EXPECT_EQ(format::match_tensor_role("gpt2", "transformer.h.0.attn.bias").role, TensorRole::kNone);  // mask buffer
  // OPT: the decoder's final_layer_norm and a block's final_layer_norm are different roles.
  EXPECT_EQ(format::match_tensor_role("opt", "model.decoder.final_layer_norm.weight").role, TensorRole::kFinalNorm);
  m = format::match_tensor_role("opt", "model.decoder.layers.1.final_layer_norm.bias");
  EXPECT_EQ(m.role, TensorRole::kMlpNormBias);
  EXPECT_EQ(m.layer, 1);
  EXPECT_EQ(format::match_tensor_role("gpt_neox", "embed_out.weight").role, TensorRole::kLmHead);
  EXPECT_EQ(format::match_tensor_role("falcon", "transformer.h.0.ln_mlp.weight").role, TensorRole::kMlpNorm);
  EXPECT_EQ(format::match_tensor_role("bloom", "word_embeddings_layernorm.bias").role, TensorRole::kEmbedNormBias);
  EXPECT_EQ(format::match_tensor_role("nosuchfamily", "lm_head.weight").role, TensorRole::kNone);
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
  std::vector<TensorEntry> tensors = llama_tensors();
  const format::ModelConfig config = one_layer_config();
  ConvertOptions o;
  o.quant = StorageType::kNF4;
  o.skip_patterns = {"down_proj"};
  auto plan = plan_tensors(tensors, config, kLlama, o);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan->tensors.size(), tensors.size());
  auto storage_of = [&](const std::string& name) {
    for (const TensorPlan& p : plan->tensors) {
      if (p.source->name == name) return p.storage;
    }
    ADD_FAILURE() << name;
    return StorageType::kF32;
  };
  EXPECT_EQ(storage_of("model.embed_tokens.weight"), StorageType::kBF16);  // embedding kept
  EXPECT_EQ(storage_of("model.layers.0.self_attn.q_proj.weight"), StorageType::kNF4);
  EXPECT_EQ(storage_of("model.layers.0.self_attn.q_proj.bias"), StorageType::kBF16);  // bias kept
  EXPECT_EQ(storage_of("model.layers.0.mlp.down_proj.weight"), StorageType::kBF16);   // skipped
  EXPECT_EQ(storage_of("model.layers.0.input_layernorm.weight"), StorageType::kF32);  // norm in its own dtype
  EXPECT_EQ(storage_of("lm_head.weight"), StorageType::kBF16);                        // lm_head kept by default

  o.quantize_lm_head = true;
  o.skip_patterns.clear();
  plan = plan_tensors(tensors, config, kLlama, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(storage_of("model.layers.0.mlp.down_proj.weight"), StorageType::kNF4);
  EXPECT_EQ(storage_of("lm_head.weight"), StorageType::kNF4);

  o.quant = StorageType::kF16;  // a float target converts everything
  plan = plan_tensors(tensors, config, kLlama, o);
  ASSERT_TRUE(plan.ok());
  for (const auto& p : plan->tensors) EXPECT_EQ(p.storage, StorageType::kF16) << p.source->name;
}

TEST(Planner, MissingRolesAndStrayLayersAreRefused) {
  ConvertOptions o;
  std::vector<TensorEntry> tensors = llama_tensors();
  tensors.erase(tensors.begin() + 4);  // v_proj
  auto plan = plan_tensors(tensors, one_layer_config(), kLlama, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("block 0 has no v tensor"), std::string::npos) << plan.status().to_string();

  tensors = llama_tensors();
  tensors.push_back(entry("model.layers.1.mlp.up_proj.weight", {172, 64}));  // config has one block
  plan = plan_tensors(tensors, one_layer_config(), kLlama, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("block 1"), std::string::npos);

  tensors = llama_tensors();
  tensors.pop_back();  // lm_head, and the config does not tie it
  plan = plan_tensors(tensors, one_layer_config(), kLlama, o);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("lm_head"), std::string::npos);
}

TEST(Planner, TiedLmHeadStoredOnce) {
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint8_t other[8] = {1, 2, 3, 4, 5, 6, 7, 9};
  std::vector<TensorEntry> tensors = llama_tensors();
  tensors.front() = entry("model.embed_tokens.weight", {2, 2});
  tensors.back() = entry("lm_head.weight", {2, 2});
  tensors.front().bytes = ByteSpan(bytes, 8);
  tensors.back().bytes = ByteSpan(bytes, 8);
  format::ModelConfig config = one_layer_config();
  config.tie_word_embeddings = true;
  ConvertOptions o;
  auto plan = plan_tensors(tensors, config, kLlama, o);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan->tensors.size(), tensors.size() - 1);
  for (const TensorPlan& p : plan->tensors) EXPECT_NE(p.source->name, "lm_head.weight");

  tensors.back().bytes = ByteSpan(other, 8);  // config says tied, bytes differ: keep both, warn
  plan = plan_tensors(tensors, config, kLlama, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tensors.size(), tensors.size());
  EXPECT_EQ(plan->warnings.size(), 1u);
}

}  // namespace
}  // namespace qmodel::converter
