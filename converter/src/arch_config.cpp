// One config mapping per family (see arch_config.h).
#include "qmodel/converter/arch_config.h"

#include <cmath>
#include <new>

#include "key_reader.h"
#include "qmodel/format/tensor_roles.h"

namespace qmodel::converter {
namespace {

using format::Activation;
using format::ArchSpec;
using format::MlpKind;
using format::NormKind;
using format::PositionKind;
using format::QkvLayout;
using format::ResidualLayout;

struct FamilyName {
  const char* family;
  const char* architecture;            // the transformers class named in the README
  std::vector<const char*> aliases;    // model_type / architectures[0] values that mean this family
};

const std::vector<FamilyName>& family_names() {
  static const std::vector<FamilyName> kNames = {
      {"llama", "LlamaForCausalLM", {"llama", "LlamaForCausalLM"}},
      {"llama", "MistralForCausalLM", {"mistral", "MistralForCausalLM"}},
      {"llama", "Qwen2ForCausalLM", {"qwen2", "Qwen2ForCausalLM"}},
      {"gpt2", "GPT2LMHeadModel", {"gpt2", "GPT2LMHeadModel"}},
      {"opt", "OPTForCausalLM", {"opt", "OPTForCausalLM"}},
      {"bloom", "BloomForCausalLM", {"bloom", "BloomForCausalLM"}},
      {"gpt_neox", "GPTNeoXForCausalLM", {"gpt_neox", "GPTNeoXForCausalLM"}},
      {"falcon", "FalconForCausalLM",
       {"falcon", "FalconForCausalLM", "RefinedWebModel", "RefinedWeb", "RWForCausalLM"}},
  };
  return kNames;
}

// The family a config belongs to: model_type decides; architectures[0] when model_type is absent.
const char* family_of(const format::ModelConfig& c) {
  for (const std::string* key : {&c.model_type, &c.architecture}) {
    if (key->empty()) continue;
    for (const FamilyName& f : family_names()) {
      for (const char* alias : f.aliases) {
        if (*key == alias) return f.family;
      }
    }
    return nullptr;  // a model_type we do not know: architectures[0] must not override it
  }
  return nullptr;
}

Status unsupported(const std::string& file, const std::string& what) {
  return Status(StatusCode::kUnsupported, file + ": " + what);
}

Result<Activation> activation_of(const std::string& name, const std::string& file) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu") return Activation::kGeluExact;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "relu") return Activation::kRelu;
  return unsupported(file, "activation '" + name + "' is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)");
}

// LayerNorm families: eps from the first key present, else `fallback` (the class default).
Status layernorm(const KeyReader& r, float fallback, ArchSpec& a) {
  a.norm = NormKind::kLayerNorm;
  a.norm_eps = fallback;
  QMODEL_RETURN_IF_ERROR(r.get_float({"layer_norm_epsilon", "layer_norm_eps"}, &a.norm_eps));
  if (!(a.norm_eps >= 0.0f)) return r.invalid("layer_norm_epsilon", "must be >= 0");
  return Status();
}

Status gpt2(const KeyReader& r, const std::string& file, format::ModelConfig& c, ArchSpec& a) {
  QMODEL_RETURN_IF_ERROR(layernorm(r, 1e-5f, a));
  a.qkv = QkvLayout::kConcat;
  a.positions = PositionKind::kLearned;
  a.mlp = MlpKind::kPlain;
  if (c.hidden_act.empty() || c.hidden_act == "silu") c.hidden_act = "gelu_new";  // GPT2Config default
  bool scale_weights = true, by_layer = false;
  QMODEL_RETURN_IF_ERROR(r.get_bool({"scale_attn_weights"}, &scale_weights));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"scale_attn_by_inverse_layer_idx"}, &by_layer));
  if (by_layer) return unsupported(file, "GPT-2 scale_attn_by_inverse_layer_idx=true is not supported");
  if (!scale_weights) a.attn_scale = 1.0f;
  (void)file;
  return Status();
}

