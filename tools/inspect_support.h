// qinspect helper: the decoded header as JSON. Header-only: used by qinspect alone.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "qmodel/format/reader.h"

namespace qmodel::tools {

inline nlohmann::json header_to_json(const format::ModelHeader& h) {
  using nlohmann::json;
  const auto& c = h.config;
  json j;
  j["format_version"] = h.format_version;
  j["alignment"] = h.alignment;
  j["config"] = {{"architecture", c.architecture}, {"model_type", c.model_type}, {"hidden_size", c.hidden_size},
                 {"intermediate_size", c.intermediate_size}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
                 {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim}, {"vocab_size", c.vocab_size},
                 {"max_position_embeddings", c.max_position_embeddings}, {"rms_norm_eps", c.rms_norm_eps},
                 {"rope_theta", c.rope_theta},
                 {"rope_scaling", {{"type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor},
                                   {"low_freq_factor", c.rope_scaling.low_freq_factor},
                                   {"high_freq_factor", c.rope_scaling.high_freq_factor},
                                   {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}}},
                 {"tie_word_embeddings", c.tie_word_embeddings}, {"attention_bias", c.attention_bias},
                 {"mlp_bias", c.mlp_bias}, {"hidden_act", c.hidden_act}, {"sliding_window", c.sliding_window},
                 {"bos_token_id", c.bos_token_id}, {"eos_token_ids", c.eos_token_ids},
                 {"pad_token_id", c.pad_token_id}, {"torch_dtype", c.torch_dtype}};
  const format::ArchSpec& a = h.arch;
  j["architecture"] = {{"family", a.family},
                       {"norm", format::norm_kind_name(a.norm)},
                       {"norm_eps", a.norm_eps},
                       {"residual", format::residual_layout_name(a.residual)},
                       {"residual_from_norm", a.residual_from_norm},
                       {"qkv", format::qkv_layout_name(a.qkv)},
                       {"positions", format::position_kind_name(a.positions)},
                       {"rotary_dim", a.rotary_dim},
                       {"learned_offset", a.learned_offset},
                       {"alibi_scaled", a.alibi_scaled},
                       {"attn_scale", a.attn_scale},
                       {"mlp", format::mlp_kind_name(a.mlp)},
                       {"activation", format::activation_name(a.activation)},
                       {"final_norm", a.final_norm},
                       {"embed_norm", a.embed_norm},
                       {"project_in_out", a.project_in_out},
                       {"embed_dim", a.embed_dim}};
  const auto& g = h.generation;
  j["generation"] = {{"do_sample", g.do_sample}, {"temperature", g.temperature}, {"top_k", g.top_k},
                     {"top_p", g.top_p}, {"repetition_penalty", g.repetition_penalty},
                     {"max_new_tokens", g.max_new_tokens}, {"eos_token_ids", g.eos_token_ids}};
  const auto& q = h.quant_settings;
  j["quant_settings"] = {{"quant", storage_type_name(q.quant)}, {"block_size", q.block_size},
                         {"double_quant", q.double_quant}, {"compute_dtype", compute_dtype_name(q.compute_dtype)},
                         {"skip_patterns", q.skip_patterns}, {"quantize_lm_head", q.quantize_lm_head},
                         {"compression", q.compression == format::Compression::kZstd ? "zstd" : "none"}};
  json sources = json::array();
  for (const auto& f : h.provenance.source_files) {
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(f.xxh3));
    sources.push_back({{"name", f.name}, {"size", f.size}, {"xxh3", hash}});
  }
  j["provenance"] = {{"converter", h.provenance.converter}, {"options", h.provenance.options}, {"source_files", sources}};
  json files = json::array();
  for (const auto& f : h.files) files.push_back({{"name", f.name}, {"bytes", f.contents.size()}});
  j["files"] = files;
  static const char* kRoles[] = {"data", "absmax", "absmax_codes", "nested_absmax", "row_scale"};
  json tensors = json::array();
  for (const auto& t : h.tensors) {
    json blobs = json::array();
    for (const auto& b : t.blobs) {
      char hash[17];
      std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(b.xxh3));
      blobs.push_back({{"role", kRoles[static_cast<int>(b.role)]}, {"offset", b.offset}, {"stored_size", b.stored_size},
                       {"raw_size", b.raw_size}, {"compression", b.compression == format::Compression::kZstd ? "zstd" : "none"},
                       {"xxh3", hash}});
    }
    json jt = {{"name", t.name}, {"shape", t.shape}, {"source_dtype", source_dtype_name(t.source_dtype)},
               {"storage", storage_type_name(t.storage)}, {"layout", "row_major"}, {"blobs", blobs},
               {"role", format::tensor_role_name(t.role)}, {"layer", t.layer}, {"transposed", t.transposed}};
    if (is_4bit(t.storage)) {
      jt["quant"] = {{"block_size", t.quant.block_size}, {"code_table", t.quant.code_table},
                     {"double_quant", t.quant.double_quant}};
      if (t.quant.double_quant) {
        jt["quant"]["nested_block_size"] = t.quant.nested_block_size;
        jt["quant"]["nested_offset"] = t.quant.nested_offset;
      }
    }
    tensors.push_back(jt);
  }
  j["tensors"] = tensors;
  return j;
}

}  // namespace qmodel::tools
