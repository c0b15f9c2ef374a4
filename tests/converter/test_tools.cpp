// The command-line tools as a user runs them: qconvert, qinspect (--verify, --json,
// --dequantize) and make_synthetic_model, exit codes and messages included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/reader.h"
#include "qmodel/kernels/ref.h"
#include "qmodel/runtime/weight_view.h"
#include "support/run_tool.h"
#include "support/temp_dir.h"

namespace qmodel {
namespace {

using testing::run_tool;
using testing::TempDir;

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(Qconvert, UsageErrorsAndHelp) {
  TempDir tmp;
  auto help = run_tool("qconvert", "--help", tmp.path());
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--double-quant"), std::string::npos);
  EXPECT_EQ(run_tool("qconvert", "", tmp.path()).exit_code, 2);
  auto bad_quant = run_tool("qconvert", "x -o y --quant q3", tmp.path());
  EXPECT_EQ(bad_quant.exit_code, 2);
  EXPECT_FALSE(bad_quant.err.empty());
  auto missing = run_tool("qconvert", q(tmp.file("nope")) + " -o " + q(tmp.file("o.qmodel")), tmp.path());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o.qmodel")));
}

TEST(Qconvert, ConvertsInspectsVerifiesDequantizes) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  const std::string out = tmp.file("s.qmodel");
  auto conv = run_tool("qconvert", q(assets + "/stories260K/f32") + " -o " + q(out) + " --quant nf4 --double-quant -q", tmp.path());
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  EXPECT_NE(conv.out.find("bits/param"), std::string::npos) << conv.out;
  EXPECT_NE(conv.out.find("GB/s"), std::string::npos) << conv.out;

  auto again = run_tool("qconvert", q(assets + "/stories260K/f32") + " -o " + q(out), tmp.path());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;

  auto inspect = run_tool("qinspect", q(out) + " --verify", tmp.path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("model.layers.4.mlp.down_proj.weight"), std::string::npos);
  EXPECT_NE(inspect.out.find("64+dq"), std::string::npos);
  EXPECT_NE(inspect.err.find("verify: OK"), std::string::npos);

  auto json = run_tool("qinspect", q(out) + " --json", tmp.path());
  ASSERT_EQ(json.exit_code, 0);
  nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["tensors"].size(), 47u);
  EXPECT_EQ(j["config"]["n_kv_heads"], 4);
  EXPECT_EQ(j["quant_settings"]["quant"], "nf4");

  const std::string deq = tmp.file("deq.safetensors");
  auto dq = run_tool("qinspect", q(out) + " --dequantize " + q(deq), tmp.path());
  ASSERT_EQ(dq.exit_code, 0) << dq.err;
  auto st = converter::SafetensorsFile::open(deq);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  auto model = format::ModelFile::open(out);
  ASSERT_TRUE(model.ok());
  ASSERT_EQ(st.value()->tensors().size(), model.value()->header().tensors.size());
  // Every value equals the reader's own dequantization (whose error against the original weights
  // test_convert bounds tensor by tensor).
  for (const auto& e : st.value()->tensors()) {
    EXPECT_EQ(e.dtype, SourceDType::kF32);
    const format::TensorInfo* t = model.value()->header().find_tensor(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    auto view = runtime::make_weight_view(*model.value(), *t);
    ASSERT_TRUE(view.ok()) << view.status().to_string();
    std::vector<float> expected(t->n_elems()), written(t->n_elems());
    kernels::dequantize_ref(view.value(), 0, expected.size(), expected.data());
    converter::to_float(e, 0, written.size(), written.data());
    EXPECT_EQ(expected, written) << e.name;
  }
}

TEST(Qinspect, DetectsACorruptedBlob) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  const std::string out = tmp.file("s.qmodel");
  ASSERT_EQ(run_tool("qconvert", q(assets + "/stories260K/f32") + " -o " + q(out) + " -q", tmp.path()).exit_code, 0);
  uint64_t offset = 0;
  std::string name;
  {
    auto model = format::ModelFile::open(out);
    ASSERT_TRUE(model.ok());
    const auto& t = *model.value()->header().find_tensor("model.layers.2.mlp.up_proj.weight");
    offset = t.blobs[0].offset + 17;
    name = t.name;
  }
  {
    std::fstream f(out, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }
  auto plain = run_tool("qinspect", q(out), tmp.path());
  EXPECT_EQ(plain.exit_code, 0);  // structure is intact; only the checksum pass can see it
  auto verify = run_tool("qinspect", q(out) + " --verify", tmp.path());
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.err.find(name), std::string::npos) << verify.err;
}

