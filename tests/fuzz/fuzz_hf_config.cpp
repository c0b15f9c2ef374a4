// Fuzz target: parse_model_config, derive_architecture and parse_generation_config on arbitrary text.
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/hf_config.h"

std::vector<std::string> qmodel_fuzz_seeds() {
  return {
      R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":172,)"
      R"("num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"rms_norm_eps":1e-05,)"
      R"("rope_theta":10000.0,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2,"rope_scaling":null,"torch_dtype":"float32"})",
      R"({"model_type":"llama","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,)"
      R"("num_key_value_heads":8,"vocab_size":128256,"head_dim":128,"dtype":"bfloat16","eos_token_id":[128001,128009],)"
      R"("rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,)"
      R"("high_freq_factor":4.0,"original_max_position_embeddings":8192}})",
      R"({"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,)"
      R"("num_key_value_heads":2,"vocab_size":151936,"sliding_window":32768,"use_sliding_window":false})",
      R"({"model_type":"gpt2","n_embd":768,"n_layer":12,"n_head":12,"vocab_size":50257,"n_inner":null})",
      R"({"model_type":"falcon","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":8,"num_kv_heads":2,)"
      R"("new_decoder_architecture":true,"multi_query":true,"alibi":false,"parallel_attn":true,"vocab_size":400})",
      R"({"model_type":"RefinedWebModel","hidden_size":64,"n_layer":2,"n_head":4,"multi_query":true,"vocab_size":100})",
      R"({"model_type":"gpt_neox","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":160,)"
      R"("vocab_size":400,"rope_parameters":{"rope_type":"default","rope_theta":10000.0,"partial_rotary_factor":0.25}})",
      R"({"model_type":"opt","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"ffn_dim":128,)"
      R"("vocab_size":400,"do_layer_norm_before":false,"word_embed_proj_dim":32})",
      R"({"model_type":"bloom","hidden_size":48,"n_layer":2,"n_head":6,"vocab_size":400,"layer_norm_epsilon":1e-5})",
      R"({"do_sample":true,"temperature":0.6,"top_p":0.9,"top_k":50,"max_new_tokens":16,"eos_token_id":[1,2]})",
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = qmodel::converter::parse_model_config(text, "config.json");
  auto gen = qmodel::converter::parse_generation_config(text, "generation_config.json");
  // A config that parses is complete and consistent: the planner divides by these.
  if (cfg.ok() && (cfg->head_dim == 0 || cfg->n_kv_heads == 0 || cfg->n_heads % cfg->n_kv_heads != 0)) __builtin_trap();
  if (cfg.ok()) {
    // A description that derives is executable: its head counts divide and its rotary dims fit.
    auto arch = qmodel::converter::derive_architecture(text, "config.json", *cfg);
    if (arch.ok() && (cfg->n_kv_heads == 0 || cfg->n_heads % cfg->n_kv_heads != 0)) __builtin_trap();
    if (arch.ok() && arch->positions == qmodel::format::PositionKind::kRope &&
        (arch->rotary_dim == 0 || arch->rotary_dim > cfg->head_dim || arch->rotary_dim % 2 != 0)) {
      __builtin_trap();
    }
  }
  (void)gen;
  return 0;
}
