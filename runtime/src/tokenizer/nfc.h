// Unicode Normalization Form C (Qwen2's normalizer). PCRE2 has no normalization, so this is the
// textbook algorithm (full canonical decomposition, canonical ordering, canonical composition)
// over tables generated from Unicode 14 data; text below U+0300 is returned untouched.
#pragma once

#include <string>

namespace qmodel::runtime::tok {

// `text` must be valid UTF-8.
std::string nfc(const std::string& text);

}  // namespace qmodel::runtime::tok