// qkeygen -> qconvert --sign -> qinspect --trusted-key / qrun --trusted-key, as a publisher and a
// user would run them.
TEST(Signing, KeygenSignVerifyEndToEnd) {
  TempDir tmp;
  const std::string model = tmp.file("tiny");
  ASSERT_EQ(run_tool("make_synthetic_model", q(model) + " --preset tiny --seed 5", tmp.path()).exit_code, 0);
  auto gen = run_tool("qkeygen", "-o " + q(tmp.file("publisher")), tmp.path());
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ASSERT_EQ(run_tool("qkeygen", "-o " + q(tmp.file("stranger")), tmp.path()).exit_code, 0);
  EXPECT_EQ(run_tool("qkeygen", "-o " + q(tmp.file("publisher")), tmp.path()).exit_code, 1) << "overwrote a key";
  EXPECT_EQ(run_tool("qkeygen", "", tmp.path()).exit_code, 2);
  EXPECT_EQ(run_tool("qkeygen", q(tmp.file("positional")), tmp.path()).exit_code, 0);

  const std::string signed_out = tmp.file("signed.qmodel"), plain_out = tmp.file("plain.qmodel");
  auto conv = run_tool("qconvert", q(model) + " -o " + q(signed_out) + " -q --sign " + q(tmp.file("publisher.key")), tmp.path());
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  ASSERT_EQ(run_tool("qconvert", q(model) + " -o " + q(plain_out) + " -q", tmp.path()).exit_code, 0);
  EXPECT_EQ(run_tool("qconvert", q(model) + " -o x --to bnb --sign " + q(tmp.file("publisher.key")), tmp.path()).exit_code, 2);
  EXPECT_EQ(run_tool("qconvert", q(model) + " -o y.qmodel --sign " + q(tmp.file("publisher.pub")), tmp.path()).exit_code, 2)
      << "a public key is not a signing key";

  const std::string pub = " --trusted-key " + q(tmp.file("publisher.pub"));
  auto ok = run_tool("qinspect", q(signed_out) + " --verify" + pub, tmp.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find("signature: OK"), std::string::npos) << ok.err;
  auto wrong = run_tool("qinspect", q(signed_out) + " --trusted-key " + q(tmp.file("stranger.pub")), tmp.path());
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("not by the trusted key"), std::string::npos) << wrong.err;
  auto unsigned_file = run_tool("qinspect", q(plain_out) + pub, tmp.path());
  EXPECT_EQ(unsigned_file.exit_code, 1);
  EXPECT_NE(unsigned_file.err.find("not signed"), std::string::npos) << unsigned_file.err;
  EXPECT_EQ(run_tool("qinspect", q(plain_out) + " --verify", tmp.path()).exit_code, 0) << "unsigned files still verify";

  EXPECT_EQ(run_tool("qrun", q(signed_out) + " --prompt-ids 1 --max-new-tokens 2" + pub, tmp.path()).exit_code, 0);
  auto refused = run_tool("qrun", q(plain_out) + " --prompt-ids 1 --max-new-tokens 2" + pub, tmp.path());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("not signed"), std::string::npos) << refused.err;
}

TEST(SyntheticModel, ShardedCheckpointConvertsAndVerifies) {
  TempDir tmp;
  const std::string dir = tmp.file("tiny");
  auto gen = run_tool("make_synthetic_model", q(dir) + " --preset tiny --dtype bf16 --shards 3 --seed 7", tmp.path());
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ASSERT_TRUE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
  const std::string out = tmp.file("tiny.qmodel");
  auto conv = run_tool("qconvert", q(dir) + " -o " + q(out) + " --quant nf4 --double-quant -q", tmp.path());
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto model = format::ModelFile::open(out, {true});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const auto& h = model.value()->header();
  std::vector<std::string> sources;
  for (const auto& f : h.provenance.source_files) {
    sources.push_back(f.name);
    EXPECT_GT(f.size, 0u) << f.name;
  }
  for (const char* expected : {"model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors",
                               "model.safetensors.index.json", "config.json", "tokenizer.json"}) {
    EXPECT_NE(std::find(sources.begin(), sources.end(), expected), sources.end()) << expected;
  }
  // Bits per parameter on a 256x256 weight (1024 blocks of 64, 4 nested blocks of 256): codes
  // 32768 B + absmax codes 1024 B + nested absmax 16 B = 4.127 bits (4 + 8/64 + 32/(64*256)).
  const format::TensorInfo* t = h.find_tensor("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->n_elems(), 65536u);
  uint64_t bytes = 0;
  for (const auto& b : t->blobs) bytes += b.stored_size;
  EXPECT_DOUBLE_EQ(8.0 * static_cast<double>(bytes) / 65536.0, 4.0 + 8.0 / 64 + 32.0 / (64 * 256));
}

}  // namespace
}  // namespace qmodel
