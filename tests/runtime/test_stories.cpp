// End to end on the real stories260K Llama (shared assets): convert with qmodel::converter, run
// with the CPU backend, compare with Hugging Face transformers' fp32 logits and greedy text.
#include <gtest/gtest.h>

#include <cstdio>

#include "qmodel/runtime/session.h"
#include "test_stories_helpers.h"

namespace qmodel::runtime {
namespace {

using testing::compare_logits;
using testing::LogitError;

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Session> session;
};

Loaded load(const std::string& assets, const std::string& folder, StorageType quant, bool dq = false) {
  Loaded l;
  auto path = testing::converted_stories(assets, folder, quant, dq);
  EXPECT_TRUE(path.ok()) << path.status().to_string();
  if (!path.ok()) return l;
  auto model = Model::open(*path);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return l;
  l.model = std::move(model).value();
  SessionOptions o;
  o.max_context = 512;
  auto session = Session::create(*l.model, o);
  EXPECT_TRUE(session.ok()) << session.status().to_string();
  if (session.ok()) l.session = std::move(session).value();
  return l;
}

std::vector<float> prompt_logits(Session& s, const std::vector<int32_t>& ids) {
  s.reset();
  auto logits = s.prefill(ids, true);
  EXPECT_TRUE(logits.ok()) << logits.status().to_string();
  return logits.ok() ? std::vector<float>(logits->begin(), logits->end()) : std::vector<float>();
}

LogitError error_vs_reference(const std::string& assets, const std::string& folder, StorageType quant, bool dq) {
  const auto& ref = testing::stories_reference(assets);
  Loaded l = load(assets, folder, quant, dq);
  if (!l.session) return LogitError{1e9, 1e9, 0, 0};
  const auto got = prompt_logits(*l.session, ref.input_ids);
  if (got.size() != ref.logits.size()) return LogitError{1e9, 1e9, 0, 0};
  return compare_logits(got, ref.logits, ref.vocab);
}

TEST(Stories, F32LogitsMatchTransformers) {
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  Loaded l = load(assets, "f32", StorageType::kF32);
  ASSERT_TRUE(l.session);
  const auto got = prompt_logits(*l.session, ref.input_ids);
  ASSERT_EQ(got.size(), ref.logits.size());
  const LogitError e = compare_logits(got, ref.logits, ref.vocab);
  std::printf("f32: max abs %.3g, rms %.3g, top-1 %zu/%zu\n", e.max_abs, e.rms, e.top1_agree, e.positions);
  EXPECT_LT(e.max_abs, 1e-3);
  EXPECT_EQ(e.top1_agree, e.positions);
  // The last position alone (the ordinary prefill) agrees too.
  l.session->reset();
  auto last = l.session->prefill(ref.input_ids);
  ASSERT_TRUE(last.ok());
  for (size_t i = 0; i < ref.vocab; ++i) ASSERT_NEAR((*last)[i], ref.logits[(ref.input_ids.size() - 1) * ref.vocab + i], 1e-3);
}

TEST(Stories, TokenizerEncodesTheReferencePrompt) {
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  Loaded l = load(assets, "f32", StorageType::kF32);
  ASSERT_TRUE(l.model);
  ASSERT_NE(l.model->tokenizer(), nullptr);
  auto ids = l.model->encode(ref.prompt, true);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  EXPECT_EQ(*ids, ref.input_ids);
}

TEST(Stories, GreedyFromBosReproducesTransformers) {
  QMODEL_REQUIRE_ASSETS(assets);
  const auto& ref = testing::stories_reference(assets);
  Loaded l = load(assets, "f32", StorageType::kF32);
  ASSERT_TRUE(l.session);
  GenerateOptions o;
  o.max_new_tokens = static_cast<uint32_t>(ref.greedy_ids.size() - 1);  // 255
  std::string streamed;
  o.on_token = [&](int32_t, const std::string& piece) {
    streamed += piece;
    return false;
  };
  auto r = l.session->generate({ref.greedy_ids[0]}, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->ids, std::vector<int32_t>(ref.greedy_ids.begin() + 1, ref.greedy_ids.end()));
  EXPECT_EQ(r->text, ref.greedy_text);
  EXPECT_EQ(streamed, ref.greedy_text);
  EXPECT_EQ(r->stop_reason, StopReason::kMaxTokens);
}

// 16-bit storage. The activations stay fp32, so the error is the weights' rounding alone.
// Measured: f16 max abs 0.0166 (rms 0.0037), bf16 max abs 0.093 (rms 0.025), identical whether
// the f32 folder is converted to 16 bits or the f16/bf16 folders saved by transformers are read
// (same rounded values). The logits reach |20| (rms 8.3): a relative error of ~1e-3 (f16) and
// ~5e-3 (bf16) of that, consistent with 2^-11 and 2^-8 rounding accumulated over 5 layers.
// Bounds are ~3x the measured values: f16 0.05, bf16 0.25; the greedy token must agree at every
// position.
TEST(Stories, SixteenBitStorageStaysClose) {
  QMODEL_REQUIRE_ASSETS(assets);
  struct Case { const char* folder; StorageType quant; double bound; };
  for (Case c : {Case{"f32", StorageType::kF16, 0.05}, Case{"f32", StorageType::kBF16, 0.25},
                 Case{"f16", StorageType::kF16, 0.05}, Case{"bf16", StorageType::kBF16, 0.25}}) {
    const LogitError e = error_vs_reference(assets, c.folder, c.quant, false);
    std::printf("%s -> %s: max abs %.3g, rms %.3g, top-1 %zu/%zu\n", c.folder,
                c.quant == StorageType::kF16 ? "f16" : "bf16", e.max_abs, e.rms, e.top1_agree, e.positions);
    EXPECT_LT(e.max_abs, c.bound) << c.folder;
    EXPECT_EQ(e.top1_agree, e.positions) << c.folder;
  }
}

// 4-bit and 8-bit weights against the fp32 reference logits (|logit| up to 20, rms 8.3).
// Measured (blocksize 64, 16 positions):
//   storage  max abs   rms     top-1
//   nf4      3.68      1.21    16/16
//   nf4-dq   3.77      1.19    16/16
//   fp4      4.92      1.23    16/16
//   fp4-dq   4.96      1.24    16/16
//   int8     0.24      0.081   16/16
// stories260K is tiny (dim 64), so 4-bit errors are large in absolute terms. Bounds are ~1.5x the
// measured max and guard against a broken decoding path (a wrong nibble order or absmax mapping
// gives errors of the logits' own size). INT8 (per-row absmax, 8 bits) must beat every 4-bit
// format. NF4 beats FP4 here (max 3.68 vs 4.92, rms 1.21 vs 1.23), as QLoRA claims, but the rms
// gap is 2%, so it is printed, not asserted.
TEST(Stories, QuantizedErrorTable) {
  QMODEL_REQUIRE_ASSETS(assets);
  struct Case { const char* name; StorageType quant; bool dq; double max_bound; };
  const Case cases[] = {{"nf4", StorageType::kNF4, false, 6.0}, {"nf4-dq", StorageType::kNF4, true, 6.0},
                        {"fp4", StorageType::kFP4, false, 7.5}, {"fp4-dq", StorageType::kFP4, true, 7.5},
                        {"int8", StorageType::kINT8, false, 0.5}};
  std::map<std::string, LogitError> errors;
  std::printf("%-8s %10s %10s %8s\n", "storage", "max abs", "rms", "top-1");
  for (const Case& c : cases) {
    const LogitError e = error_vs_reference(assets, "f32", c.quant, c.dq);
    errors[c.name] = e;
    std::printf("%-8s %10.4f %10.4f %5zu/%zu\n", c.name, e.max_abs, e.rms, e.top1_agree, e.positions);
    EXPECT_LT(e.max_abs, c.max_bound) << c.name;
  }
  EXPECT_LT(errors["int8"].rms, errors["nf4"].rms);
  EXPECT_LT(errors["int8"].rms, errors["fp4"].rms);
  EXPECT_GE(errors["int8"].top1_agree, 14u);
  // Double quantization changes absmax by at most ~1/254 of its range: the logits barely move.
  EXPECT_NEAR(errors["nf4-dq"].rms, errors["nf4"].rms, 0.25 * errors["nf4"].rms);
  std::printf("NF4 vs FP4 (QLoRA: NF4 is the better 4-bit type): rms %.4f vs %.4f -> %s\n", errors["nf4"].rms,
              errors["fp4"].rms, errors["nf4"].rms < errors["fp4"].rms ? "NF4 better" : "FP4 better here");
}

TEST(Stories, QuantizedModelsGenerateText) {
  QMODEL_REQUIRE_ASSETS(assets);
  struct Case { StorageType quant; bool dq; };
  for (Case c : {Case{StorageType::kNF4, false}, Case{StorageType::kNF4, true}, Case{StorageType::kFP4, false},
                 Case{StorageType::kINT8, false}}) {
    Loaded l = load(assets, "f32", c.quant, c.dq);
    ASSERT_TRUE(l.session);
    GenerateOptions o;
    o.max_new_tokens = 40;
    auto r = l.session->generate({1}, o);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    std::printf("%d%s: %s\n", static_cast<int>(c.quant), c.dq ? "-dq" : "", r->text.c_str());
    EXPECT_FALSE(r->ids.empty());
    // Real words come out: at least a few spaces in 40 tokens of TinyStories text.
    EXPECT_GE(std::count(r->text.begin(), r->text.end(), ' '), 5) << r->text;
  }
}

}  // namespace
}  // namespace qmodel::runtime
