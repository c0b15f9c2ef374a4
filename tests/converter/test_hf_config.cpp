// parse_model_config / parse_generation_config: the three stories260K configs (classic and
// transformers-5 key styles) give one ModelConfig; Llama 3.1, Qwen2, Mistral and GPT-2 configs
// inline; and a table of broken configs, each naming the key.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <string>
#include <vector>

#include "qmodel/converter/hf_config.h"

namespace qmodel::converter {
namespace {

const std::string kStories = std::string(QMODEL_TEST_ASSETS) + "/stories260K";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

format::ModelConfig parse_ok(const std::string& text) {
  auto cfg = parse_model_config(text, "config.json");
  EXPECT_TRUE(cfg.ok()) << cfg.status().to_string();
  return cfg.ok() ? *cfg : format::ModelConfig{};
}

TEST(HfConfig, Stories260KConfigsAgreeAcrossKeyStyles) {
  if (!exists(kStories + "/f32/config.json")) GTEST_SKIP() << "no test assets at " << kStories;
  const char* dirs[] = {"f32", "f16", "bf16"};
  const char* dtypes[] = {"float32", "float16", "bfloat16"};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(dirs[i]);
    auto loaded = load_model_config(kStories + "/" + dirs[i]);
    ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
    const format::ModelConfig& c = *loaded;
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.model_type, "llama");
    EXPECT_EQ(c.hidden_size, 64u);
    EXPECT_EQ(c.intermediate_size, 172u);
    EXPECT_EQ(c.n_layers, 5u);
    EXPECT_EQ(c.n_heads, 8u);
    EXPECT_EQ(c.n_kv_heads, 4u);
    EXPECT_EQ(c.head_dim, 8u);
    EXPECT_EQ(c.vocab_size, 512u);
    EXPECT_EQ(c.max_position_embeddings, 512u);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.rope_theta, 10000.0f);
    EXPECT_EQ(c.rope_scaling.type, "default");
    EXPECT_EQ(c.rope_scaling.factor, 1.0f);
    EXPECT_EQ(c.rms_norm_eps, 1e-5f);
    EXPECT_FALSE(c.attention_bias);
    EXPECT_FALSE(c.mlp_bias);
    EXPECT_EQ(c.hidden_act, "silu");
    EXPECT_EQ(c.sliding_window, 0u);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
    EXPECT_EQ(c.pad_token_id, -1);
    EXPECT_EQ(c.torch_dtype, dtypes[i]);

    auto gen = load_generation_config(kStories + "/" + dirs[i]);
    ASSERT_TRUE(gen.ok()) << gen.status().to_string();
    EXPECT_EQ(gen->eos_token_ids, std::vector<int32_t>{2});
    EXPECT_FALSE(gen->do_sample);
  }
}

TEST(HfConfig, Llama31RopeScalingAndEosList) {
  const format::ModelConfig c = parse_ok(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": false,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"})");
  EXPECT_EQ(c.head_dim, 128u);
  EXPECT_EQ(c.n_kv_heads, 8u);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192u);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");

  // The same model in transformers-5 style: rope_parameters carries theta and scaling.
  const format::ModelConfig t5 = parse_ok(R"({
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "head_dim": 128,
    "rope_parameters": {"rope_theta": 500000, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "dtype": "bfloat16", "eos_token_id": 128009})");
  EXPECT_EQ(t5.rope_theta, 500000.0f);
  EXPECT_EQ(t5.rope_scaling.type, "llama3");
  EXPECT_EQ(t5.rope_scaling.original_max_position_embeddings, 8192u);
  EXPECT_EQ(t5.eos_token_ids, std::vector<int32_t>{128009});
  EXPECT_EQ(t5.max_position_embeddings, 2048u);  // LlamaConfig's default
  EXPECT_FALSE(t5.tie_word_embeddings);          // LlamaConfig's default
}

