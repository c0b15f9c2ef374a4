// Strict JSON parsing for untrusted files (safetensors headers, config.json, index files): valid
// UTF-8, a bounded nesting depth, and no duplicate object keys (nlohmann-json silently keeps one of
// two equal keys, which would let two readers of one file disagree). Private to the converter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qmodel/format/status.h"

namespace qmodel::converter {

inline constexpr int kMaxJsonDepth = 64;

// Index of the first byte that breaks UTF-8 (overlong forms, surrogates and code points above
// U+10FFFF included), or text.size() when the text is valid.
size_t find_invalid_utf8(std::string_view text);

// Parses `text` (from `file`; `base_offset` is the text's byte offset inside that file, for
// messages). Errors are kCorruptFile naming the file and the byte offset: "not valid UTF-8",
// "not valid JSON", "nested deeper than", "duplicate key". Never throws.
Result<nlohmann::json> parse_strict_json(std::string_view text, const std::string& file, int64_t base_offset);

// "string", "number", ... for messages about a value of the wrong type.
const char* json_type_name(const nlohmann::json& value);

}  // namespace qmodel::converter
