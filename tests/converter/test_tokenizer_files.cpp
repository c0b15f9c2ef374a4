// tokenizer.json synthesis for folders without one (converter/src/tokenizer_files.cpp):
//  - vocab.json + merges.txt + configs (OPT, GPT-2, RoBERTa styles) -> runtime Tokenizer ids equal
//    transformers' AutoTokenizer ids (tests/goldens/tokenizers/*/vectors.json, made by
//    tools/gen_tokenizer_vectors.py), with and without special tokens;
//  - a tiny OPT model folder converted end to end: the .qmodel's embedded tokenizer encodes the same;
//  - SentencePiece tokenizer.model -> the same vocab, merges and ids as TinyLlama's tokenizer.json;
//  - a table of corrupted inputs: each a clear error naming the file and where, never a crash.
// GPT-2's vocab.json / merges.txt and the SentencePiece models come from ../shared/assets at run
// time (the tests skip without them); the small configs and vectors are committed.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "qmodel/converter/convert.h"
#include "qmodel/converter/tokenizer_files.h"
#include "qmodel/format/reader.h"
#include "qmodel/runtime/tokenizer.h"
#include "support/temp_dir.h"

namespace qmodel {
namespace {

namespace fs = std::filesystem;
using converter::BpeTokenizerFiles;
using nlohmann::json;
using runtime::Tokenizer;
using testing::TempDir;

const std::string kGoldens = std::string(QMODEL_SOURCE_DIR) + "/tests/goldens";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return "[" + s + "]";
}

// A committed folder's configs with GPT-2's vocab.json and merges.txt from the assets.
BpeTokenizerFiles golden_folder(const std::string& assets, const std::string& name) {
  const std::string dir = kGoldens + "/tokenizers/" + name;
  BpeTokenizerFiles f;
  f.dir = name;
  f.vocab_json = read_file(assets + "/tokenizers/gpt2/vocab.json");
  f.merges_txt = read_file(assets + "/tokenizers/gpt2/merges.txt");
  f.tokenizer_config_json = read_file(dir + "/tokenizer_config.json");
  f.special_tokens_map_json = read_file(dir + "/special_tokens_map.json");
  f.added_tokens_json = read_file(dir + "/added_tokens.json");
  f.config_json = read_file(dir + "/config.json");
  return f;
}

// Encodes every case of <name>/vectors.json with `t`; returns the number of mismatches.
int compare_with_vectors(const Tokenizer& t, const std::string& name) {
  const json vectors = json::parse(read_file(kGoldens + "/tokenizers/" + name + "/vectors.json"));
  int bad = 0, n = 0;
  for (const json& c : vectors["cases"]) {
    const std::string text = c["text"].get<std::string>();
    for (bool special : {true, false}) {
      const auto want = c[special ? "ids" : "ids_no_special"].get<std::vector<int32_t>>();
      auto got = t.encode(text, special);
      ++n;
      if (!got.ok()) {
        ADD_FAILURE() << name << ": " << json(text).dump() << ": " << got.status().to_string();
        ++bad;
      } else if (*got != want) {
        ADD_FAILURE() << name << ": " << json(text).dump() << " add_special=" << special << "\n  got  " << ids_str(*got)
                      << "\n  want " << ids_str(want);
        ++bad;
      }
    }
  }
  EXPECT_GT(n, 60);
  return bad;
}

class BpeVectors : public ::testing::TestWithParam<const char*> {};

TEST_P(BpeVectors, SynthesizedTokenizerMatchesAutoTokenizer) {
  QMODEL_REQUIRE_ASSETS(assets);
  const std::string name = GetParam();
  const BpeTokenizerFiles files = golden_folder(assets, name);
  auto text = converter::bpe_files_to_tokenizer_json(files);
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  auto t = Tokenizer::from_json(*text, files.tokenizer_config_json, name + ": synthesized tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(compare_with_vectors(**t, name), 0);
  // The same without tokenizer_config.json at load time: the post-processor alone adds BOS/EOS.
  auto bare = Tokenizer::from_json(*text, "", name);
  ASSERT_TRUE(bare.ok()) << bare.status().to_string();
  EXPECT_EQ(compare_with_vectors(**bare, name), 0);
  // Decoding gives the text back (byte-level BPE is lossless) for plain text.
  auto ids = (*t)->encode("naïve café 🤖  x\n", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*t)->decode(*ids), "naïve café 🤖  x\n");
}

INSTANTIATE_TEST_SUITE_P(TokenizerFiles, BpeVectors, ::testing::Values("opt", "gpt2", "roberta"));

TEST(TokenizerFiles, SynthesizedJsonIsTheTokenizersForm) {
  QMODEL_REQUIRE_ASSETS(assets);
  auto text = converter::bpe_files_to_tokenizer_json(golden_folder(assets, "opt"));
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  const json j = json::parse(*text);
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), 50257u);
  EXPECT_EQ(j["model"]["merges"].size(), 50000u);
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(j["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(j["post_processor"]["type"], "TemplateProcessing");
  EXPECT_EQ(j["post_processor"]["special_tokens"]["</s>"]["ids"], json::array({50257}));
  ASSERT_EQ(j["added_tokens"].size(), 2u);
  EXPECT_EQ(j["added_tokens"][0]["content"], "</s>");
  EXPECT_EQ(j["added_tokens"][0]["id"], 50257);
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
  EXPECT_EQ(j["added_tokens"][1]["content"], "<pad>");
  EXPECT_EQ(j["added_tokens"][1]["id"], 50258);
}

TEST(TokenizerFiles, OptFolderConvertsEndToEnd) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir dir;
  const std::string family = kGoldens + "/families/opt_preln";
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(family + "/" + f, dir.file(f));
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(assets + "/tokenizers/gpt2/" + f, dir.file(f));
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
    fs::copy_file(kGoldens + "/tokenizers/opt/" + f, dir.file(f));
  }
  converter::ConvertOptions o;
  o.input = dir.path();
  o.output = dir.file("out.qmodel");
  o.n_threads = 1;
  auto summary = converter::convert(o);
  ASSERT_TRUE(summary.ok()) << summary.status().to_string();
  bool noted = false;
  for (const std::string& w : summary->warnings) noted = noted || w.find("synthesized one from vocab.json + merges.txt") != std::string::npos;
  EXPECT_TRUE(noted);

  auto file = format::ModelFile::open(o.output, {/*verify_checksums=*/true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const format::EmbeddedFile* tok = file.value()->header().find_file("tokenizer.json");
  const format::EmbeddedFile* cfg = file.value()->header().find_file("tokenizer_config.json");
  ASSERT_NE(tok, nullptr);
  ASSERT_NE(cfg, nullptr);
  auto t = Tokenizer::from_json(tok->contents, cfg->contents, "embedded tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)->bos_id(), 50257);
  EXPECT_EQ(compare_with_vectors(**t, "opt"), 0);
}

TEST(TokenizerFiles, FolderWithoutTokenizerFilesStillWarns) {
  TempDir dir;
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->json.empty());
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_NE(s->warnings[0].find("the model will run from token ids only"), std::string::npos);
}

TEST(TokenizerFiles, UnsupportedClassIsAWarningNotAnError) {
  TempDir dir;
  write_file(dir.file("vocab.json"), R"({"a":0,"b":1,"ab":2})");
  write_file(dir.file("merges.txt"), "#version: 0.2\na b\n");
  write_file(dir.file("tokenizer_config.json"), R"({"tokenizer_class":"CLIPTokenizer"})");
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->json.empty());
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_NE(s->warnings[0].find("CLIPTokenizer"), std::string::npos) << s->warnings[0];
  EXPECT_NE(s->warnings[0].find("token ids"), std::string::npos) << s->warnings[0];
}

