// Sampling rules on small logit vectors: greedy, temperature, top-k, top-p, seeded draws.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "qmodel/runtime/sampler.h"

namespace qmodel::runtime {
namespace {

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double mx = -1e300, sum = 0;
  for (float l : logits) mx = std::max(mx, l / temperature);
  std::vector<double> p;
  for (float l : logits) p.push_back(std::exp(l / temperature - mx));
  for (double v : p) sum += v;
  for (double& v : p) v /= sum;
  return p;
}

Sampler make(float temperature, int32_t top_k = 0, float top_p = 1.0f, uint64_t seed = 0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  auto s = Sampler::create(o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(s).value();
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler s = make(0.0f);
  EXPECT_EQ(s.sample(logits.data(), logits.size()), 1);
  EXPECT_EQ(s.probabilities(logits.data(), logits.size()), (std::vector<float>{0, 1, 0, 0}));
}

TEST(Sampler, ArgmaxSkipsNaN) {
  std::vector<float> logits = {NAN, 1.0f, 3.0f, NAN};
  EXPECT_EQ(argmax(logits.data(), logits.size()), 2);
}

TEST(Sampler, TemperatureScalesTheSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 0.0f, -0.5f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    const std::vector<float> p = make(t).probabilities(logits.data(), logits.size());
    const std::vector<double> want = softmax(logits, t);
    for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], want[i], 1e-6) << "t=" << t << " i=" << i;
  }
}

TEST(Sampler, TopKKeepsTheKLargestRenormalised) {
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f, 2.5f};
  const std::vector<float> p = make(1.0f, 2).probabilities(logits.data(), logits.size());
  const double z = std::exp(3.0) + std::exp(2.5);
  EXPECT_NEAR(p[1], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(p[4], std::exp(2.5) / z, 1e-6);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
}

TEST(Sampler, TopKKeepsTiesWithTheKthValue) {
  // HF removes only scores strictly below the k-th largest.
  std::vector<float> logits = {1.0f, 2.0f, 2.0f, 0.0f};
  const std::vector<float> p = make(1.0f, 1).probabilities(logits.data(), logits.size());
  EXPECT_NEAR(p[1], 0.5, 1e-6);
  EXPECT_NEAR(p[2], 0.5, 1e-6);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
  std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  // p = 0.7: 0.5 < 0.7, 0.5 + 0.3 = 0.8 >= 0.7 -> keep {1, 3}.
  std::vector<float> p = make(1.0f, 0, 0.7f).probabilities(logits.data(), logits.size());
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[3], 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[2], 0.0f);
  // p = 0.96: needs 0.5 + 0.3 + 0.15 = 0.95 < 0.96, so all four stay.
  p = make(1.0f, 0, 0.96f).probabilities(logits.data(), logits.size());
  EXPECT_GT(p[2], 0.0f);
  // A tiny p still keeps the most likely token.
  p = make(1.0f, 0, 1e-6f).probabilities(logits.data(), logits.size());
  EXPECT_EQ(p[1], 1.0f);
}

TEST(Sampler, TopKThenTopP) {
  std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  // top-k 3 -> {0.4, 0.3, 0.2} / 0.9; top-p 0.5 -> 0.444 < 0.5, + 0.333 -> keep {0, 1}.
  const std::vector<float> p = make(1.0f, 3, 0.5f).probabilities(logits.data(), logits.size());
  EXPECT_NEAR(p[0], 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(p[1], 0.3 / 0.7, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
}

TEST(Sampler, SameSeedSameDrawsAndFrequenciesFollowTheDistribution) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  Sampler a = make(1.0f, 0, 1.0f, 42), b = make(1.0f, 0, 1.0f, 42), c = make(1.0f, 0, 1.0f, 43);
  std::vector<int32_t> da, db, dc;
  std::map<int32_t, int> counts;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    da.push_back(a.sample(logits.data(), logits.size()));
    db.push_back(b.sample(logits.data(), logits.size()));
    dc.push_back(c.sample(logits.data(), logits.size()));
    counts[da.back()]++;
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  // 20000 draws: standard deviation of a frequency <= 0.0035, so 0.02 is > 5 sigma.
  EXPECT_NEAR(counts[0] / double(kDraws), 0.6, 0.02);
  EXPECT_NEAR(counts[1] / double(kDraws), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(kDraws), 0.1, 0.02);
}

TEST(Sampler, FilteredTokensAreNeverDrawn) {
  std::vector<float> logits = {0.0f, 5.0f, 4.9f, 0.1f, -2.0f};
  Sampler s = make(2.0f, 2, 1.0f, 7);
  for (int i = 0; i < 2000; ++i) {
    const int32_t id = s.sample(logits.data(), logits.size());
    EXPECT_TRUE(id == 1 || id == 2) << id;
  }
}

TEST(Sampler, RejectsBadOptions) {
  SamplingOptions o;
  o.temperature = -1.0f;
  EXPECT_EQ(Sampler::create(o).status().code(), StatusCode::kInvalidArgument);
  o = SamplingOptions{};
  o.temperature = NAN;
  EXPECT_EQ(Sampler::create(o).status().code(), StatusCode::kInvalidArgument);
  o = SamplingOptions{};
  o.top_k = -3;
  EXPECT_EQ(Sampler::create(o).status().code(), StatusCode::kInvalidArgument);
  o = SamplingOptions{};
  o.top_p = 0.0f;
  EXPECT_EQ(Sampler::create(o).status().code(), StatusCode::kInvalidArgument);
  o.top_p = 1.5f;
  EXPECT_EQ(Sampler::create(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qmodel::runtime
