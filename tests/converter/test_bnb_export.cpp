// .qmodel -> bitsandbytes folder. Against the folders transformers + bitsandbytes write themselves
// (tests/goldens/bnb): importing one and exporting it again gives the very same model.safetensors
// entries (names, dtypes, shapes, bytes, quant_state JSON) and quantization_config; a .qmodel we
// quantize from the fp32 source exports the names/dtypes/shapes transformers' save_pretrained
// writes; import∘export is the identity on the blobs; failures leave no folder behind.
// (Loading the exported folders with transformers is checked by tools/gen_bnb_fixtures.py
// --check-export; CI has no torch.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bnb_fixtures.h"
#include "qmodel/converter/bnb_export.h"
#include "qmodel/converter/bnb_import.h"
#include "qmodel/converter/convert.h"
#include "qmodel/format/reader.h"
#include "runtime/family_goldens.h"
#include "support/run_tool.h"
#include "support/temp_dir.h"

namespace qmodel::converter {
namespace {

using testing::bnb_dir;
using testing::bytes_of;

Status do_export(const std::string& model, const std::string& dir, bool overwrite = false) {
  BnbExportOptions e;
  e.input = model;
  e.output = dir;
  e.overwrite = overwrite;
  auto r = export_bnb(e);
  return r.ok() ? Status() : r.status();
}

Status do_import(const std::string& dir, const std::string& out) {
  ConvertOptions o;
  o.input = dir;
  o.output = out;
  o.overwrite = true;
  auto r = convert(o);
  return r.ok() ? Status() : r.status();
}

nlohmann::json quantization_config(const std::string& dir) {
  return nlohmann::json::parse(testing::slurp(dir + "/config.json"))["quantization_config"];
}

// quant_state JSON: the same keys and values, nested_offset within `offset_ulps` float32 ulps.
void expect_same_quant_state(const std::string& a, const std::string& b, int offset_ulps) {
  if (offset_ulps == 0) {
    EXPECT_EQ(a, b);
    return;
  }
  nlohmann::json ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  if (ja.contains("nested_offset") && jb.contains("nested_offset")) {
    const float oa = static_cast<float>(ja["nested_offset"].get<double>());
    const float ob = static_cast<float>(jb["nested_offset"].get<double>());
    EXPECT_LE(std::fabs(oa - ob), static_cast<float>(offset_ulps) * std::ldexp(1.0f, std::ilogb(ob) - 23)) << a << " vs " << b;
    ja.erase("nested_offset");
    jb.erase("nested_offset");
  }
  EXPECT_EQ(ja, jb);
}

// Every entry of `a` and `b`: the same names, dtypes and shapes; with `bytes`, the same bytes
// (quant_state JSON: see expect_same_quant_state).
void expect_same_entries(const std::string& a, const std::string& b, bool bytes, int offset_ulps = 0) {
  const testing::StFolder fa = testing::open_st(a), fb = testing::open_st(b);
  ASSERT_TRUE(fa.file && fb.file);
  std::vector<std::string> na, nb;
  for (const auto& [n, e] : fa.by_name) na.push_back(n);
  for (const auto& [n, e] : fb.by_name) nb.push_back(n);
  ASSERT_EQ(na, nb);
  for (const auto& [name, ea] : fa.by_name) {
    SCOPED_TRACE(name);
    const TensorEntry* eb = fb.by_name.at(name);
    EXPECT_EQ(ea->st_dtype, eb->st_dtype);
    EXPECT_EQ(ea->shape, eb->shape);
    if (name.find(".quant_state.") != std::string::npos) {
      expect_same_quant_state(bytes_of(ea->bytes), bytes_of(eb->bytes), offset_ulps);
    } else if (bytes) {
      EXPECT_EQ(bytes_of(ea->bytes), bytes_of(eb->bytes));
    } else if (name.find("quant_map") != std::string::npos && ea->bytes.size() == eb->bytes.size()) {
      // Equal values (our FP4 table holds -0.0 for code 8 where bnb 0.50 stores +0.0).
      std::vector<float> va(ea->bytes.size() / 4), vb(va.size());
      std::memcpy(va.data(), ea->bytes.data(), ea->bytes.size());
      std::memcpy(vb.data(), eb->bytes.data(), eb->bytes.size());
      EXPECT_EQ(va, vb);
    }
  }
}

// Two .qmodel files hold the same tensors: names, shapes, storage, quant params and blob bytes.
void expect_same_blobs(const std::string& a, const std::string& b) {
  auto fa = format::ModelFile::open(a), fb = format::ModelFile::open(b);
  ASSERT_TRUE(fa.ok() && fb.ok());
  const auto& ta = (*fa)->header().tensors;
  const auto& tb = (*fb)->header().tensors;
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    SCOPED_TRACE(ta[i].name);
    EXPECT_EQ(ta[i].name, tb[i].name);
    EXPECT_EQ(ta[i].shape, tb[i].shape);
    EXPECT_EQ(ta[i].storage, tb[i].storage);
    EXPECT_EQ(ta[i].source_dtype, tb[i].source_dtype);
    EXPECT_EQ(ta[i].role, tb[i].role);
    EXPECT_EQ(ta[i].transposed, tb[i].transposed);
    EXPECT_EQ(ta[i].quant.block_size, tb[i].quant.block_size);
    EXPECT_EQ(ta[i].quant.code_table, tb[i].quant.code_table);
    EXPECT_EQ(ta[i].quant.double_quant, tb[i].quant.double_quant);
    EXPECT_EQ(ta[i].quant.nested_offset, tb[i].quant.nested_offset);
    EXPECT_EQ(ta[i].quant.nested_code_table, tb[i].quant.nested_code_table);
    ASSERT_EQ(ta[i].blobs.size(), tb[i].blobs.size());
    for (size_t k = 0; k < ta[i].blobs.size(); ++k) {
      auto ba = (*fa)->blob_bytes(ta[i].blobs[k]);
      auto bb = (*fb)->blob_bytes(tb[i].blobs[k]);
      ASSERT_TRUE(ba.ok() && bb.ok());
      EXPECT_EQ(ta[i].blobs[k].role, tb[i].blobs[k].role);
      EXPECT_EQ(bytes_of(ba.value()), bytes_of(bb.value()));
    }
  }
}

class BnbExport : public ::testing::TestWithParam<std::string> {};

TEST_P(BnbExport, ImportThenExportGivesTransformersFolderBack) {
  const std::string ref = bnb_dir(GetParam());
  testing::TempDir tmp;
  ASSERT_TRUE(do_import(ref, tmp.file("a.qmodel")).ok());
  const Status s = do_export(tmp.file("a.qmodel"), tmp.file("out"));
  ASSERT_TRUE(s.ok()) << s.to_string();
  expect_same_entries(tmp.file("out"), ref, /*bytes=*/true);
  EXPECT_EQ(quantization_config(tmp.file("out")), quantization_config(ref));
  EXPECT_EQ(testing::slurp(tmp.file("out/generation_config.json")), testing::slurp(ref + "/generation_config.json"));
  // import(export(x)) == x, blob for blob.
  ASSERT_TRUE(do_import(tmp.file("out"), tmp.file("b.qmodel")).ok());
  expect_same_blobs(tmp.file("a.qmodel"), tmp.file("b.qmodel"));
  // No temporary left beside the output.
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename().string().find(".out.tmp-"), std::string::npos) << e.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, BnbExport, ::testing::ValuesIn(testing::bnb_fixtures()),
                         [](const auto& info) { return info.param; });

