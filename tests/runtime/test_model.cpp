// Model::open on tiny files written with ModelWriter: every storage type binds, and each way a
// file can fail to fit the graph is a specific error naming the tensor or the setting.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>

#include "qmodel/runtime/model.h"
#include "support/temp_dir.h"
#include "test_model_fixture.h"

namespace qmodel::runtime {
namespace {

using testing::TempDir;
using testing::TinyModelSpec;

Result<std::unique_ptr<Model>> write_and_open(const TempDir& dir, const TinyModelSpec& spec, ModelOptions options = {}) {
  const std::string path = dir.file("tiny.qmodel");
  Status written = testing::write_tiny_model(path, spec);
  EXPECT_TRUE(written.ok()) << written.to_string();
  return Model::open(path, options);
}

TEST(Model, OpensEveryStorageType) {
  TempDir dir;
  struct Case { StorageType storage; bool dq; };
  for (Case c : {Case{StorageType::kF32, false}, Case{StorageType::kNF4, false}, Case{StorageType::kNF4, true},
                 Case{StorageType::kFP4, false}, Case{StorageType::kFP4, true}, Case{StorageType::kINT8, false}}) {
    TinyModelSpec spec;
    spec.linear_storage = c.storage;
    spec.double_quant = c.dq;
    auto model = write_and_open(dir, spec);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    EXPECT_EQ((*model)->config().n_layers, 2u);
    EXPECT_GT((*model)->weight_bytes(), 0u);
    EXPECT_EQ((*model)->default_stop_ids(), std::vector<int32_t>{2});
  }
}

TEST(Model, WithoutTokenizerTextPromptsAreAClearError) {
  TempDir dir;
  auto model = write_and_open(dir, TinyModelSpec{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ((*model)->tokenizer(), nullptr);
  auto ids = (*model)->encode("hello");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("tokenizer.json"), std::string::npos) << ids.status().message();
}

TEST(Model, MissingTensorIsNamed) {
  TempDir dir;
  // Tensors are bound by role: the error names the role and the block.
  const std::pair<std::string, std::string> cases[] = {
      {"model.layers.1.mlp.down_proj.weight", "role down of block 1"},
      {"model.norm.weight", "role final_norm"},
      {"model.embed_tokens.weight", "role token_embedding"},
      {"model.layers.0.post_attention_layernorm.weight", "role mlp_norm of block 0"}};
  for (const auto& [name, message] : cases) {
    TinyModelSpec spec;
    spec.drop = {name};
    auto model = write_and_open(dir, spec);
    ASSERT_FALSE(model.ok()) << name;
    EXPECT_EQ(model.status().code(), StatusCode::kNotFound) << model.status().to_string();
    EXPECT_NE(model.status().message().find(message), std::string::npos) << model.status().message();
  }
}

TEST(Model, Qwen2NeedsQkvBiases) {
  TempDir dir;
  TinyModelSpec spec;
  spec.architecture = "Qwen2ForCausalLM";
  ASSERT_TRUE(write_and_open(dir, spec).ok());
  spec.drop = {"model.layers.0.self_attn.k_proj.bias"};  // block 1 has one: an incomplete file
  auto model = write_and_open(dir, spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kNotFound);
  EXPECT_NE(model.status().message().find("role k_bias of block 0"), std::string::npos) << model.status().message();
}

TEST(Model, UntiedModelNeedsLmHead) {
  TempDir dir;
  TinyModelSpec spec;
  spec.tied = false;
  ASSERT_TRUE(write_and_open(dir, spec).ok());
  spec.drop = {"lm_head.weight"};
  auto model = write_and_open(dir, spec);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("role lm_head"), std::string::npos) << model.status().message();
}

TEST(Model, WrongShapeIsNamed) {
  TempDir dir;
  TinyModelSpec spec;
  spec.reshape = "model.layers.0.self_attn.k_proj.weight";
  auto model = write_and_open(dir, spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(model.status().message().find(spec.reshape), std::string::npos) << model.status().message();
  EXPECT_NE(model.status().message().find("expected [8, 16]"), std::string::npos) << model.status().message();
}

TEST(Model, DescriptionsTheRuntimeCannotExecuteAreRefused) {
  TempDir dir;
  TinyModelSpec spec;
  spec.arch = format::llama_arch(4, 16, 1e-5f);
  spec.arch->residual = format::ResidualLayout::kParallelTwoNorms;
  spec.arch->residual_from_norm = true;  // defined for the sequential layout only
  auto model = write_and_open(dir, spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(model.status().message().find("residual from the norm"), std::string::npos) << model.status().message();

  spec.arch = format::llama_arch(4, 16, 1e-5f);
  spec.arch->rotary_dim = 6;  // more than head_dim
  model = write_and_open(dir, spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(model.status().message().find("rotary dims 6"), std::string::npos) << model.status().message();
}

// This binary links the real runtime: a build without CUDA refuses the device (kUnsupported), a
// CUDA build on a machine without a GPU reports the CUDA error (kCuda). Either way open() returns
// a clear error instead of crashing. (tests/gpu runs the CUDA backend itself, on a GPU or on the
// CPU emulator of CUDA.)
TEST(Model, CudaWithoutAGpuIsAClearError) {
  TempDir dir;
  ModelOptions options;
  options.device = Device::kCuda;
  auto model = write_and_open(dir, TinyModelSpec{}, options);
  if (model.ok()) GTEST_SKIP() << "a CUDA device is present (tests/gpu covers the backend)";
  const bool expected_code = model.status().code() == StatusCode::kUnsupported || model.status().code() == StatusCode::kCuda;
  EXPECT_TRUE(expected_code) << model.status().message();
  EXPECT_NE(model.status().message().find("CUDA"), std::string::npos) << model.status().message();
}

TEST(Model, MissingFileIsAnError) {
  auto model = Model::open("/nonexistent/dir/model.qmodel");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("/nonexistent/dir/model.qmodel"), std::string::npos);
}

TEST(Model, LoadsTheEmbeddedTokenizer) {
  QMODEL_REQUIRE_ASSETS(assets);
  std::ifstream in(assets + "/stories260K/f32/tokenizer.json");
  std::stringstream text;
  text << in.rdbuf();
  TempDir dir;
  TinyModelSpec spec;
  spec.vocab_size = 512;
  spec.tokenizer_json = text.str();
  auto model = write_and_open(dir, spec);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_NE((*model)->tokenizer(), nullptr);
  auto ids = (*model)->encode("Once upon a time", true);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  EXPECT_EQ((*ids)[0], 1);  // BOS from the post-processor
}

}  // namespace
}  // namespace qmodel::runtime
