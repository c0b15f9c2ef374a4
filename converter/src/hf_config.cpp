// config.json / generation_config.json readers. A KeyReader looks keys up (with aliases, null =
// absent) and converts them with range checks, so every error names the file and the key.
#include "qmodel/converter/hf_config.h"

#include <cfloat>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <new>

#include "key_reader.h"
#include "strict_json.h"
#include "text_file.h"

namespace qmodel::converter {

namespace {

using nlohmann::json;

// Architectures whose config follows LlamaConfig (intermediate_size required, untied by default).
constexpr const char* kLlamaLikeTypes[] = {"llama", "mistral", "mixtral", "qwen2", "qwen3"};
constexpr float kDefaultRopeTheta = 10000.0f;

bool is_llama_like(const std::string& model_type) {
  for (const char* t : kLlamaLikeTypes) {
    if (model_type == t) return true;
  }
  return false;
}

// transformers' default max_position_embeddings per config class, used when the key is absent.
uint32_t default_max_positions(const std::string& model_type) {
  if (model_type == "llama") return 2048;
  if (model_type == "mistral" || model_type == "mixtral") return 4096 * 32;
  if (model_type == "qwen2") return 32768;
  return 0;  // unknown: left to the planner
}

Result<json> parse_object(const std::string& text, const std::string& file) {
  QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(text, file, 0));
  if (!root.is_object()) {
    return Status(StatusCode::kCorruptFile, file + ": must be a JSON object, got " + json_type_name(root));
  }
  return root;
}

// rope_theta and scaling from either rope_parameters (transformers 5) or rope_theta + rope_scaling.
Status parse_rope(const KeyReader& top, const std::string& file, format::ModelConfig* cfg) {
  cfg->rope_theta = kDefaultRopeTheta;
  QMODEL_RETURN_IF_ERROR(top.get_float({"rope_theta"}, &cfg->rope_theta));
  std::string key;
  const json* params = top.find({"rope_parameters"}, &key);
  bool type_required = false;
  if (params) {
    if (!params->is_object()) return top.wrong(key, "an object", *params);
    // Models with several attention kinds nest one set per kind; full attention is the main one.
    const auto full = params->find("full_attention");
    if (full != params->end() && full->is_object() && !params->contains("rope_type")) {
      params = &*full;
      key += ".full_attention";
    }
  } else {
    params = top.find({"rope_scaling"}, &key);
    if (params && !params->is_object()) return top.wrong(key, "an object or null", *params);
    type_required = params && !params->empty();
  }
  if (!params) return Status::ok_status();

  const KeyReader rope(*params, file, key + ".");
  QMODEL_RETURN_IF_ERROR(rope.get_float({"rope_theta"}, &cfg->rope_theta));
  format::RopeScaling& s = cfg->rope_scaling;
  std::string type_key;
  if (!rope.find({"rope_type", "type"}, &type_key) && type_required) return rope.missing("rope_type");
  QMODEL_RETURN_IF_ERROR(rope.get_string({"rope_type", "type"}, &s.type));
  QMODEL_RETURN_IF_ERROR(rope.get_float({"factor"}, &s.factor));
  QMODEL_RETURN_IF_ERROR(rope.get_float({"low_freq_factor"}, &s.low_freq_factor));
  QMODEL_RETURN_IF_ERROR(rope.get_float({"high_freq_factor"}, &s.high_freq_factor));
  QMODEL_RETURN_IF_ERROR(rope.get_u32({"original_max_position_embeddings"}, false, &s.original_max_position_embeddings));
  if (!(s.factor > 0.0f)) return rope.invalid("factor", "must be > 0");
  if (!(cfg->rope_theta > 0.0f)) return top.invalid("rope_theta", "must be > 0");
  return Status::ok_status();
}

Status parse_architecture(const KeyReader& r, format::ModelConfig* cfg) {
  std::string key;
  const json* archs = r.find({"architectures"}, &key);
  if (!archs) return Status::ok_status();
  if (!archs->is_array()) return r.wrong(key, "an array of strings", *archs);
  for (const json& a : *archs) {
    if (!a.is_string()) return r.wrong(key, "an array of strings", a);
  }
  if (!archs->empty()) cfg->architecture = (*archs)[0].get<std::string>();
  return Status::ok_status();
}

Status parse_shapes(const KeyReader& r, format::ModelConfig* cfg) {
  const bool llama_like = is_llama_like(cfg->model_type);
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"hidden_size", "n_embd", "n_embed", "d_model"}, true, &cfg->hidden_size));
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"num_hidden_layers", "n_layer", "num_layers"}, true, &cfg->n_layers));
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"num_attention_heads", "n_head", "num_heads"}, true, &cfg->n_heads));
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"vocab_size"}, true, &cfg->vocab_size));
  // GPT-2/NeoX/BLOOM/Falcon default the MLP width to 4 x hidden.
  const uint64_t default_ffn = 4ull * cfg->hidden_size;
  cfg->intermediate_size = default_ffn <= std::numeric_limits<uint32_t>::max() ? static_cast<uint32_t>(default_ffn) : 0;
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size"}, llama_like, &cfg->intermediate_size));

  cfg->n_kv_heads = cfg->n_heads;
  bool multi_query = false;  // Falcon-7B style: one shared K/V head
  QMODEL_RETURN_IF_ERROR(r.get_bool({"multi_query"}, &multi_query));
  if (multi_query) cfg->n_kv_heads = 1;
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"num_key_value_heads", "num_kv_heads", "n_head_kv"}, false, &cfg->n_kv_heads));
  if (cfg->n_kv_heads > cfg->n_heads || cfg->n_heads % cfg->n_kv_heads != 0) {
    return r.invalid("num_key_value_heads", "(" + std::to_string(cfg->n_kv_heads) + ") must divide num_attention_heads (" +
                                                std::to_string(cfg->n_heads) + ")");
  }
  std::string key;
  if (!r.find({"head_dim"}, &key)) {
    if (cfg->hidden_size % cfg->n_heads != 0) {
      return r.invalid("hidden_size", "(" + std::to_string(cfg->hidden_size) + ") is not a multiple of num_attention_heads (" +
                                          std::to_string(cfg->n_heads) + ") and head_dim is not given");
    }
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
  }
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"head_dim"}, false, &cfg->head_dim));
  cfg->max_position_embeddings = default_max_positions(cfg->model_type);
  QMODEL_RETURN_IF_ERROR(r.get_u32({"max_position_embeddings", "n_positions", "max_sequence_length"}, false,
                                   &cfg->max_position_embeddings));
  return Status::ok_status();
}

