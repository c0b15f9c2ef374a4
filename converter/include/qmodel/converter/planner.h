// Decides, for every tensor of a checkpoint, how it is stored (DESIGN.md "What is quantized"):
// 2-D Linear weights inside the transformer blocks get the requested quantization; embeddings,
// norms, biases and lm_head stay in their 16/32-bit dtype unless asked (--quantize-lm-head);
// --skip patterns keep matching tensors unquantized; a tied lm_head is stored once (as the
// embedding). With a float --quant (bf16/f16/f32) every tensor is stored in that dtype.
#pragma once

#include <string>
#include <vector>

#include "qmodel/converter/convert.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/format/types.h"

namespace qmodel::converter {

struct TensorPlan {
  const TensorEntry* source = nullptr;
  StorageType storage = StorageType::kF32;
  std::string why;  // one word for qinspect-style listings: "block-linear", "skip", "kept", ...
};

struct Plan {
  std::vector<TensorPlan> tensors;    // in checkpoint order; tied duplicates left out
  std::vector<std::string> warnings;
};

// True when `pattern` matches the tensor name or its module name (the name without a trailing
// ".weight"/".bias"): glob (*, ?) when it has wildcards, else a substring test, as bitsandbytes'
// llm_int8_skip_modules matches module names.
bool skip_pattern_matches(const std::string& pattern, const std::string& tensor_name);

// True for names of 2-D Linear weights inside a transformer block ("...layers.N....weight",
// "...h.N....weight", "...blocks.N....weight"), excluding norms and embeddings.
bool is_block_linear_weight(const std::string& name, const std::vector<uint64_t>& shape);

Result<Plan> plan_tensors(const std::vector<TensorEntry>& tensors, const format::ModelConfig& config,
                          const ConvertOptions& options);

}  // namespace qmodel::converter