// Our own quantization of the fp32 source, exported: the entries transformers' save_pretrained
// writes for that model and quantization (names, dtypes, shapes, quant_state JSON, code tables,
// quantization_config). For NF4 the blocks are byte-identical to bitsandbytes' CPU quantizer's.
// With double quantization the offset (torch's float32 absmax.mean(), whose summation order is
// torch's) may differ in the last bit, and with it the nested absmax. FP4 (+0/-0 codes of values that round to zero) and INT8 (a +-1 code
// on a rounding tie, 1-2 elements per tensor) differ in a few elements from bnb's CPU path, so
// their bytes are not compared here.
TEST(BnbExport, QuantizedFromSourceMatchesTransformersLayout) {
  struct Case {
    std::string source, fixture;
    StorageType quant;
    bool dq, same_bytes;
  };
  const Case cases[] = {{bnb_dir("llama_src"), "llama_nf4dq", StorageType::kNF4, true, false},
                        {bnb_dir("llama_src"), "llama_nf4", StorageType::kNF4, false, true},
                        {bnb_dir("llama_src"), "llama_fp4", StorageType::kFP4, false, false},
                        {bnb_dir("llama_src"), "llama_int8", StorageType::kINT8, false, false},
                        {testing::family_golden_dir("gpt2"), "gpt2_nf4", StorageType::kNF4, false, true},
                        {testing::family_golden_dir("gpt2"), "gpt2_int8", StorageType::kINT8, false, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fixture);
    testing::TempDir tmp;
    ConvertOptions o;
    o.input = c.source;
    o.output = tmp.file("m.qmodel");
    o.quant = c.quant;
    o.double_quant = c.dq;
    o.compute_dtype = ComputeDType::kF32;
    o.n_threads = 2;
    ASSERT_TRUE(convert(o).ok());
    ASSERT_TRUE(do_export(o.output, tmp.file("out")).ok());
    expect_same_entries(tmp.file("out"), bnb_dir(c.fixture), c.same_bytes, /*offset_ulps=*/2);
    EXPECT_EQ(quantization_config(tmp.file("out")), quantization_config(bnb_dir(c.fixture)));
  }
}

