// Hashing the files a conversion read, for the provenance record.
#pragma once

#include <cstdint>
#include <string>

#include "qmodel/format/status.h"

namespace qmodel::converter {

// XXH3-64 of a whole file, streamed with bounded memory.
Result<uint64_t> hash_file(const std::string& path, uint64_t* size_out);

}  // namespace qmodel::converter
