// qrun, the command-line runner, on stories260K and on a tiny model without a tokenizer:
// streamed text, --prompt-ids, --print-ids, --dump-logits (.npy checked byte by byte), exit codes.
#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <vector>

#include "family_goldens.h"
#include "support/run_tool.h"
#include "test_model_fixture.h"
#include "test_stories_helpers.h"

namespace qmodel::runtime {
namespace {

using testing::run_tool;
using testing::TempDir;

std::string ids_text(const std::vector<int32_t>& ids, size_t first = 0) {
  std::string s;
  for (size_t i = first; i < ids.size(); ++i) s += (i > first ? " " : "") + std::to_string(ids[i]);
  return s;
}

TEST(Qrun, GreedyTextFromThePromptWithStats) {
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  auto path = testing::converted_stories(assets, "f32", StorageType::kF32);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  TempDir dir;
  // BOS alone as ids: the reference greedy continuation, 40 tokens of it.
  auto r = run_tool("qrun", "'" + *path + "' --prompt-ids 1 --max-new-tokens 40 --temperature 0 --print-ids", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<int32_t> want(ref.greedy_ids.begin() + 1, ref.greedy_ids.begin() + 41);
  EXPECT_NE(r.out.find(ids_text(want)), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind(ref.greedy_text.substr(0, 60), 0), 0u) << r.out;
  EXPECT_NE(r.err.find("Time for inference: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens/sec"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Memory used: "), std::string::npos) << r.err;
  // A text prompt goes through the embedded tokenizer.
  r = run_tool("qrun", "'" + *path + "' --prompt 'Once upon a time' --max-new-tokens 8", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(r.out.size(), 8u);
}

TEST(Qrun, DumpLogitsWritesNpyOfEveryPromptPosition) {
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  auto path = testing::converted_stories(assets, "f32", StorageType::kF32);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  TempDir dir;
  const std::string npy = dir.file("logits.npy");
  auto r = run_tool("qrun", "'" + *path + "' --prompt-ids '" + ids_text(ref.input_ids) +
                                "' --max-new-tokens 1 --dump-logits '" + npy + "'", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = testing::read_all(npy);
  ASSERT_GT(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string header = bytes.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (16, 512)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
  ASSERT_EQ(bytes.size(), 10 + header_len + 16 * 512 * 4);
  std::vector<float> logits(16 * 512);
  std::memcpy(logits.data(), bytes.data() + 10 + header_len, logits.size() * 4);
  EXPECT_LT(testing::compare_logits(logits, ref.logits, ref.vocab).max_abs, 1e-3);
}

TEST(Qrun, ModelWithoutTokenizerRunsFromIds) {
  TempDir dir;
  const std::string path = dir.file("tiny.qmodel");
  ASSERT_TRUE(testing::write_tiny_model(path, testing::TinyModelSpec{}).ok());
  auto r = run_tool("qrun", "'" + path + "' --prompt-ids '1 5 7' --max-new-tokens 5", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int n = 0, id;
  const char* p = r.out.c_str();
  int used = 0;
  while (std::sscanf(p, "%d%n", &id, &used) == 1) ++n, p += used;
  EXPECT_GE(n, 1);  // stops early only at EOS
  EXPECT_LE(n, 5);
  r = run_tool("qrun", "'" + path + "' --prompt 'hello'", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  int id = 0, used = 0;
  for (const char* p = text.c_str(); std::sscanf(p, "%d%n", &id, &used) == 1; p += used) ids.push_back(id);
  return ids;
}

TEST(Qrun, IgnoreEosGeneratesExactlyTheRequestedTokens) {
  // GPT-2 golden: qconvert -> qrun --print-ids --ignore-eos gives transformers' 24 greedy ids.
  TempDir dir;
  const testing::FamilyGolden g = testing::load_family_golden("gpt2");
  ASSERT_FALSE(g.greedy_ids.empty());
  auto r = run_tool("qconvert", "'" + testing::family_golden_dir("gpt2") + "' -o '" + dir.file("g.qmodel") +
                                    "' --quant f32 -q", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string prompt;
  for (int32_t id : g.prompt_ids) prompt += std::to_string(id) + " ";
  r = run_tool("qrun", "'" + dir.file("g.qmodel") + "' --prompt-ids '" + prompt + "' --max-new-tokens 24 --print-ids --ignore-eos",
               dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_ids(r.out), g.greedy_ids);
  // An out-of-vocabulary --stop-ids entry is ignored with a warning; an in-vocabulary one stops.
  const std::string stop = std::to_string(g.greedy_ids[3]);
  r = run_tool("qrun", "'" + dir.file("g.qmodel") + "' --prompt-ids '" + prompt + "' --max-new-tokens 24 --stop-ids '" +
                           stop + " 999999'", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ignoring stop id(s) outside the vocabulary of 400: 999999"), std::string::npos) << r.err;
  const std::vector<int32_t> got = parse_ids(r.out);
  const auto first_stop = std::find(g.greedy_ids.begin(), g.greedy_ids.end(), g.greedy_ids[3]);
  EXPECT_EQ(got.size(), static_cast<size_t>(first_stop - g.greedy_ids.begin()));  // the stop id itself is not printed
}

TEST(Qrun, ErrorsAndUsage) {
  TempDir dir;
  const std::string path = dir.file("tiny.qmodel");
  ASSERT_TRUE(testing::write_tiny_model(path, testing::TinyModelSpec{}).ok());
  // Without a GPU (or in a build without CUDA) --device cuda is a clear error, exit 1.
  auto r = run_tool("qrun", "'" + path + "' --prompt-ids 1 --device cuda", dir.path());
  if (r.exit_code != 0) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("CUDA"), std::string::npos) << r.err;
  }
  r = run_tool("qrun", "'" + path + "'", dir.path());  // no prompt
  EXPECT_EQ(r.exit_code, 2);
  r = run_tool("qrun", "'" + path + "' --prompt-ids 1 --device tpu", dir.path());
  EXPECT_EQ(r.exit_code, 2);
  r = run_tool("qrun", "'" + path + "' --prompt-ids '1 x'", dir.path());
  EXPECT_EQ(r.exit_code, 2);
  r = run_tool("qrun", "'" + path + "' --prompt-ids 99", dir.path());  // outside the vocabulary
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
  r = run_tool("qrun", "'" + dir.file("missing.qmodel") + "' --prompt-ids 1", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.qmodel"), std::string::npos) << r.err;
}

// Arguments an attacker (or a typo) controls: refused as usage errors, or run with memory bounded
// by the model's context.
TEST(Qrun, HostileArguments) {
  TempDir dir;
  const std::string path = dir.file("tiny.qmodel");
  ASSERT_TRUE(testing::write_tiny_model(path, testing::TinyModelSpec{}).ok());
  const std::string model = "'" + path + "' ";
  for (const char* args : {"--prompt-ids '1 -5'", "--prompt-ids 1 --threads 100000", "--prompt-ids 1 --top-p nan",
                           "--prompt-ids 1 --temperature inf", "--prompt-ids 1 --max-new-tokens -3",
                           "--prompt-ids 1 --max-new-tokens 99999999999999"}) {
    auto r = run_tool("qrun", model + args, dir.path());
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << args;
  }
  auto r = run_tool("qrun", model + "--prompt-ids 2147483647", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
  // 4e9 new tokens: the KV cache stops at the model's 64 positions instead of asking for 4e9.
  r = run_tool("qrun", model + "--prompt-ids 1 --max-new-tokens 4000000000 --ignore-eos --print-ids", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("generation stops when it is full"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qmodel::runtime
