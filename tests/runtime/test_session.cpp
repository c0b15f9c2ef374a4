// Session semantics on tiny files: incremental decode equals one prefill, chunking and thread
// counts do not change results, bad input is an error that leaves the session usable, and
// generate() stops for each reason.
#include <gtest/gtest.h>

#include "qmodel/runtime/session.h"
#include "support/temp_dir.h"
#include "test_model_fixture.h"

namespace qmodel::runtime {
namespace {

using testing::TempDir;
using testing::TinyModelSpec;

class SessionTest : public ::testing::TestWithParam<StorageType> {
 protected:
  void SetUp() override {
    TinyModelSpec spec;
    spec.linear_storage = GetParam();
    const std::string path = dir_.file("tiny.qmodel");
    Status written = testing::write_tiny_model(path, spec);
    ASSERT_TRUE(written.ok()) << written.to_string();
    auto model = Model::open(path);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    model_ = std::move(model).value();
  }
  std::unique_ptr<Session> session(uint32_t max_context = 32, uint32_t chunk = 256, unsigned threads = 2) {
    SessionOptions o;
    o.max_context = max_context;
    o.prefill_chunk = chunk;
    o.n_threads = threads;
    auto s = Session::create(*model_, o);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  TempDir dir_;
  std::unique_ptr<Model> model_;
};

const std::vector<int32_t> kPrompt = {1, 7, 3, 19, 4, 4, 30, 12};

TEST_P(SessionTest, DecodeStepsMatchOnePrefillOfAllPositions) {
  auto s = session();
  ASSERT_TRUE(s);
  const size_t vocab = s->vocab_size();
  auto all = s->prefill(kPrompt, true);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), kPrompt.size() * vocab);
  const std::vector<float> reference(all->begin(), all->end());
  EXPECT_EQ(s->n_past(), kPrompt.size());

  s->reset();
  EXPECT_EQ(s->n_past(), 0u);
  auto first = s->prefill({kPrompt[0], kPrompt[1], kPrompt[2]});
  ASSERT_TRUE(first.ok());
  for (size_t i = 0; i < vocab; ++i) ASSERT_NEAR((*first)[i], reference[2 * vocab + i], 1e-5);
  for (size_t t = 3; t < kPrompt.size(); ++t) {
    auto step = s->decode_step(kPrompt[t]);
    ASSERT_TRUE(step.ok());
    ASSERT_EQ(step->size(), vocab);
    for (size_t i = 0; i < vocab; ++i) ASSERT_NEAR((*step)[i], reference[t * vocab + i], 1e-5) << "t " << t;
  }
}

TEST_P(SessionTest, ChunkedPrefillAndThreadCountsAgree) {
  auto whole = session(32, 256, 1), chunked = session(32, 3, 4);
  ASSERT_TRUE(whole && chunked);
  auto a = whole->prefill(kPrompt, true);
  auto b = chunked->prefill(kPrompt, true);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) ASSERT_NEAR((*a)[i], (*b)[i], 1e-5);
}

