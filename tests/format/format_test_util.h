// Shared builders for the format tests: a model with every storage type (with deterministic blob
// bytes), written through ModelWriter or laid out raw (format/src/raw_file.h) so that single rules
// can be broken, and a field-by-field header comparison.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "../../format/src/raw_file.h"
#include "qmodel/format/preamble.h"
#include "qmodel/format/reader.h"
#include "qmodel/format/writer.h"

namespace qmodel::format::test {

struct TestModel {
  ModelHeader header;                                      // blob refs are placeholders until laid out
  std::vector<std::vector<std::vector<uint8_t>>> blob_data;  // [tensor][blob], raw bytes
};

// Deterministic bytes; `compressible` gives long runs so zstd saves space, otherwise LCG noise.
inline std::vector<uint8_t> pattern(size_t n, uint32_t seed, bool compressible) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = compressible ? static_cast<uint8_t>(seed + i / 64) : static_cast<uint8_t>(x >> 24);
  }
  return out;
}

inline std::vector<float> dynamic_map_like() {
  std::vector<float> t(kDynamicMapSize);
  for (size_t i = 0; i < t.size(); ++i) t[i] = -1.0f + 2.0f * static_cast<float>(i) / 255.0f;
  return t;
}

// Adds a tensor whose blobs follow types.h, with placeholder refs of the right roles and sizes.
inline void add_tensor(TestModel& m, const std::string& name, std::vector<uint64_t> shape, StorageType storage,
                       uint32_t block_size = 0, bool double_quant = false) {
  TensorInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.source_dtype = SourceDType::kBF16;
  t.storage = storage;
  const uint64_t n = t.n_elems();
  std::vector<std::pair<BlobRole, uint64_t>> blobs;
  if (is_float_storage(storage)) {
    blobs = {{BlobRole::kData, n * float_storage_bytes(storage)}};
  } else if (storage == StorageType::kINT8) {
    blobs = {{BlobRole::kData, n}, {BlobRole::kRowScale, t.shape[0] * 4}};
  } else {
    t.quant.block_size = block_size;
    const float* table = storage == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
    t.quant.code_table.assign(table, table + 16);
    const uint64_t n_blocks = ceil_div(n, block_size);
    if (double_quant) {
      t.quant.double_quant = true;
      t.quant.nested_block_size = kNestedBlockSize;
      t.quant.nested_offset = 0.125f;
      t.quant.nested_code_table = dynamic_map_like();
      blobs = {{BlobRole::kData, packed_4bit_bytes(n)},
               {BlobRole::kAbsmaxCodes, n_blocks},
               {BlobRole::kNestedAbsmax, ceil_div(n_blocks, kNestedBlockSize) * 4}};
    } else {
      blobs = {{BlobRole::kData, packed_4bit_bytes(n)}, {BlobRole::kAbsmax, n_blocks * 4}};
    }
  }
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < blobs.size(); ++i) {
    BlobRef ref;
    ref.role = blobs[i].first;
    ref.raw_size = ref.stored_size = blobs[i].second;
    t.blobs.push_back(ref);
    // Data blobs are noise (zstd cannot shrink them), the scale blobs compress well.
    const uint32_t seed = static_cast<uint32_t>(m.header.tensors.size() * 8 + i);
    data.push_back(pattern(static_cast<size_t>(blobs[i].second), seed, i != 0));
  }
  m.header.tensors.push_back(std::move(t));
  m.blob_data.push_back(std::move(data));
}

// Every storage type, odd element counts, straddling blocks, rank 1..4, every header field set.
inline TestModel make_test_model() {
  TestModel m;
  add_tensor(m, "model.embed_tokens.weight", {32, 16}, StorageType::kBF16);
  add_tensor(m, "model.norm.weight", {16}, StorageType::kF32);
  add_tensor(m, "model.rank4.weight", {2, 3, 4, 5}, StorageType::kF16);
  add_tensor(m, "model.layers.0.self_attn.q_proj.weight", {7, 33}, StorageType::kNF4, 32);
  add_tensor(m, "model.layers.0.self_attn.k_proj.weight", {3, 100}, StorageType::kNF4, 32, true);
  add_tensor(m, "model.layers.0.mlp.up_proj.weight", {128, 160}, StorageType::kFP4, 64, true);
  add_tensor(m, "model.layers.0.mlp.down_proj.weight", {9, 64}, StorageType::kFP4, 4096);
  add_tensor(m, "model.layers.0.self_attn.o_proj.weight", {8, 24}, StorageType::kINT8);

  ModelConfig& c = m.header.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = 16;
  c.intermediate_size = 160;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 500000.0f;
  c.rope_scaling = {"llama3", 8.0f, 1.5f, 4.5f, 8192};
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.mlp_bias = true;
  c.hidden_act = "gelu";
  c.sliding_window = 4096;
  c.bos_token_id = 1;
  c.eos_token_ids = {2, 128009};
  c.pad_token_id = 0;
  c.torch_dtype = "bfloat16";
  GenerationDefaults& g = m.header.generation;
  g.do_sample = true;
  g.temperature = 0.6f;
  g.top_k = 40;
  g.top_p = 0.9f;
  g.repetition_penalty = 1.1f;
  g.max_new_tokens = 256;
  g.eos_token_ids = {2};
  QuantSettings& q = m.header.quant_settings;
  q.quant = StorageType::kFP4;
  q.block_size = 128;
  q.double_quant = true;
  q.compute_dtype = ComputeDType::kF16;
  q.skip_patterns = {"lm_head", "*.gate"};
  q.quantize_lm_head = true;
  q.compression = Compression::kZstd;
  m.header.provenance.converter = "qconvert 0.1.0";
  m.header.provenance.options = "--quant fp4 --double-quant";
  m.header.provenance.source_files = {{"model.safetensors", 123456789, 0x1234567890abcdefull},
                                      {"config.json", 700, 42}};
  m.header.files = {{"config.json", "{\"model_type\": \"llama\"}"},
                    {"tokenizer.json", std::string(5000, 'x') + "{}"},
                    {"empty.txt", ""}};
  return m;
}

