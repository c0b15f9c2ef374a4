// The text-side stages of a Hugging Face tokenizer, as parsed from tokenizer.json: normalizer steps,
// pre-tokenizer steps and the decoder. Parsing lives in load_pipeline.cpp, application in
// normalizer.cpp / pre_tokenizer.cpp / decoder.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "tokenizer/regex.h"

namespace qmodel::runtime::tok {

// ---- normalizer -------------------------------------------------------------------------------
struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplace };
  Kind kind = Kind::kNfc;
  std::string text;                     // kPrepend: what to prepend; kReplace: replacement
  std::shared_ptr<const Regex> pattern;  // kReplace: what to replace
};

// Applies the steps in order (each segment between added tokens is normalized on its own).
Status normalize(const std::vector<NormalizerStep>& steps, std::string* text);

// ---- pre-tokenizer ----------------------------------------------------------------------------
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> pattern;  // kSplit; kByteLevel with use_regex (GPT-2 regex)
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // kByteLevel
  std::string replacement;        // kMetaspace ("▁")
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = false;             // kMetaspace: split before each replacement
};

struct PreToken {
  std::string text;
  bool at_input_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

// Refines `pieces` through every step; ByteLevel maps bytes to its printable code points in place.
Status pre_tokenize(const std::vector<PreTokenizerStep>& steps, std::vector<PreToken>* pieces);

// ---- decoder ----------------------------------------------------------------------------------
struct DecoderSpec {
  struct TokenStep {
    enum class Kind { kByteLevel, kReplace };
    Kind kind = Kind::kReplace;
    std::string from, to;  // kReplace
  };
  std::vector<TokenStep> token_steps;  // applied to each token's text, in order
  bool byte_fallback = false;          // "<0xXX>" tokens are raw bytes, runs joined as UTF-8
  std::string strip_content;           // one character stripped from the start of the output...
  size_t strip_start = 0;              // ...at most this many times (Strip after Fuse, Metaspace)
};

// One token's contribution to decoded text, precomputed per id.
struct TokenPiece {
  std::string bytes;   // the token text after the per-token steps (byte-level mapping undone)
  int fallback_byte = -1;  // 0..255 when this is a byte-fallback token "<0xXX>"
};
TokenPiece make_token_piece(const DecoderSpec& spec, const std::string& token);

// Shared by Tokenizer::decode and StreamDecoder so that both produce the same text.
class DecodeState {
 public:
  explicit DecodeState(const DecoderSpec& spec) : spec_(spec), n_strip_left_(spec.strip_start) {}
  void push(const TokenPiece& piece);
  // Returns the text that can no longer change (all of it when `final`).
  std::string take(bool final);

 private:
  void flush_byte_run();
  const DecoderSpec& spec_;
  std::string pending_;   // bytes not yet returned
  std::string byte_run_;  // consecutive byte-fallback bytes not yet joined
  size_t n_strip_left_;
};

}  // namespace qmodel::runtime::tok