TEST(BnbExport, SkippedModulesAndQuantizedHeadAreListed) {
  testing::TempDir tmp;
  ConvertOptions o;
  o.input = bnb_dir("llama_src");
  o.output = tmp.file("m.qmodel");
  o.skip_patterns = {"model.layers.1.mlp.down_proj"};
  o.n_threads = 2;
  ASSERT_TRUE(convert(o).ok());
  ASSERT_TRUE(do_export(o.output, tmp.file("out")).ok());
  nlohmann::json q = quantization_config(tmp.file("out"));
  EXPECT_EQ(q["llm_int8_skip_modules"], nlohmann::json({"model.layers.1.mlp.down_proj", "lm_head"}));
  EXPECT_EQ(q["bnb_4bit_compute_dtype"], "bfloat16");
  EXPECT_EQ(q["bnb_4bit_use_double_quant"], false);
  const testing::StFolder f = testing::open_st(tmp.file("out"));
  EXPECT_EQ(f.by_name.at("model.layers.1.mlp.down_proj.weight")->st_dtype, StDType::kF32);
  o.skip_patterns.clear();
  o.quantize_lm_head = true;
  o.overwrite = true;
  ASSERT_TRUE(convert(o).ok());
  ASSERT_TRUE(do_export(o.output, tmp.file("out"), /*overwrite=*/true).ok());
  q = quantization_config(tmp.file("out"));
  EXPECT_EQ(q["llm_int8_skip_modules"], nlohmann::json::array());
  EXPECT_TRUE(testing::open_st(tmp.file("out")).by_name.count("lm_head.weight.quant_state.bitsandbytes__nf4"));
}

TEST(BnbExport, GptConv1DKeptInFloatIsWrittenAsTransformersHoldsIt) {
  testing::TempDir tmp;
  ConvertOptions o;
  o.input = testing::family_golden_dir("gpt2");
  o.output = tmp.file("m.qmodel");
  o.skip_patterns = {"transformer.h.0.mlp.c_fc"};
  o.n_threads = 2;
  ASSERT_TRUE(convert(o).ok());
  ASSERT_TRUE(do_export(o.output, tmp.file("out")).ok());
  const testing::StFolder src = testing::open_st(o.input), out = testing::open_st(tmp.file("out"));
  const std::string name = "transformer.h.0.mlp.c_fc.weight";
  EXPECT_EQ(out.by_name.at(name)->shape, src.by_name.at(name)->shape);  // [in, out] again
  EXPECT_EQ(bytes_of(out.by_name.at(name)->bytes), bytes_of(src.by_name.at(name)->bytes));
  EXPECT_FALSE(out.by_name.count("lm_head.weight"));  // tied: transformers does not save it
}

