// config.json -> architecture description, per family (converter/arch_config.h), including the
// older Falcon keys and the classic GPT-NeoX rotary keys real Hub checkpoints still carry.
#include <gtest/gtest.h>

#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/hf_config.h"

namespace qmodel::converter {
namespace {

using format::ArchSpec;

struct Derived {
  Status status;
  format::ModelConfig config;
  ArchSpec arch;
};

Derived derive(const std::string& json) {
  Derived d;
  auto config = parse_model_config(json, "config.json");
  if (!config.ok()) {
    d.status = config.status();
    return d;
  }
  d.config = *config;
  auto arch = derive_architecture(json, "config.json", d.config);
  if (!arch.ok()) {
    d.status = arch.status();
    return d;
  }
  d.arch = *arch;
  return d;
}

TEST(ArchConfig, UnknownArchitecturesAreRefusedWithTheSupportedList) {
  const Derived d = derive(R"({"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 64,
                              "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})");
  ASSERT_FALSE(d.status.ok());
  EXPECT_EQ(d.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(d.status.message().find("MambaForCausalLM"), std::string::npos) << d.status.to_string();
  for (const char* name : {"LlamaForCausalLM", "GPT2LMHeadModel", "OPTForCausalLM", "BloomForCausalLM",
                           "GPTNeoXForCausalLM", "FalconForCausalLM"}) {
    EXPECT_NE(d.status.message().find(name), std::string::npos) << name;
  }
  // A Llama-like type the runtime cannot run (Qwen3's q/k norms) is refused too, not converted blindly.
  EXPECT_EQ(derive(R"({"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "vocab_size": 100})").status.code(), StatusCode::kUnsupported);
}

TEST(ArchConfig, Falcon7bOriginalKeys) {
  // tiiuae/falcon-7b's original RefinedWebModel config.
  const Derived d = derive(R"({"architectures": ["RWForCausalLM"], "model_type": "RefinedWebModel", "hidden_size": 64,
                              "n_layer": 2, "n_head": 4, "vocab_size": 100, "multi_query": true,
                              "parallel_attn": true, "bias": false, "alibi": false, "layer_norm_epsilon": 1e-5})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.family, "falcon");
  EXPECT_EQ(d.config.n_kv_heads, 1u);
  EXPECT_EQ(d.arch.qkv, format::QkvLayout::kGroupedKv);
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kParallelSharedNorm);
  EXPECT_EQ(d.arch.positions, format::PositionKind::kRope);
  EXPECT_EQ(d.arch.activation, format::Activation::kGeluExact);
}

TEST(ArchConfig, Falcon40bOriginalKeysMeanTheNewDecoder) {
  const Derived d = derive(R"({"model_type": "RefinedWeb", "hidden_size": 64, "n_layer": 2, "n_head": 8,
                              "n_head_kv": 2, "vocab_size": 100, "parallel_attn": true, "bias": false})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.config.n_kv_heads, 2u);
  EXPECT_EQ(d.arch.qkv, format::QkvLayout::kGroupedKv);
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kParallelTwoNorms);
}

TEST(ArchConfig, FalconMultiQueryIgnoresACopiedKvHeadCount) {
  // transformers 5 writes num_kv_heads = num_attention_heads even when multi_query makes it 1.
  const Derived d = derive(R"({"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "num_kv_heads": 4, "vocab_size": 100, "multi_query": true,
                              "new_decoder_architecture": false, "alibi": true, "parallel_attn": false})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.config.n_kv_heads, 1u);
  EXPECT_EQ(d.arch.positions, format::PositionKind::kAlibi);
  EXPECT_TRUE(d.arch.alibi_scaled);
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kSequential);
}

TEST(ArchConfig, GptNeoxClassicAndNewRotaryKeys) {
  Derived d = derive(R"({"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 128, "vocab_size": 100, "rotary_pct": 0.25, "rotary_emb_base": 5000,
                        "use_parallel_residual": false, "hidden_act": "gelu"})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.rotary_dim, 4u);
  EXPECT_FLOAT_EQ(d.config.rope_theta, 5000.0f);
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kSequential);
  EXPECT_EQ(d.arch.qkv, format::QkvLayout::kPerHead);
  d = derive(R"({"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "intermediate_size": 128, "vocab_size": 100,
                 "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.rotary_dim, 8u);
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kParallelTwoNorms);
}

TEST(ArchConfig, OptProjectionsPostNormAndDefaults) {
  const Derived d = derive(R"({"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "ffn_dim": 128, "vocab_size": 100, "do_layer_norm_before": false,
                              "word_embed_proj_dim": 32})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.residual, format::ResidualLayout::kPostNorm);
  EXPECT_FALSE(d.arch.final_norm);
  EXPECT_TRUE(d.arch.project_in_out);
  EXPECT_EQ(d.arch.embed_dim, 32u);
  EXPECT_EQ(d.arch.learned_offset, 2u);
  EXPECT_EQ(d.arch.activation, format::Activation::kRelu);
  EXPECT_FLOAT_EQ(d.arch.norm_eps, 1e-5f);
}

TEST(ArchConfig, Gpt2AndBloom) {
  Derived d = derive(R"({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100,
                        "activation_function": "gelu_new", "n_inner": null})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.qkv, format::QkvLayout::kConcat);
  EXPECT_EQ(d.arch.activation, format::Activation::kGeluTanh);
  EXPECT_EQ(d.config.intermediate_size, 256u);
  EXPECT_EQ(derive(R"({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100,
                       "scale_attn_by_inverse_layer_idx": true})").status.code(), StatusCode::kUnsupported);
  d = derive(R"({"model_type": "bloom", "hidden_size": 48, "n_layer": 2, "n_head": 6, "vocab_size": 100,
                 "apply_residual_connection_post_layernorm": true})");
  ASSERT_TRUE(d.status.ok()) << d.status.to_string();
  EXPECT_EQ(d.arch.positions, format::PositionKind::kAlibi);
  EXPECT_FALSE(d.arch.alibi_scaled);
  EXPECT_TRUE(d.arch.embed_norm);
  EXPECT_TRUE(d.arch.residual_from_norm);
  EXPECT_EQ(d.arch.qkv, format::QkvLayout::kPerHead);
}

TEST(ArchConfig, UnsupportedActivationIsNamed) {
  const Derived d = derive(R"({"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "ffn_dim": 128, "vocab_size": 100, "activation_function": "quick_gelu"})");
  EXPECT_EQ(d.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(d.status.message().find("quick_gelu"), std::string::npos);
}

}  // namespace
}  // namespace qmodel::converter
