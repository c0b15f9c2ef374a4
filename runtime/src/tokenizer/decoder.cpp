// Decoding: per-token text steps (Replace, ByteLevel), byte-fallback runs (valid UTF-8 is kept, an
// invalid run becomes one U+FFFD per byte, as Hugging Face's ByteFallback decoder does), the Strip
// of leading characters, then lossy UTF-8. Streaming returns only text that later tokens cannot change.
#include "tokenizer/byte_level.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/utf8.h"

namespace qmodel::runtime::tok {
namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

int parse_byte_token(const std::string& t) {  // "<0x0A>" -> 10
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

TokenPiece make_token_piece(const DecoderSpec& spec, const std::string& token) {
  TokenPiece piece;
  if (spec.byte_fallback) piece.fallback_byte = parse_byte_token(token);
  std::string text = token;
  for (const DecoderSpec::TokenStep& step : spec.token_steps) {
    if (step.kind == DecoderSpec::TokenStep::Kind::kReplace) {
      replace_all(text, step.from, step.to);
    } else {
      std::string raw;
      if (byte_level_decode(text, &raw)) text.swap(raw);  // else keep the token's own bytes
    }
  }
  piece.bytes = std::move(text);
  return piece;
}

void DecodeState::push(const TokenPiece& piece) {
  if (piece.fallback_byte >= 0) {
    byte_run_ += static_cast<char>(piece.fallback_byte);
    // A run that is whole, valid UTF-8 so far can be released; an invalid one waits for its end.
    if (utf8_first_invalid(byte_run_) == std::string::npos) {
      pending_ += byte_run_;
      byte_run_.clear();
    }
    return;
  }
  flush_byte_run();
  pending_ += piece.bytes;
}

void DecodeState::flush_byte_run() {
  if (byte_run_.empty()) return;
  if (utf8_first_invalid(byte_run_) == std::string::npos) {
    pending_ += byte_run_;
  } else {
    for (size_t i = 0; i < byte_run_.size(); ++i) pending_ += kReplacementChar;
  }
  byte_run_.clear();
}

std::string DecodeState::take(bool final) {
  if (final) flush_byte_run();
  const size_t n_stable = final ? pending_.size() : utf8_stable_prefix(pending_);
  std::string text;
  append_utf8_lossy(text, pending_.substr(0, n_stable));
  pending_.erase(0, n_stable);
  size_t cut = 0;
  const std::string& c = spec_.strip_content;
  while (n_strip_left_ > 0 && !c.empty() && text.compare(cut, c.size(), c) == 0) {
    cut += c.size();
    --n_strip_left_;
  }
  if (!text.empty() && cut < text.size()) n_strip_left_ = 0;  // stripping stops at the first other char
  return text.substr(cut);
}

}  // namespace qmodel::runtime::tok