// ---- SentencePiece -----------------------------------------------------------------------------

std::vector<std::string> spm_texts(const std::string& assets) {
  std::vector<std::string> texts;
  const std::string inp = read_file(assets + "/tokenizers/vectors/ggml-vocab-llama-spm.gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    texts.push_back(inp.substr(pos, hit - pos));
  }
  const json vectors = json::parse(read_file(kGoldens + "/tokenizers/opt/vectors.json"));
  for (const json& c : vectors["cases"]) texts.push_back(c["text"].get<std::string>());
  for (const char* t : {"<s>[INST] hi [/INST]</s>", "  two  spaces ", "\xF0\x9F\xA6\x99 llama \xE2\x96\x81 x"}) texts.push_back(t);
  return texts;
}

TEST(TokenizerFiles, SentencePieceModelMatchesTinyLlamaTokenizerJson) {
  QMODEL_REQUIRE_ASSETS(assets);
  const std::string dir = assets + "/tokenizers/tinyllama";
  const std::string model = read_file(dir + "/tokenizer.model"), config = read_file(dir + "/tokenizer_config.json");
  if (model.empty()) GTEST_SKIP() << dir << "/tokenizer.model not found";
  auto text = converter::sentencepiece_to_tokenizer_json(model, dir + "/tokenizer.model", config);
  ASSERT_TRUE(text.ok()) << text.status().to_string();

  // Same vocabulary, the same merges in the same order, the same added tokens. One known
  // difference: four pieces are U+00A0 runs in tokenizer.model but ASCII spaces in TinyLlama's
  // tokenizer.json (an artifact of its old conversion; those entries are unreachable there since
  // spaces become U+2581 first). The synthesized file keeps the model's pieces.
  const json mine = json::parse(*text), theirs = json::parse(read_file(dir + "/tokenizer.json"));
  auto nbsp_to_space = [](std::string s) {
    for (size_t at; (at = s.find("\xC2\xA0")) != std::string::npos;) s.replace(at, 2, " ");
    return s;
  };
  ASSERT_EQ(mine["model"]["vocab"].size(), theirs["model"]["vocab"].size());
  size_t vocab_diffs = 0, nbsp_pieces = 0;
  for (auto it = mine["model"]["vocab"].begin(); it != mine["model"]["vocab"].end(); ++it) {
    const std::string key = nbsp_to_space(it.key());
    nbsp_pieces += key != it.key();
    if (!theirs["model"]["vocab"].contains(key) || theirs["model"]["vocab"][key] != it.value()) {
      if (vocab_diffs++ < 5) ADD_FAILURE() << "vocab " << json(it.key()).dump() << " -> " << it.value();
    }
  }
  EXPECT_EQ(vocab_diffs, 0u);
  EXPECT_EQ(nbsp_pieces, 4u);
  ASSERT_EQ(mine["model"]["merges"].size(), theirs["model"]["merges"].size());
  size_t merge_diffs = 0;
  for (size_t i = 0; i < mine["model"]["merges"].size(); ++i) {
    const json& m = mine["model"]["merges"][i];
    const std::string joined = nbsp_to_space(m[0].get<std::string>() + " " + m[1].get<std::string>());
    if (joined != theirs["model"]["merges"][i].get<std::string>() && merge_diffs++ < 5) {
      ADD_FAILURE() << "merge " << i << ": " << joined << " vs " << theirs["model"]["merges"][i];
    }
  }
  EXPECT_EQ(merge_diffs, 0u);
  EXPECT_EQ(mine["added_tokens"], theirs["added_tokens"]);
  for (const char* key : {"normalizer", "pre_tokenizer", "decoder"}) EXPECT_EQ(mine[key], theirs[key]) << key;
  EXPECT_EQ(mine["post_processor"]["single"], theirs["post_processor"]["single"]);
  EXPECT_EQ(mine["post_processor"]["special_tokens"], theirs["post_processor"]["special_tokens"]);

  auto a = Tokenizer::from_json(*text, config, "synthesized");
  auto b = Tokenizer::from_json(read_file(dir + "/tokenizer.json"), config, "tinyllama");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  int n = 0;
  for (const std::string& t : spm_texts(assets)) {
    if (t.find("\xC2\xA0") != std::string::npos) continue;  // U+00A0: see above
    for (bool special : {true, false}) {
      auto x = (*a)->encode(t, special), y = (*b)->encode(t, special);
      ASSERT_EQ(x.ok(), y.ok()) << t;
      if (x.ok()) EXPECT_EQ(*x, *y) << json(t).dump();
      ++n;
    }
  }
  EXPECT_GT(n, 80);
}

