// GPT-2's byte <-> unicode mapping: every byte becomes a printable code point so that byte-level
// BPE vocabularies are plain strings (printable ASCII and Latin-1 map to themselves, the other 68
// bytes to U+0100..U+0143 in order; space becomes "Ġ").
#pragma once

#include <cstdint>
#include <string>

namespace qmodel::runtime::tok {

// The code point byte `b` maps to.
uint32_t byte_to_codepoint(uint8_t b);
// The byte code point `cp` stands for, or -1 when `cp` is not in the mapping.
int codepoint_to_byte(uint32_t cp);
// Maps every byte of `bytes` to its code point, UTF-8 encoded.
std::string byte_level_encode(const std::string& bytes);
// Undoes byte_level_encode for a token; false (and `out` untouched) when some character of the
// (valid UTF-8) `token` is not in the mapping, as Hugging Face then keeps the token's own bytes.
bool byte_level_decode(const std::string& token, std::string* out);

}  // namespace qmodel::runtime::tok
