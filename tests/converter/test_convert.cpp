// End to end: convert the real stories260K checkpoint with every storage type, read the file back
// through the verified reader, and bound every dequantized value against the original weights by
// what the numerics imply. Also: determinism across thread counts, atomic output, overwrite rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "qmodel/converter/checkpoint.h"
#include "qmodel/converter/convert.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/format/half.h"
#include "qmodel/format/reader.h"
#include "qmodel/kernels/ref.h"
#include "qmodel/runtime/weight_view.h"
#include "support/temp_dir.h"

namespace qmodel {
namespace {

using converter::ConvertOptions;
using testing::TempDir;

// Largest distance from any value in [-1, 1] to its nearest code: half the widest code gap.
float max_half_gap(const std::vector<float>& table) {
  std::vector<float> v(table);
  std::sort(v.begin(), v.end());
  float gap = 0;
  for (size_t i = 1; i < v.size(); ++i) gap = std::max(gap, v[i] - v[i - 1]);
  return gap / 2;
}

kernels::WeightView view_of(const format::ModelFile& f, const format::TensorInfo& t) {
  auto view = runtime::make_weight_view(f, t);
  EXPECT_TRUE(view.ok()) << view.status().to_string();
  return view.ok() ? view.value() : kernels::WeightView{};
}

// Checks one stored tensor against its source values with the bound its storage implies.
void expect_within_bound(const format::TensorInfo& t, const kernels::WeightView& w, const std::vector<float>& src) {
  const size_t n = src.size();
  std::vector<float> deq(n);
  kernels::dequantize_ref(w, 0, n, deq.data());
  size_t bad = 0;
  if (is_4bit(t.storage)) {
    const float half_gap = max_half_gap(t.quant.code_table);
    const size_t bs = t.quant.block_size;
    for (size_t b = 0; b * bs < n; ++b) {
      const size_t end = std::min(n, (b + 1) * bs);
      float absmax = 0;
      for (size_t i = b * bs; i < end; ++i) absmax = std::max(absmax, std::fabs(src[i]));
      const float stored_absmax = kernels::block_absmax_ref(w, b);
      // Double quantization perturbs absmax by at most half a dynamic-map step of the nested
      // scale (< 0.8% of it in the coarsest decade); without it absmax is stored exactly.
      const float absmax_err = std::fabs(stored_absmax - absmax);
      if (!t.quant.double_quant) EXPECT_EQ(stored_absmax, absmax) << t.name << " block " << b;
      else EXPECT_LE(absmax_err, 0.008f * w.nested_absmax[b / w.nested_block_size] + 1e-7f) << t.name << " block " << b;
      const float bound = absmax * half_gap * (1 + 1e-5f) + absmax_err + 1e-7f;
      for (size_t i = b * bs; i < end; ++i) bad += std::fabs(deq[i] - src[i]) > bound;
    }
  } else if (t.storage == StorageType::kINT8) {
    for (size_t r = 0; r < w.rows; ++r) {
      const float bound = w.row_scale[r] / 127.0f * 0.5f * (1 + 1e-5f) + 1e-7f;
      for (size_t c = 0; c < w.cols; ++c) {
        const float x16 = f16_to_float(float_to_f16(src[r * w.cols + c]));  // bnb casts to fp16 first
        bad += std::fabs(deq[r * w.cols + c] - x16) > bound;
      }
    }
  } else {
    const float rel = t.storage == StorageType::kF32 ? 0.0f : t.storage == StorageType::kF16 ? 0x1p-11f : 0x1p-8f;
    for (size_t i = 0; i < n; ++i) bad += std::fabs(deq[i] - src[i]) > rel * std::fabs(src[i]) + 6e-8f;
  }
  EXPECT_EQ(bad, 0u) << t.name << " (" << storage_type_name(t.storage) << "): values outside the bound";
}

struct Case {
  const char* folder;
  StorageType quant;
  bool double_quant;
  uint32_t block_size;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.folder) + "_" + storage_type_name(info.param.quant) +
         (info.param.double_quant ? "_dq" : "") + "_bs" + std::to_string(info.param.block_size);
}

class ConvertStories : public ::testing::TestWithParam<Case> {};

TEST_P(ConvertStories, EveryTensorWithinItsBound) {
  QMODEL_REQUIRE_ASSETS(assets);
  const Case c = GetParam();
  TempDir tmp;
  ConvertOptions o;
  o.input = assets + "/stories260K/" + c.folder;
  o.output = tmp.file("model.qmodel");
  o.quant = c.quant;
  o.double_quant = c.double_quant;
  o.block_size = c.block_size;
  auto summary = converter::convert(o);
  ASSERT_TRUE(summary.ok()) << summary.status().to_string();
  EXPECT_EQ(summary->n_tensors, 47u);  // 48 header entries minus __metadata__; tied lm_head absent
  EXPECT_EQ(summary->n_quantized, is_float_storage(c.quant) ? 0u : 35u);  // 5 layers x 7 linears

  auto file = format::ModelFile::open(o.output, {/*verify_checksums=*/true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const format::ModelHeader& h = file.value()->header();
  EXPECT_EQ(h.config.n_layers, 5u);
  EXPECT_EQ(h.config.intermediate_size, 172u);
  ASSERT_NE(h.find_file("config.json"), nullptr);
  ASSERT_NE(h.find_file("tokenizer.json"), nullptr);
  ASSERT_FALSE(h.provenance.source_files.empty());
  EXPECT_EQ(h.provenance.source_files[0].name, "model.safetensors");
  EXPECT_EQ(h.provenance.source_files[0].size, std::filesystem::file_size(o.input + "/model.safetensors"));

  auto source = converter::Checkpoint::open(o.input);
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  for (const format::TensorInfo& t : h.tensors) {
    const converter::TensorEntry* e = source.value()->find(t.name);
    ASSERT_NE(e, nullptr) << t.name;
    EXPECT_EQ(t.shape, e->shape);
    std::vector<float> src(e->n_elems());
    converter::to_float(*e, 0, src.size(), src.data());
    expect_within_bound(t, view_of(*file.value(), t), src);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllStorage, ConvertStories,
    ::testing::Values(Case{"f32", StorageType::kNF4, false, 64}, Case{"f32", StorageType::kNF4, true, 64},
                      Case{"f32", StorageType::kFP4, false, 64}, Case{"f32", StorageType::kFP4, true, 64},
                      Case{"f32", StorageType::kINT8, false, 64}, Case{"f32", StorageType::kBF16, false, 64},
                      Case{"f32", StorageType::kF16, false, 64}, Case{"f32", StorageType::kF32, false, 64},
                      Case{"f16", StorageType::kNF4, true, 64}, Case{"f16", StorageType::kINT8, false, 64},
                      Case{"f16", StorageType::kF16, false, 64}, Case{"bf16", StorageType::kNF4, false, 64},
                      Case{"bf16", StorageType::kFP4, true, 64}, Case{"bf16", StorageType::kBF16, false, 64},
                      Case{"f32", StorageType::kNF4, false, 32}, Case{"f32", StorageType::kNF4, true, 128},
                      Case{"bf16", StorageType::kNF4, true, 4096}),
    case_name);

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Convert, ByteIdenticalAcrossThreadCounts) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  for (StorageType quant : {StorageType::kNF4, StorageType::kINT8}) {
    std::vector<std::string> outputs;
    for (unsigned threads : {1u, 2u, 7u}) {
      ConvertOptions o;
      o.input = assets + "/stories260K/f32";
      o.output = tmp.file("t" + std::to_string(threads) + ".qmodel");
      o.quant = quant;
      o.double_quant = quant == StorageType::kNF4;
      o.n_threads = threads;
      o.overwrite = true;
      auto s = converter::convert(o);
      ASSERT_TRUE(s.ok()) << s.status().to_string();
      outputs.push_back(slurp(o.output));
    }
    ASSERT_FALSE(outputs[0].empty());
    for (size_t i = 1; i < outputs.size(); ++i) {
      EXPECT_TRUE(outputs[0] == outputs[i]) << storage_type_name(quant) << ": output depends on the thread count";
    }
  }
}

TEST(Convert, RefusesToOverwriteWithoutForce) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  ConvertOptions o;
  o.input = assets + "/stories260K/bf16";
  o.output = tmp.file("m.qmodel");
  ASSERT_TRUE(converter::convert(o).ok());
  auto again = converter::convert(o);
  ASSERT_FALSE(again.ok());
  o.overwrite = true;
  EXPECT_TRUE(converter::convert(o).ok());
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(Convert, FailedConversionLeavesNoOutput) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  // A copy of the model whose safetensors is cut short: the reader rejects it.
  const std::string in = tmp.file("broken");
  std::filesystem::create_directory(in);
  for (const char* f : {"config.json", "tokenizer.json"}) {
    std::filesystem::copy_file(assets + "/stories260K/f32/" + f, in + "/" + f);
  }
  std::string st = slurp(assets + "/stories260K/f32/model.safetensors");
  st.resize(st.size() - 100);
  std::ofstream(in + "/model.safetensors", std::ios::binary) << st;
  const std::string out_dir = tmp.file("out");
  std::filesystem::create_directory(out_dir);
  ConvertOptions o;
  o.input = in;
  o.output = out_dir + "/m.qmodel";
  auto s = converter::convert(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("model.safetensors"), std::string::npos) << s.status().to_string();
  EXPECT_EQ(count_files(out_dir), 0u);

  o.input = assets + "/stories260K/f32";
  o.block_size = 48;  // not a power of two
  s = converter::convert(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(count_files(out_dir), 0u);

  o.block_size = 64;
  o.input = tmp.file("no-such-folder");
  EXPECT_FALSE(converter::convert(o).ok());
  EXPECT_EQ(count_files(out_dir), 0u);
}

TEST(Convert, DoubleQuantOnlyFor4Bit) {
  ConvertOptions o;
  o.input = "x";
  o.output = "y";
  o.quant = StorageType::kINT8;
  o.double_quant = true;
  auto s = converter::convert(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qmodel

namespace qmodel {
namespace {

// A copy of the stories260K F32 folder with element `index` of `name` set to `value` (the
// converter refuses incomplete checkpoints, so a bad value must sit inside a whole model).
void write_poisoned_model(const std::string& dir, const std::string& source, const std::string& name, uint64_t index,
                          float value) {
  std::filesystem::create_directory(dir);
  for (const char* f : {"config.json", "model.safetensors"}) std::filesystem::copy_file(source + "/" + f, dir + "/" + f);
  auto file = converter::SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const converter::TensorEntry* entry = nullptr;
  for (const auto& t : (*file)->tensors()) entry = t.name == name ? &t : entry;
  ASSERT_NE(entry, nullptr) << name;
  ASSERT_EQ(entry->dtype, SourceDType::kF32);
  const uint64_t offset = entry->file_offset + index * 4;
  file->reset();
  std::fstream out(dir + "/model.safetensors", std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(offset));
  out.write(reinterpret_cast<const char*>(&value), 4);
}

TEST(Convert, RejectsWeightsItCannotQuantize) {
  QMODEL_REQUIRE_ASSETS(assets);
  TempDir tmp;
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  write_poisoned_model(tmp.file("nan"), assets + "/stories260K/f32", name, 77, std::nanf(""));
  ConvertOptions o;
  o.input = tmp.file("nan");
  o.output = tmp.file("nan.qmodel");
  auto s = converter::convert(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(name), std::string::npos) << s.status().to_string();
  EXPECT_NE(s.status().message().find("element 77"), std::string::npos) << s.status().to_string();
  EXPECT_FALSE(std::filesystem::exists(o.output));

  o.quant = StorageType::kBF16;  // float storage keeps the value as it is
  EXPECT_TRUE(converter::convert(o).ok());

  // finite, but beyond fp16, which LLM.int8 casts to first
  write_poisoned_model(tmp.file("big"), assets + "/stories260K/f32", name, 77, 1.0e5f);
  o.input = tmp.file("big");
  o.output = tmp.file("big.qmodel");
  o.quant = StorageType::kINT8;
  s = converter::convert(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("fp16"), std::string::npos) << s.status().to_string();
  o.quant = StorageType::kNF4;
  EXPECT_TRUE(converter::convert(o).ok());
}

}  // namespace
}  // namespace qmodel
