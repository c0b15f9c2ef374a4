#include "qmodel/converter/planner.h"

#include <fnmatch.h>

#include <cstring>
#include <set>
#include <utility>

#include "qmodel/format/tensor_roles.h"

namespace qmodel::converter {
namespace {

using format::TensorRole;

bool has_suffix(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

std::string module_name(const std::string& tensor_name) {
  for (const char* suffix : {".weight", ".bias"}) {
    if (has_suffix(tensor_name, suffix)) return tensor_name.substr(0, tensor_name.size() - std::strlen(suffix));
  }
  return tensor_name;
}

bool same_bytes(const TensorEntry& a, const TensorEntry& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.bytes.size() == b.bytes.size() &&
         (a.bytes.data() == b.bytes.data() || std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
}

Status missing_role(TensorRole role, int32_t layer, const format::ArchSpec& arch) {
  std::string where = layer >= 0 ? "block " + std::to_string(layer) + " has no " : "the checkpoint has no ";
  return Status(StatusCode::kCorruptFile, where + format::tensor_role_name(role) + " tensor, which the " + arch.family +
                                              " architecture needs");
}

}  // namespace

bool is_quantizable_role(TensorRole r) {
  switch (r) {
    case TensorRole::kQ: case TensorRole::kK: case TensorRole::kV: case TensorRole::kQkv: case TensorRole::kO:
    case TensorRole::kGate: case TensorRole::kUp: case TensorRole::kDown:
    case TensorRole::kProjectIn: case TensorRole::kProjectOut:
      return true;
    default:
      return false;
  }
}

StorageType float_storage_of(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return StorageType::kF32;
    case SourceDType::kF16: return StorageType::kF16;
    case SourceDType::kBF16: return StorageType::kBF16;
  }
  return StorageType::kF32;
}

bool skip_pattern_matches(const std::string& pattern, const std::string& tensor_name) {
  if (pattern.empty()) return false;
  const std::string module = module_name(tensor_name);
  if (pattern.find_first_of("*?[") != std::string::npos) {
    return fnmatch(pattern.c_str(), tensor_name.c_str(), 0) == 0 || fnmatch(pattern.c_str(), module.c_str(), 0) == 0;
  }
  return tensor_name.find(pattern) != std::string::npos;
}

Result<Plan> plan_tensors(const std::vector<TensorEntry>& tensors, const format::ModelConfig& config,
                          const format::ArchSpec& arch, const ConvertOptions& options) {
  Plan plan;
  const bool float_target = is_float_storage(options.quant);
  const TensorEntry* embedding = nullptr;
  for (const TensorEntry& t : tensors) {
    if (format::match_tensor_role(arch.family, t.name).role == TensorRole::kTokenEmbedding) embedding = &t;
  }
  std::set<std::pair<int32_t, TensorRole>> present;
  std::vector<std::string> unused;
  bool lm_head_stored = false;
  for (const TensorEntry& t : tensors) {
    if (!t.is_float()) {  // raw U8/I8 entries (bitsandbytes import) are never planned as weights
      return Status(StatusCode::kUnsupported, "tensor '" + t.name + "': dtype " + st_dtype_name(t.st_dtype) +
                                                  " is not a float tensor (F32, F16 and BF16 only)");
    }
    TensorPlan p;
    p.source = &t;
    const format::RoleMatch m = format::match_tensor_role(arch.family, t.name);
    p.role = m.role;
    p.layer = m.layer;
    p.transpose = m.transpose && t.shape.size() == 2;
    if (p.layer >= 0 && static_cast<uint32_t>(p.layer) >= config.n_layers) {
      return Status(StatusCode::kCorruptFile, "tensor '" + t.name + "' belongs to block " + std::to_string(p.layer) +
                                                  " but the config has " + std::to_string(config.n_layers) + " blocks");
    }
    const bool lm_head = p.role == TensorRole::kLmHead;
    if (lm_head && config.tie_word_embeddings && embedding != nullptr) {
      if (same_bytes(t, *embedding)) continue;  // tied: stored once, as the embedding
      plan.warnings.push_back("config ties lm_head to the embedding but '" + t.name +
                              "' differs from '" + embedding->name + "': storing both");
    }
    lm_head_stored = lm_head_stored || lm_head;
    if (p.role == TensorRole::kNone) unused.push_back(t.name);
    present.insert({p.layer, p.role});
    bool skipped = false;
    for (const std::string& pattern : options.skip_patterns) skipped = skipped || skip_pattern_matches(pattern, t.name);
    if (float_target) {
      p.storage = options.quant;
      p.why = "float";
    } else if (skipped) {
      p.storage = float_storage_of(t.dtype);
      p.why = "skip";
    } else if (lm_head && t.shape.size() == 2) {
      p.storage = options.quantize_lm_head ? options.quant : float_storage_of(t.dtype);
      p.why = options.quantize_lm_head ? "lm_head" : "kept";
    } else if (is_quantizable_role(p.role) && t.shape.size() == 2) {
      p.storage = options.quant;
      p.why = "block-linear";
    } else {
      p.storage = float_storage_of(t.dtype);
      p.why = "kept";
    }
    if (!is_float_storage(p.storage) && t.n_elems() == 0) {
      p.storage = float_storage_of(t.dtype);
      p.why = "empty";
    }
    plan.tensors.push_back(p);
  }
  for (TensorRole r : format::required_model_roles(arch, config.tie_word_embeddings && !lm_head_stored)) {
    if (!present.count({-1, r})) return missing_role(r, -1, arch);
  }
  const std::vector<TensorRole> per_layer = format::required_layer_roles(arch);
  for (uint32_t l = 0; l < config.n_layers; ++l) {
    for (TensorRole r : per_layer) {
      if (!present.count({static_cast<int32_t>(l), r})) return missing_role(r, static_cast<int32_t>(l), arch);
    }
  }
  if (!unused.empty()) {
    plan.warnings.push_back(std::to_string(unused.size()) + " tensor(s) the " + arch.family +
                            " graph does not read are stored unused (first: '" + unused.front() + "')");
  }
  if (options.quantize_lm_head && !lm_head_stored && !float_target) {
    plan.warnings.push_back("--quantize-lm-head has no effect: lm_head is tied to the embedding, which stays unquantized");
  }
  return plan;
}

}  // namespace qmodel::converter