TEST_P(SessionTest, BadInputIsAnErrorAndTheSessionStaysUsable) {
  auto s = session(10);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->prefill({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->prefill({1, 32}).status().code(), StatusCode::kInvalidArgument);  // vocab is 32
  EXPECT_EQ(s->decode_step(-1).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(s->prefill(kPrompt).ok());
  auto overflow = s->prefill({1, 2, 3});  // 8 + 3 > 10
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(overflow.status().message().find("max context of 10"), std::string::npos);
  EXPECT_EQ(s->n_past(), kPrompt.size());
  EXPECT_TRUE(s->decode_step(5).ok());
  EXPECT_TRUE(s->decode_step(6).ok());
  EXPECT_FALSE(s->decode_step(7).ok());  // full
}

TEST_P(SessionTest, GreedyGenerateIsDeterministicAndFollowsTheLogits) {
  auto s = session();
  ASSERT_TRUE(s);
  GenerateOptions o;
  o.max_new_tokens = 6;
  o.use_default_stop_ids = false;
  auto r1 = s->generate(kPrompt, o);
  ASSERT_TRUE(r1.ok()) << r1.status().to_string();
  EXPECT_EQ(r1->ids.size(), 6u);
  EXPECT_EQ(r1->stop_reason, StopReason::kMaxTokens);
  EXPECT_TRUE(r1->text.empty());  // no tokenizer in the file
  // The same sequence by hand: argmax after prefill, then after each decode step.
  s->reset();
  auto logits = s->prefill(kPrompt);
  ASSERT_TRUE(logits.ok());
  std::vector<int32_t> manual;
  for (int i = 0; i < 6; ++i) {
    manual.push_back(argmax(logits->data(), logits->size()));
    if (i < 5) logits = s->decode_step(manual.back());
  }
  EXPECT_EQ(r1->ids, manual);
  // Another session with other threads gives the same ids.
  auto r2 = session(32, 2, 3)->generate(kPrompt, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r1->ids, r2->ids);
}

TEST_P(SessionTest, SeededSamplingIsReproducible) {
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.use_default_stop_ids = false;
  o.sampling.temperature = 1.5f;
  o.sampling.top_k = 10;
  o.sampling.top_p = 0.9f;
  o.sampling.seed = 1234;
  auto a = session()->generate(kPrompt, o);
  auto b = session(32, 256, 1)->generate(kPrompt, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ids, b->ids);
}

TEST_P(SessionTest, StopsAtStopIdsCallbackAndFullContext) {
  auto s = session(12);
  ASSERT_TRUE(s);
  GenerateOptions o;
  o.max_new_tokens = 20;
  o.use_default_stop_ids = false;
  auto free_run = s->generate(kPrompt, o);
  ASSERT_TRUE(free_run.ok());
  EXPECT_EQ(free_run->stop_reason, StopReason::kContextFull);
  EXPECT_EQ(free_run->ids.size(), 12 - kPrompt.size() + 1);  // the last token needs no slot

  o.stop_ids = {free_run->ids[1]};
  auto stopped = s->generate(kPrompt, o);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->stop_reason, StopReason::kStopToken);
  // Stops at the first occurrence of the stop id, which is included.
  size_t first = 0;
  while (free_run->ids[first] != o.stop_ids[0]) ++first;
  EXPECT_EQ(stopped->ids, std::vector<int32_t>(free_run->ids.begin(), free_run->ids.begin() + first + 1));

  o.stop_ids.clear();
  int calls = 0;
  o.on_token = [&](int32_t, const std::string&) { return ++calls == 2; };
  auto by_callback = s->generate(kPrompt, o);
  ASSERT_TRUE(by_callback.ok());
  EXPECT_EQ(by_callback->stop_reason, StopReason::kCallback);
  EXPECT_EQ(by_callback->ids.size(), 2u);

  const Stats stats = s->stats();
  EXPECT_GT(stats.prefill_tokens, 0u);
  EXPECT_GT(stats.decode_tokens, 0u);
  EXPECT_GT(stats.kv_cache_bytes, 0u);
  EXPECT_GT(stats.weight_bytes, 0u);
}

TEST_P(SessionTest, PromptTooLongAndBadSamplingAreErrors) {
  auto s = session(4);
  GenerateOptions o;
  EXPECT_EQ(s->generate(kPrompt, o).status().code(), StatusCode::kInvalidArgument);
  o.sampling.top_p = 0.0f;
  EXPECT_EQ(s->generate({1}, o).status().code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Storage, SessionTest,
                         ::testing::Values(StorageType::kF32, StorageType::kNF4, StorageType::kINT8),
                         [](const ::testing::TestParamInfo<StorageType>& info) {
                           switch (info.param) {
                             case StorageType::kF32: return std::string("F32");
                             case StorageType::kNF4: return std::string("NF4");
                             default: return std::string("INT8");
                           }
                         });

}  // namespace
}  // namespace qmodel::runtime
