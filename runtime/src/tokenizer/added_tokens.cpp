// Added-token splitting. Candidates are bucketed by first byte, so a scan costs one bucket probe
// per input byte; Llama 3's 256 specials all start with '<'.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {
namespace {

bool is_unicode_space(uint32_t cp) {  // Rust's char::is_whitespace (the White_Space property)
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_word_byte(unsigned char c) {  // ASCII alphanumerics and '_'; any non-ASCII counts as a letter
  return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

size_t start_of_char_before(const std::string& s, size_t i) {
  do {
    --i;
  } while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)), by_first_byte_(256) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (!tokens_[i].content.empty()) by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

std::vector<Segment> AddedTokenMatcher::split(const std::string& text) const {
  std::vector<Segment> out;
  size_t text_begin = 0;  // start of the pending plain-text segment
  size_t i = 0;
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    for (uint32_t k : by_first_byte_[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, tokens_[k].content.size(), tokens_[k].content) == 0) {
        hit = &tokens_[k];
        break;
      }
    }
    size_t end = hit ? i + hit->content.size() : 0;
    if (hit && hit->single_word) {
      const bool word_before = i > 0 && is_word_byte(static_cast<unsigned char>(text[i - 1]));
      const bool word_after = end < text.size() && is_word_byte(static_cast<unsigned char>(text[end]));
      if (word_before || word_after) hit = nullptr;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t begin = i;
    if (hit->lstrip) {
      while (begin > text_begin) {
        const size_t prev = start_of_char_before(text, begin);
        size_t n = 0;
        if (!is_unicode_space(utf8_decode(text, prev, &n))) break;
        begin = prev;
      }
    }
    if (hit->rstrip) {
      while (end < text.size()) {
        size_t n = 1;
        if (utf8_valid_len(text, end) == 0 || !is_unicode_space(utf8_decode(text, end, &n))) break;
        end += n;
      }
    }
    if (begin > text_begin) out.push_back({text_begin, begin, -1});
    out.push_back({begin, end, hit->id});
    text_begin = i = end;
  }
  if (text_begin < text.size()) out.push_back({text_begin, text.size(), -1});
  return out;
}

}  // namespace qmodel::runtime::tok
