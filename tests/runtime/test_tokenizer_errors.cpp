// Tokenizer built from small tokenizer.json texts made in code: behaviour of each pipeline part,
// and a table of malformed files (one row per rule), each expecting its StatusCode and the JSON
// path in the message. Needs no assets.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmodel/runtime/tokenizer.h"

namespace qmodel::runtime {
namespace {

using nlohmann::json;

// Byte-level BPE: "abc" merges a+b then ab+c; "Ġa" exists; <|end|> is special.
json byte_level_json() {
  return json::parse(R"({
    "added_tokens": [{"id": 7, "content": "<|end|>", "special": true, "lstrip": false, "rstrip": false,
                      "single_word": false, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": {"type": "ByteLevel"},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5, "Ġa": 6, "<|end|>": 7, "bc": 8},
              "merges": [["a", "b"], ["ab", "c"], ["Ġ", "a"], ["b", "c"]]}
  })");
}

// SentencePiece-style: Prepend/Replace normalizer, byte fallback, <s> template.
json spm_json() {
  json j = json::parse(R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "h": 4, "i": 5, "▁h": 6, "▁hi": 7},
              "merges": ["▁ h", "▁h i"]}
  })");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    j["model"]["vocab"][name] = 8 + b;
  }
  return j;
}

std::unique_ptr<Tokenizer> make(const json& j, const std::string& config = "") {
  auto t = Tokenizer::from_json(j.dump(), config, "test.json");
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<int32_t> enc(const Tokenizer& t, const std::string& s, bool special = false) {
  auto r = t.encode(s, special);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : std::vector<int32_t>{};
}

TEST(TokenizerJson, ByteLevelMergesByRank) {
  auto t = make(byte_level_json());
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "abc"), (std::vector<int32_t>{4}));     // (a b) first, then (ab c); never b c
  EXPECT_EQ(enc(*t, "abc a"), (std::vector<int32_t>{4, 6}));
  EXPECT_EQ(enc(*t, "a<|end|>bc"), (std::vector<int32_t>{0, 7, 8}));
  EXPECT_EQ(t->decode({4, 6, 7}), "abc a");
  EXPECT_EQ(t->decode({4, 6, 7}, false), "abc a<|end|>");
  EXPECT_EQ(t->token_bytes(5), " ");
}

TEST(TokenizerJson, LegacyStringMergesEqualListMerges) {
  json j = byte_level_json();
  j["model"]["merges"] = {"a b", "ab c", "Ġ a", "b c"};
  auto legacy = make(j);
  auto lists = make(byte_level_json());
  ASSERT_TRUE(legacy && lists);
  EXPECT_EQ(enc(*legacy, "abc abc"), (std::vector<int32_t>{4, 5, 4}));  // (a b) outranks (Ġ a)
  for (const char* s : {"abc abc", " a bc", "cab ab"}) EXPECT_EQ(enc(*legacy, s), enc(*lists, s)) << s;
}

TEST(TokenizerJson, IgnoreMergesTakesWholeWordsFromVocab) {
  json j = byte_level_json();
  j["model"]["vocab"]["bca"] = 9;  // reachable only as a whole word: no merge builds it
  auto plain = make(j);
  j["model"]["ignore_merges"] = true;
  auto ignoring = make(j);
  ASSERT_TRUE(plain && ignoring);
  EXPECT_EQ(enc(*plain, "bca"), (std::vector<int32_t>{8, 0}));
  EXPECT_EQ(enc(*ignoring, "bca"), (std::vector<int32_t>{9}));
}

TEST(TokenizerJson, AddedTokenStripFlags) {
  json j = byte_level_json();
  j["added_tokens"][0]["lstrip"] = true;
  j["added_tokens"][0]["rstrip"] = true;
  auto t = make(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "a  <|end|>  a"), (std::vector<int32_t>{0, 7, 0}));
}

TEST(TokenizerJson, SpmByteFallbackAndTemplate) {
  auto t = make(spm_json());
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "hi", true), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(enc(*t, "hi hi"), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(enc(*t, "hé"), (std::vector<int32_t>{6, 8 + 0xC3, 8 + 0xA9}));  // é via <0xC3><0xA9>
  EXPECT_EQ(t->decode({1, 6, 8 + 0xC3, 8 + 0xA9}), "hé");
  EXPECT_EQ(t->decode({6, 8 + 0xC3}), "h\xEF\xBF\xBD");  // a broken run: one U+FFFD per byte
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
}

TEST(TokenizerJson, ConfigOverridesBosAndEos) {
  auto t = make(spm_json(), R"({"add_bos_token": false, "add_eos_token": true,
                                "bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>"})");
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "hi", true), (std::vector<int32_t>{7, 2}));
  auto none = make(byte_level_json(), R"({"bos_token": null, "eos_token": "<|end|>"})");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->bos_id(), -1);
  EXPECT_EQ(none->eos_id(), 7);
}

TEST(TokenizerJson, MetaspacePreTokenizer) {
  json j = spm_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = json::parse(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false})");
  auto t = make(j);
  ASSERT_TRUE(t);
  EXPECT_EQ(enc(*t, "hi hi"), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(enc(*t, " hi"), (std::vector<int32_t>{7}));  // already starts with ▁: nothing prepended
}

// ---- malformed files ----------------------------------------------------------------------------
struct BadCase {
  const char* name;
  std::function<void(json&)> corrupt;  // applied to byte_level_json()
  StatusCode code;
  const char* where;  // must appear in the message
  std::string raw;    // when set, used as the file text instead
  std::string config;
};

