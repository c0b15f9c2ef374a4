// The reader pipeline over a whole file image (docs/FORMAT.md "Verification"), steps 1-7 in order:
// preamble size, magic, version, header bounds, header checksum, FlatBuffers verifier, semantic rules,
// then the embedded files are decompressed under a size bound. Used by open() and open_memory().
#pragma once

#include <cstdint>
#include <string>

#include "qmodel/format/span.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::format {

// Returns the decoded header only when every rule holds. Never throws: allocation failures come
// back as kOutOfMemory.
Result<ModelHeader> verify_model(const std::string& name, ByteSpan file);

}  // namespace qmodel::format