TEST(HfConfig, Qwen2ImpliesAttentionBiasAndHonoursUseSlidingWindow) {
  const format::ModelConfig c = parse_ok(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
    "sliding_window": 32768, "use_sliding_window": false, "tie_word_embeddings": true,
    "bos_token_id": 151643, "eos_token_id": 151643, "rope_scaling": null})");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 64u);
  EXPECT_EQ(c.sliding_window, 0u);
  EXPECT_EQ(c.max_position_embeddings, 32768u);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 1000000.0f);
  EXPECT_EQ(c.rope_scaling.type, "default");
}

TEST(HfConfig, MistralSlidingWindow) {
  const format::ModelConfig c = parse_ok(R"({
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 32000, "sliding_window": 4096, "rope_theta": 10000.0,
    "pad_token_id": null, "head_dim": null})");
  EXPECT_EQ(c.sliding_window, 4096u);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128u);
  EXPECT_EQ(c.pad_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(HfConfig, Gpt2StyleKeysAreReadAsFarAsTheyGo) {
  const format::ModelConfig c = parse_ok(R"({
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12,
    "n_head": 12, "n_positions": 1024, "vocab_size": 50257, "n_inner": null,
    "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "eos_token_id": 50256})");
  EXPECT_EQ(c.hidden_size, 768u);
  EXPECT_EQ(c.n_layers, 12u);
  EXPECT_EQ(c.intermediate_size, 3072u);
  EXPECT_EQ(c.n_kv_heads, 12u);
  EXPECT_EQ(c.max_position_embeddings, 1024u);
  EXPECT_EQ(c.hidden_act, "gelu_new");
  EXPECT_TRUE(c.tie_word_embeddings);  // PretrainedConfig's default
}

TEST(HfConfig, RejectsBrokenConfigs) {
  const std::string base = R"("model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":8,)"
                           R"("vocab_size":512)";
  struct Row {
    const char* rule;
    std::string text;
    std::string part;  // in the message, with the file name
  };
  const std::vector<Row> rows = {
      {"not json", "{", "not valid JSON"},
      {"not an object", "[1]", "must be a JSON object"},
      {"duplicate key", "{" + base + R"(,"intermediate_size":1,"hidden_size":64})", "duplicate key 'hidden_size'"},
      {"missing hidden_size", R"({"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":5,"intermediate_size":1})",
       "missing required key 'hidden_size'"},
      {"missing vocab_size", R"({"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":8})",
       "missing required key 'vocab_size'"},
      {"missing intermediate_size for llama", "{" + base + "}", "missing required key 'intermediate_size'"},
      {"null required key", R"({"hidden_size":null,"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":5})",
       "missing required key 'hidden_size'"},
      {"hidden_size a string", R"({"hidden_size":"64","num_hidden_layers":2,"num_attention_heads":8,"vocab_size":5})",
       "key 'hidden_size' must be a non-negative integer, got string"},
      {"negative layers", R"({"hidden_size":64,"num_hidden_layers":-2,"num_attention_heads":8,"vocab_size":5})",
       "key 'num_hidden_layers' must be a non-negative integer"},
      {"zero heads", R"({"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":0,"vocab_size":5})",
       "key 'num_attention_heads' must be > 0"},
      {"too large", R"({"hidden_size":4294967296,"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":5})",
       "key 'hidden_size' is out of range"},
      {"kv heads do not divide", "{" + base + R"(,"intermediate_size":128,"num_key_value_heads":3})",
       "key 'num_key_value_heads' (3) must divide"},
      {"hidden not a multiple of heads", R"({"hidden_size":65,"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":5})",
       "key 'hidden_size' (65) is not a multiple"},
      {"eps a string", "{" + base + R"(,"intermediate_size":128,"rms_norm_eps":"1e-5"})", "key 'rms_norm_eps' must be a number"},
      {"tie a number", "{" + base + R"(,"intermediate_size":128,"tie_word_embeddings":1})",
       "key 'tie_word_embeddings' must be a boolean"},
      {"eos list of strings", "{" + base + R"(,"intermediate_size":128,"eos_token_id":["2"]})",
       "key 'eos_token_id' must be a non-negative integer token id, got string"},
      {"bos negative", "{" + base + R"(,"intermediate_size":128,"bos_token_id":-1})", "key 'bos_token_id' must be"},
      {"architectures not strings", "{" + base + R"(,"intermediate_size":128,"architectures":[1]})",
       "key 'architectures' must be an array of strings"},
      {"rope_scaling not an object", "{" + base + R"(,"intermediate_size":128,"rope_scaling":"llama3"})",
       "key 'rope_scaling' must be an object or null"},
      {"rope_scaling without type", "{" + base + R"(,"intermediate_size":128,"rope_scaling":{"factor":2.0}})",
       "missing required key 'rope_scaling.rope_type'"},
      {"rope factor a string", "{" + base + R"(,"intermediate_size":128,"rope_scaling":{"type":"linear","factor":"2"}})",
       "key 'rope_scaling.factor' must be a number"},
      {"rope factor zero", "{" + base + R"(,"intermediate_size":128,"rope_scaling":{"type":"linear","factor":0}})",
       "key 'rope_scaling.factor' must be > 0"},
      {"rope_parameters not an object", "{" + base + R"(,"intermediate_size":128,"rope_parameters":[]})",
       "key 'rope_parameters' must be an object"},
      {"rope theta huge", "{" + base + R"(,"intermediate_size":128,"rope_theta":1e300})", "key 'rope_theta' is not a finite"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.rule);
    auto cfg = parse_model_config(row.text, "my/config.json");
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.status().code(), StatusCode::kCorruptFile);
    EXPECT_NE(cfg.status().message().find(row.part), std::string::npos) << cfg.status().message();
    EXPECT_NE(cfg.status().message().find("my/config.json"), std::string::npos) << cfg.status().message();
  }
}

