// Tokenizer built from a Hugging Face tokenizer.json (as embedded in a .qmodel): byte-level BPE
// (GPT-2, Llama 3, Qwen2; pre-tokenizer regexes through PCRE2) and SentencePiece-style BPE with
// byte fallback (Llama 2, TinyLlama, Mistral); added/special tokens; UTF-8-safe streaming decode.
// Loading untrusted JSON never crashes: errors name the file and what is wrong.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qmodel/format/status.h"

namespace qmodel::runtime {

class Tokenizer {
 public:
  // `tokenizer_json` is the text of tokenizer.json; `tokenizer_config_json` (may be empty) is the
  // text of tokenizer_config.json, which decides add_bos_token / add_eos_token and names
  // bos/eos tokens. `source_name` is used in error messages.
  static Result<std::unique_ptr<Tokenizer>> from_json(const std::string& tokenizer_json,
                                                      const std::string& tokenizer_config_json,
                                                      const std::string& source_name);
  virtual ~Tokenizer() = default;

  // Text -> ids. add_special: prepend BOS / append EOS as the tokenizer's post-processor and
  // config say (what Hugging Face encode(add_special_tokens=True) does).
  virtual Result<std::vector<int32_t>> encode(const std::string& text, bool add_special) const = 0;
  // Ids -> text (special tokens skipped when skip_special). Invalid UTF-8 becomes U+FFFD.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  virtual size_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;  // -1 when none
  virtual bool is_special(int32_t id) const = 0;
  // The token's raw bytes as decode would produce them for this id alone (byte-fallback and
  // byte-level mapping undone); empty for unknown ids.
  virtual std::string token_bytes(int32_t id) const = 0;
};

// Incremental decoder for streaming generation: push ids one at a time, get back only complete
// UTF-8 text (a multi-byte character split over several tokens is held until it is whole), and
// the same text overall as Tokenizer::decode of all ids (SentencePiece leading-space rule included).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  std::string push(int32_t id);
  std::string flush();  // whatever is left (incomplete UTF-8 as U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t emitted_bytes_ = 0;
  // Incremental state for tokenizers made by from_json (O(1) per token); other Tokenizer
  // implementations go through ids_ / emitted_bytes_ and re-decode. Move-only as a result.
  struct State;
  std::unique_ptr<State, void (*)(State*)> state_{nullptr, nullptr};
};

}  // namespace qmodel::runtime
