// bitsandbytes folders written by transformers + bitsandbytes (tests/goldens/bnb) imported without
// requantizing: every block byte-identical to the folder's tensors, the folder's code tables and
// nested offset, and the imported model on the CPU backend within 1e-3 of an fp32 forward pass
// with bitsandbytes' own dequantized weights. Inconsistent folders are refused naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "bnb_fixtures.h"
#include "qmodel/converter/bnb_export.h"
#include "qmodel/converter/bnb_import.h"
#include "qmodel/converter/convert.h"
#include "qmodel/converter/planner.h"
#include "qmodel/format/reader.h"
#include "runtime/family_goldens.h"
#include "support/run_tool.h"
#include "support/temp_dir.h"

namespace qmodel::converter {
namespace {

using testing::bnb_dir;
using testing::bytes_of;

Status import_to(const std::string& dir, const std::string& out, const BnbImportRequest& request = {}) {
  ConvertOptions o;
  o.input = dir;
  o.output = out;
  o.overwrite = true;
  auto r = import_bnb(o, request);
  return r.ok() ? Status() : r.status();
}

class BnbImport : public ::testing::TestWithParam<std::string> {};

TEST_P(BnbImport, BlocksAreTheFolderBytes) {
  const std::string dir = bnb_dir(GetParam());
  ASSERT_TRUE(is_bnb_folder(dir));
  testing::TempDir tmp;
  // convert() recognises the folder and imports it.
  ConvertOptions o;
  o.input = dir;
  o.output = tmp.file("m.qmodel");
  auto summary = convert(o);
  ASSERT_TRUE(summary.ok()) << summary.status().to_string();
  auto file = format::ModelFile::open(o.output, {true});
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const format::ModelHeader& h = (*file)->header();
  EXPECT_EQ(h.provenance.options.rfind("import=bitsandbytes", 0), 0u) << h.provenance.options;
  const testing::StFolder folder = testing::open_st(dir);
  ASSERT_TRUE(folder.file);

  auto blob = [&](const format::TensorInfo& t, format::BlobRole role) {
    const format::BlobRef* b = t.find_blob(role);
    EXPECT_NE(b, nullptr) << t.name;
    if (!b) return std::string();
    auto bytes = (*file)->blob_bytes(*b);
    EXPECT_TRUE(bytes.ok());
    return bytes.ok() ? bytes_of(bytes.value()) : std::string();
  };
  auto folder_bytes = [&](const std::string& name) {
    const auto it = folder.by_name.find(name);
    EXPECT_NE(it, folder.by_name.end()) << name;
    return it == folder.by_name.end() ? std::string() : bytes_of(it->second->bytes);
  };
  size_t n_states = 0;
  for (const auto& [name, entry] : folder.by_name) {
    if (name.find(".quant_state.") != std::string::npos || name.find(".SCB") != std::string::npos) ++n_states;
  }
  size_t n_quantized = 0;
  for (const format::TensorInfo& t : h.tensors) {
    SCOPED_TRACE(t.name);
    EXPECT_NE(t.role, format::TensorRole::kNone);
    if (is_float_storage(t.storage)) {
      if (!t.transposed) EXPECT_EQ(blob(t, format::BlobRole::kData), folder_bytes(t.name));
      continue;
    }
    ++n_quantized;
    EXPECT_EQ(blob(t, format::BlobRole::kData), folder_bytes(t.name));
    if (t.storage == StorageType::kINT8) {
      const std::string module = t.name.substr(0, t.name.size() - 7);
      EXPECT_EQ(blob(t, format::BlobRole::kRowScale), folder_bytes(module + ".SCB"));
      EXPECT_EQ(t.shape, folder.by_name.at(t.name)->shape);
      continue;
    }
    const std::string kind = t.storage == StorageType::kNF4 ? "nf4" : "fp4";
    EXPECT_NE(GetParam().find(kind), std::string::npos);
    const nlohmann::json js = nlohmann::json::parse(folder_bytes(t.name + ".quant_state.bitsandbytes__" + kind));
    EXPECT_EQ(t.shape, js["shape"].get<std::vector<uint64_t>>());
    EXPECT_EQ(t.quant.block_size, js["blocksize"].get<uint32_t>());
    EXPECT_EQ(std::string(source_dtype_name(t.source_dtype)), "f32");
    const std::string qmap = folder_bytes(t.name + ".quant_map");
    ASSERT_EQ(t.quant.code_table.size(), 16u);
    EXPECT_EQ(std::memcmp(t.quant.code_table.data(), qmap.data(), 64), 0);
    if (t.quant.double_quant) {
      EXPECT_EQ(blob(t, format::BlobRole::kAbsmaxCodes), folder_bytes(t.name + ".absmax"));
      EXPECT_EQ(blob(t, format::BlobRole::kNestedAbsmax), folder_bytes(t.name + ".nested_absmax"));
      const std::string nmap = folder_bytes(t.name + ".nested_quant_map");
      ASSERT_EQ(t.quant.nested_code_table.size(), 256u);
      EXPECT_EQ(std::memcmp(t.quant.nested_code_table.data(), nmap.data(), 1024), 0);
      EXPECT_EQ(t.quant.nested_offset, static_cast<float>(js["nested_offset"].get<double>()));
      EXPECT_EQ(static_cast<double>(t.quant.nested_offset), js["nested_offset"].get<double>());  // exact float32
    } else {
      EXPECT_EQ(blob(t, format::BlobRole::kAbsmax), folder_bytes(t.name + ".absmax"));
    }
  }
  EXPECT_EQ(n_quantized, n_states);
  EXPECT_EQ(summary->n_quantized, n_states);
}

TEST_P(BnbImport, LogitsMatchBitsandbytesDequantization) {
  const std::string dir = bnb_dir(GetParam());
  const nlohmann::json golden = nlohmann::json::parse(testing::slurp(dir + "/golden.json"));
  testing::FamilyGolden g;
  g.prompt_ids = golden["prompt_ids"].get<std::vector<int32_t>>();
  g.greedy_ids = {0};
  const std::vector<float> expected = testing::read_f32(dir + "/logits.f32");
  ASSERT_EQ(expected.size(), g.prompt_ids.size() * golden["logits_shape"][1].get<size_t>());
  testing::TempDir tmp;
  ASSERT_TRUE(import_to(dir, tmp.file("m.qmodel")).ok());
  const testing::FamilyRun r = testing::run_family_model(tmp.file("m.qmodel"), g);
  const float diff = testing::max_abs_diff(r.logits, expected);
  EXPECT_LE(diff, 1e-3f);
  std::printf("%s: max |logit diff| vs bitsandbytes dequantized fp32 = %.3g\n", GetParam().c_str(), diff);
}

INSTANTIATE_TEST_SUITE_P(Goldens, BnbImport, ::testing::ValuesIn(testing::bnb_fixtures()),
                         [](const auto& info) { return info.param; });

// ---- refusals -----------------------------------------------------------------------------

// A copy of a fixture folder whose model.safetensors is `entries`.
std::string broken_copy(const testing::TempDir& tmp, const std::string& fixture, const std::vector<testing::StEntry>& entries) {
  const std::string dir = tmp.file("broken");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(bnb_dir(fixture) + "/config.json", dir + "/config.json");
  testing::write_st(dir + "/model.safetensors", entries);
  return dir;
}

Status import_entries(const testing::TempDir& tmp, const std::string& fixture, const std::vector<testing::StEntry>& e) {
  return import_to(broken_copy(tmp, fixture, e), tmp.file("x.qmodel"));
}

const std::string kW = "model.layers.0.mlp.down_proj.weight";

void expect_refused(const Status& s, const std::string& name, const std::string& what) {
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(name), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find(what), std::string::npos) << s.to_string();
}

TEST(BnbImportRefuses, InconsistentFolders) {
  testing::TempDir tmp;
  const auto nf4 = testing::entries_of(testing::open_st(bnb_dir("llama_nf4dq")));
  auto edit = [&](auto fn) {
    auto e = nf4;
    fn(e);
    return e;
  };
  auto erase = [](std::vector<testing::StEntry>& e, const std::string& name) {
    e.erase(std::remove_if(e.begin(), e.end(), [&](const testing::StEntry& x) { return x.name == name; }), e.end());
  };
  auto find = [](std::vector<testing::StEntry>& e, const std::string& name) -> testing::StEntry& {
    for (auto& x : e) {
      if (x.name == name) return x;
    }
    throw std::runtime_error("no " + name);
  };
  const std::string state = kW + ".quant_state.bitsandbytes__nf4";
  EXPECT_TRUE(import_entries(tmp, "llama_nf4dq", nf4).ok());  // the unmodified copy imports

  // No quant_state: the module's tensors (the first in file order is its F32 nested_absmax) are
  // claimed by nothing.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) { erase(e, state); })), kW, "without");
  // Unknown quant type.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) { find(e, state).name = kW + ".quant_state.bitsandbytes__int3"; })),
                 kW, "unknown quant_state 'bitsandbytes__int3'");
  // The JSON shape disagrees with the packed size.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) {
                   auto& s = find(e, state);
                   nlohmann::json j = nlohmann::json::parse(s.bytes);
                   j["shape"] = {64, 64};
                   s.bytes = j.dump();
                   s.shape = {s.bytes.size()};
                 })),
                 kW, "expected U8 [2048, 1], found U8 [4096, 1]");
  // blocksize not a bnb block size.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) {
                   auto& s = find(e, state);
                   nlohmann::json j = nlohmann::json::parse(s.bytes);
                   j["blocksize"] = 48;
                   s.bytes = j.dump();
                   s.shape = {s.bytes.size()};
                 })),
                 kW, "'blocksize'");
  // absmax one element short.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) {
                   auto& a = find(e, kW + ".absmax");
                   a.bytes.pop_back();
                   a.shape = {a.bytes.size()};
                 })),
                 kW + ".absmax", "expected U8 [128]");
  // Nested tensors missing.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) { erase(e, kW + ".nested_absmax"); })), kW,
                 "missing its tensor '" + kW + ".nested_absmax'");
  // A U8 tensor nobody claims.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) { e.push_back({"model.stray", "U8", {4}, "abcd"}); })),
                 "model.stray", "without a bitsandbytes quant_state");
  // An absmax without its quant_state (float, so not caught as a raw tensor).
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) {
                   e.push_back({"model.layers.0.mlp.extra.weight.absmax", "F32", {1}, std::string(4, '\0')});
                 })),
                 "model.layers.0.mlp.extra.weight.absmax", "without its quant_state");
  // quant_state JSON that is not JSON.
  expect_refused(import_entries(tmp, "llama_nf4dq", edit([&](auto& e) {
                   auto& s = find(e, state);
                   s.bytes = "{nope";
                   s.shape = {s.bytes.size()};
                 })),
                 kW, "not JSON");

  // LLM.int8: a GPU tile layout, a missing SCB row.
  const auto int8 = testing::entries_of(testing::open_st(bnb_dir("llama_int8")));
  auto e8 = int8;
  for (auto& x : e8) {
    if (x.name == "model.layers.0.mlp.down_proj.weight_format") x.bytes = std::string(1, '\1');
  }
  expect_refused(import_entries(tmp, "llama_int8", e8), "model.layers.0.mlp.down_proj.weight_format", "only 0 (row-major)");
  e8 = int8;
  for (auto& x : e8) {
    if (x.name == "model.layers.0.mlp.down_proj.SCB") {
      x.bytes.resize(x.bytes.size() - 4);
      x.shape = {x.bytes.size() / 4};
    }
  }
  expect_refused(import_entries(tmp, "llama_int8", e8), "model.layers.0.mlp.down_proj.SCB", "expected F32 [64]");
  e8 = int8;
  erase(e8, "model.layers.0.mlp.down_proj.SCB");
  expect_refused(import_entries(tmp, "llama_int8", e8), "model.layers.0.mlp.down_proj.weight", "without a bitsandbytes");
}