// Writes `m` through ModelWriter, filling in the blob refs of m.header.
inline Status write_test_model(const std::string& path, const WriterOptions& options, TestModel& m) {
  QMODEL_ASSIGN_OR_RETURN(auto writer, ModelWriter::create(path, options, m.header));
  for (size_t t = 0; t < m.header.tensors.size(); ++t) {
    for (size_t b = 0; b < m.header.tensors[t].blobs.size(); ++b) {
      const std::vector<uint8_t>& bytes = m.blob_data[t][b];
      QMODEL_ASSIGN_OR_RETURN(m.header.tensors[t].blobs[b],
                              writer->append_blob(m.header.tensors[t].blobs[b].role, ByteSpan(bytes)));
    }
  }
  return writer->finish(m.header);
}

// Lays `m` out as the writer would (uncompressed, aligned after the header with room to spare) and
// fills in its blob refs. `corrupt` then edits the header before it is serialised.
inline std::vector<uint8_t> build_image(TestModel m, const std::function<void(TestModel&)>& corrupt = {},
                                        uint32_t preamble_version = kFormatVersion) {
  m.header.alignment = 64;
  const uint64_t header_guess = internal::serialize_header_unchecked(m.header).size();
  uint64_t offset = (kPreambleBytes + header_guess + 4096 + 63) / 64 * 64;
  for (size_t t = 0; t < m.header.tensors.size(); ++t) {
    for (size_t b = 0; b < m.header.tensors[t].blobs.size(); ++b) {
      BlobRef& ref = m.header.tensors[t].blobs[b];
      const std::vector<uint8_t>& bytes = m.blob_data[t][b];
      ref.offset = offset;
      ref.stored_size = ref.raw_size = bytes.size();
      ref.compression = Compression::kNone;
      ref.xxh3 = internal::xxh3_of(ByteSpan(bytes));
      offset = (offset + bytes.size() + 63) / 64 * 64;
    }
  }
  if (corrupt) corrupt(m);
  const std::vector<uint8_t> header = internal::serialize_header_unchecked(m.header);
  std::vector<internal::RawBlob> blobs;
  for (size_t t = 0; t < m.blob_data.size(); ++t) {
    for (size_t b = 0; b < m.blob_data[t].size() && b < m.header.tensors[t].blobs.size(); ++b) {
      const BlobRef& ref = m.header.tensors[t].blobs[b];
      // A corrupted ref may point anywhere; only place bytes where they fit a sane file.
      if (ref.offset >= kPreambleBytes + header.size() && ref.offset < (uint64_t{1} << 24)) {
        blobs.push_back({ref.offset, m.blob_data[t][b]});
      }
    }
  }
  return internal::build_raw_file(ByteSpan(header), blobs, preamble_version);
}

inline std::string temp_dir() {
  const char* env = std::getenv("TMPDIR");
  return env && *env ? env : "/tmp";
}

// A fresh path in the temp dir, unique per test and process; removed by the caller when needed.
inline std::string temp_path(const std::string& stem) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return temp_dir() + "/qmodel_" + info->test_suite_name() + "_" + info->name() + "_" + stem + "_" +
         std::to_string(::getpid()) + ".qmodel";
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void expect_blob_eq(const BlobRef& a, const BlobRef& b) {
  EXPECT_EQ(a.role, b.role);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.stored_size, b.stored_size);
  EXPECT_EQ(a.raw_size, b.raw_size);
  EXPECT_EQ(a.compression, b.compression);
  EXPECT_EQ(a.xxh3, b.xxh3);
}

