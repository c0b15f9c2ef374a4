// Binds a verified ModelFile's tensors to the Llama graph: name lookup, shape checks, WeightViews.
#include "weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qmodel/format/half.h"
#include "qmodel/format/tensor_roles.h"
#include "rope.h"

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

Status check_model_config(const format::ModelConfig& c, const format::ArchSpec& a, const std::string& file) {
  auto bad = [&](const std::string& what) { return Status(StatusCode::kCorruptFile, file + ": config: " + what); };
  if (c.hidden_size == 0 || c.intermediate_size == 0 || c.n_layers == 0 || c.n_heads == 0 ||
      c.n_kv_heads == 0 || c.head_dim == 0 || c.vocab_size == 0 || a.embed_dim == 0) {
    return bad("hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
               "num_key_value_heads, head_dim, vocab_size and the embedding width must all be > 0");
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad("num_attention_heads (" + std::to_string(c.n_heads) + ") is not a multiple of num_key_value_heads (" +
               std::to_string(c.n_kv_heads) + ")");
  }
  if (a.qkv == format::QkvLayout::kPerHead && c.n_kv_heads != c.n_heads) {
    return bad("a per-head fused qkv layout needs num_key_value_heads == num_attention_heads");
  }
  if (!(a.norm_eps >= 0.0f) || !std::isfinite(a.norm_eps)) return bad("norm epsilon is not a finite value >= 0");
  if (!std::isfinite(a.attn_scale) || a.attn_scale < 0.0f) return bad("attention scale is not a finite value >= 0");
  if (a.positions == format::PositionKind::kRope) {
    if (a.rotary_dim == 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > c.head_dim) {
      return bad("rotary dims " + std::to_string(a.rotary_dim) + " must be even, > 0 and <= head_dim " +
                 std::to_string(c.head_dim));
    }
    if (!(c.rope_theta > 0.0f) || !std::isfinite(c.rope_theta)) return bad("rope_theta is not a finite value > 0");
  }
  if (a.project_in_out == (a.embed_dim == c.hidden_size)) {
    return bad("the embedding width " + std::to_string(a.embed_dim) + " and the input/output projections disagree");
  }
  if (a.residual_from_norm && a.residual != format::ResidualLayout::kSequential) {
    return Status(StatusCode::kUnsupported, file + ": the residual from the norm is implemented for the sequential layout only");
  }
  return Status::ok_status();
}

