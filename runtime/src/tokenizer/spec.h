// Everything tokenizer.json (+ tokenizer_config.json) says, validated: the parse step's output and
// the tokenizer's construction input. Errors name the source and the JSON path ("model.vocab").
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "qmodel/format/status.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pipeline.h"

namespace qmodel::runtime::tok {

// Ids above this are rejected: no real vocabulary comes close (Gemma's is 256k), and it bounds the
// id -> token table a hostile file can make us allocate.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

struct TokenizerSpec {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<BpeModel::Merge> merges;
  BpeOptions bpe;
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  DecoderSpec decoder;
  std::vector<int32_t> prefix, suffix;  // special ids around a single sequence (post-processor)
  int32_t bos_id = -1, eos_id = -1;
  size_t vocab_size = 0;                // max id + 1 over vocab and added tokens
};

// Builds error messages "SOURCE: PATH: WHAT".
struct JsonErrors {
  std::string source;
  Status error(StatusCode code, const std::string& path, const std::string& what) const {
    return Status(code, source + ": " + (path.empty() ? "" : path + ": ") + what);
  }
};

// tokenizer.json -> spec (model, added tokens, pipeline, post-processor).
Result<TokenizerSpec> parse_tokenizer_json(const std::string& text, const JsonErrors& errors);
// Applies tokenizer_config.json (may be empty) to bos/eos and add_bos_token/add_eos_token.
Status apply_tokenizer_config(const std::string& text, const JsonErrors& errors, TokenizerSpec* spec);

// Pipeline parts (load_pipeline.cpp); `j` is the value at `path`, possibly null.
Status parse_normalizer(const nlohmann::json& j, const std::string& path, const JsonErrors& errors,
                        std::vector<NormalizerStep>* out);
Status parse_pre_tokenizer(const nlohmann::json& j, const std::string& path, const JsonErrors& errors,
                           std::vector<PreTokenizerStep>* out);
Status parse_decoder(const nlohmann::json& j, const std::string& path, const JsonErrors& errors, DecoderSpec* out);
Status parse_post_processor(const nlohmann::json& j, const std::string& path, const JsonErrors& errors,
                            TokenizerSpec* spec);

// Typed field access: absent or null gives `fallback`; a wrong type is an error.
Status get_bool(const nlohmann::json& obj, const char* key, const std::string& path, const JsonErrors& errors,
                bool fallback, bool* out);
Status get_string(const nlohmann::json& obj, const char* key, const std::string& path, const JsonErrors& errors,
                  std::string* out, bool required);

}  // namespace qmodel::runtime::tok
