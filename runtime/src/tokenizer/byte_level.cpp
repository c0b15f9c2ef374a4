// Byte-level mapping tables, built once (same construction as GPT-2's bytes_to_unicode()).
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code points 0..323 cover the whole image of the mapping

  Tables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[static_cast<size_t>(b)] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables kTables;
  return kTables;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return tables().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1;
}

std::string byte_level_encode(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_codepoint(static_cast<uint8_t>(c)));
  return out;
}

bool byte_level_decode(const std::string& token, std::string* out) {
  std::string bytes;
  for (size_t i = 0; i < token.size();) {
    size_t n = utf8_valid_len(token, i);
    if (n == 0) return false;
    const int b = codepoint_to_byte(utf8_decode(token, i, &n));
    if (b < 0) return false;
    bytes += static_cast<char>(b);
    i += n;
  }
  *out += bytes;
  return true;
}

}  // namespace qmodel::runtime::tok
