// The one Tokenizer implementation: added-token split -> normalizer -> pre-tokenizer -> BPE, and
// the decoder in reverse. Built by Tokenizer::from_json; immutable, so encode/decode are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qmodel/runtime/tokenizer.h"
#include "tokenizer/spec.h"

namespace qmodel::runtime::tok {

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(TokenizerSpec spec);

  Result<std::vector<int32_t>> encode(const std::string& text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  size_t vocab_size() const override { return pieces_.size(); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  bool is_special(int32_t id) const override { return valid(id) && special_[static_cast<size_t>(id)]; }
  std::string token_bytes(int32_t id) const override;

  // For StreamDecoder: whether `id` contributes to decoded text, and its piece.
  bool decodes(int32_t id, bool skip_special) const { return valid(id) && present_[static_cast<size_t>(id)] && !(skip_special && is_special(id)); }
  const TokenPiece& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  const DecoderSpec& decoder() const { return decoder_; }

 private:
  bool valid(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < pieces_.size(); }
  Status encode_text(const std::string& text, bool at_input_start, std::vector<int32_t>* ids) const;

  BpeModel model_;
  AddedTokenMatcher raw_tokens_;         // matched on the input as given
  AddedTokenMatcher normalized_tokens_;  // matched after normalization
  std::vector<NormalizerStep> normalizer_;
  std::vector<PreTokenizerStep> pre_tokenizer_;
  DecoderSpec decoder_;
  std::vector<TokenPiece> pieces_;  // by id
  std::vector<bool> present_, special_;
  std::vector<int32_t> prefix_, suffix_;
  int32_t bos_id_, eos_id_;
};

}  // namespace qmodel::runtime::tok
