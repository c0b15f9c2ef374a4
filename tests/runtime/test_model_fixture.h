// Writes tiny deterministic Llama-family .qmodel files with format::ModelWriter (no converter
// involved) for the runtime's model and session tests: random weights, optional Qwen2 biases,
// Linear weights stored F32 / NF4 (optionally double-quantized) / INT8, and knobs to break them.
#pragma once

#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "qmodel/format/tensor_roles.h"
#include "qmodel/format/writer.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::testing {

struct TinyModelSpec {
  std::string architecture = "LlamaForCausalLM";
  std::string family = "llama";                    // the description's family name
  std::optional<format::ArchSpec> arch;             // replaces the Llama description when set
  std::function<void(format::ModelHeader&)> edit;   // last edit of the header (hostile files)
  // Last edit of a tensor's blob bytes before they are written (hostile files: NaN scales).
  std::function<void(const std::string& tensor, format::BlobRole role, std::vector<uint8_t>& bytes)> edit_blob;
  StorageType linear_storage = StorageType::kF32;  // q/k/v/o/gate/up/down
  bool double_quant = false;
  bool tied = true;                         // no lm_head.weight
  std::set<std::string> drop;               // tensor names left out
  std::string reshape;                      // this tensor gets a wrong shape
  std::string tokenizer_json;               // embedded when not empty
  uint32_t vocab_size = 32;
  uint32_t n_layers = 2;
  uint32_t seed = 1;
};

inline format::ModelConfig tiny_config(const TinyModelSpec& spec) {
  format::ModelConfig c;
  c.architecture = spec.architecture;
  c.model_type = "llama";
  c.hidden_size = 16;
  c.intermediate_size = 40;  // down_proj rows of 40: 64-blocks straddle rows
  c.n_layers = spec.n_layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = spec.vocab_size;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = spec.tied;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";
  return c;
}

namespace detail {

struct PendingTensor {
  format::TensorInfo info;
  std::vector<std::vector<uint8_t>> blobs;  // in info.blobs order
};

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

inline void add_blob(PendingTensor& t, format::BlobRole role, std::vector<uint8_t> bytes) {
  format::BlobRef ref;
  ref.role = role;
  t.info.blobs.push_back(ref);
  t.blobs.push_back(std::move(bytes));
}

inline PendingTensor encode(const std::string& name, std::vector<uint64_t> shape, const std::vector<float>& w,
                            StorageType storage, bool double_quant) {
  PendingTensor t;
  t.info.name = name;
  t.info.shape = shape;
  t.info.source_dtype = SourceDType::kF32;
  t.info.storage = storage;
  const size_t n = w.size();
  if (storage == StorageType::kF32) {
    add_blob(t, format::BlobRole::kData, as_bytes(w));
  } else if (storage == StorageType::kINT8) {
    const size_t rows = shape[0], cols = n / rows;
    std::vector<int8_t> q(n);
    std::vector<float> scb(rows);
    kernels::quantize_int8_rows_ref(w.data(), rows, cols, q.data(), scb.data());
    add_blob(t, format::BlobRole::kData, as_bytes(q));
    add_blob(t, format::BlobRole::kRowScale, as_bytes(scb));
  } else {
    const size_t bs = kDefaultBlockSize, n_blocks = ceil_div(n, bs);
    std::vector<uint8_t> packed(packed_4bit_bytes(n));
    std::vector<float> absmax(n_blocks);
    kernels::quantize_4bit_ref(storage, w.data(), n, bs, packed.data(), absmax.data());
    const float* table = storage == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
    t.info.quant.block_size = static_cast<uint32_t>(bs);
    t.info.quant.code_table.assign(table, table + 16);
    add_blob(t, format::BlobRole::kData, packed);
    if (!double_quant) {
      add_blob(t, format::BlobRole::kAbsmax, as_bytes(absmax));
    } else {
      const auto dyn = kernels::dynamic_map_signed();
      std::vector<uint8_t> codes(n_blocks);
      std::vector<float> nested(ceil_div(n_blocks, kNestedBlockSize));
      float offset = 0;
      kernels::double_quantize_absmax_ref(absmax.data(), n_blocks, dyn.data(), codes.data(), nested.data(), &offset);
      t.info.quant.double_quant = true;
      t.info.quant.nested_block_size = kNestedBlockSize;
      t.info.quant.nested_offset = offset;
      t.info.quant.nested_code_table.assign(dyn.begin(), dyn.end());
      add_blob(t, format::BlobRole::kAbsmaxCodes, codes);
      add_blob(t, format::BlobRole::kNestedAbsmax, as_bytes(nested));
    }
  }
  return t;
}

}  // namespace detail

