#include "qmodel/converter/planner.h"

#include <fnmatch.h>

#include <cstring>

namespace qmodel::converter {
namespace {

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

bool is_lm_head(const std::string& name) { return name == "lm_head.weight" || has_suffix(name, ".lm_head.weight"); }
bool is_embedding(const std::string& name) {
  return name.find("embed_tokens") != std::string::npos || name.find("wte.") != std::string::npos ||
         name.find("word_embeddings") != std::string::npos;
}

StorageType float_storage_of(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return StorageType::kF32;
    case SourceDType::kF16: return StorageType::kF16;
    case SourceDType::kBF16: return StorageType::kBF16;
  }
  return StorageType::kF32;
}

bool same_bytes(const TensorEntry& a, const TensorEntry& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.bytes.size() == b.bytes.size() &&
         (a.bytes.data() == b.bytes.data() || std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0);
}

}  // namespace

bool skip_pattern_matches(const std::string& pattern, const std::string& tensor_name) {
  if (pattern.empty()) return false;
  const std::string module = module_name(tensor_name);
  if (pattern.find_first_of("*?[") != std::string::npos) {
    return fnmatch(pattern.c_str(), tensor_name.c_str(), 0) == 0 || fnmatch(pattern.c_str(), module.c_str(), 0) == 0;
  }
  return tensor_name.find(pattern) != std::string::npos;
}

namespace {

// True when the dot-separated name has a component "layers", "h", "blocks" or "block" followed by
// a numeric component and at least one more component (the transformer block index).
bool inside_numbered_block(const std::string& name) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (size_t i = 0; i + 2 < parts.size(); ++i) {
    const std::string& p = parts[i];
    const std::string& index = parts[i + 1];
    const bool is_container = p == "layers" || p == "h" || p == "blocks" || p == "block";
    if (is_container && !index.empty() && index.find_first_not_of("0123456789") == std::string::npos) return true;
  }
  return false;
}

}  // namespace

bool is_block_linear_weight(const std::string& name, const std::vector<uint64_t>& shape) {
  if (shape.size() != 2 || !has_suffix(name, ".weight")) return false;
  if (name.find("norm") != std::string::npos || is_embedding(name)) return false;
  return inside_numbered_block(name);
}

Result<Plan> plan_tensors(const std::vector<TensorEntry>& tensors, const format::ModelConfig& config,
                          const ConvertOptions& options) {
  Plan plan;
  const bool float_target = is_float_storage(options.quant);
  const TensorEntry* embedding = nullptr;
  for (const TensorEntry& t : tensors) {
    if (is_embedding(t.name) && t.shape.size() == 2) embedding = &t;
  }
  for (const TensorEntry& t : tensors) {
    TensorPlan p;
    p.source = &t;
    if (is_lm_head(t.name) && config.tie_word_embeddings && embedding != nullptr) {
      if (same_bytes(t, *embedding)) continue;  // tied: stored once, as the embedding
      plan.warnings.push_back("config ties lm_head to the embedding but '" + t.name +
                              "' differs from '" + embedding->name + "': storing both");
    }
    bool skipped = false;
    for (const std::string& pattern : options.skip_patterns) skipped = skipped || skip_pattern_matches(pattern, t.name);
    if (float_target) {
      p.storage = options.quant;
      p.why = "float";
    } else if (skipped) {
      p.storage = float_storage_of(t.dtype);
      p.why = "skip";
    } else if (is_lm_head(t.name) && t.shape.size() == 2) {
      p.storage = options.quantize_lm_head ? options.quant : float_storage_of(t.dtype);
      p.why = options.quantize_lm_head ? "lm_head" : "kept";
    } else if (is_block_linear_weight(t.name, t.shape)) {
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
  if (options.quantize_lm_head && config.tie_word_embeddings && !float_target) {
    plan.warnings.push_back("--quantize-lm-head has no effect: lm_head is tied to the embedding, which stays unquantized");
  }
  return plan;
}

}  // namespace qmodel::converter
