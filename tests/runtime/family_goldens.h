// The model-family goldens (tests/goldens/families/<variant>/, written by
// tools/gen_family_goldens.py with transformers): a random-initialised checkpoint per variant, the
// fp32 logits transformers computes for an 18-token prompt and its 24 greedy tokens. Shared by the
// CPU backend's tests and the CUDA backend's (tests/gpu).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmodel/converter/convert.h"
#include "qmodel/runtime/model.h"
#include "qmodel/runtime/session.h"

namespace qmodel::testing {

inline const std::vector<std::string>& family_variants() {
  static const std::vector<std::string> kVariants = {
      "gpt2",         "gpt2_unscaled",  "opt_postln_proj",    "opt_preln",       "bloom",
      "bloom_residual_postln", "gpt_neox", "gpt_neox_seq",   "falcon7b",        "falcon_newarch",
      "falcon_newarch_1ln", "falcon_rw_alibi"};
  return kVariants;
}

inline std::string family_golden_dir(const std::string& variant) {
  return std::string(QMODEL_SOURCE_DIR) + "/tests/goldens/families/" + variant;
}

struct FamilyGolden {
  std::string family;
  std::vector<int32_t> prompt_ids, greedy_ids;
  size_t vocab = 0;
  std::vector<float> logits;  // [prompt_ids.size(), vocab]
};

// Reads golden.json and logits.f32; records a test failure and returns an empty golden on error.
inline FamilyGolden load_family_golden(const std::string& variant) {
  FamilyGolden g;
  const std::string dir = family_golden_dir(variant);
  std::ifstream in(dir + "/golden.json");
  if (!in) {
    ADD_FAILURE() << "cannot read " << dir << "/golden.json";
    return g;
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ADD_FAILURE() << dir << "/golden.json is not JSON";
    return g;
  }
  g.family = j.value("family", "");
  g.prompt_ids = j.value("prompt_ids", std::vector<int32_t>{});
  g.greedy_ids = j.value("greedy_ids", std::vector<int32_t>{});
  const auto shape = j.value("logits_shape", std::vector<size_t>{});
  if (shape.size() != 2 || shape[0] != g.prompt_ids.size()) {
    ADD_FAILURE() << dir << ": logits_shape does not match the prompt";
    return g;
  }
  g.vocab = shape[1];
  std::ifstream f(dir + "/logits.f32", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() != shape[0] * shape[1] * sizeof(float)) {
    ADD_FAILURE() << dir << "/logits.f32 holds " << bytes.size() << " bytes";
    return g;
  }
  g.logits.resize(shape[0] * shape[1]);
  std::memcpy(g.logits.data(), bytes.data(), bytes.size());
  return g;
}

// Converts a variant's checkpoint into `out` with `quant` (and double quantization).
inline Status convert_family(const std::string& variant, const std::string& out, StorageType quant,
                             bool double_quant = false) {
  converter::ConvertOptions o;
  o.input = family_golden_dir(variant);
  o.output = out;
  o.quant = quant;
  o.double_quant = double_quant;
  o.overwrite = true;
  o.n_threads = 2;
  auto summary = converter::convert(o);
  return summary.ok() ? Status() : summary.status();
}

struct FamilyRun {
  std::vector<float> logits;    // prompt logits [n, vocab]
  std::vector<int32_t> greedy;  // as many greedy tokens as the golden has, EOS ignored
};

// Opens `path` with `options`, prefills the golden's prompt (every position's logits) and
// generates greedily; failures are recorded and leave the result empty.
inline FamilyRun run_family_model(const std::string& path, const FamilyGolden& g,
                                  const runtime::ModelOptions& options = {}, uint32_t prefill_chunk = 256) {
  FamilyRun r;
  auto model = runtime::Model::open(path, options);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return r;
  runtime::SessionOptions so;
  so.prefill_chunk = prefill_chunk;
  auto session = runtime::Session::create(**model, so);
  EXPECT_TRUE(session.ok()) << session.status().to_string();
  if (!session.ok()) return r;
  runtime::GenerateOptions gen;
  gen.max_new_tokens = static_cast<uint32_t>(g.greedy_ids.size());
  gen.use_default_stop_ids = false;
  gen.on_prompt_logits = [&](Span<const float> logits, size_t, size_t) { r.logits.assign(logits.begin(), logits.end()); };
  auto result = (*session)->generate(g.prompt_ids, gen);
  EXPECT_TRUE(result.ok()) << result.status().to_string();
  if (result.ok()) r.greedy = result->ids;
  return r;
}

// Largest |x| of the reference logits: 16-bit bounds scale with it (an unscaled-attention variant
// has logits, and rounding effects, several times larger than the others).
inline float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Largest |a - b|; infinity when the sizes differ or a is empty.
inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace qmodel::testing
