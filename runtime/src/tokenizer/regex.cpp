// PCRE2 (8-bit) glue. Matching loops over pcre2_match; an empty match advances one character so a
// pattern that can match "" cannot loop forever.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

namespace qmodel::runtime::tok {
namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

}  // namespace

Result<std::shared_ptr<const Regex>> Regex::compile(const std::string& pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    return Status(StatusCode::kCorruptFile, "bad regex at pattern offset " + std::to_string(error_offset) +
                                                ": " + reinterpret_cast<const char*>(buffer));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up: the interpreter is the fallback
  return std::shared_ptr<const Regex>(new Regex(code));
}

std::string Regex::escape(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!plain) out += '\\';
    out += c;
  }
  return out;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

Status Regex::find_all(const std::string& text, std::vector<std::pair<size_t, size_t>>* matches) const {
  matches->clear();
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(as_code(code_), nullptr);
  if (md == nullptr) return Status(StatusCode::kOutOfMemory, "pcre2_match_data_create failed");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  Status status;
  while (start <= text.size()) {
    // The text was validated once by the caller: skip PCRE2's per-call UTF check (quadratic otherwise).
    const int rc = pcre2_match(as_code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      status = Status(StatusCode::kInvalidArgument, std::string("regex match failed: ") +
                                                        reinterpret_cast<const char*>(buffer));
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      matches->emplace_back(b, e);
      start = e;
    } else {  // empty match: step over one UTF-8 character
      start = b + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  pcre2_match_data_free(md);
  return status;
}

}  // namespace qmodel::runtime::tok
