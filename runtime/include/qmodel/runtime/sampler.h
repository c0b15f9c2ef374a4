// Next-token selection as Hugging Face generate() does it: temperature, then top-k, then top-p
// (nucleus: sort descending, keep the smallest prefix whose cumulative probability reaches p,
// always at least one token), then a draw. Temperature 0 is greedy (argmax, lowest id on ties).
// Draws come from a seeded std::mt19937_64, so a seed gives the same tokens on every platform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "qmodel/format/status.h"

namespace qmodel::runtime {

struct SamplingOptions {
  float temperature = 0.0f;  // 0 = greedy; > 0 divides the logits
  int32_t top_k = 0;         // 0 = off; keep the k most likely tokens
  float top_p = 1.0f;        // 1 = off; (0, 1]
  uint64_t seed = 0;
};

// kInvalidArgument naming the field when an option is out of range (negative or non-finite
// temperature, top_k < 0, top_p outside (0, 1]).
Status validate_sampling(const SamplingOptions& options);

class Sampler {
 public:
  // Errors as validate_sampling.
  static Result<Sampler> create(const SamplingOptions& options);

  // The id to emit for these logits (n > 0). Greedy ignores the random state.
  int32_t sample(const float* logits, size_t n);
  // The distribution sample() draws from (size n, zeros for filtered tokens); greedy gives a
  // one-hot vector. Deterministic; does not advance the random state.
  std::vector<float> probabilities(const float* logits, size_t n) const;
  const SamplingOptions& options() const { return options_; }
  // The next draw in [0, 1) that sample() would use (53 random bits), advancing the state: a
  // device sampler given these draws picks what sample() picks (up to rounding).
  double next_uniform();

 private:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

// Index of the largest value, lowest index on ties (torch.argmax); NaN never wins.
int32_t argmax(const float* values, size_t n);

}  // namespace qmodel::runtime