TEST(BnbImportRefuses, ConflictingRequestAndOptions) {
  testing::TempDir tmp;
  BnbImportRequest r;
  r.quant = StorageType::kFP4;
  Status s = import_to(bnb_dir("llama_nf4"), tmp.file("a.qmodel"), r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--quant fp4 conflicts"), std::string::npos) << s.to_string();
  r = {};
  r.double_quant = true;
  EXPECT_EQ(import_to(bnb_dir("llama_nf4"), tmp.file("a.qmodel"), r).code(), StatusCode::kInvalidArgument);
  r = {};
  r.block_size = 128;
  EXPECT_EQ(import_to(bnb_dir("llama_nf4"), tmp.file("a.qmodel"), r).code(), StatusCode::kInvalidArgument);
  r = {};
  r.quant = StorageType::kNF4;
  r.block_size = 64;
  r.double_quant = true;
  EXPECT_TRUE(import_to(bnb_dir("llama_nf4dq"), tmp.file("a.qmodel"), r).ok());  // agreeing options are fine
  ConvertOptions o;
  o.input = bnb_dir("llama_nf4");
  o.output = tmp.file("b.qmodel");
  o.skip_patterns = {"down_proj"};
  EXPECT_EQ(convert(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(o.output));
}

TEST(BnbImport, CommandLine) {
  testing::TempDir tmp;
  const std::string dir = bnb_dir("llama_nf4");
  auto r = testing::run_tool("qconvert", "'" + dir + "' -o '" + tmp.file("a.qmodel") + "' -q", tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = testing::run_tool("qconvert", "'" + dir + "' -o '" + tmp.file("b.qmodel") + "' -q --quant int8", tmp.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--quant int8 conflicts with the bitsandbytes folder"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("b.qmodel")));
  r = testing::run_tool("qconvert", "'" + dir + "' -o '" + tmp.file("c.qmodel") + "' -q --quant nf4", tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A normal checkpoint still defaults to nf4.
  r = testing::run_tool("qconvert", "'" + bnb_dir("llama_src") + "' -o '" + tmp.file("d.qmodel") + "' -q", tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto f = format::ModelFile::open(tmp.file("d.qmodel"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->header().quant_settings.quant, StorageType::kNF4);
}

// ---- the reader and planner contract --------------------------------------------------------

TEST(BnbSafetensors, U8AndI8OnlyOnRequest) {
  testing::TempDir tmp;
  testing::write_st(tmp.file("m.safetensors"), {{"a", "U8", {3}, "abc"}, {"b", "I8", {1}, "x"}, {"c", "F32", {1}, std::string(4, '\0')}});
  EXPECT_EQ(SafetensorsFile::open(tmp.file("m.safetensors")).status().code(), StatusCode::kUnsupported);
  SafetensorsOptions o;
  o.allow_u8_i8 = true;
  auto f = SafetensorsFile::open(tmp.file("m.safetensors"), o);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ((*f)->tensors().size(), 3u);
  EXPECT_EQ((*f)->tensors()[0].st_dtype, StDType::kU8);
  EXPECT_FALSE((*f)->tensors()[0].is_float());
  EXPECT_EQ((*f)->tensors()[1].st_dtype, StDType::kI8);
  EXPECT_EQ((*f)->tensors()[2].st_dtype, StDType::kF32);
  EXPECT_TRUE((*f)->tensors()[2].is_float());
  EXPECT_STREQ(st_dtype_name(StDType::kI8), "I8");
  EXPECT_EQ(st_dtype_size(StDType::kBF16), 2u);
  // The planner never takes a raw entry for a weight.
  format::ModelConfig config;
  config.n_layers = 0;
  format::ArchSpec arch;
  arch.family = "llama";
  auto plan = plan_tensors((*f)->tensors(), config, arch, ConvertOptions{});
  EXPECT_EQ(plan.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(plan.status().message().find("'a'"), std::string::npos);
}

TEST(BnbJson, PythonFloatRepr) {
  EXPECT_EQ(python_float_repr(0.05134176090359688), "0.05134176090359688");
  EXPECT_EQ(python_float_repr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(6.0), "6.0");
  EXPECT_EQ(python_float_repr(-0.5), "-0.5");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(123.456), "123.456");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_repr(2.5e22), "2.5e+22");
}

}  // namespace
}  // namespace qmodel::converter