Status opt(const KeyReader& r, const std::string& file, format::ModelConfig& c, ArchSpec& a) {
  QMODEL_RETURN_IF_ERROR(layernorm(r, 1e-5f, a));
  bool before = true, remove_final = false;
  QMODEL_RETURN_IF_ERROR(r.get_bool({"do_layer_norm_before"}, &before));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"_remove_final_layer_norm"}, &remove_final));
  a.residual = before ? ResidualLayout::kSequential : ResidualLayout::kPostNorm;
  a.final_norm = before && !remove_final;
  a.positions = PositionKind::kLearned;
  a.learned_offset = 2;  // OPTLearnedPositionalEmbedding
  a.mlp = MlpKind::kPlain;
  if (c.hidden_act.empty() || c.hidden_act == "silu") c.hidden_act = "relu";
  a.embed_dim = c.hidden_size;
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"word_embed_proj_dim"}, false, &a.embed_dim));
  a.project_in_out = a.embed_dim != c.hidden_size;
  (void)file;
  return Status();
}

Status bloom(const KeyReader& r, const std::string& file, format::ModelConfig& c, ArchSpec& a) {
  QMODEL_RETURN_IF_ERROR(layernorm(r, 1e-5f, a));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"apply_residual_connection_post_layernorm"}, &a.residual_from_norm));
  a.qkv = QkvLayout::kPerHead;
  a.positions = PositionKind::kAlibi;
  a.mlp = MlpKind::kPlain;
  a.activation = Activation::kGeluTanh;  // BloomGelu, whatever the config says
  c.hidden_act = "bloom_gelu";
  a.embed_norm = true;
  (void)file;
  return Status();
}

Status gpt_neox(const KeyReader& r, const std::string& file, format::ModelConfig& c, ArchSpec& a) {
  QMODEL_RETURN_IF_ERROR(layernorm(r, 1e-5f, a));
  bool parallel = true;
  QMODEL_RETURN_IF_ERROR(r.get_bool({"use_parallel_residual"}, &parallel));
  a.residual = parallel ? ResidualLayout::kParallelTwoNorms : ResidualLayout::kSequential;
  a.qkv = QkvLayout::kPerHead;
  a.mlp = MlpKind::kPlain;
  if (c.hidden_act.empty() || c.hidden_act == "silu") c.hidden_act = "gelu";
  // Rotary base: rotary_emb_base (classic) unless rope_theta / rope_parameters gave one.
  std::string key;
  if (!r.find({"rope_theta"}, &key) && !r.find({"rope_parameters"}, &key)) {
    QMODEL_RETURN_IF_ERROR(r.get_float({"rotary_emb_base"}, &c.rope_theta));
    if (!(c.rope_theta > 0.0f)) return r.invalid("rotary_emb_base", "must be > 0");
  }
  // Partial rotary: rotary_pct (classic) or partial_rotary_factor (top level or rope_parameters).
  float pct = 0.25f;
  QMODEL_RETURN_IF_ERROR(r.get_float({"rotary_pct", "partial_rotary_factor"}, &pct));
  if (const json* params = r.find({"rope_parameters"}, &key); params != nullptr && params->is_object()) {
    QMODEL_RETURN_IF_ERROR(KeyReader(*params, file, key + ".").get_float({"partial_rotary_factor"}, &pct));
  }
  if (!(pct > 0.0f && pct <= 1.0f)) return r.invalid("rotary_pct", "must be in (0, 1]");
  a.rotary_dim = static_cast<uint32_t>(static_cast<double>(c.head_dim) * static_cast<double>(pct));
  return Status();
}

