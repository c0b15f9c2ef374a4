// Temperature -> top-k -> top-p -> draw, in the order of HF's logits warpers.
#include "qmodel/runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace qmodel::runtime {

Status validate_sampling(const SamplingOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0.0f) {
    return Status(StatusCode::kInvalidArgument, "temperature must be a finite value >= 0, got " + std::to_string(o.temperature));
  }
  if (o.top_k < 0) return Status(StatusCode::kInvalidArgument, "top_k must be >= 0, got " + std::to_string(o.top_k));
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) {
    return Status(StatusCode::kInvalidArgument, "top_p must be in (0, 1], got " + std::to_string(o.top_p));
  }
  return Status::ok_status();
}

Result<Sampler> Sampler::create(const SamplingOptions& options) {
  QMODEL_RETURN_IF_ERROR(validate_sampling(options));
  return Sampler(options);
}

int32_t argmax(const float* values, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    // A number replaces a NaN best; a NaN never replaces a number.
    if (values[i] > values[best] || std::isnan(values[best])) best = i;
  }
  return static_cast<int32_t>(best);
}

std::vector<float> Sampler::probabilities(const float* logits, size_t n) const {
  std::vector<float> probs(n, 0.0f);
  if (n == 0) return probs;
  if (options_.temperature == 0.0f) {
    probs[static_cast<size_t>(argmax(logits, n))] = 1.0f;
    return probs;
  }
  // Candidates sorted by logit, descending (NaN last); ties keep the lower id first (stable).
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto key = [logits](int32_t i) {
    return std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
  };
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) > key(b); });
  size_t kept = n;
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < n) {
    // HF TopKLogitsWarper removes only scores below the k-th largest: ties with it stay.
    kept = static_cast<size_t>(options_.top_k);
    while (kept < n && key(order[kept]) == key(order[kept - 1])) ++kept;
  }
  // Softmax of logits / temperature over the kept candidates (max subtracted, double sums).
  const double inv_t = 1.0 / static_cast<double>(options_.temperature);
  const double top = static_cast<double>(logits[order[0]]) * inv_t;
  std::vector<double> p(kept);
  double sum = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    const double x = static_cast<double>(logits[order[i]]);
    p[i] = std::isnan(x) ? 0.0 : std::exp(x * inv_t - top);
    sum += p[i];
  }
  if (!(sum > 0.0) || !std::isfinite(sum)) {  // degenerate logits (NaN/inf): fall back to greedy
    probs[static_cast<size_t>(argmax(logits, n))] = 1.0f;
    return probs;
  }
  for (double& v : p) v /= sum;
  if (options_.top_p < 1.0f) {
    // Nucleus: the smallest prefix whose cumulative probability reaches top_p (at least one).
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < kept) {
      cumulative += p[keep++];
      if (cumulative >= static_cast<double>(options_.top_p)) break;
    }
    kept = keep;
    double renorm = 0.0;
    for (size_t i = 0; i < kept; ++i) renorm += p[i];
    for (size_t i = 0; i < kept; ++i) p[i] /= renorm;
  }
  for (size_t i = 0; i < kept; ++i) probs[static_cast<size_t>(order[i])] = static_cast<float>(p[i]);
  return probs;
}

double Sampler::next_uniform() {
  // 53 random bits -> u in [0, 1): portable, unlike std::uniform_real_distribution.
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::sample(const float* logits, size_t n) {
  if (options_.temperature == 0.0f) return argmax(logits, n);
  const std::vector<float> probs = probabilities(logits, n);
  const double u = next_uniform();
  double cumulative = 0.0;
  int32_t last_nonzero = 0;
  for (size_t i = 0; i < n; ++i) {
    if (probs[i] <= 0.0f) continue;
    cumulative += probs[i];
    last_nonzero = static_cast<int32_t>(i);
    if (u < cumulative) return last_nonzero;
  }
  return last_nonzero;  // rounding left u just above the total
}

}  // namespace qmodel::runtime
