// StreamDecoder: for tokenizers from from_json, one DecodeState fed token by token (the same code
// as decode, so the concatenated output equals decode of all ids); any other Tokenizer is handled by
// re-decoding the whole id list and holding back a trailing U+FFFD that may still complete.
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/utf8.h"

namespace qmodel::runtime {

struct StreamDecoder::State {
  const tok::BpeTokenizer& tokenizer;
  tok::DecodeState decode;
};

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {
  if (const auto* bpe = dynamic_cast<const tok::BpeTokenizer*>(&tokenizer)) {
    state_ = std::unique_ptr<State, void (*)(State*)>(new State{*bpe, tok::DecodeState(bpe->decoder())},
                                                      [](State* s) { delete s; });
  }
}

std::string StreamDecoder::push(int32_t id) {
  if (state_) {
    if (!state_->tokenizer.decodes(id, skip_special_)) return std::string();
    state_->decode.push(state_->tokenizer.piece(id));
    std::string text = state_->decode.take(false);
    emitted_bytes_ += text.size();
    return text;
  }
  ids_.push_back(id);
  const std::string full = tokenizer_.decode(ids_, skip_special_);
  const std::string replacement = tok::kReplacementChar;
  const bool maybe_incomplete = full.size() >= 3 && full.compare(full.size() - 3, 3, replacement) == 0;
  if (maybe_incomplete || full.size() <= emitted_bytes_) return std::string();
  std::string text = full.substr(emitted_bytes_);
  emitted_bytes_ = full.size();
  return text;
}

std::string StreamDecoder::flush() {
  if (state_) {
    std::string text = state_->decode.take(true);
    emitted_bytes_ += text.size();
    return text;
  }
  const std::string full = tokenizer_.decode(ids_, skip_special_);
  std::string text = full.size() > emitted_bytes_ ? full.substr(emitted_bytes_) : std::string();
  emitted_bytes_ = full.size();
  return text;
}

}  // namespace qmodel::runtime
