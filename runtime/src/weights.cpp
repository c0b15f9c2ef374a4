// Binds a verified ModelFile's tensors to the Llama graph: name lookup, shape checks, WeightViews.
#include "weights.h"

#include <cmath>
#include <cstring>

namespace qmodel::runtime {
namespace {

using format::BlobRole;
using format::TensorInfo;

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The raw bytes of one blob role, checked against the size the storage type implies.
Result<const uint8_t*> blob_of(const format::ModelFile& file, const TensorInfo& t, BlobRole role,
                               uint64_t expected_bytes, const char* role_name) {
  const format::BlobRef* ref = t.find_blob(role);
  if (ref == nullptr) {
    return corrupt_file(file.path(), t.name, -1, std::string("missing ") + role_name + " blob");
  }
  QMODEL_ASSIGN_OR_RETURN(ByteSpan bytes, file.blob_bytes(*ref));
  if (bytes.size() != expected_bytes) {
    return corrupt_file(file.path(), t.name, static_cast<int64_t>(ref->offset),
                        std::string(role_name) + " blob holds " + std::to_string(bytes.size()) +
                            " bytes, expected " + std::to_string(expected_bytes));
  }
  return bytes.data();
}

}  // namespace

Result<kernels::WeightView> make_weight_view(const format::ModelFile& file, const TensorInfo& t) {
  kernels::WeightView w;
  const uint64_t n = t.n_elems();  // the reader verified the product does not overflow
  if (t.shape.empty()) return corrupt_file(file.path(), t.name, -1, "tensor without a shape");
  w.rows = t.shape.size() == 1 ? 1 : t.shape[0];
  w.cols = n / w.rows;
  w.storage = t.storage;
  if (is_float_storage(t.storage)) {
    QMODEL_ASSIGN_OR_RETURN(const uint8_t* data, blob_of(file, t, BlobRole::kData, n * float_storage_bytes(t.storage), "data"));
    w.data = data;
    return w;
  }
  if (t.storage == StorageType::kINT8) {
    QMODEL_ASSIGN_OR_RETURN(const uint8_t* data, blob_of(file, t, BlobRole::kData, n, "data"));
    QMODEL_ASSIGN_OR_RETURN(const uint8_t* scale, blob_of(file, t, BlobRole::kRowScale, w.rows * 4, "row scale"));
    w.data = data;
    w.row_scale = reinterpret_cast<const float*>(scale);
    return w;
  }
  if (!is_4bit(t.storage)) {
    return Status(StatusCode::kUnsupported, error_location(file.path(), t.name, -1) + ": unknown storage type");
  }
  const format::QuantParams& q = t.quant;
  if (!is_valid_4bit_block_size(q.block_size) || q.code_table.size() != 16) {
    return corrupt_file(file.path(), t.name, -1, "4-bit tensor without a valid block size and 16-entry code table");
  }
  const uint64_t n_blocks = ceil_div(n, q.block_size);
  QMODEL_ASSIGN_OR_RETURN(const uint8_t* codes, blob_of(file, t, BlobRole::kData, packed_4bit_bytes(n), "data"));
  w.data = codes;
  w.block_size = q.block_size;
  w.code_table = q.code_table.data();
  if (!q.double_quant) {
    QMODEL_ASSIGN_OR_RETURN(const uint8_t* absmax, blob_of(file, t, BlobRole::kAbsmax, n_blocks * 4, "absmax"));
    w.absmax = reinterpret_cast<const float*>(absmax);
    return w;
  }
  if (q.nested_block_size == 0 || q.nested_code_table.size() != kDynamicMapSize || !std::isfinite(q.nested_offset)) {
    return corrupt_file(file.path(), t.name, -1, "double quantization without a nested block size, 256-entry code table and finite offset");
  }
  QMODEL_ASSIGN_OR_RETURN(const uint8_t* absmax_codes, blob_of(file, t, BlobRole::kAbsmaxCodes, n_blocks, "absmax codes"));
  QMODEL_ASSIGN_OR_RETURN(const uint8_t* nested,
                          blob_of(file, t, BlobRole::kNestedAbsmax, ceil_div(n_blocks, q.nested_block_size) * 4, "nested absmax"));
  w.absmax_codes = absmax_codes;
  w.nested_absmax = reinterpret_cast<const float*>(nested);
  w.nested_code_table = q.nested_code_table.data();
  w.nested_block_size = q.nested_block_size;
  w.nested_offset = q.nested_offset;
  return w;
}

Status check_llama_config(const format::ModelConfig& c, const std::string& file) {
  const std::string& a = c.architecture;
  if (a != "LlamaForCausalLM" && a != "MistralForCausalLM" && a != "Qwen2ForCausalLM") {
    return Status(StatusCode::kUnsupported, file + ": architecture '" + a +
                  "' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  }
  auto bad = [&](const std::string& what) { return Status(StatusCode::kCorruptFile, file + ": config: " + what); };
  if (c.hidden_size == 0 || c.intermediate_size == 0 || c.n_layers == 0 || c.n_heads == 0 ||
      c.n_kv_heads == 0 || c.head_dim == 0 || c.vocab_size == 0) {
    return bad("hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
               "num_key_value_heads, head_dim and vocab_size must all be > 0");
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad("num_attention_heads (" + std::to_string(c.n_heads) + ") is not a multiple of num_key_value_heads (" +
               std::to_string(c.n_kv_heads) + ")");
  }
  if (c.head_dim % 2 != 0) return bad("head_dim " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");
  if (!(c.rms_norm_eps >= 0.0f) || !std::isfinite(c.rms_norm_eps)) return bad("rms_norm_eps is not a finite value >= 0");
  if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta)) return bad("rope_theta is not a finite value > 0");
  if (c.hidden_act != "silu") {
    return Status(StatusCode::kUnsupported, file + ": hidden_act '" + c.hidden_act + "' is not supported (silu only)");
  }
  return Status::ok_status();
}

namespace {

struct Binder {
  const format::ModelFile& file;
  uint64_t n_bytes = 0;

  // A required tensor of exactly `shape`.
  Result<kernels::WeightView> need(const std::string& name, std::vector<uint64_t> shape) {
    const TensorInfo* t = file.header().find_tensor(name);
    if (t == nullptr) {
      return Status(StatusCode::kNotFound, file.path() + ": tensor '" + name + "' is missing (needed by " +
                                               file.header().config.architecture + ")");
    }
    if (t->shape != shape) {
      return corrupt_file(file.path(), name, -1, "shape " + shape_string(t->shape) + ", expected " + shape_string(shape));
    }
    QMODEL_ASSIGN_OR_RETURN(kernels::WeightView w, make_weight_view(file, *t));
    for (const format::BlobRef& b : t->blobs) n_bytes += b.raw_size;
    return w;
  }
  // Present only when `wanted` (the config says the module has a bias).
  Result<kernels::WeightView> maybe(bool wanted, const std::string& name, std::vector<uint64_t> shape) {
    if (!wanted) return kernels::WeightView{};
    return need(name, std::move(shape));
  }
};

}  // namespace

Result<ModelWeights> bind_llama_weights(const format::ModelFile& file) {
  const format::ModelConfig& c = file.header().config;
  QMODEL_RETURN_IF_ERROR(check_llama_config(c, file.path()));
  const uint64_t h = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const uint64_t q_dim = uint64_t{c.n_heads} * c.head_dim, kv_dim = uint64_t{c.n_kv_heads} * c.head_dim;
  // Qwen2 always has q/k/v biases (no o bias); Llama/Mistral follow attention_bias (all four).
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool qkv_bias = qwen2 || c.attention_bias;
  const bool o_bias = !qwen2 && c.attention_bias;

  Binder b{file};
  ModelWeights w;
  QMODEL_ASSIGN_OR_RETURN(w.embed, b.need("model.embed_tokens.weight", {vocab, h}));
  w.embed_bytes = b.n_bytes;
  QMODEL_ASSIGN_OR_RETURN(w.final_norm, b.need("model.norm.weight", {h}));
  if (file.header().find_tensor("lm_head.weight") != nullptr || !c.tie_word_embeddings) {
    QMODEL_ASSIGN_OR_RETURN(w.lm_head, b.need("lm_head.weight", {vocab, h}));
  } else {
    w.lm_head = w.embed;  // tied: stored once
    w.tied_lm_head = true;
  }
  w.layers.resize(c.n_layers);
  for (uint32_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    QMODEL_ASSIGN_OR_RETURN(l.attn_norm, b.need(p + "input_layernorm.weight", {h}));
    QMODEL_ASSIGN_OR_RETURN(l.mlp_norm, b.need(p + "post_attention_layernorm.weight", {h}));
    QMODEL_ASSIGN_OR_RETURN(l.wq, b.need(p + "self_attn.q_proj.weight", {q_dim, h}));
    QMODEL_ASSIGN_OR_RETURN(l.wk, b.need(p + "self_attn.k_proj.weight", {kv_dim, h}));
    QMODEL_ASSIGN_OR_RETURN(l.wv, b.need(p + "self_attn.v_proj.weight", {kv_dim, h}));
    QMODEL_ASSIGN_OR_RETURN(l.wo, b.need(p + "self_attn.o_proj.weight", {h, q_dim}));
    QMODEL_ASSIGN_OR_RETURN(l.bq, b.maybe(qkv_bias, p + "self_attn.q_proj.bias", {q_dim}));
    QMODEL_ASSIGN_OR_RETURN(l.bk, b.maybe(qkv_bias, p + "self_attn.k_proj.bias", {kv_dim}));
    QMODEL_ASSIGN_OR_RETURN(l.bv, b.maybe(qkv_bias, p + "self_attn.v_proj.bias", {kv_dim}));
    QMODEL_ASSIGN_OR_RETURN(l.bo, b.maybe(o_bias, p + "self_attn.o_proj.bias", {h}));
    QMODEL_ASSIGN_OR_RETURN(l.w_gate, b.need(p + "mlp.gate_proj.weight", {inter, h}));
    QMODEL_ASSIGN_OR_RETURN(l.w_up, b.need(p + "mlp.up_proj.weight", {inter, h}));
    QMODEL_ASSIGN_OR_RETURN(l.w_down, b.need(p + "mlp.down_proj.weight", {h, inter}));
    QMODEL_ASSIGN_OR_RETURN(l.b_gate, b.maybe(c.mlp_bias, p + "mlp.gate_proj.bias", {inter}));
    QMODEL_ASSIGN_OR_RETURN(l.b_up, b.maybe(c.mlp_bias, p + "mlp.up_proj.bias", {inter}));
    QMODEL_ASSIGN_OR_RETURN(l.b_down, b.maybe(c.mlp_bias, p + "mlp.down_proj.bias", {h}));
  }
  w.n_bytes = b.n_bytes;
  return w;
}

}  // namespace qmodel::runtime
