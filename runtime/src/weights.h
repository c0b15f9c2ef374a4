// The Llama-family weights of a model as kernels::WeightViews pointing into the mapping (or, for
// a zstd-compressed blob, into the ModelFile's one decompressed copy). Nothing is dequantized here.
#pragma once

#include "qmodel/runtime/weight_view.h"

#include <memory>
#include <string>
#include <vector>

#include "qmodel/format/reader.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::runtime {

struct LayerWeights {
  kernels::WeightView attn_norm, mlp_norm;  // input_layernorm, post_attention_layernorm: [hidden]
  kernels::WeightView wq, wk, wv, wo;       // [out, in]
  kernels::WeightView bq, bk, bv, bo;       // [out]; data == nullptr when the model has none
  kernels::WeightView w_gate, w_up, w_down;
  kernels::WeightView b_gate, b_up, b_down; // mlp_bias
};

struct ModelWeights {
  kernels::WeightView embed;     // [vocab, hidden]
  kernels::WeightView final_norm;
  kernels::WeightView lm_head;   // [vocab, hidden]; the embedding when tied
  std::vector<LayerWeights> layers;
  uint64_t n_bytes = 0;          // stored bytes of every bound blob
  uint64_t embed_bytes = 0;      // of which the embedding table
  bool tied_lm_head = false;     // lm_head is the embedding (read whole by every token)
};

inline bool is_present(const kernels::WeightView& w) { return w.data != nullptr; }

// Checks the hyperparameters the forward relies on (kUnsupported / kCorruptFile naming the key).
Status check_llama_config(const format::ModelConfig& config, const std::string& file);

// Binds every tensor the Llama graph needs; kNotFound names a missing tensor, kCorruptFile a
// tensor whose shape or blobs do not fit the config. `file` must outlive the result.
Result<ModelWeights> bind_llama_weights(const format::ModelFile& file);

}  // namespace qmodel::runtime