Status parse_model_config_object(const KeyReader& r, const std::string& file, format::ModelConfig* cfg) {
  QMODEL_RETURN_IF_ERROR(parse_architecture(r, cfg));
  QMODEL_RETURN_IF_ERROR(r.get_string({"model_type"}, &cfg->model_type));
  QMODEL_RETURN_IF_ERROR(parse_shapes(r, cfg));
  QMODEL_RETURN_IF_ERROR(r.get_float({"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"}, &cfg->rms_norm_eps));
  QMODEL_RETURN_IF_ERROR(parse_rope(r, file, cfg));
  // PretrainedConfig ties by default; LlamaConfig and its relatives do not.
  cfg->tie_word_embeddings = !is_llama_like(cfg->model_type);
  QMODEL_RETURN_IF_ERROR(r.get_bool({"tie_word_embeddings"}, &cfg->tie_word_embeddings));
  // Qwen2 always has q/k/v biases and its config has no key saying so.
  cfg->attention_bias = cfg->model_type == "qwen2";
  QMODEL_RETURN_IF_ERROR(r.get_bool({"attention_bias"}, &cfg->attention_bias));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"mlp_bias"}, &cfg->mlp_bias));
  QMODEL_RETURN_IF_ERROR(r.get_string({"hidden_act", "activation_function", "activation"}, &cfg->hidden_act));
  QMODEL_RETURN_IF_ERROR(r.get_u32({"sliding_window"}, false, &cfg->sliding_window));
  bool use_sliding_window = true;  // Qwen2 states a window but switches it off with this flag
  QMODEL_RETURN_IF_ERROR(r.get_bool({"use_sliding_window"}, &use_sliding_window));
  if (!use_sliding_window) cfg->sliding_window = 0;
  QMODEL_RETURN_IF_ERROR(r.get_token_id("bos_token_id", &cfg->bos_token_id));
  QMODEL_RETURN_IF_ERROR(r.get_token_ids("eos_token_id", &cfg->eos_token_ids));
  QMODEL_RETURN_IF_ERROR(r.get_token_id("pad_token_id", &cfg->pad_token_id));
  QMODEL_RETURN_IF_ERROR(r.get_string({"dtype", "torch_dtype"}, &cfg->torch_dtype));
  return Status::ok_status();
}

}  // namespace

