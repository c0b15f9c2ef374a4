// Tokenizer against real files: the llama.cpp vectors (HF encode without specials) for GPT-2,
// Llama 3, Qwen2 and TinyLlama, decode round trips, StreamDecoder == decode, and stories260K's
// BOS prompt and greedy text from transformers. Skips when ../shared/assets is absent.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "qmodel/runtime/tokenizer.h"

namespace qmodel::runtime {
namespace {

const std::string kAssets = QMODEL_TEST_ASSETS;

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Llama 3's tokenizer.json ships gzipped; gzip -dc avoids a zlib dependency in the tests.
bool read_gzip(const std::string& path, std::string* out) {
  std::FILE* pipe = popen(("gzip -dc '" + path + "'").c_str(), "r");
  if (!pipe) return false;
  char buf[1 << 16];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out->append(buf, n);
  return pclose(pipe) == 0 && !out->empty();
}

struct VectorSet {
  const char* name;       // ggml-vocab-<name>.gguf.{inp,out}
  const char* tokenizer;  // under tokenizers/
};

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> load_vectors(const std::string& name) {
  std::string inp, out;
  const std::string base = kAssets + "/tokenizers/vectors/ggml-vocab-" + name + ".gguf.";
  if (!read_file(base + "inp", &inp) || !read_file(base + "out", &out)) return {};
  std::vector<Case> cases;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    cases.push_back({inp.substr(pos, hit - pos), {}});
  }
  std::istringstream lines(out);
  std::string line;
  for (Case& c : cases) {
    if (!std::getline(lines, line)) break;
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
  }
  return cases;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& rel) {
  const std::string path = kAssets + "/tokenizers/" + rel;
  std::string json;
  const bool ok = rel.size() > 3 && rel.compare(rel.size() - 3, 3, ".gz") == 0 ? read_gzip(path, &json) : read_file(path, &json);
  if (!ok) return nullptr;
  auto t = Tokenizer::from_json(json, "", path);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::string stream_decode(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special = true) {
  StreamDecoder stream(t, skip_special);
  std::string text;
  for (int32_t id : ids) text += stream.push(id);
  return text + stream.flush();
}

class Vectors : public ::testing::TestWithParam<VectorSet> {};

TEST_P(Vectors, EncodeMatchesHuggingFaceAndDecodeRoundTrips) {
  const VectorSet& set = GetParam();
  const std::vector<Case> cases = load_vectors(set.name);
  if (cases.empty()) GTEST_SKIP() << "test vectors not found under " << kAssets << "/tokenizers/vectors";
  std::unique_ptr<Tokenizer> t = load_tokenizer(set.tokenizer);
  if (!t) GTEST_SKIP() << "tokenizer " << set.tokenizer << " not found under " << kAssets;
  ASSERT_EQ(cases.size(), 46u);
  int n_pass = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ids = t->encode(cases[i].text, /*add_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().to_string();
    EXPECT_EQ(*ids, cases[i].ids) << set.name << " test #" << i;
    n_pass += *ids == cases[i].ids;
    // Every vector text is valid UTF-8 without special-token text: HF round-trips all of them
    // (SentencePiece included: its decoder strips exactly the space the normalizer prepended).
    EXPECT_EQ(t->decode(*ids), cases[i].text) << set.name << " round trip #" << i;
    EXPECT_EQ(stream_decode(*t, *ids), t->decode(*ids)) << set.name << " stream #" << i;
  }
  std::printf("%s: %d/%zu vectors match\n", set.name, n_pass, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, Vectors,
                         ::testing::Values(VectorSet{"gpt-2", "gpt2/tokenizer.json"},
                                           VectorSet{"llama-bpe", "llama3/llama3-tokenizer.json.gz"},
                                           VectorSet{"qwen2", "qwen2/tokenizer.json"},
                                           VectorSet{"llama-spm", "tinyllama/tokenizer.json"}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) if (c == '-') c = '_';
                           return n;
                         });

// ---- stories260K (SentencePiece BPE with byte fallback, legacy Metaspace) ------------------------
struct Stories {
  std::unique_ptr<Tokenizer> tokenizer;
  nlohmann::json reference;
};

Stories load_stories() {
  const std::string dir = kAssets + "/stories260K/f32/";
  std::string json, config, ref;
  if (!read_file(dir + "tokenizer.json", &json) || !read_file(dir + "tokenizer_config.json", &config) ||
      !read_file(dir + "reference_outputs_transformers.json", &ref)) {
    return {};
  }
  auto t = Tokenizer::from_json(json, config, dir + "tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  if (!t.ok()) return {};
  return {std::move(t).value(), nlohmann::json::parse(ref)};
}

TEST(Tokenizer, Stories260KPromptWithBos) {
  Stories s = load_stories();
  if (!s.tokenizer) GTEST_SKIP() << "stories260K not found under " << kAssets;
  const std::string prompt = s.reference["prompt"];
  EXPECT_EQ(prompt, "Once upon a time, there was a little girl named Lily.");
  const std::vector<int32_t> expected = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
  EXPECT_EQ(s.reference["input_ids"].get<std::vector<int32_t>>(), expected);
  auto ids = s.tokenizer->encode(prompt, /*add_special=*/true);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  EXPECT_EQ(*ids, expected);
  auto plain = s.tokenizer->encode(prompt, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, std::vector<int32_t>(expected.begin() + 1, expected.end()));
  EXPECT_EQ(s.tokenizer->bos_id(), 1);
  EXPECT_EQ(s.tokenizer->eos_id(), 2);
  EXPECT_EQ(s.tokenizer->vocab_size(), 512u);
  EXPECT_TRUE(s.tokenizer->is_special(1));
  EXPECT_FALSE(s.tokenizer->is_special(403));
  EXPECT_EQ(s.tokenizer->decode(*ids), prompt);
  EXPECT_EQ(s.tokenizer->decode(*ids, /*skip_special=*/false), "<s> " + prompt);
}

TEST(Tokenizer, Stories260KGreedyTextDecodes) {
  Stories s = load_stories();
  if (!s.tokenizer) GTEST_SKIP() << "stories260K not found under " << kAssets;
  const auto ids = s.reference["greedy_from_bos_ids"].get<std::vector<int32_t>>();
  const std::string text = s.reference["greedy_from_bos_text"];
  EXPECT_EQ(s.tokenizer->decode(ids), text);
  EXPECT_EQ(stream_decode(*s.tokenizer, ids), text);
}

TEST(Tokenizer, Stories260KByteFallbackRoundTrip) {
  Stories s = load_stories();
  if (!s.tokenizer) GTEST_SKIP() << "stories260K not found under " << kAssets;
  // 512 pieces: almost every non-ASCII character goes through <0xXX> tokens.
  const std::string text = "Zoë saw 🦙 and 你好!";
  auto ids = s.tokenizer->encode(text, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(s.tokenizer->decode(*ids), text);
  EXPECT_EQ(stream_decode(*s.tokenizer, *ids), text);
  EXPECT_EQ(s.tokenizer->token_bytes(3 + 0xF0), std::string("\xF0"));  // <0xF0> is id 3 + 0xF0
}

// ---- streaming across split characters, specials, invalid bytes ------------------------------------
TEST(StreamDecoder, HoldsSplitCharactersUntilComplete) {
  std::unique_ptr<Tokenizer> t = load_tokenizer("gpt2/tokenizer.json");
  if (!t) GTEST_SKIP() << "gpt2 tokenizer not found under " << kAssets;
  auto ids = t->encode("🦙 llama", false);  // the emoji is split over byte tokens
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids->size(), 2u);
  StreamDecoder stream(*t);
  EXPECT_EQ(stream.push((*ids)[0]), "");  // first byte(s) of a 4-byte character
  std::string text;
  for (size_t i = 1; i < ids->size(); ++i) text += stream.push((*ids)[i]);
  EXPECT_EQ(text + stream.flush(), "🦙 llama");
  // A dangling lead byte comes out as U+FFFD on flush, exactly as decode renders it.
  StreamDecoder cut(*t);
  std::string cut_text = cut.push((*ids)[0]);
  cut_text += cut.flush();
  EXPECT_EQ(cut_text, t->decode({(*ids)[0]}));
  EXPECT_EQ(t->decode({(*ids)[0]}), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, SpecialTokensFollowSkipSpecial) {
  std::unique_ptr<Tokenizer> t = load_tokenizer("qwen2/tokenizer.json");
  if (!t) GTEST_SKIP() << "qwen2 tokenizer not found under " << kAssets;
  auto ids = t->encode("<|im_start|>user\nHi there<|im_end|>", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 151644);
  EXPECT_EQ(ids->back(), 151645);
  EXPECT_EQ(t->decode(*ids), "user\nHi there");
  EXPECT_EQ(t->decode(*ids, false), "<|im_start|>user\nHi there<|im_end|>");
  EXPECT_EQ(stream_decode(*t, *ids, false), t->decode(*ids, false));
  EXPECT_EQ(stream_decode(*t, *ids, true), t->decode(*ids, true));
}

TEST(Tokenizer, QwenNormalizesToNfc) {
  std::unique_ptr<Tokenizer> t = load_tokenizer("qwen2/tokenizer.json");
  if (!t) GTEST_SKIP() << "qwen2 tokenizer not found under " << kAssets;
  // "é" decomposed (e + U+0301) and Hangul jamo encode as their precomposed forms.
  auto decomposed = t->encode("Caf\x65\xCC\x81 \xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", false);
  auto composed = t->encode("Caf\xC3\xA9 \xED\x95\x9C", false);
  ASSERT_TRUE(decomposed.ok() && composed.ok());
  EXPECT_EQ(*decomposed, *composed);
}

TEST(Tokenizer, RejectsInvalidUtf8Input) {
  std::unique_ptr<Tokenizer> t = load_tokenizer("gpt2/tokenizer.json");
  if (!t) GTEST_SKIP() << "gpt2 tokenizer not found under " << kAssets;
  auto ids = t->encode("ok\xC3(", false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t->decode({99999999, -1}), "");  // unknown ids are dropped, never a crash
  EXPECT_EQ(t->token_bytes(-5), "");
}

}  // namespace
}  // namespace qmodel::runtime
