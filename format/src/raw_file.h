// Test and fuzz support only; the library never calls it. Lays out a .qmodel image from parts as
// given, with no validation at all, so tests can build every kind of broken file. Included by
// tests through a relative path on purpose: it is not part of the public API.
#pragma once

#include <cstdint>
#include <vector>

#include "qmodel/format/span.h"
#include "qmodel/format/types.h"

namespace qmodel::format::internal {

struct RawBlob {
  uint64_t offset = 0;
  std::vector<uint8_t> bytes;
};

// The header exactly as the writer would serialise it (format_version and alignment as given).
// Aborts (QMODEL_ASSERT) if the header exceeds kMaxHeaderBytes: test inputs are small.
std::vector<uint8_t> serialize_header_unchecked(const ModelHeader& header);

// Preamble (magic, `format_version`, 32, header size, XXH3 of `header_bytes`) + header at offset
// 32 + each blob at its offset, zero-filled in between; the image ends at the last byte written.
std::vector<uint8_t> build_raw_file(ByteSpan header_bytes, const std::vector<RawBlob>& blobs,
                                    uint32_t format_version = kFormatVersion);

uint64_t xxh3_of(ByteSpan bytes);

}  // namespace qmodel::format::internal