Status falcon(const KeyReader& r, const std::string& file, format::ModelConfig& c, ArchSpec& a) {
  QMODEL_RETURN_IF_ERROR(layernorm(r, 1e-5f, a));
  bool multi_query = true, parallel = true, alibi = false;
  bool new_arch = c.model_type == "RefinedWeb";  // falcon-40b's original config: the new decoder
  QMODEL_RETURN_IF_ERROR(r.get_bool({"multi_query"}, &multi_query));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"parallel_attn"}, &parallel));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"new_decoder_architecture"}, &new_arch));
  QMODEL_RETURN_IF_ERROR(r.get_bool({"alibi"}, &alibi));
  uint32_t n_ln = new_arch ? 2 : 1;
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"num_ln_in_parallel_attn"}, false, &n_ln));
  // FalconAttention: num_kv_heads if new_decoder_architecture or not multi_query, else 1.
  uint32_t kv = c.n_heads;
  QMODEL_RETURN_IF_ERROR(r.get_positive_u32({"num_kv_heads", "n_head_kv"}, false, &kv));
  c.n_kv_heads = (new_arch || !multi_query) ? kv : 1;
  if (c.n_heads % c.n_kv_heads != 0) return r.invalid("num_kv_heads", "must divide num_attention_heads");
  if (new_arch) {
    a.qkv = QkvLayout::kGroupedKv;
    if (n_ln != 1 && n_ln != 2) return r.invalid("num_ln_in_parallel_attn", "must be 1 or 2");
    if (n_ln == 1 && !parallel) return unsupported(file, "Falcon new_decoder_architecture with one norm needs parallel_attn");
    a.residual = n_ln == 2 ? ResidualLayout::kParallelTwoNorms : ResidualLayout::kParallelSharedNorm;
  } else {
    a.qkv = multi_query ? QkvLayout::kGroupedKv : QkvLayout::kPerHead;
    a.residual = parallel ? ResidualLayout::kParallelSharedNorm : ResidualLayout::kSequential;
  }
  if (a.qkv == QkvLayout::kPerHead && c.n_kv_heads != c.n_heads) {
    return unsupported(file, "Falcon with num_kv_heads != num_attention_heads needs new_decoder_architecture");
  }
  if (alibi) {
    a.positions = PositionKind::kAlibi;
    a.alibi_scaled = true;
  }
  a.mlp = MlpKind::kPlain;
  if (c.hidden_act.empty() || c.hidden_act == "silu") c.hidden_act = "gelu";
  return Status();
}

Status llama(const KeyReader&, const std::string&, format::ModelConfig& c, ArchSpec& a) {
  a = format::llama_arch(c.head_dim, c.hidden_size, c.rms_norm_eps);
  return Status();
}

}  // namespace

std::string supported_architectures() {
  std::string s;
  for (const FamilyName& f : family_names()) s += (s.empty() ? "" : ", ") + std::string(f.architecture);
  return s;
}

Result<format::ArchSpec> derive_architecture(const std::string& config_text, const std::string& file,
                                             format::ModelConfig& config) {
  const char* family = family_of(config);
  if (family == nullptr) {
    const std::string name = !config.architecture.empty() ? config.architecture
                             : !config.model_type.empty() ? "model_type " + config.model_type
                                                          : std::string("(none named)");
    return unsupported(file, "architecture " + name + " is not supported (supported: " + supported_architectures() + ")");
  }
  try {
    QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(config_text, file, 0));
    const KeyReader r(root, file);
    ArchSpec a;
    a.family = family;
    a.embed_dim = config.hidden_size;
    a.rotary_dim = config.head_dim;
    using Mapper = Status (*)(const KeyReader&, const std::string&, format::ModelConfig&, ArchSpec&);
    const std::pair<const char*, Mapper> kMappers[] = {{"llama", llama}, {"gpt2", gpt2},         {"opt", opt},
                                                       {"bloom", bloom}, {"gpt_neox", gpt_neox}, {"falcon", falcon}};
    for (const auto& [name, mapper] : kMappers) {
      if (a.family == name) QMODEL_RETURN_IF_ERROR(mapper(r, file, config, a));
    }
    if (a.family != "bloom" && a.family != "llama") {
      QMODEL_ASSIGN_OR_RETURN(a.activation, activation_of(config.hidden_act, file));
    }
    if (a.positions == PositionKind::kRope && (a.rotary_dim == 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > config.head_dim)) {
      return unsupported(file, "rotary dims " + std::to_string(a.rotary_dim) + " of head_dim " +
                                   std::to_string(config.head_dim) + " must be even and > 0");
    }
    if (a.family != "llama") config.rms_norm_eps = a.norm_eps;  // one eps, whatever the norm
    return a;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file + ": out of memory");
  }
}

}  // namespace qmodel::converter