inline Status write_tiny_model(const std::string& path, const TinyModelSpec& spec) {
  const format::ModelConfig c = tiny_config(spec);
  const uint64_t h = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size, q = c.n_heads * c.head_dim,
                 kv = c.n_kv_heads * c.head_dim;
  std::mt19937 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<detail::PendingTensor> tensors;
  auto add = [&](const std::string& name, std::vector<uint64_t> shape, bool linear, float center = 0.0f) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<float> w(n);
    for (float& x : w) x = center + normal(rng);
    if (spec.drop.count(name)) return;
    if (name == spec.reshape) shape[0] += 1, w.resize(w.size() + (shape.size() == 2 ? shape[1] : 1));
    const StorageType storage = linear ? spec.linear_storage : StorageType::kF32;
    tensors.push_back(detail::encode(name, shape, w, storage, linear && spec.double_quant));
  };
  add("model.embed_tokens.weight", {vocab, h}, false);
  const bool qwen2 = spec.architecture == "Qwen2ForCausalLM";
  for (uint32_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h}, false, 1.0f);
    add(p + "post_attention_layernorm.weight", {h}, false, 1.0f);
    add(p + "self_attn.q_proj.weight", {q, h}, true);
    add(p + "self_attn.k_proj.weight", {kv, h}, true);
    add(p + "self_attn.v_proj.weight", {kv, h}, true);
    add(p + "self_attn.o_proj.weight", {h, q}, true);
    if (qwen2) {
      add(p + "self_attn.q_proj.bias", {q}, false);
      add(p + "self_attn.k_proj.bias", {kv}, false);
      add(p + "self_attn.v_proj.bias", {kv}, false);
    }
    add(p + "mlp.gate_proj.weight", {inter, h}, true);
    add(p + "mlp.up_proj.weight", {inter, h}, true);
    add(p + "mlp.down_proj.weight", {h, inter}, true);
  }
  add("model.norm.weight", {h}, false, 1.0f);
  if (!spec.tied) add("lm_head.weight", {vocab, h}, false);

  format::ModelHeader header;
  header.config = c;
  header.generation.eos_token_ids = {2};
  header.quant_settings.quant = spec.linear_storage;
  header.quant_settings.double_quant = spec.double_quant;
  header.provenance.converter = "test_model_fixture";
  if (!spec.tokenizer_json.empty()) header.files.push_back({"tokenizer.json", spec.tokenizer_json});
  // As qconvert writes it: the Llama description and each tensor's role from the Llama table.
  header.arch = format::llama_arch(c.head_dim, c.hidden_size, c.rms_norm_eps);
  header.arch.family = spec.family;
  if (spec.arch) header.arch = *spec.arch;
  for (auto& t : tensors) {
    const format::RoleMatch m = format::match_tensor_role("llama", t.info.name);
    t.info.role = m.role;
    t.info.layer = m.layer;
    header.tensors.push_back(t.info);
  }
  if (spec.edit) spec.edit(header);
  format::WriterOptions options;
  options.overwrite = true;
  auto writer = format::ModelWriter::create(path, options, header);
  if (!writer.ok()) return writer.status();
  for (size_t i = 0; i < tensors.size(); ++i) {
    for (size_t b = 0; b < tensors[i].blobs.size(); ++b) {
      if (spec.edit_blob) spec.edit_blob(tensors[i].info.name, tensors[i].info.blobs[b].role, tensors[i].blobs[b]);
      auto ref = (*writer)->append_blob(tensors[i].info.blobs[b].role, ByteSpan(tensors[i].blobs[b]));
      if (!ref.ok()) return ref.status();
      header.tensors[i].blobs[b] = *ref;
    }
  }
  return (*writer)->finish(header);
}

}  // namespace qmodel::testing