namespace {

// The expected shape of a tensor of `role` (empty: the role is not read by the graph).
std::vector<uint64_t> expected_shape(format::TensorRole role, const format::ModelConfig& c, const format::ArchSpec& a,
                                     uint64_t rows_of_positions) {
  using R = format::TensorRole;
  const uint64_t h = c.hidden_size, e = a.embed_dim, inter = c.intermediate_size, vocab = c.vocab_size;
  const uint64_t q = uint64_t{c.n_heads} * c.head_dim, kv = uint64_t{c.n_kv_heads} * c.head_dim;
  switch (role) {
    case R::kTokenEmbedding: case R::kLmHead: return {vocab, e};
    case R::kPositionEmbedding: return {rows_of_positions, h};
    case R::kProjectIn: return {h, e};
    case R::kProjectOut: return {e, h};
    case R::kEmbedNorm: case R::kEmbedNormBias: case R::kFinalNorm: case R::kFinalNormBias: case R::kAttnNorm:
    case R::kAttnNormBias: case R::kMlpNorm: case R::kMlpNormBias: case R::kOBias: case R::kDownBias:
      return {h};
    case R::kQ: return {q, h};
    case R::kK: case R::kV: return {kv, h};
    case R::kQBias: return {q};
    case R::kKBias: case R::kVBias: return {kv};
    case R::kQkv: return {q + 2 * kv, h};
    case R::kQkvBias: return {q + 2 * kv};
    case R::kO: return {h, q};
    case R::kGate: case R::kUp: return {inter, h};
    case R::kGateBias: case R::kUpBias: return {inter};
    case R::kDown: return {h, inter};
    case R::kNone: case R::kCount: break;
  }
  return {};
}

kernels::WeightView* slot_of(format::TensorRole role, ModelWeights& w, LayerWeights* l) {
  using R = format::TensorRole;
  switch (role) {
    case R::kTokenEmbedding: return &w.embed;
    case R::kPositionEmbedding: return &w.pos_embed;
    case R::kEmbedNorm: return &w.embed_norm;
    case R::kEmbedNormBias: return &w.embed_norm_b;
    case R::kProjectIn: return &w.project_in;
    case R::kProjectOut: return &w.project_out;
    case R::kFinalNorm: return &w.final_norm;
    case R::kFinalNormBias: return &w.final_norm_b;
    case R::kLmHead: return &w.lm_head;
    default: break;
  }
  if (l == nullptr) return nullptr;
  switch (role) {
    case R::kAttnNorm: return &l->attn_norm;
    case R::kAttnNormBias: return &l->attn_norm_b;
    case R::kMlpNorm: return &l->mlp_norm;
    case R::kMlpNormBias: return &l->mlp_norm_b;
    case R::kQ: return &l->wq;
    case R::kQBias: return &l->bq;
    case R::kK: return &l->wk;
    case R::kKBias: return &l->bk;
    case R::kV: return &l->wv;
    case R::kVBias: return &l->bv;
    case R::kQkv: return &l->wqkv;
    case R::kQkvBias: return &l->bqkv;
    case R::kO: return &l->wo;
    case R::kOBias: return &l->bo;
    case R::kGate: return &l->w_gate;
    case R::kGateBias: return &l->b_gate;
    case R::kUp: return &l->w_up;
    case R::kUpBias: return &l->b_up;
    case R::kDown: return &l->w_down;
    case R::kDownBias: return &l->b_down;
    default: return nullptr;
  }
}

// Scale constants (absmax, nested absmax, INT8 row scales) and 1-D float parameters (norm weights,
// biases) must be finite: a NaN there is never a real checkpoint, and it would turn every logit
// into NaN silently. Checked at open (these are small next to the weights); the large matrices
// are not scanned.
Status check_finite_parameters(const format::ModelFile& file, const TensorInfo& t, const kernels::WeightView& v) {
  auto first_bad_float = [](const float* p, size_t n) -> int64_t {
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(p[i])) return static_cast<int64_t>(i);
    }
    return -1;
  };
  auto check = [&](const float* p, size_t n, const char* what) -> Status {
    if (p == nullptr) return Status();
    const int64_t bad = first_bad_float(p, n);
    if (bad < 0) return Status();
    return corrupt_file(file.path(), t.name, -1, std::string(what) + " " + std::to_string(bad) + " is " +
                                                    std::to_string(p[bad]) + " (scale constants must be finite)");
  };
  const size_t n = v.rows * v.cols;
  if (v.storage == StorageType::kNF4 || v.storage == StorageType::kFP4) {
    const size_t blocks = (n + v.block_size - 1) / v.block_size;
    QMODEL_RETURN_IF_ERROR(check(v.absmax, blocks, "absmax of block"));
    QMODEL_RETURN_IF_ERROR(
        check(v.nested_absmax, (blocks + v.nested_block_size - 1) / std::max<size_t>(1, v.nested_block_size), "nested absmax"));
    return Status();
  }
  if (v.storage == StorageType::kINT8) return check(v.row_scale, v.rows, "row scale of row");
  if (t.shape.size() != 1) return Status();
  for (size_t i = 0; i < n; ++i) {
    float x = 0;
    if (v.storage == StorageType::kF32) std::memcpy(&x, static_cast<const uint8_t*>(v.data) + 4 * i, 4);
    uint16_t h = 0;
    if (v.storage != StorageType::kF32) std::memcpy(&h, static_cast<const uint8_t*>(v.data) + 2 * i, 2);
    if (v.storage == StorageType::kBF16) x = bf16_to_float(h);
    if (v.storage == StorageType::kF16) x = f16_to_float(h);
    if (!std::isfinite(x)) {
      return corrupt_file(file.path(), t.name, -1, "element " + std::to_string(i) + " is " + std::to_string(x) +
                                                       " (norm weights and biases must be finite)");
    }
  }
  return Status();
}

}  // namespace