TEST(TokenizerJson, RejectsMalformedFiles) {
  const std::vector<BadCase> cases = {
      {"not json", nullptr, StatusCode::kCorruptFile, "not valid JSON", "{\"model\": ", ""},
      {"top level array", nullptr, StatusCode::kCorruptFile, "top level", "[1, 2]", ""},
      {"missing model", [](json& j) { j.erase("model"); }, StatusCode::kCorruptFile, "model", "", ""},
      {"model not object", [](json& j) { j["model"] = 3; }, StatusCode::kCorruptFile, "model", "", ""},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, StatusCode::kUnsupported, "model.type", "", ""},
      {"unigram", [](json& j) { j["model"]["type"] = "Unigram"; }, StatusCode::kUnsupported, "model.type", "", ""},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, StatusCode::kCorruptFile, "model.vocab", "", ""},
      {"vocab id string", [](json& j) { j["model"]["vocab"]["a"] = "0"; }, StatusCode::kCorruptFile, "model.vocab[\"a\"]", "", ""},
      {"vocab id negative", [](json& j) { j["model"]["vocab"]["a"] = -1; }, StatusCode::kCorruptFile, "model.vocab[\"a\"]", "", ""},
      {"vocab id huge", [](json& j) { j["model"]["vocab"]["a"] = 1LL << 40; }, StatusCode::kCorruptFile, "model.vocab[\"a\"]", "", ""},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["zz"] = 3; }, StatusCode::kCorruptFile, "also used by", "", ""},
      {"merge unknown token", [](json& j) { j["model"]["merges"][0] = {"a", "q"}; }, StatusCode::kCorruptFile, "model.merges[0]", "", ""},
      {"merge result unknown", [](json& j) { j["model"]["merges"][0] = {"b", "a"}; }, StatusCode::kCorruptFile, "model.merges[0]", "", ""},
      {"merge bad shape", [](json& j) { j["model"]["merges"][1] = {"a"}; }, StatusCode::kCorruptFile, "model.merges[1]", "", ""},
      {"legacy merge no space", [](json& j) { j["model"]["merges"][2] = "ab"; }, StatusCode::kCorruptFile, "model.merges[2]", "", ""},
      {"unk not in vocab", [](json& j) { j["model"]["unk_token"] = "<unk>"; }, StatusCode::kCorruptFile, "model.unk_token", "", ""},
      {"subword prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, StatusCode::kUnsupported, "continuing_subword_prefix", "", ""},
      {"bad regex", [](json& j) { j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(\\p{L"}, "behavior": "Isolated", "invert": false}]})"); },
       StatusCode::kCorruptFile, "pre_tokenizer.pretokenizers[0].pattern", "", ""},
      {"bad split behavior", [](json& j) { j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"})"); },
       StatusCode::kCorruptFile, "pre_tokenizer.behavior", "", ""},
      {"unknown pre-tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, StatusCode::kUnsupported, "pre_tokenizer.type", "", ""},
      {"pre-tokenizer no type", [](json& j) { j["pre_tokenizer"] = json::object(); }, StatusCode::kCorruptFile, "pre_tokenizer.type", "", ""},
      {"unknown normalizer", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, StatusCode::kUnsupported, "normalizer.type", "", ""},
      {"unknown decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, StatusCode::kUnsupported, "decoder.type", "", ""},
      {"unknown post-processor", [](json& j) { j["post_processor"] = {{"type", "Mystery"}}; }, StatusCode::kUnsupported, "post_processor.type", "", ""},
      {"added id duplicate", [](json& j) { j["added_tokens"].push_back(j["added_tokens"][0]); }, StatusCode::kCorruptFile, "added_tokens[1].id", "", ""},
      {"added id missing", [](json& j) { j["added_tokens"][0].erase("id"); }, StatusCode::kCorruptFile, "added_tokens[0].id", "", ""},
      {"added content empty", [](json& j) { j["added_tokens"][0]["content"] = ""; }, StatusCode::kCorruptFile, "added_tokens[0].content", "", ""},
      {"added flag not bool", [](json& j) { j["added_tokens"][0]["special"] = "yes"; }, StatusCode::kCorruptFile, "added_tokens[0].special", "", ""},
      {"template id out of range", [](json& j) {
         j["post_processor"] = json::parse(R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                                                 "special_tokens": {"<s>": {"id": "<s>", "ids": [500], "tokens": ["<s>"]}}})"); },
       StatusCode::kCorruptFile, "post_processor", "", ""},
      {"template unknown special", [](json& j) {
         j["post_processor"] = json::parse(R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {}})"); },
       StatusCode::kCorruptFile, "post_processor.special_tokens", "", ""},
      {"config not json", nullptr, StatusCode::kCorruptFile, "tokenizer_config.json", "", "{oops"},
      {"config bos unknown", nullptr, StatusCode::kCorruptFile, "add_bos_token", "", R"({"add_bos_token": true, "bos_token": "<s>"})"},
      {"config bad bos type", nullptr, StatusCode::kCorruptFile, "bos_token", "", R"({"bos_token": 5})"},
  };
  for (const BadCase& c : cases) {
    json j = byte_level_json();
    if (c.corrupt) c.corrupt(j);
    const std::string text = c.raw.empty() ? j.dump() : c.raw;
    auto t = Tokenizer::from_json(text, c.config, "bad/tokenizer.json");
    ASSERT_FALSE(t.ok()) << c.name;
    EXPECT_EQ(t.status().code(), c.code) << c.name << ": " << t.status().to_string();
    EXPECT_NE(t.status().message().find(c.where), std::string::npos) << c.name << ": " << t.status().to_string();
    EXPECT_NE(t.status().message().find("bad/tokenizer.json"), std::string::npos) << c.name;
  }
}

}  // namespace
}  // namespace qmodel::runtime