inline void expect_tensor_eq(const TensorInfo& a, const TensorInfo& b) {
  SCOPED_TRACE(a.name);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.source_dtype, b.source_dtype);
  EXPECT_EQ(a.storage, b.storage);
  EXPECT_EQ(a.layout, b.layout);
  EXPECT_EQ(a.quant.block_size, b.quant.block_size);
  EXPECT_EQ(a.quant.code_table, b.quant.code_table);
  EXPECT_EQ(a.quant.double_quant, b.quant.double_quant);
  EXPECT_EQ(a.quant.nested_block_size, b.quant.nested_block_size);
  EXPECT_EQ(a.quant.nested_offset, b.quant.nested_offset);
  EXPECT_EQ(a.quant.nested_code_table, b.quant.nested_code_table);
  ASSERT_EQ(a.blobs.size(), b.blobs.size());
  for (size_t i = 0; i < a.blobs.size(); ++i) expect_blob_eq(a.blobs[i], b.blobs[i]);
}

inline void expect_header_eq(const ModelHeader& a, const ModelHeader& b) {
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.alignment, b.alignment);
  const ModelConfig& x = a.config;
  const ModelConfig& y = b.config;
  EXPECT_EQ(x.architecture, y.architecture);
  EXPECT_EQ(x.model_type, y.model_type);
  EXPECT_EQ(x.hidden_size, y.hidden_size);
  EXPECT_EQ(x.intermediate_size, y.intermediate_size);
  EXPECT_EQ(x.n_layers, y.n_layers);
  EXPECT_EQ(x.n_heads, y.n_heads);
  EXPECT_EQ(x.n_kv_heads, y.n_kv_heads);
  EXPECT_EQ(x.head_dim, y.head_dim);
  EXPECT_EQ(x.vocab_size, y.vocab_size);
  EXPECT_EQ(x.max_position_embeddings, y.max_position_embeddings);
  EXPECT_EQ(x.rms_norm_eps, y.rms_norm_eps);
  EXPECT_EQ(x.rope_theta, y.rope_theta);
  EXPECT_EQ(x.rope_scaling.type, y.rope_scaling.type);
  EXPECT_EQ(x.rope_scaling.factor, y.rope_scaling.factor);
  EXPECT_EQ(x.rope_scaling.low_freq_factor, y.rope_scaling.low_freq_factor);
  EXPECT_EQ(x.rope_scaling.high_freq_factor, y.rope_scaling.high_freq_factor);
  EXPECT_EQ(x.rope_scaling.original_max_position_embeddings, y.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(x.tie_word_embeddings, y.tie_word_embeddings);
  EXPECT_EQ(x.attention_bias, y.attention_bias);
  EXPECT_EQ(x.mlp_bias, y.mlp_bias);
  EXPECT_EQ(x.hidden_act, y.hidden_act);
  EXPECT_EQ(x.sliding_window, y.sliding_window);
  EXPECT_EQ(x.bos_token_id, y.bos_token_id);
  EXPECT_EQ(x.eos_token_ids, y.eos_token_ids);
  EXPECT_EQ(x.pad_token_id, y.pad_token_id);
  EXPECT_EQ(x.torch_dtype, y.torch_dtype);
  EXPECT_EQ(a.generation.do_sample, b.generation.do_sample);
  EXPECT_EQ(a.generation.temperature, b.generation.temperature);
  EXPECT_EQ(a.generation.top_k, b.generation.top_k);
  EXPECT_EQ(a.generation.top_p, b.generation.top_p);
  EXPECT_EQ(a.generation.repetition_penalty, b.generation.repetition_penalty);
  EXPECT_EQ(a.generation.max_new_tokens, b.generation.max_new_tokens);
  EXPECT_EQ(a.generation.eos_token_ids, b.generation.eos_token_ids);
  EXPECT_EQ(a.quant_settings.quant, b.quant_settings.quant);
  EXPECT_EQ(a.quant_settings.block_size, b.quant_settings.block_size);
  EXPECT_EQ(a.quant_settings.double_quant, b.quant_settings.double_quant);
  EXPECT_EQ(a.quant_settings.compute_dtype, b.quant_settings.compute_dtype);
  EXPECT_EQ(a.quant_settings.skip_patterns, b.quant_settings.skip_patterns);
  EXPECT_EQ(a.quant_settings.quantize_lm_head, b.quant_settings.quantize_lm_head);
  EXPECT_EQ(a.quant_settings.compression, b.quant_settings.compression);
  EXPECT_EQ(a.provenance.converter, b.provenance.converter);
  EXPECT_EQ(a.provenance.options, b.provenance.options);
  ASSERT_EQ(a.provenance.source_files.size(), b.provenance.source_files.size());
  for (size_t i = 0; i < a.provenance.source_files.size(); ++i) {
    EXPECT_EQ(a.provenance.source_files[i].name, b.provenance.source_files[i].name);
    EXPECT_EQ(a.provenance.source_files[i].size, b.provenance.source_files[i].size);
    EXPECT_EQ(a.provenance.source_files[i].xxh3, b.provenance.source_files[i].xxh3);
  }
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].name, b.files[i].name);
    EXPECT_EQ(a.files[i].contents, b.files[i].contents);
  }
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) expect_tensor_eq(a.tensors[i], b.tensors[i]);
}

}  // namespace qmodel::format::test
