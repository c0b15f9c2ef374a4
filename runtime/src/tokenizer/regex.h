// Thin RAII wrapper over a PCRE2 pattern compiled with UTF and UCP (\s, \p{L}, \w are Unicode-aware,
// as in the Oniguruma regexes Hugging Face uses), JIT-compiled when the library supports it.
// A compiled Regex is immutable and safe to share between threads.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qmodel/format/status.h"

namespace qmodel::runtime::tok {

class Regex {
 public:
  // Errors (kCorruptFile) carry PCRE2's message and the offset in the pattern.
  static Result<std::shared_ptr<const Regex>> compile(const std::string& pattern);
  // A pattern matching `literal` exactly.
  static std::string escape(const std::string& literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [begin, end) in `text` (valid UTF-8), left to right.
  Status find_all(const std::string& text, std::vector<std::pair<size_t, size_t>>* matches) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

}  // namespace qmodel::runtime::tok
