// The decoded .qmodel header as plain C++ values. The writer serialises a ModelHeader into the
// FlatBuffer of schemas/qmodel.fbs; the reader verifies a file and hands back the same structs.
// Nobody outside format/ touches FlatBuffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/architecture.h"
#include "qmodel/format/quant_blocks.h"

namespace qmodel::format {

// Format versions this build writes / reads (README.md keeps the history).
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kSupportedVersions[] = {1, 2};
inline constexpr uint64_t kDefaultAlignment = 4096;

enum class Layout : uint8_t {
  kRowMajor = 0,  // bitsandbytes flat layout: [out, in] row-major, 4-bit blocks over the flat index
};

// What a blob holds. Per storage type the blobs are, in this order:
//   F32/F16/BF16      : kData (row-major values)
//   NF4/FP4           : kData (packed codes, (n+1)/2 bytes), kAbsmax (f32 x ceil(n/bs))
//   NF4/FP4 + double  : kData, kAbsmaxCodes (u8 x ceil(n/bs)), kNestedAbsmax (f32 x ceil(n_blocks/256))
//   INT8              : kData (i8 x n), kRowScale (f32 x rows: LLM.int8 SCB)
enum class BlobRole : uint8_t { kData = 0, kAbsmax = 1, kAbsmaxCodes = 2, kNestedAbsmax = 3, kRowScale = 4 };
enum class Compression : uint8_t { kNone = 0, kZstd = 1 };

struct BlobRef {
  BlobRole role = BlobRole::kData;
  uint64_t offset = 0;       // absolute file offset of the stored bytes, a multiple of the alignment
  uint64_t stored_size = 0;  // bytes in the file (compressed size when compressed)
  uint64_t raw_size = 0;     // bytes after decompression (== stored_size when uncompressed)
  Compression compression = Compression::kNone;
  uint64_t xxh3 = 0;         // XXH3-64 (seed 0) of the stored bytes
};

struct QuantParams {
  uint32_t block_size = 0;               // NF4/FP4 block size; 0 for INT8 and float storage
  std::vector<float> code_table;         // NF4/FP4: the 16-entry quant_map, index = code
  bool double_quant = false;
  uint32_t nested_block_size = 0;        // 256 when double_quant
  float nested_offset = 0.0f;            // mean of the first-level absmax
  std::vector<float> nested_code_table;  // 256-entry signed dynamic map when double_quant
};

struct TensorInfo {
  std::string name;             // as in the source checkpoint
  std::vector<uint64_t> shape;  // logical shape, rank 1..4, e.g. [out, in]
  SourceDType source_dtype = SourceDType::kF32;
  StorageType storage = StorageType::kF32;
  Layout layout = Layout::kRowMajor;
  QuantParams quant;
  std::vector<BlobRef> blobs;
  TensorRole role = TensorRole::kNone;  // what it is to the forward pass (v2; v1 files: derived)
  int32_t layer = -1;                   // block index of a per-block role, else -1
  bool transposed = false;              // stored transposed from the source ([in, out] Conv1D)

  uint64_t n_elems() const;                      // product of shape (verified not to overflow)
  const BlobRef* find_blob(BlobRole blob_role) const; // nullptr when absent
};

struct RopeScaling {
  std::string type = "default";  // "default", "linear", "dynamic", "llama3", ...
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  uint32_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  std::string architecture;  // config.json "architectures"[0], e.g. "LlamaForCausalLM"
  std::string model_type;    // "llama", "mistral", "qwen2", ...
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t n_layers = 0;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t head_dim = 0;  // hidden_size / n_heads unless config says otherwise
  uint32_t vocab_size = 0;
  uint32_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v(/o) biases (Qwen2: q/k/v)
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  uint32_t sliding_window = 0;  // 0 = none
  int32_t bos_token_id = -1;    // -1 = none
  std::vector<int32_t> eos_token_ids;
  int32_t pad_token_id = -1;
  std::string torch_dtype;      // "float32", "bfloat16", ... as the config states
};

struct GenerationDefaults {
  bool do_sample = false;
  float temperature = 1.0f;
  int32_t top_k = 0;   // 0 = off
  float top_p = 1.0f;  // 1 = off
  float repetition_penalty = 1.0f;
  uint32_t max_new_tokens = 0;  // 0 = unset
  std::vector<int32_t> eos_token_ids;
};

struct QuantSettings {
  StorageType quant = StorageType::kNF4;  // what the block Linear weights were asked to become
  uint32_t block_size = kDefaultBlockSize;
  bool double_quant = false;
  ComputeDType compute_dtype = ComputeDType::kBF16;  // default runtime compute dtype
  std::vector<std::string> skip_patterns;
  bool quantize_lm_head = false;
  Compression compression = Compression::kNone;
};

struct SourceFile {
  std::string name;   // path relative to the input folder
  uint64_t size = 0;
  uint64_t xxh3 = 0;  // XXH3-64 of the whole file
};

struct Provenance {
  std::string converter;  // "qconvert 0.1.0"
  std::string options;    // canonical options (no thread count or paths, so output is deterministic)
  std::vector<SourceFile> source_files;
};

// Small text files carried verbatim (zstd-compressed inside the header): config.json,
// tokenizer.json, tokenizer_config.json, generation_config.json, ...
struct EmbeddedFile {
  std::string name;
  std::string contents;
};

struct ModelHeader {
  uint32_t format_version = kFormatVersion;
  uint64_t alignment = kDefaultAlignment;
  ModelConfig config;
  GenerationDefaults generation;
  QuantSettings quant_settings;
  Provenance provenance;
  std::vector<EmbeddedFile> files;
  std::vector<TensorInfo> tensors;
  ArchSpec arch;  // v1 files: the Llama description derived from config

  const TensorInfo* find_tensor(const std::string& name) const;
  const EmbeddedFile* find_file(const std::string& name) const;
};

}  // namespace qmodel::format
