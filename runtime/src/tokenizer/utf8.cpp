// UTF-8 validation and lossy conversion following Unicode Table 3-7 (well-formed byte sequences),
// which is also what Rust's from_utf8_lossy (and so Hugging Face decode) implements.
#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {
namespace {

// How many bytes of a sequence starting at s[i] are a valid prefix (1..4), and whether the
// sequence is complete. A lead byte that cannot start a sequence gives prefix 0.
struct SeqScan {
  size_t n_valid = 0;   // bytes that form a valid (possibly incomplete) prefix
  bool complete = false;
};

SeqScan scan_sequence(const std::string& s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return {1, true};
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {0, false};
  }
  size_t n = 1;
  for (; n < need; ++n) {
    if (i + n >= s.size()) return {n, false};
    const auto b = static_cast<uint8_t>(s[i + n]);
    const uint8_t l = n == 1 ? lo : 0x80, h = n == 1 ? hi : 0xBF;
    if (b < l || b > h) return {n, false};
  }
  return {need, true};
}

}  // namespace

size_t utf8_valid_len(const std::string& s, size_t i) {
  const SeqScan r = scan_sequence(s, i);
  return r.complete ? r.n_valid : 0;
}

size_t utf8_first_invalid(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_valid_len(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string::npos;
}

void append_utf8_lossy(std::string& out, const std::string& bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const SeqScan r = scan_sequence(bytes, i);
    if (r.complete) {
      out.append(bytes, i, r.n_valid);
      i += r.n_valid;
    } else {
      out += kReplacementChar;          // one U+FFFD per maximal invalid subpart
      i += r.n_valid == 0 ? 1 : r.n_valid;
    }
  }
}

size_t utf8_stable_prefix(const std::string& bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const SeqScan r = scan_sequence(bytes, i);
    if (!r.complete && r.n_valid > 0 && i + r.n_valid == bytes.size()) return i;  // may complete later
    i += r.complete ? r.n_valid : (r.n_valid == 0 ? 1 : r.n_valid);
  }
  return bytes.size();
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t utf8_decode(const std::string& s, size_t i, size_t* len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  const size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  uint32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  *len = n;
  return cp;
}

}  // namespace qmodel::runtime::tok
