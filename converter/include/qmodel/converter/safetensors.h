// Reader for one Hugging Face .safetensors file: mmapped read-only, header verified against every
// safetensors rule before any tensor is handed out (bounded header, UTF-8 JSON object, no duplicate
// keys, string-only __metadata__, contiguous data_offsets from 0 with no holes, overlaps or trailing
// bytes, checked size arithmetic). Only F32, F16 and BF16 are accepted (kUnsupported otherwise),
// unless the caller opts in to U8 and I8 (SafetensorsOptions; the bitsandbytes import reads its
// packed codes, absmax codes, quant_state JSON and LLM.int8 weights that way): those entries are
// raw bytes that carry their safetensors dtype (TensorEntry::st_dtype) and are never converted.
// Every error names the file, the tensor and the byte offset where that applies.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qmodel/format/quant_blocks.h"
#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::converter {

class ReadOnlyMapping;

inline constexpr uint64_t kSafetensorsPrefixBytes = 8;                // little-endian u64 header length
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;  // the reference reader's cap

// A tensor's dtype as the safetensors header names it. Float entries mirror TensorEntry::dtype;
// kU8 / kI8 entries exist only in files opened with SafetensorsOptions::allow_u8_i8.
enum class StDType : uint8_t { kF32 = 0, kF16 = 1, kBF16 = 2, kU8 = 3, kI8 = 4 };
// "F32", "F16", "BF16", "U8", "I8".
const char* st_dtype_name(StDType dtype);
// 4, 2, 2, 1, 1.
size_t st_dtype_size(StDType dtype);

struct SafetensorsOptions {
  // Accept U8 and I8 entries as raw bytes (TensorEntry::is_float() false, dtype left at kF32 and
  // meaningless). Off by default: a normal checkpoint with such a tensor stays kUnsupported.
  bool allow_u8_i8 = false;
};

// One tensor of a checkpoint. `bytes` points into the file's mapping and stays valid as long as
// the SafetensorsFile (or Checkpoint) that produced it lives. Data is little-endian, row-major.
struct TensorEntry {
  std::string name;
  SourceDType dtype = SourceDType::kF32;    // float entries only (see st_dtype)
  StDType st_dtype = StDType::kF32;        // the header's dtype, raw entries included
  std::vector<uint64_t> shape;  // empty for a rank-0 scalar
  ByteSpan bytes;               // exactly n_elems() * element size bytes
  std::string file;             // file name relative to the checkpoint folder
  uint64_t file_offset = 0;     // absolute offset of the data in that file

  // Product of the shape (1 for a scalar, 0 when a dimension is 0). Verified not to overflow when
  // the file was opened.
  uint64_t n_elems() const;
  // F32, F16 or BF16 (to_float applies); false for raw U8/I8 entries.
  bool is_float() const { return st_dtype == StDType::kF32 || st_dtype == StDType::kF16 || st_dtype == StDType::kBF16; }
};

// Bytes per element (4 for F32, 2 for F16/BF16).
size_t source_dtype_size(SourceDType dtype);
// The safetensors dtype name: "F32", "F16" or "BF16".
const char* safetensors_dtype_name(SourceDType dtype);

class SafetensorsFile {
 public:
  // Maps `path` and verifies it. kIoError when it cannot be read, kCorruptFile for a broken file,
  // kUnsupported for a dtype other than F32/F16/BF16. Entries carry file = the base name of path.
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path, const SafetensorsOptions& options = {});
  // Same checks over bytes the caller owns (tests, fuzzing); they must outlive the result. `name`
  // is used in messages and as TensorEntry::file.
  static Result<std::unique_ptr<SafetensorsFile>> open_memory(const std::string& name, ByteSpan bytes,
                                                              const SafetensorsOptions& options = {});
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // All tensors in data-offset order (ties, i.e. empty tensors, by name).
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  // The header's optional "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The whole file (prefix, header and data), e.g. to hash it for provenance.
  ByteSpan file_bytes() const { return file_bytes_; }
  // Offset of the data buffer in the file: 8 + header length.
  uint64_t data_offset() const { return data_offset_; }
  // The path (or name) given to open, as used in messages.
  const std::string& path() const { return path_; }

  // Drops the pages of `entry` (a tensor of this file) from this process (MADV_DONTNEED) so a
  // model much larger than RAM converts with a small resident set. Reading the entry afterwards
  // is still valid (the pages are re-read). No-op for open_memory files. Thread-safe.
  void release(const TensorEntry& entry) const;
  // Drops an arbitrary byte range of the file (e.g. after hashing it). Thread-safe.
  void release_range(uint64_t offset, uint64_t n_bytes) const;
  // Hints that `entry` will be read soon (MADV_WILLNEED). Thread-safe.
  void prefetch(const TensorEntry& entry) const;

 private:
  SafetensorsFile() = default;
  static Result<std::unique_ptr<SafetensorsFile>> parse(std::unique_ptr<SafetensorsFile> file,
                                                        const SafetensorsOptions& options);

  std::unique_ptr<ReadOnlyMapping> mapping_;  // null for open_memory
  std::string path_;
  std::string entry_file_;
  ByteSpan file_bytes_;
  uint64_t data_offset_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Converts elements [first, first + count) of an F32/F16/BF16 entry to float32. Exact (F16
// subnormals, infinities and NaN payloads kept; BF16 is a shift). The caller guarantees
// first + count <= entry.n_elems() and entry.is_float() (asserted) and room for `count` floats at `out`.
void to_float(const TensorEntry& entry, uint64_t first, uint64_t count, float* out);
// The same over raw little-endian bytes: `src` holds `count` elements of `dtype`, any alignment.
void convert_to_float(SourceDType dtype, const uint8_t* src, uint64_t count, float* out);

}  // namespace qmodel::converter
