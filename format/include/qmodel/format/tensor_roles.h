// Per family, the table that maps Hugging Face tensor names to graph roles (as llama.cpp's arch
// tables do), and the roles a description requires. The converter assigns roles with it; the
// reader uses the Llama table to give v1 files (written before roles existed) the same roles.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/architecture.h"

namespace qmodel::format {

struct RoleMatch {
  TensorRole role = TensorRole::kNone;
  int32_t layer = -1;
  bool transpose = false;  // stored [in, out] in the checkpoint (GPT-2 Conv1D): transposed at conversion
};

// The families with a table, in the order `qconvert` lists them.
const std::vector<std::string>& known_families();

// The role of checkpoint tensor `name` in `family` (kNone for names the graph does not read, e.g.
// attention-mask buffers; also for an unknown family). The layer index must be a plain decimal
// number below 2^31.
RoleMatch match_tensor_role(const std::string& family, const std::string& name);

// Roles every block (resp. the model) must have under `arch`; optional roles (biases, norm
// affine parameters) are not listed. kLmHead is required unless the embedding is tied.
std::vector<TensorRole> required_layer_roles(const ArchSpec& arch);
std::vector<TensorRole> required_model_roles(const ArchSpec& arch, bool tied_lm_head);

// The Llama description of a v1 file's config (RMSNorm, separate q/k/v, full RoPE, SwiGLU).
ArchSpec llama_arch(uint32_t head_dim, uint32_t hidden_size, float rms_norm_eps);

}  // namespace qmodel::format
