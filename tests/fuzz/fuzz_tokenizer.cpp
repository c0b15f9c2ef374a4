// Fuzz target: the input bytes are a tokenizer.json; when it loads, a short mixed string (ASCII,
// multi-byte, an added-token-looking piece) is encoded and decoded, and decode must accept any ids.
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"
#include "qmodel/runtime/tokenizer.h"

std::vector<std::string> qmodel_fuzz_seeds() {
  // Byte-level BPE (GPT-2 style) with a Split regex, and SentencePiece-style BPE with byte fallback.
  return {
      R"({"added_tokens":[{"id":5,"content":"<|end|>","special":true,"normalized":false}],
          "normalizer":{"type":"NFC"},
          "pre_tokenizer":{"type":"Sequence","pretokenizers":[
            {"type":"Split","pattern":{"Regex":"\\p{N}{1,3}| ?\\p{L}+|\\s+"},"behavior":"Isolated","invert":false},
            {"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]},
          "post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|end|>"}},{"Sequence":{"id":"A"}}],
            "special_tokens":{"<|end|>":{"id":"<|end|>","ids":[5],"tokens":["<|end|>"]}}},
          "decoder":{"type":"ByteLevel"},
          "model":{"type":"BPE","ignore_merges":true,"vocab":{"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4,"<|end|>":5},
                   "merges":[["a","b"],"Ġ ab"]}})",
      R"({"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true,"lstrip":true}],
          "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},
            {"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
          "pre_tokenizer":null,
          "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},
            {"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
          "model":{"type":"BPE","unk_token":"<unk>","byte_fallback":true,"fuse_unk":true,
                   "vocab":{"<unk>":0,"<s>":1,"▁":2,"h":3,"▁h":4,"<0xC3>":5,"<0xA9>":6},"merges":["▁ h"]}})",
  };
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto tokenizer = qmodel::runtime::Tokenizer::from_json(text, "", "fuzz.json");
  if (!tokenizer.ok()) return 0;
  const qmodel::runtime::Tokenizer& t = **tokenizer;
  auto ids = t.encode("ab h\xC3\xA9 12345 <|end|><s> e\xCC\x81", true);
  if (ids.ok()) {
    std::vector<int32_t> all = *ids;
    all.push_back(-1);
    all.push_back(static_cast<int32_t>(t.vocab_size()));
    (void)t.decode(all, false);
    qmodel::runtime::StreamDecoder stream(t);
    for (int32_t id : all) (void)stream.push(id);
    (void)stream.flush();
  }
  return 0;
}
