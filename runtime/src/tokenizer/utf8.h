// UTF-8 helpers shared by the tokenizer: strict validation (encode rejects invalid text), Hugging
// Face's lossy conversion (invalid sequences -> U+FFFD by maximal subpart, as Rust's
// String::from_utf8_lossy), and the split point that streaming decode may emit up to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qmodel::runtime::tok {

constexpr const char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid or truncated.
size_t utf8_valid_len(const std::string& s, size_t i);
// Offset of the first invalid byte, or std::string::npos when `s` is valid UTF-8.
size_t utf8_first_invalid(const std::string& s);
// Appends `bytes` to `out`, each maximal invalid subpart replaced by U+FFFD.
void append_utf8_lossy(std::string& out, const std::string& bytes);
// Length of the longest prefix of `bytes` whose lossy conversion cannot change when more bytes are
// appended: everything except a trailing sequence that is valid so far but incomplete.
size_t utf8_stable_prefix(const std::string& bytes);
// Appends the UTF-8 encoding of code point `cp` (must be a valid scalar value).
void append_utf8(std::string& out, uint32_t cp);
// Decodes the (valid) sequence at s[i]; `len` receives its length.
uint32_t utf8_decode(const std::string& s, size_t i, size_t* len);

}  // namespace qmodel::runtime::tok