TEST(TokenizerFiles, SentencePieceOnlyFolderGetsATokenizer) {
  QMODEL_REQUIRE_ASSETS(assets);
  const std::string model = assets + "/tokenizers/llama2-spm/tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << model << " not found";
  TempDir dir;
  fs::copy_file(model, dir.file("tokenizer.model"));
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  ASSERT_FALSE(s->json.empty());
  EXPECT_EQ(s->from, "tokenizer.model");
  auto t = Tokenizer::from_json(s->json, "", "llama2-spm");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)->vocab_size(), 32000u);
  EXPECT_EQ((*t)->bos_id(), 1);
  auto ids = (*t)->encode("Hello world", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 15043, 3186}));  // transformers' LlamaTokenizer
  EXPECT_EQ((*t)->decode(*ids), "Hello world");
}

// A hand-built ModelProto: pieces (piece, score, type), trainer_spec, normalizer_spec.
struct Proto {
  std::string bytes;
  static std::string varint(uint64_t v) {
    std::string s;
    do {
      s.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
      v >>= 7;
    } while (v);
    return s;
  }
  static std::string field(uint32_t f, uint32_t wire) { return varint((uint64_t{f} << 3) | wire); }
  static std::string len_field(uint32_t f, const std::string& payload) { return field(f, 2) + varint(payload.size()) + payload; }
  Proto& piece(const std::string& p, float score, int type = 1) {
    std::string m = len_field(1, p) + field(2, 5);
    uint32_t bits;
    std::memcpy(&bits, &score, 4);
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<char>(bits >> (8 * i)));
    if (type != 1) m += field(3, 0) + varint(static_cast<uint64_t>(type));
    bytes += len_field(1, m);
    return *this;
  }
  Proto& trainer(int model_type, bool byte_fallback) {
    bytes += len_field(2, field(3, 0) + varint(static_cast<uint64_t>(model_type)) + field(35, 0) + varint(byte_fallback));
    return *this;
  }
  Proto& normalizer() {
    bytes += len_field(3, len_field(1, "identity") + field(3, 0) + varint(1) + field(4, 0) + varint(0));
    return *this;
  }
};