TEST(HfConfig, GenerationConfig) {
  auto gen = parse_generation_config(R"({"do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 50,
      "repetition_penalty": 1.1, "max_new_tokens": 256, "eos_token_id": [128001, 128009], "bos_token_id": 128000})",
                                     "generation_config.json");
  ASSERT_TRUE(gen.ok()) << gen.status().to_string();
  EXPECT_TRUE(gen->do_sample);
  EXPECT_EQ(gen->temperature, 0.6f);
  EXPECT_EQ(gen->top_p, 0.9f);
  EXPECT_EQ(gen->top_k, 50);
  EXPECT_EQ(gen->repetition_penalty, 1.1f);
  EXPECT_EQ(gen->max_new_tokens, 256u);
  EXPECT_EQ(gen->eos_token_ids, (std::vector<int32_t>{128001, 128009}));

  auto defaults = parse_generation_config("{}", "g.json");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->do_sample);
  EXPECT_EQ(defaults->top_k, 0);
  EXPECT_TRUE(defaults->eos_token_ids.empty());

  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"temperature":"hot"})", "key 'temperature' must be a number"},
      {R"({"temperature":-1})", "key 'temperature' must be >= 0"},
      {R"({"top_p":1.5})", "key 'top_p' must be in [0, 1]"},
      {R"({"top_k":-3})", "key 'top_k' must be a non-negative integer"},
      {R"({"do_sample":"yes"})", "key 'do_sample' must be a boolean"},
      {R"({"eos_token_id":{}})", "key 'eos_token_id' must be a non-negative integer token id"},
      {"7", "must be a JSON object"},
  };
  for (const auto& [text, part] : bad) {
    SCOPED_TRACE(text);
    auto r = parse_generation_config(text, "g.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptFile);
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  }
}

TEST(HfConfig, LoadReportsMissingFiles) {
  auto cfg = load_model_config("/nonexistent/qmodel");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), StatusCode::kNotFound);
  EXPECT_NE(cfg.status().message().find("config.json"), std::string::npos);
  auto gen = load_generation_config("/nonexistent/qmodel");
  ASSERT_FALSE(gen.ok());
  EXPECT_EQ(gen.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace qmodel::converter
