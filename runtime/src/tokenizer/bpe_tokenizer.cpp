// Tokenizer::from_json and the encode/decode pipeline. Encoding follows Hugging Face's order:
// non-normalized added tokens split the raw text, each remaining segment is normalized and split on
// normalized added tokens, then pre-tokenized and BPE-encoded word by word.
#include "tokenizer/bpe_tokenizer.h"

#include <new>

#include "tokenizer/utf8.h"

namespace qmodel::runtime {
namespace tok {
namespace {

std::vector<AddedToken> added_subset(const std::vector<AddedToken>& all, bool normalized) {
  std::vector<AddedToken> out;
  for (const AddedToken& t : all) if (t.normalized == normalized) out.push_back(t);
  return out;
}

}  // namespace

BpeTokenizer::BpeTokenizer(TokenizerSpec spec)
    : model_(std::move(spec.vocab), spec.merges, spec.bpe),
      raw_tokens_(added_subset(spec.added, false)),
      normalized_tokens_(added_subset(spec.added, true)),
      normalizer_(std::move(spec.normalizer)),
      pre_tokenizer_(std::move(spec.pre_tokenizer)),
      decoder_(std::move(spec.decoder)),
      pieces_(spec.vocab_size),
      present_(spec.vocab_size, false),
      special_(spec.vocab_size, false),
      prefix_(std::move(spec.prefix)),
      suffix_(std::move(spec.suffix)),
      bos_id_(spec.bos_id),
      eos_id_(spec.eos_id) {
  for (const auto& [text, id] : model_.vocab()) {
    pieces_[static_cast<size_t>(id)] = make_token_piece(decoder_, text);
    present_[static_cast<size_t>(id)] = true;
  }
  for (const AddedToken& t : spec.added) {  // an added token's content wins over a vocab entry
    pieces_[static_cast<size_t>(t.id)] = make_token_piece(decoder_, t.content);
    present_[static_cast<size_t>(t.id)] = true;
    special_[static_cast<size_t>(t.id)] = t.special;
  }
}

Status BpeTokenizer::encode_text(const std::string& text, bool at_input_start, std::vector<int32_t>* ids) const {
  std::string normalized = text;
  QMODEL_RETURN_IF_ERROR(normalize(normalizer_, &normalized));
  for (const Segment& seg : normalized_tokens_.split(normalized)) {
    if (seg.token_id >= 0) {
      ids->push_back(seg.token_id);
      continue;
    }
    std::vector<PreToken> pieces{{normalized.substr(seg.begin, seg.end - seg.begin), at_input_start && seg.begin == 0}};
    QMODEL_RETURN_IF_ERROR(pre_tokenize(pre_tokenizer_, &pieces));
    for (const PreToken& p : pieces) model_.encode_word(p.text, ids);
  }
  return Status::ok_status();
}

Result<std::vector<int32_t>> BpeTokenizer::encode(const std::string& text, bool add_special) const {
  const size_t bad = utf8_first_invalid(text);
  if (bad != std::string::npos) {
    return Status(StatusCode::kInvalidArgument, "text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  try {
    std::vector<int32_t> ids;
    if (add_special) ids = prefix_;
    for (const Segment& seg : raw_tokens_.split(text)) {
      if (seg.token_id >= 0) ids.push_back(seg.token_id);
      else QMODEL_RETURN_IF_ERROR(encode_text(text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, &ids));
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory while encoding " + std::to_string(text.size()) + " bytes");
  }
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  DecodeState state(decoder_);
  for (int32_t id : ids) {
    if (decodes(id, skip_special)) state.push(piece(id));  // unknown ids are dropped, as in HF
  }
  return state.take(true);
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  if (!valid(id) || !present_[static_cast<size_t>(id)]) return std::string();
  const TokenPiece& p = piece(id);
  return p.fallback_byte >= 0 ? std::string(1, static_cast<char>(p.fallback_byte)) : p.bytes;
}

}  // namespace tok

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(const std::string& tokenizer_json,
                                                        const std::string& tokenizer_config_json,
                                                        const std::string& source_name) {
  try {
    const tok::JsonErrors errors{source_name};
    QMODEL_ASSIGN_OR_RETURN(tok::TokenizerSpec spec, tok::parse_tokenizer_json(tokenizer_json, errors));
    QMODEL_RETURN_IF_ERROR(tok::apply_tokenizer_config(tokenizer_config_json, tok::JsonErrors{source_name + " [tokenizer_config.json]"}, &spec));
    return std::unique_ptr<Tokenizer>(new tok::BpeTokenizer(std::move(spec)));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, source_name + ": out of memory while loading the tokenizer");
  } catch (const std::exception& e) {  // nlohmann type errors the checks above missed: still bad data
    return Status(StatusCode::kCorruptFile, source_name + ": " + e.what());
  }
}

}  // namespace qmodel::runtime