Proto tiny_spm() {
  Proto p;
  p.piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3).piece("\xE2\x96\x81", -1).piece("h", -2).piece("i", -3);
  p.piece("\xE2\x96\x81h", -4).piece("\xE2\x96\x81hi", -5);
  return p.trainer(2, false).normalizer();
}

TEST(TokenizerFiles, SentencePieceTinyModel) {
  auto text = converter::sentencepiece_to_tokenizer_json(tiny_spm().bytes, "tokenizer.model", "");
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  const json j = json::parse(*text);
  EXPECT_EQ(j["model"]["merges"], json::parse(R"([["▁","h"],["▁h","i"]])"));
  auto t = Tokenizer::from_json(*text, "", "tiny");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  auto ids = (*t)->encode("hi hi", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 7, 7}));
}

TEST(TokenizerFiles, SentencePieceTruncationsNeverCrash) {
  const std::string good = tiny_spm().bytes;
  for (size_t n = 0; n < good.size(); ++n) {
    auto r = converter::sentencepiece_to_tokenizer_json(std::string_view(good).substr(0, n), "tokenizer.model", "");
    if (!r.ok()) EXPECT_NE(r.status().message().find("tokenizer.model"), std::string::npos) << r.status().message();
  }
}

// ---- corrupted inputs --------------------------------------------------------------------------

struct BadCase {
  const char* name;
  const char* vocab;
  const char* merges;
  const char* tokenizer_config;
  const char* added_tokens;
  StatusCode code;
  std::vector<const char*> message_has;  // all must appear in the message
};

