// ModelHeader <-> FlatBuffer (schemas/qmodel.fbs). fb_convert.cpp is the only file that includes the
// generated code. Nothing here checks semantics: the reader runs verify_flatbuffer() before
// decode_header() and the semantic rules (verify_semantics.h) after it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/span.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::format {

// Highest value of each enum this build knows; fb_convert.cpp asserts they equal the schema's MAX.
inline constexpr uint8_t kMaxSourceDType = static_cast<uint8_t>(SourceDType::kBF16);
inline constexpr uint8_t kMaxStorageType = static_cast<uint8_t>(StorageType::kINT8);
inline constexpr uint8_t kMaxComputeDType = static_cast<uint8_t>(ComputeDType::kF32);
inline constexpr uint8_t kMaxLayout = static_cast<uint8_t>(Layout::kRowMajor);
inline constexpr uint8_t kMaxBlobRole = static_cast<uint8_t>(BlobRole::kRowScale);
inline constexpr uint8_t kMaxCompression = static_cast<uint8_t>(Compression::kZstd);

// Embedded files are always zstd-compressed inside the header; a fixed level keeps the header size
// of the writer's skeleton and of its final header identical.
inline constexpr int kEmbeddedFileZstdLevel = 6;

// Serialises `header` (force_defaults, so scalar values never change the size; embedded files
// zstd-compressed). kInvalidArgument when the result would exceed kMaxHeaderBytes.
Result<std::vector<uint8_t>> serialize_header(const ModelHeader& header);

// True when `header_bytes` is a well-formed "QMDL" FlatBuffer (bounds, depth, table count,
// alignment, required fields). `header_bytes.data()` must be 8-byte aligned.
bool verify_flatbuffer(ByteSpan header_bytes);

// An embedded file as stored; decoded (decompressed) only after the semantic checks.
struct StoredFile {
  std::string name;
  Compression compression = Compression::kNone;
  uint64_t raw_size = 0;
  ByteSpan data;  // points into the header bytes
  uint64_t header_offset = 0;  // offset of its table within the header
};

struct DecodedHeader {
  ModelHeader header;                   // `files` left empty, see `stored_files`
  std::vector<StoredFile> stored_files;
  std::vector<uint64_t> tensor_offsets;  // offset of each Tensor table within the header
  bool has_architecture = false;         // v2 files carry one; v1 files get the Llama one derived
};

// Copies a verified buffer into plain structs. Precondition: verify_flatbuffer() returned true.
// kCorruptFile (bare message) when the buffer aliases data so that it would decode to more bytes
// than it holds. Throws only std::bad_alloc.
Result<DecodedHeader> decode_header(ByteSpan verified_header_bytes);

}  // namespace qmodel::format