Result<ModelWeights> bind_weights(const format::ModelFile& file) {
  const format::ModelHeader& header = file.header();
  const format::ModelConfig& c = header.config;
  const format::ArchSpec& a = header.arch;
  QMODEL_RETURN_IF_ERROR(check_model_config(c, a, file.path()));
  // Every block has tensors of its own, so a block count beyond the tensor count is a lie; checked
  // before anything is sized from it.
  if (c.n_layers > header.tensors.size()) {
    return Status(StatusCode::kCorruptFile, file.path() + ": config: num_hidden_layers " + std::to_string(c.n_layers) +
                                                " exceeds the file's " + std::to_string(header.tensors.size()) + " tensors");
  }
  ModelWeights w;
  w.layers.resize(c.n_layers);
  std::vector<bool> bound(static_cast<size_t>(format::kTensorRoleCount) * (c.n_layers + 1), false);
  for (const TensorInfo& t : header.tensors) {
    if (t.role == format::TensorRole::kNone) continue;
    LayerWeights* layer = t.layer >= 0 ? &w.layers[static_cast<size_t>(t.layer)] : nullptr;  // < n_layers: verified
    kernels::WeightView* slot = slot_of(t.role, w, layer);
    if (slot == nullptr) continue;
    // Learned positions: as many rows as the file has, at least the offset + 1.
    const uint64_t pos_rows = t.shape.empty() ? 0 : t.shape[0];
    const std::vector<uint64_t> shape = expected_shape(t.role, c, a, pos_rows);
    if (t.shape != shape || (t.role == format::TensorRole::kPositionEmbedding && pos_rows <= a.learned_offset)) {
      return corrupt_file(file.path(), t.name, -1, std::string("role ") + format::tensor_role_name(t.role) + ": shape " +
                                                       shape_string(t.shape) + ", expected " + shape_string(shape));
    }
    QMODEL_ASSIGN_OR_RETURN(*slot, make_weight_view(file, t));
    QMODEL_RETURN_IF_ERROR(check_finite_parameters(file, t, *slot));
    for (const format::BlobRef& b : t.blobs) w.n_bytes += b.raw_size;
    if (t.role == format::TensorRole::kTokenEmbedding) {
      for (const format::BlobRef& b : t.blobs) w.embed_bytes += b.raw_size;
    }
    bound[static_cast<size_t>(t.layer + 1) * format::kTensorRoleCount + static_cast<size_t>(t.role)] = true;
  }
  auto missing = [&](format::TensorRole role, int32_t layer) {
    const std::string where = layer >= 0 ? " of block " + std::to_string(layer) : "";
    return Status(StatusCode::kNotFound, file.path() + ": no tensor has role " + format::tensor_role_name(role) + where +
                                             " (needed by the " + a.family + " architecture)");
  };
  const bool tied = !is_present(w.lm_head) && c.tie_word_embeddings;
  for (format::TensorRole r : format::required_model_roles(a, tied)) {
    if (!bound[static_cast<size_t>(r)]) return missing(r, -1);
  }
  const std::vector<format::TensorRole> per_layer = format::required_layer_roles(a);
  for (uint32_t l = 0; l < c.n_layers; ++l) {
    for (format::TensorRole r : per_layer) {
      if (!bound[(l + 1) * static_cast<size_t>(format::kTensorRoleCount) + static_cast<size_t>(r)]) {
        return missing(r, static_cast<int32_t>(l));
      }
    }
  }
  // An optional role (a bias, a LayerNorm's affine part) is in every block or in none: a file
  // that lost one block's bias would otherwise run, wrongly, as if that module had none.
  for (int r = 1; r < format::kTensorRoleCount; ++r) {
    const auto role = static_cast<format::TensorRole>(r);
    if (!format::is_layer_role(role)) continue;
    uint32_t have = 0;
    for (uint32_t l = 0; l < c.n_layers; ++l) have += bound[(l + 1) * static_cast<size_t>(format::kTensorRoleCount) + r] ? 1 : 0;
    if (have == 0 || have == c.n_layers) continue;
    for (uint32_t l = 0; l < c.n_layers; ++l) {
      if (!bound[(l + 1) * static_cast<size_t>(format::kTensorRoleCount) + r]) return missing(role, static_cast<int32_t>(l));
    }
  }
  // RoPE's scaling parameters (factor, llama3 bands) are refused at open, not when the first
  // session is created; only now, with head_dim backed by the q weight's shape, is the
  // frequency table sized from it.
  if (a.positions == format::PositionKind::kRope) {
    auto inv_freq = rope_inv_freq(c, a.rotary_dim);
    if (!inv_freq.ok()) return Status(StatusCode::kCorruptFile, file.path() + ": config: " + inv_freq.status().message());
    for (float f : *inv_freq) {
      if (!std::isfinite(f)) {
        return Status(StatusCode::kCorruptFile, file.path() + ": config: rope_theta and rope_scaling give a non-finite frequency");
      }
    }
  }
  if (tied) {
    w.lm_head = w.embed;  // tied: stored once
    w.tied_lm_head = true;
  }
  return w;
}

}  // namespace qmodel::runtime