constexpr const char* kVocab = R"({"a":0,"b":1,"ab":2,"c":3})";
constexpr const char* kMerges = "#version: 0.2\na b\n";

class BadBpeFiles : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadBpeFiles, ClearErrorNamingTheFile) {
  const BadCase& c = GetParam();
  BpeTokenizerFiles f;
  f.dir = "folder";
  f.vocab_json = c.vocab ? c.vocab : kVocab;
  f.merges_txt = c.merges ? c.merges : kMerges;
  f.tokenizer_config_json = c.tokenizer_config ? c.tokenizer_config : "";
  f.added_tokens_json = c.added_tokens ? c.added_tokens : "";
  auto r = converter::bpe_files_to_tokenizer_json(f);
  ASSERT_FALSE(r.ok()) << c.name << ": accepted";
  EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
  for (const char* part : c.message_has) {
    EXPECT_NE(r.status().message().find(part), std::string::npos) << c.name << ": \"" << part << "\" not in: " << r.status().message();
  }
}

const BadCase kBadCases[] = {
    {"vocab_not_json", R"({"a":0,)", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"folder/vocab.json", "offset", "not valid JSON"}},
    {"vocab_array", "[1,2]", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"folder/vocab.json", "expected an object"}},
    {"vocab_empty", "{}", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"folder/vocab.json", "empty"}},
    {"vocab_string_id", R"({"a":"0"})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "offset 1", "\"a\"", "expected an id"}},
    {"vocab_negative_id", R"({"a":0,"b":-1})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "\"b\"", "got -1"}},
    {"vocab_huge_id", R"({"a":0,"b":4194304})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "got 4194304"}},
    {"vocab_float_id", R"({"a":0.5})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "got number"}},
    {"vocab_duplicate_id", R"({"a":0,"b":1,"ab":1})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "id 1 is also used by"}},
    {"vocab_duplicate_key", R"({"a":0,"a":1})", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "duplicate key 'a'"}},
    {"vocab_bad_utf8", "{\"\xC3\x28\":0}", nullptr, nullptr, nullptr, StatusCode::kCorruptFile, {"vocab.json", "offset 2", "UTF-8"}},
    {"merges_one_token", nullptr, "#version: 0.2\na b\nab\n", nullptr, nullptr, StatusCode::kCorruptFile, {"folder/merges.txt", "offset 18", "line 3", "two tokens"}},
    {"merges_three_tokens", nullptr, "a b c\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "line 1", "two tokens"}},
    {"merges_double_space", nullptr, "a  b\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "line 1", "two tokens"}},
    {"merges_leading_space", nullptr, " a\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "line 1"}},
    {"merges_unknown_token", nullptr, "a b\nb x\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "line 2", "offset 4", "\"x\" is not in vocab.json"}},
    {"merges_unknown_result", nullptr, "a c\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "line 1", "merged token \"ac\""}},
    {"merges_blank_in_middle", nullptr, "a b\n\na b\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "offset 4", "empty line"}},
    {"merges_bad_utf8", nullptr, "a b\n\xFF b\n", nullptr, nullptr, StatusCode::kCorruptFile, {"merges.txt", "offset 4", "UTF-8"}},
    {"config_not_object", nullptr, nullptr, "[]", nullptr, StatusCode::kCorruptFile, {"folder/tokenizer_config.json", "expected an object"}},
    {"config_bad_json", nullptr, nullptr, "{\"add_bos_token\": tru}", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "not valid JSON"}},
    {"config_flag_type", nullptr, nullptr, R"({"add_bos_token":"yes"})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "add_bos_token", "boolean"}},
    {"config_token_type", nullptr, nullptr, R"({"bos_token":5})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "bos_token", "expected a string"}},
    {"config_token_empty", nullptr, nullptr, R"({"eos_token":{"content":""}})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "eos_token", "empty"}},
    {"config_bos_null_but_added", nullptr, nullptr, R"({"bos_token":null,"add_bos_token":true})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "add_bos_token", "null"}},
    {"config_decoder_key", nullptr, nullptr, R"({"added_tokens_decoder":{"x1":{"content":"<x>"}}})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "not a token id"}},
    {"config_decoder_huge_id", nullptr, nullptr, R"({"added_tokens_decoder":{"99999999":{"content":"<x>"}}})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "beyond"}},
    {"config_decoder_clash", nullptr, nullptr, R"({"added_tokens_decoder":{"1":{"content":"<x>"}}})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "id 1", "\"b\" in vocab.json"}},
    {"config_decoder_not_object", nullptr, nullptr, R"({"added_tokens_decoder":[]})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "added_tokens_decoder"}},
    {"config_additional_not_array", nullptr, nullptr, R"({"additional_special_tokens":"x"})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "additional_special_tokens"}},
    {"config_class_type", nullptr, nullptr, R"({"tokenizer_class":3})", nullptr, StatusCode::kCorruptFile, {"tokenizer_config.json", "tokenizer_class"}},
    {"config_unknown_class", nullptr, nullptr, R"({"tokenizer_class":"CLIPTokenizer"})", nullptr, StatusCode::kUnsupported, {"CLIPTokenizer"}},
    {"added_id_type", nullptr, nullptr, nullptr, R"({"<x>":"4"})", StatusCode::kCorruptFile, {"folder/added_tokens.json", "\"<x>\"", "expected an id"}},
    {"added_id_beyond_cap", nullptr, nullptr, nullptr, R"({"<x>":4194304})", StatusCode::kCorruptFile, {"added_tokens.json", "expected an id"}},
    {"added_id_taken_by_vocab", nullptr, nullptr, nullptr, R"({"<x>":2})", StatusCode::kCorruptFile, {"added_tokens.json", "id 2", "\"ab\" in vocab.json"}},
    {"added_vocab_token_other_id", nullptr, nullptr, nullptr, R"({"a":7})", StatusCode::kCorruptFile, {"added_tokens.json", "\"a\" has id 7 but id 0"}},
    {"added_duplicate_ids", nullptr, nullptr, nullptr, R"({"<x>":9,"<y>":9})", StatusCode::kCorruptFile, {"added_tokens.json", "id 9 is also used by"}},
    {"added_not_object", nullptr, nullptr, nullptr, "[]", StatusCode::kCorruptFile, {"added_tokens.json", "expected an object"}},
};

INSTANTIATE_TEST_SUITE_P(TokenizerFiles, BadBpeFiles, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

struct BadSpm {
  const char* name;
  std::string bytes;
  StatusCode code;
  std::vector<const char*> message_has;
};

std::vector<BadSpm> bad_spm_cases() {
  const std::string good = tiny_spm().bytes;
  std::string long_len = Proto::field(1, 2) + Proto::varint(1000) + "abc";
  std::string long_varint = Proto::field(7, 0) + std::string(11, '\xFF');  // an unknown field: skipped
  std::string group = Proto::field(1, 3);
  std::string zero_field = std::string(1, '\x02') + "\x00";
  std::string dup = Proto().piece("a", 0).piece("a", -1).trainer(2, false).normalizer().bytes;
  std::string bad_type = Proto().piece("a", 0, 9).trainer(2, false).normalizer().bytes;
  std::string nan_score = Proto().piece("a", std::numeric_limits<float>::quiet_NaN()).trainer(2, false).normalizer().bytes;
  std::string bad_utf8 = Proto().piece("\xC3", 0).trainer(2, false).normalizer().bytes;
  std::string empty_piece = Proto().piece("", 0).trainer(2, false).normalizer().bytes;
  std::string wrong_wire = Proto::len_field(1, Proto::field(2, 0) + Proto::varint(1));
  std::string unigram = Proto().piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3).trainer(1, false).normalizer().bytes;
  std::string nfkc = Proto().piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3).trainer(2, false).bytes +
                     Proto::len_field(3, Proto::len_field(1, "nmt_nfkc"));
  std::string few = Proto().piece("<unk>", 0, 2).trainer(2, false).normalizer().bytes;  // bos_id 1 missing
  return {
      {"empty", "", StatusCode::kCorruptFile, {"tokenizer.model", "no pieces"}},
      {"length_past_end", long_len, StatusCode::kCorruptFile, {"tokenizer.model", "offset 1", "runs past the end"}},
      {"varint_too_long", long_varint, StatusCode::kCorruptFile, {"tokenizer.model", "offset 1", "varint"}},
      {"group_wire_type", group, StatusCode::kCorruptFile, {"tokenizer.model", "offset 0", "wire type 3"}},
      {"field_zero", zero_field, StatusCode::kCorruptFile, {"tokenizer.model", "invalid field number"}},
      {"duplicate_piece", dup, StatusCode::kCorruptFile, {"tokenizer.model", "duplicates piece 0"}},
      {"bad_piece_type", bad_type, StatusCode::kCorruptFile, {"tokenizer.model", "piece type 9"}},
      {"nan_score", nan_score, StatusCode::kCorruptFile, {"tokenizer.model", "not finite"}},
      {"bad_utf8_piece", bad_utf8, StatusCode::kCorruptFile, {"tokenizer.model", "UTF-8"}},
      {"empty_piece", empty_piece, StatusCode::kCorruptFile, {"tokenizer.model", "empty"}},
      {"score_wrong_wire", wrong_wire, StatusCode::kCorruptFile, {"tokenizer.model", "score: wire type 0"}},
      {"bos_beyond_pieces", few, StatusCode::kCorruptFile, {"tokenizer.model", "bos_id 1 is beyond"}},
      {"truncated", good.substr(0, good.size() - 3), StatusCode::kCorruptFile, {"tokenizer.model", "offset"}},
      {"huge", std::string((64u << 20) + 1, '\0'), StatusCode::kCorruptFile, {"tokenizer.model", "limit"}},
      {"unigram", unigram, StatusCode::kUnsupported, {"unigram", "only BPE"}},
      {"nfkc", nfkc, StatusCode::kUnsupported, {"nmt_nfkc"}},
  };
}

TEST(TokenizerFiles, CorruptSentencePieceModels) {
  for (const BadSpm& c : bad_spm_cases()) {
    auto r = converter::sentencepiece_to_tokenizer_json(c.bytes, "tokenizer.model", "");
    ASSERT_FALSE(r.ok()) << c.name << ": accepted";
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status().to_string();
    for (const char* part : c.message_has) {
      EXPECT_NE(r.status().message().find(part), std::string::npos) << c.name << ": \"" << part << "\" not in: " << r.status().message();
    }
  }
}

TEST(TokenizerFiles, UnsupportedSentencePieceIsAClearWarning) {
  TempDir dir;
  write_file(dir.file("tokenizer.model"),
             Proto().piece("<unk>", 0, 2).piece("<s>", 0, 3).piece("</s>", 0, 3).trainer(1, false).normalizer().bytes);
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->json.empty());
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_NE(s->warnings[0].find("tokenizer.model (SentencePiece) alone is not supported yet: "),
            std::string::npos) << s->warnings[0];
  EXPECT_NE(s->warnings[0].find("SentencePiece model type unigram is not supported"), std::string::npos) << s->warnings[0];
  EXPECT_NE(s->warnings[0].find("the model runs from token ids"), std::string::npos);
}

TEST(TokenizerFiles, CorruptFilesFailTheConversionStep) {
  TempDir dir;
  write_file(dir.file("vocab.json"), R"({"a":0,"b":1})");
  write_file(dir.file("merges.txt"), "a b\n");  // "ab" is not in the vocabulary
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(dir.file("merges.txt")), std::string::npos) << s.status().message();
}

TEST(TokenizerFiles, HugeVocabFileIsCapped) {
  TempDir dir;
  write_file(dir.file("vocab.json"), "{");
  fs::resize_file(dir.file("vocab.json"), converter::kMaxTokenizerFileBytes + 1);  // sparse
  write_file(dir.file("merges.txt"), "a b\n");
  auto s = converter::synthesize_tokenizer_json(dir.path(), "{}");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("vocab.json"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("limit"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace qmodel