TEST(BnbExport, RefusalsLeaveNothingBehind) {
  testing::TempDir tmp;
  ConvertOptions o;
  o.input = bnb_dir("llama_src");
  o.output = tmp.file("f32.qmodel");
  o.quant = StorageType::kF32;
  ASSERT_TRUE(convert(o).ok());
  Status s = do_export(o.output, tmp.file("out"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("no quantized tensor"), std::string::npos) << s.to_string();
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
  ASSERT_TRUE(do_import(bnb_dir("llama_nf4"), tmp.file("q.qmodel")).ok());
  std::filesystem::create_directories(tmp.file("taken"));
  EXPECT_EQ(do_export(tmp.file("q.qmodel"), tmp.file("taken")).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_empty(tmp.file("taken")));
  // A write that fails (the parent is not writable) leaves no temporary folder.
  std::filesystem::create_directories(tmp.file("ro"));
  std::filesystem::permissions(tmp.file("ro"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  if (::geteuid() != 0) {
    EXPECT_FALSE(do_export(tmp.file("q.qmodel"), tmp.file("ro/out")).ok());
    EXPECT_TRUE(std::filesystem::is_empty(tmp.file("ro")));
  }
  std::filesystem::permissions(tmp.file("ro"), std::filesystem::perms::owner_all);
  // Overwriting replaces the folder whole.
  std::ofstream(tmp.file("taken/stale.txt")) << "x";
  ASSERT_TRUE(do_export(tmp.file("q.qmodel"), tmp.file("taken"), true).ok());
  EXPECT_FALSE(std::filesystem::exists(tmp.file("taken/stale.txt")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("taken/model.safetensors")));
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) entries += e.path().filename().string()[0] == '.' ? 1 : 0;
  EXPECT_EQ(entries, 0u);  // no .taken.tmp-* or .old left
}

TEST(BnbExport, CommandLine) {
  testing::TempDir tmp;
  // Hugging Face folder -> bnb folder in one go.
  auto r = testing::run_tool("qconvert", "'" + bnb_dir("llama_src") + "' --quant nf4 --double-quant --compute-dtype f32 --to bnb -o '" +
                                             tmp.file("bnb") + "' -q",
                             tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_entries(tmp.file("bnb"), bnb_dir("llama_nf4dq"), /*bytes=*/false, /*offset_ulps=*/2);
  EXPECT_EQ(quantization_config(tmp.file("bnb")), quantization_config(bnb_dir("llama_nf4dq")));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().filename().string().find(".qmodel.tmp-"), std::string::npos) << e.path();
  }
  // .qmodel -> bnb folder; an existing output needs -f.
  r = testing::run_tool("qconvert", "'" + bnb_dir("gpt2_fp4") + "' -o '" + tmp.file("g.qmodel") + "' -q", tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::run_tool("qconvert", "'" + tmp.file("g.qmodel") + "' --to bnb -o '" + tmp.file("g") + "'", tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_entries(tmp.file("g"), bnb_dir("gpt2_fp4"), true);
  r = testing::run_tool("qconvert", "'" + tmp.file("g.qmodel") + "' --to bnb -o '" + tmp.file("g") + "'", tmp.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("exists"), std::string::npos) << r.err;
  r = testing::run_tool("qconvert", "'" + tmp.file("g.qmodel") + "' --to bnb -f -o '" + tmp.file("g") + "'", tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = testing::run_tool("qconvert", "'" + tmp.file("g.qmodel") + "' -o '" + tmp.file("x") + "'", tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  r = testing::run_tool("qconvert", "'" + tmp.file("g.qmodel") + "' --to bnb --quant nf4 -o '" + tmp.file("y") + "'", tmp.path());
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace qmodel::converter
