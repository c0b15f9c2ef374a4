// Step 7 of the reader pipeline (docs/FORMAT.md "Verification"): every semantic rule over a decoded
// header: enums, shapes, checked size arithmetic, the blob set per storage type, alignment, blobs
// inside the data section, no overlap, unique names. The writer runs the same rules in finish().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::format {

struct FileGeometry {
  std::string name;            // file name for messages
  uint64_t file_bytes = 0;     // total size of the file
  uint64_t header_end = 0;     // 32 + header_bytes: no blob may start before it
  uint32_t preamble_version = 0;
};

// `tensor_offsets` (absolute file offsets of each tensor's table, for messages) may be empty.
// Errors are kCorruptFile naming the file, the tensor and a byte offset.
Status verify_header_semantics(const FileGeometry& geometry, const ModelHeader& header,
                               const std::vector<uint64_t>& tensor_offsets);

// Expected raw bytes of one blob of a tensor whose shape and quant params passed verification;
// false when the role does not belong to the storage type or the arithmetic overflows.
bool expected_blob_bytes(const TensorInfo& tensor, BlobRole role, uint64_t* n_bytes);

}  // namespace qmodel::format
