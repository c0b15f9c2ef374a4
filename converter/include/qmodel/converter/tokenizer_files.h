// Tokenizers shipped without tokenizer.json: the converter synthesizes the Hugging Face
// `tokenizers` JSON form (what the runtime's Tokenizer::from_json reads) from
//   - vocab.json + merges.txt (GPT-2 byte-level BPE: GPT-2, OPT, RoBERTa, BART checkpoints) with the
//     special/added tokens of tokenizer_config.json, special_tokens_map.json and added_tokens.json;
//   - tokenizer.model (SentencePiece BPE, as older Llama conversions ship) -> the Llama-2 form.
// Every reader treats its input as untrusted: errors are kCorruptFile naming the file and the byte
// offset (or line), sizes are capped, nothing crashes. Forms that are valid but not implemented
// (another tokenizer class, a SentencePiece unigram model) are kUnsupported.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qmodel/format/status.h"

namespace qmodel::converter {

// vocab.json / merges.txt / tokenizer.model larger than this are rejected (GPT-2's are 1 MB and
// 0.5 MB; the largest real BPE side files are ~10 MB).
inline constexpr uint64_t kMaxTokenizerFileBytes = 64ull << 20;

// The texts of a byte-level BPE folder; an empty string means the file is absent.
struct BpeTokenizerFiles {
  std::string dir;  // prefix for file names in messages ("" -> bare names)
  std::string vocab_json, merges_txt;
  std::string tokenizer_config_json, special_tokens_map_json, added_tokens_json;
  std::string config_json;  // model_type picks the tokenizer class when tokenizer_config has none
};

// vocab.json + merges.txt (+ configs) -> tokenizer.json text. GPT2Tokenizer-like classes get a
// TemplateProcessing post-processor adding BOS/EOS as add_bos_token/add_eos_token say;
// Roberta/Bart-like classes get RobertaProcessing (<s> A </s>). Special tokens missing from the
// vocabulary get new ids after it, in transformers' order (bos, eos, unk, sep, pad, cls, mask,
// additional_special_tokens).
Result<std::string> bpe_files_to_tokenizer_json(const BpeTokenizerFiles& files);

// tokenizer.model bytes (a SentencePiece ModelProto, BPE type, identity normalization) ->
// tokenizer.json text in the Llama-2 form (byte fallback, Prepend/Replace normalizer, BOS template
// as tokenizer_config's add_bos_token/add_eos_token say; Llama defaults without one).
Result<std::string> sentencepiece_to_tokenizer_json(std::string_view model_proto, const std::string& file_name,
                                                    const std::string& tokenizer_config_json);

struct SynthesizedTokenizer {
  std::string json;                   // empty when nothing could be synthesized
  std::string from;                   // "vocab.json + merges.txt", "tokenizer.model", or ""
  std::vector<std::string> warnings;  // what the conversion summary should say
};

// For a folder without tokenizer.json: reads the side files from `dir` and synthesizes one.
// Nothing usable (no files, an unsupported class or SentencePiece type) -> empty json and a warning
// saying the model runs from token ids; corrupt files -> an error.
Result<SynthesizedTokenizer> synthesize_tokenizer_json(const std::string& dir, const std::string& config_json);

}  // namespace qmodel::converter
