// Fuzz target: tokenizer.json synthesis from untrusted side files (converter/src/tokenizer_files.cpp).
// Input: a mode byte, then either (even) vocab.json, merges.txt, tokenizer_config.json,
// added_tokens.json and special_tokens_map.json separated by 0x1E bytes, or (odd) the bytes of a
// SentencePiece tokenizer.model. Whatever the converter accepts must load in the runtime tokenizer
// (the two disagreeing is a bug: abort), and then encode and decode a short mixed string.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/converter/tokenizer_files.h"
#include "qmodel/runtime/tokenizer.h"

namespace {

constexpr char kSep = '\x1e';

std::string varint(uint64_t v) {
  std::string s;
  do {
    s.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
    v >>= 7;
  } while (v);
  return s;
}

std::string len_field(uint32_t f, const std::string& payload) { return varint((uint64_t{f} << 3) | 2) + varint(payload.size()) + payload; }

std::string spm_piece(const std::string& p, float score, int type) {
  uint32_t bits;
  std::memcpy(&bits, &score, 4);
  std::string m = len_field(1, p) + varint((2 << 3) | 5);
  for (int i = 0; i < 4; ++i) m.push_back(static_cast<char>(bits >> (8 * i)));
  m += varint(3 << 3) + varint(static_cast<uint64_t>(type));
  return len_field(1, m);
}

}  // namespace

std::vector<std::string> qmodel_fuzz_seeds() {
  const std::string gpt2_vocab = R"({"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4,"<|endoftext|>":5,"c":6})";
  const std::string gpt2_merges = "#version: 0.2\na b\nĠ ab\n";
  std::string spm = spm_piece("<unk>", 0, 2) + spm_piece("<s>", 0, 3) + spm_piece("</s>", 0, 3) + spm_piece("\xE2\x96\x81", -1, 1) +
                    spm_piece("h", -2, 1) + spm_piece("\xE2\x96\x81h", -3, 1) + spm_piece("<0xC3>", 0, 6) + spm_piece("<0xA9>", 0, 6);
  spm += len_field(2, varint(3 << 3) + varint(2) + varint(35 << 3) + varint(1));
  spm += len_field(3, len_field(1, "identity") + varint(3 << 3) + varint(1) + varint(4 << 3) + varint(0));
  return {
      // OPT style: BOS </s> added before every sequence, </s> and <pad> new ids after the vocabulary.
      std::string("\x00", 1) + gpt2_vocab + kSep + gpt2_merges + kSep +
          R"({"bos_token":{"content":"</s>","normalized":true},"eos_token":"</s>","pad_token":"<pad>","add_bos_token":true,
              "add_prefix_space":false,"added_tokens_decoder":{"5":{"content":"<|endoftext|>","special":true}}})" +
          kSep + R"({"<x>":9})" + kSep + R"({"unk_token":"</s>","additional_special_tokens":["<y>"]})",
      // RoBERTa style: <s> A </s>, <mask> with lstrip.
      std::string("\x02", 1) + gpt2_vocab + kSep + gpt2_merges + kSep +
          R"({"tokenizer_class":"RobertaTokenizerFast","add_prefix_space":true,"mask_token":"<mask>"})" + kSep + kSep,
      std::string("\x01", 1) + spm,
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  qmodel::Result<std::string> json = std::string();
  if (data[0] & 1) {
    json = qmodel::converter::sentencepiece_to_tokenizer_json(input, "tokenizer.model", "");
  } else {
    std::vector<std::string> parts(5);
    size_t part = 0;
    for (char c : input) {
      if (c == kSep && part + 1 < parts.size()) ++part;
      else parts[part].push_back(c);
    }
    qmodel::converter::BpeTokenizerFiles files;
    files.vocab_json = parts[0];
    files.merges_txt = parts[1];
    files.tokenizer_config_json = parts[2];
    files.added_tokens_json = parts[3];
    files.special_tokens_map_json = parts[4];
    json = qmodel::converter::bpe_files_to_tokenizer_json(files);
  }
  if (!json.ok()) {
    if (json.status().message().empty()) std::abort();  // every error says what is wrong
    return 0;
  }
  auto tokenizer = qmodel::runtime::Tokenizer::from_json(*json, "", "synthesized tokenizer.json");
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "synthesized tokenizer.json does not load: %s\n", tokenizer.status().to_string().c_str());
    std::abort();
  }
  const qmodel::runtime::Tokenizer& t = **tokenizer;
  for (bool special : {true, false}) {
    auto ids = t.encode("ab h\xC3\xA9 <mask> </s><pad>x \xF0\x9F\xA4\x96  ", special);
    if (!ids.ok()) continue;
    std::vector<int32_t> all = *ids;
    all.push_back(-1);
    all.push_back(static_cast<int32_t>(t.vocab_size()));
    (void)t.decode(all, false);
  }
  return 0;
}
