// Decides, for every tensor of a checkpoint, its role in the architecture (the family's name
// table, format/tensor_roles.h) and how it is stored (DESIGN.md "What is quantized"): the Linear
// weights transformers + bitsandbytes would replace (q/k/v or fused qkv, o, gate/up/down, OPT's
// project_in/out) get the requested quantization; embeddings, positions, norms, biases and lm_head
// stay in their 16/32-bit dtype unless asked (--quantize-lm-head);
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
  format::TensorRole role = format::TensorRole::kNone;
  int32_t layer = -1;
  bool transpose = false;  // GPT-2 Conv1D: stored as [out, in], as transformers feeds bitsandbytes
};

struct Plan {
  std::vector<TensorPlan> tensors;    // in checkpoint order; tied duplicates left out
  std::vector<std::string> warnings;
};

// True when `pattern` matches the tensor name or its module name (the name without a trailing
// ".weight"/".bias"): glob (*, ?) when it has wildcards, else a substring test, as bitsandbytes'
// llm_int8_skip_modules matches module names.
bool skip_pattern_matches(const std::string& pattern, const std::string& tensor_name);

// The weights transformers + bitsandbytes replace: every nn.Linear / Conv1D but the output
// embedding (q/k/v or fused qkv, o, gate/up/down, OPT's project_in/out).
bool is_quantizable_role(format::TensorRole role);

// The storage that keeps a source dtype as it is.
StorageType float_storage_of(SourceDType dtype);

// kCorruptFile naming the missing role and layer when a tensor the architecture needs is absent,
// or when a role's layer index is beyond num_hidden_layers.
Result<Plan> plan_tensors(const std::vector<TensorEntry>& tensors, const format::ModelConfig& config,
                          const format::ArchSpec& arch, const ConvertOptions& options);

}  // namespace qmodel::converter
