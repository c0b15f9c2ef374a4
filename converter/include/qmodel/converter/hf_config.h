// Hugging Face config.json / generation_config.json -> typed format:: structs. Both key styles are
// read: classic (torch_dtype, rope_theta, rope_scaling{type|rope_type, factor, ...}) and
// transformers 5 (dtype, rope_parameters{rope_theta, rope_type, ...}, head_dim). GPT-2/BLOOM/
// Falcon/OPT key aliases (n_embd, n_layer, n_head, ffn_dim, ...) are read too: an architecture is
// parsed as far as its keys allow, and the planner decides whether it is supported.
#pragma once

#include <string>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::converter {

inline constexpr const char* kConfigFileName = "config.json";
inline constexpr const char* kGenerationConfigFileName = "generation_config.json";
inline constexpr uint64_t kMaxConfigFileBytes = 16ull << 20;

// Parses config.json text. Defaults follow transformers: head_dim = hidden / heads, n_kv_heads =
// n_heads, Qwen2 implies attention_bias, eos_token_id may be an int or a list, null means absent.
// Errors (kCorruptFile, message naming `file_name` and the key): not JSON / not an object, a
// required key missing (hidden_size, num_hidden_layers, num_attention_heads, vocab_size, and
// intermediate_size for Llama-like models), a value of the wrong JSON type or out of range,
// inconsistent head counts. Never throws.
Result<format::ModelConfig> parse_model_config(const std::string& json_text, const std::string& file_name);

// Parses generation_config.json text (every key optional; struct defaults otherwise). Errors as
// above for wrong types or out-of-range values.
Result<format::GenerationDefaults> parse_generation_config(const std::string& json_text,
                                                           const std::string& file_name);

// Reads `path` whole (at most kMaxConfigFileBytes). kNotFound when it does not exist, kIoError when
// unreadable, kCorruptFile when too large.
Result<std::string> read_text_file(const std::string& path);

// dir/config.json read and parsed.
Result<format::ModelConfig> load_model_config(const std::string& dir);
// dir/generation_config.json read and parsed; kNotFound when the folder has none (the caller
// then uses GenerationDefaults{} with the config's eos ids).
Result<format::GenerationDefaults> load_generation_config(const std::string& dir);

}  // namespace qmodel::converter
