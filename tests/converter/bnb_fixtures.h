// The bitsandbytes fixtures (tests/goldens/bnb/<model>_<kind>/, written by transformers +
// bitsandbytes via tools/gen_bnb_fixtures.py) and small helpers shared by test_bnb_*.cpp.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmodel/converter/safetensors.h"
#include "qmodel/format/reader.h"

namespace qmodel::testing {

inline const std::vector<std::string>& bnb_fixtures() {
  static const std::vector<std::string> k = {"llama_nf4", "llama_nf4dq", "llama_fp4", "llama_int8",
                                             "gpt2_nf4",  "gpt2_nf4dq",  "gpt2_fp4",  "gpt2_int8"};
  return k;
}

inline std::string bnb_dir(const std::string& name) {
  return std::string(QMODEL_SOURCE_DIR) + "/tests/goldens/bnb/" + name;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A folder's model.safetensors with its U8/I8 entries, name -> entry.
struct StFolder {
  std::unique_ptr<converter::SafetensorsFile> file;
  std::map<std::string, const converter::TensorEntry*> by_name;
};

inline StFolder open_st(const std::string& dir) {
  StFolder f;
  converter::SafetensorsOptions o;
  o.allow_u8_i8 = true;
  auto r = converter::SafetensorsFile::open(dir + "/model.safetensors", o);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return f;
  f.file = std::move(r).value();
  for (const auto& t : f.file->tensors()) f.by_name[t.name] = &t;
  return f;
}

inline std::string bytes_of(ByteSpan b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// Writes a safetensors file (entries in the given order, no alignment games).
struct StEntry {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  std::string bytes;
};

inline void write_st(const std::string& path, const std::vector<StEntry>& entries) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  for (const StEntry& e : entries) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  const std::string text = h.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << text;
  for (const StEntry& e : entries) out << e.bytes;
}

inline std::vector<StEntry> entries_of(const StFolder& f) {
  std::vector<StEntry> v;
  for (const auto& t : f.file->tensors()) v.push_back({t.name, converter::st_dtype_name(t.st_dtype), t.shape, bytes_of(t.bytes)});
  return v;
}

inline std::vector<float> read_f32(const std::string& path) {
  const std::string b = slurp(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

}  // namespace qmodel::testing