Result<format::ModelConfig> parse_model_config(const std::string& json_text, const std::string& file_name) {
  try {
    QMODEL_ASSIGN_OR_RETURN(json root, parse_object(json_text, file_name));
    format::ModelConfig cfg;
    QMODEL_RETURN_IF_ERROR(parse_model_config_object(KeyReader(root, file_name), file_name, &cfg));
    return cfg;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file_name + ": out of memory");
  } catch (const std::exception& e) {  // nlohmann type errors would be a bug here; still no throw
    return Status(StatusCode::kCorruptFile, file_name + ": " + e.what());
  }
}

Result<format::GenerationDefaults> parse_generation_config(const std::string& json_text, const std::string& file_name) {
  try {
    QMODEL_ASSIGN_OR_RETURN(json root, parse_object(json_text, file_name));
    const KeyReader r(root, file_name);
    format::GenerationDefaults gen;
    QMODEL_RETURN_IF_ERROR(r.get_bool({"do_sample"}, &gen.do_sample));
    QMODEL_RETURN_IF_ERROR(r.get_float({"temperature"}, &gen.temperature));
    if (gen.temperature < 0.0f) return r.invalid("temperature", "must be >= 0");
    uint32_t top_k = 0;
    QMODEL_RETURN_IF_ERROR(r.get_u32({"top_k"}, false, &top_k));
    if (top_k > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) return r.invalid("top_k", "is out of range");
    gen.top_k = static_cast<int32_t>(top_k);
    QMODEL_RETURN_IF_ERROR(r.get_float({"top_p"}, &gen.top_p));
    if (!(gen.top_p >= 0.0f && gen.top_p <= 1.0f)) return r.invalid("top_p", "must be in [0, 1]");
    QMODEL_RETURN_IF_ERROR(r.get_float({"repetition_penalty"}, &gen.repetition_penalty));
    if (!(gen.repetition_penalty > 0.0f)) return r.invalid("repetition_penalty", "must be > 0");
    QMODEL_RETURN_IF_ERROR(r.get_u32({"max_new_tokens"}, false, &gen.max_new_tokens));
    QMODEL_RETURN_IF_ERROR(r.get_token_ids("eos_token_id", &gen.eos_token_ids));
    return gen;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file_name + ": out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kCorruptFile, file_name + ": " + e.what());
  }
}

Result<std::string> read_text_file(const std::string& path) {
  return read_text_file_capped(path, kMaxConfigFileBytes);
}

Result<format::ModelConfig> load_model_config(const std::string& dir) {
  const std::string path = dir + "/" + kConfigFileName;
  QMODEL_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_model_config(text, path);
}

Result<format::GenerationDefaults> load_generation_config(const std::string& dir) {
  const std::string path = dir + "/" + kGenerationConfigFileName;
  QMODEL_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_generation_config(text, path);
}

}  // namespace qmodel::converter
