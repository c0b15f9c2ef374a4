// Reads a small text file (config, index, tokenizer) whole, with a size cap. Private helper.
#pragma once

#include <cstdint>
#include <string>

#include "qmodel/format/status.h"

namespace qmodel::converter {

// kNotFound when `path` does not exist, kIoError when it cannot be read, kCorruptFile when it is
// larger than `max_bytes`.
Result<std::string> read_text_file_capped(const std::string& path, uint64_t max_bytes);

}  // namespace qmodel::converter
