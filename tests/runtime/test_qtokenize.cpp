// qtokenize as a user runs it: tokenizer.json or .qmodel in, ids (or text) out, exit codes.
#include <gtest/gtest.h>

#include <fstream>

#include "qmodel/converter/convert.h"
#include "support/run_tool.h"
#include "support/temp_dir.h"

namespace qmodel {
namespace {

using testing::run_tool;
using testing::TempDir;

// The reference prompt's ids from reference_outputs_transformers.json (with BOS).
constexpr const char* kPrompt = "Once upon a time, there was a little girl named Lily.";
constexpr const char* kPromptIds = "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426";

TEST(Qtokenize, EncodesWithTokenizerJsonAndQmodel) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  const std::string json = assets + "/stories260K/f32/tokenizer.json";
  auto from_json = run_tool("qtokenize", "'" + json + "' --add-special --text '" + kPrompt + "'", tmp.path());
  ASSERT_EQ(from_json.exit_code, 0) << from_json.err;
  EXPECT_EQ(from_json.out, std::string(kPromptIds) + "\n");

  converter::ConvertOptions o;
  o.input = assets + "/stories260K/f32";
  o.output = tmp.file("s.qmodel");
  ASSERT_TRUE(converter::convert(o).ok());
  auto from_model = run_tool("qtokenize", "'" + o.output + "' --add-special --text '" + kPrompt + "'", tmp.path());
  ASSERT_EQ(from_model.exit_code, 0) << from_model.err;
  EXPECT_EQ(from_model.out, from_json.out);

  auto no_bos = run_tool("qtokenize", "'" + o.output + "' --text '" + kPrompt + "'", tmp.path());
  ASSERT_EQ(no_bos.exit_code, 0);
  EXPECT_EQ(no_bos.out, std::string(kPromptIds).substr(2) + "\n");

  auto decoded = run_tool("qtokenize", "'" + o.output + "' --decode '" + kPromptIds + "'", tmp.path());
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_NE(decoded.out.find(kPrompt), std::string::npos) << decoded.out;
}

TEST(Qtokenize, ErrorsAndUsage) {
  TempDir tmp;
  EXPECT_EQ(run_tool("qtokenize", "", tmp.path()).exit_code, 2);
  std::ofstream(tmp.file("bad.json")) << "{\"model\": 7}";
  auto bad = run_tool("qtokenize", "'" + tmp.file("bad.json") + "' --text hi", tmp.path());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("bad.json"), std::string::npos) << bad.err;
  auto missing = run_tool("qtokenize", "'" + tmp.file("none.json") + "' --text hi", tmp.path());
  EXPECT_EQ(missing.exit_code, 1);
}

}  // namespace
}  // namespace qmodel
