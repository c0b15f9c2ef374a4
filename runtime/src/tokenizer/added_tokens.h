// Added/special tokens: split text on them before the model sees it. Leftmost match wins, the
// longest at that position (Hugging Face's leftmost-longest Aho-Corasick), honouring single_word,
// lstrip and rstrip.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qmodel::runtime::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched against normalized text rather than the raw input
};

struct Segment {
  size_t begin = 0, end = 0;
  int32_t token_id = -1;  // -1: plain text to tokenize
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` into plain-text and token segments covering it (stripped whitespace belongs to
  // the token segment); empty plain-text segments are omitted.
  std::vector<Segment> split(const std::string& text) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::vector<uint32_t>> by_first_byte_;  // indices into tokens_, longest first
};

}  // namespace qmodel::runtime::tok
