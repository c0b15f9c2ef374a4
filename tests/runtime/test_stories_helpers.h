// Shared by the stories260K end-to-end tests: converts the shared assets once per test binary
// (cached by options) and loads reference_outputs_transformers.json.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "qmodel/converter/convert.h"
#include "support/temp_dir.h"

namespace qmodel::testing {

struct StoriesReference {
  std::string prompt;
  std::vector<int32_t> input_ids;
  std::vector<float> logits;  // [16, 512]
  size_t vocab = 0;
  std::vector<int32_t> greedy_ids;  // from BOS, BOS included
  std::string greedy_text;
};

inline const StoriesReference& stories_reference(const std::string& assets) {
  static std::unique_ptr<StoriesReference> ref;
  if (!ref) {
    ref = std::make_unique<StoriesReference>();
    std::ifstream in(assets + "/stories260K/f32/reference_outputs_transformers.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    ref->prompt = j.at("prompt").get<std::string>();
    ref->input_ids = j.at("input_ids").get<std::vector<int32_t>>();
    for (const auto& row : j.at("logits_fp32")) {
      ref->vocab = row.size();
      for (const auto& v : row) ref->logits.push_back(v.get<float>());
    }
    ref->greedy_ids = j.at("greedy_from_bos_ids").get<std::vector<int32_t>>();
    ref->greedy_text = j.at("greedy_from_bos_text").get<std::string>();
  }
  return *ref;
}

// One converted file per (source folder, quant, double_quant), in a directory that lives as long
// as the test binary.
inline Result<std::string> converted_stories(const std::string& assets, const std::string& folder, StorageType quant,
                                             bool double_quant = false) {
  static TempDir dir;
  static std::map<std::tuple<std::string, int, bool>, std::string> cache;
  const auto key = std::make_tuple(folder, static_cast<int>(quant), double_quant);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  converter::ConvertOptions o;
  o.input = assets + "/stories260K/" + folder;
  o.output = dir.file("stories-" + folder + "-" + std::to_string(static_cast<int>(quant)) + (double_quant ? "-dq" : "") +
                      ".qmodel");
  o.quant = quant;
  o.double_quant = double_quant;
  o.overwrite = true;
  auto summary = converter::convert(o);
  if (!summary.ok()) return summary.status();
  cache[key] = o.output;
  return o.output;
}

struct LogitError {
  double max_abs = 0, rms = 0;
  size_t top1_agree = 0, positions = 0;
};

inline LogitError compare_logits(const std::vector<float>& got, const std::vector<float>& want, size_t vocab) {
  LogitError e;
  double sum_sq = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    sum_sq += d * d;
  }
  e.rms = std::sqrt(sum_sq / static_cast<double>(want.size()));
  e.positions = want.size() / vocab;
  for (size_t p = 0; p < e.positions; ++p) {
    auto argmax = [&](const std::vector<float>& v) {
      return std::max_element(v.begin() + p * vocab, v.begin() + (p + 1) * vocab) - (v.begin() + p * vocab);
    };
    e.top1_agree += argmax(got) == argmax(want);
  }
  return e;
}

}  // namespace qmodel::testing
