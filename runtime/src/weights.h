// The weights of a model as kernels::WeightViews pointing into the mapping (or, for a
// zstd-compressed blob, into the ModelFile's one decompressed copy), bound by the role each tensor
// has in the file's architecture description. Nothing is dequantized here.
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

// Absent views (data == nullptr) are modules the model does not have (biases, a second norm, ...).
struct LayerWeights {
  kernels::WeightView attn_norm, mlp_norm;      // [hidden]; mlp_norm absent with one shared norm
  kernels::WeightView attn_norm_b, mlp_norm_b;  // LayerNorm biases
  kernels::WeightView wq, wk, wv, wo;           // [out, in]
  kernels::WeightView bq, bk, bv, bo;           // [out]
  kernels::WeightView wqkv, bqkv;               // fused [(n_heads + 2 n_kv) * head_dim, hidden]
  kernels::WeightView w_gate, w_up, w_down;     // w_gate absent in a plain (non-gated) MLP
  kernels::WeightView b_gate, b_up, b_down;
};

struct ModelWeights {
  kernels::WeightView embed;     // [vocab, embed_dim]
  kernels::WeightView pos_embed; // learned positions [rows, hidden]
  kernels::WeightView embed_norm, embed_norm_b;    // BLOOM word_embeddings_layernorm
  kernels::WeightView project_in, project_out;     // OPT [hidden, embed_dim], [embed_dim, hidden]
  kernels::WeightView final_norm, final_norm_b;
  kernels::WeightView lm_head;   // [vocab, embed_dim]; the embedding when tied
  std::vector<LayerWeights> layers;
  uint64_t n_bytes = 0;          // stored bytes of every bound blob
  uint64_t embed_bytes = 0;      // of which the embedding table
  bool tied_lm_head = false;     // lm_head is the embedding (read whole by every token)
};

inline bool is_present(const kernels::WeightView& w) { return w.data != nullptr; }

// Checks the hyperparameters and the description the forward relies on (kUnsupported /
// kCorruptFile naming the key): every size > 0, heads divisible, rotary dims, finite eps, ...
Status check_model_config(const format::ModelConfig& config, const format::ArchSpec& arch, const std::string& file);

// Binds every tensor by its role; kNotFound names a missing role (and block), kCorruptFile a
// tensor whose shape or blobs do not fit the config. `file` must outlive the result.
Result<ModelWeights> bind_weights(const format::ModelFile& file);

}  // namespace qmodel::runtime
