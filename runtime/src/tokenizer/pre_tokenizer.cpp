// Pre-tokenizer steps over a list of pieces, mirroring Hugging Face's Split (with its five
// delimiter behaviours and invert), ByteLevel (prefix space, GPT-2 regex, byte mapping) and
// Metaspace (spaces -> "▁", prepend scheme, optional split).
#include "tokenizer/byte_level.h"
#include "tokenizer/pipeline.h"

namespace qmodel::runtime::tok {
namespace {

struct Part {
  size_t begin, end;
  bool is_match;
};

// Covers [0, text.size()) with alternating non-match/match parts.
std::vector<Part> partition(const std::string& text, const std::vector<std::pair<size_t, size_t>>& matches,
                            bool invert) {
  std::vector<Part> parts;
  size_t pos = 0;
  for (const auto& m : matches) {
    if (m.first > pos) parts.push_back({pos, m.first, invert});
    parts.push_back({m.first, m.second, !invert});
    pos = m.second;
  }
  if (pos < text.size()) parts.push_back({pos, text.size(), invert});
  return parts;
}

void split_piece(const PreToken& piece, const std::vector<Part>& parts, SplitBehavior behavior,
                 std::vector<PreToken>* out) {
  std::vector<std::pair<size_t, size_t>> spans;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Part& p : parts) if (!p.is_match) spans.emplace_back(p.begin, p.end);
      break;
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) spans.emplace_back(p.begin, p.end);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.is_match && !spans.empty()) spans.back().second = p.end;
        else spans.emplace_back(p.begin, p.end);
      }
      break;
    case SplitBehavior::kMergedWithNext: {
      bool carry = false;  // previous part was a match waiting for its successor
      for (const Part& p : parts) {
        if (carry) spans.back().second = p.end;
        else spans.emplace_back(p.begin, p.end);
        carry = p.is_match;
      }
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.is_match && prev_match) spans.back().second = p.end;
        else spans.emplace_back(p.begin, p.end);
        prev_match = p.is_match;
      }
      break;
    }
  }
  for (const auto& s : spans) {
    if (s.second > s.first) {
      out->push_back({piece.text.substr(s.first, s.second - s.first), piece.at_input_start && s.first == 0});
    }
  }
}

Status apply_regex_split(const Regex& regex, SplitBehavior behavior, bool invert, std::vector<PreToken>* pieces) {
  std::vector<PreToken> out;
  std::vector<std::pair<size_t, size_t>> matches;
  for (const PreToken& piece : *pieces) {
    QMODEL_RETURN_IF_ERROR(regex.find_all(piece.text, &matches));
    split_piece(piece, partition(piece.text, matches, invert), behavior, &out);
  }
  pieces->swap(out);
  return Status::ok_status();
}

void replace_spaces(std::string& s, const std::string& replacement) {
  std::string out;
  for (char c : s) {
    if (c == ' ') out += replacement;
    else out += c;
  }
  s.swap(out);
}

}  // namespace

Status pre_tokenize(const std::vector<PreTokenizerStep>& steps, std::vector<PreToken>* pieces) {
  for (const PreTokenizerStep& step : steps) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::kSplit:
        QMODEL_RETURN_IF_ERROR(apply_regex_split(*step.pattern, step.behavior, step.invert, pieces));
        break;
      case PreTokenizerStep::Kind::kByteLevel:
        if (step.add_prefix_space) {
          for (PreToken& p : *pieces) if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
        }
        if (step.pattern) QMODEL_RETURN_IF_ERROR(apply_regex_split(*step.pattern, SplitBehavior::kIsolated, false, pieces));
        for (PreToken& p : *pieces) p.text = byte_level_encode(p.text);
        break;
      case PreTokenizerStep::Kind::kMetaspace: {
        for (PreToken& p : *pieces) {
          replace_spaces(p.text, step.replacement);
          const bool starts = p.text.compare(0, step.replacement.size(), step.replacement) == 0;
          const bool prepend = step.prepend_scheme == PrependScheme::kAlways ||
                               (step.prepend_scheme == PrependScheme::kFirst && p.at_input_start);
          if (prepend && !starts) p.text.insert(0, step.replacement);
        }
        if (step.split && step.pattern) {  // pattern: the escaped replacement, compiled at load
          QMODEL_RETURN_IF_ERROR(apply_regex_split(*step.pattern, SplitBehavior::kMergedWithNext, false, pieces));
        }
        break;
      }
    }
  }
  return Status::ok_status();
}

}  // namespace qmodel::runtime::tok
