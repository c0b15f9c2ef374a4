// PyTorch checkpoints: TorchFile and Checkpoint over the fixtures of tools/gen_torch_fixtures.py
// (tests/goldens/torch/), and the table of hostile inputs, each refused with its own error, with no
// marker file created and no output file left by convert().
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "qmodel/converter/checkpoint.h"
#include "qmodel/converter/convert.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/converter/torch_checkpoint.h"
#include "support/temp_dir.h"

namespace qmodel::converter {
namespace {

namespace fs = std::filesystem;

const std::string kTorch = std::string(QMODEL_SOURCE_DIR) + "/tests/goldens/torch";
const std::string kTiny = kTorch + "/tiny_llama";
constexpr const char* kMarker = "/tmp/qmodel_torch_pwned_marker";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::map<std::string, const TensorEntry*> by_name(const std::vector<TensorEntry>& tensors) {
  std::map<std::string, const TensorEntry*> out;
  for (const TensorEntry& t : tensors) out[t.name] = &t;
  return out;
}

void expect_same_tensors(const std::vector<TensorEntry>& expected, const std::vector<TensorEntry>& actual) {
  const auto a = by_name(actual);
  ASSERT_EQ(expected.size(), actual.size());
  for (const TensorEntry& e : expected) {
    const auto it = a.find(e.name);
    ASSERT_NE(it, a.end()) << e.name;
    const TensorEntry& t = *it->second;
    EXPECT_EQ(t.dtype, e.dtype) << e.name;
    EXPECT_EQ(t.shape, e.shape) << e.name;
    ASSERT_EQ(t.bytes.size(), e.bytes.size()) << e.name;
    EXPECT_EQ(std::memcmp(t.bytes.data(), e.bytes.data(), e.bytes.size()), 0) << e.name;
  }
}

std::unique_ptr<SafetensorsFile> reference(const std::string& tag) {
  auto st = SafetensorsFile::open(kTiny + "/st_" + tag + "/model.safetensors");
  EXPECT_TRUE(st.ok()) << st.status().to_string();
  return st.ok() ? std::move(st).value() : nullptr;
}

struct Variant {
  const char* folder;
  const char* reference;
  bool legacy;
};

class TorchVariants : public ::testing::TestWithParam<Variant> {};

TEST_P(TorchVariants, SameTensorsAsSafetensors) {
  const Variant v = GetParam();
  auto ref = reference(v.reference);
  ASSERT_TRUE(ref);
  auto file = TorchFile::open(kTiny + "/" + v.folder + "/pytorch_model.bin");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ((*file)->legacy(), v.legacy);
  expect_same_tensors(ref->tensors(), (*file)->tensors());
  // The int64 and bool buffers are skipped, not refused.
  ASSERT_EQ((*file)->skipped().size(), 2u);
  EXPECT_EQ((*file)->skipped()[0].name, "model.position_ids");
  EXPECT_EQ((*file)->skipped()[0].dtype, TorchDType::kI64);
  EXPECT_EQ((*file)->skipped()[1].dtype, TorchDType::kBool);
  // Contiguous tensors are views of the mapping; the transposed lm_head view is a copy.
  const ByteSpan whole = (*file)->file_bytes();
  for (const TensorEntry& t : (*file)->tensors()) {
    const bool inside = t.bytes.data() >= whole.data() && t.bytes.data() < whole.data() + whole.size();
    EXPECT_EQ(inside, t.name != "lm_head.weight") << t.name;
    if (inside) EXPECT_EQ(t.bytes.data(), whole.data() + t.file_offset) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchVariants,
                         ::testing::Values(Variant{"bin_f32", "f32", false}, Variant{"bin_f16", "f16", false},
                                           Variant{"bin_bf16", "bf16", false}, Variant{"bin_legacy", "f32", true},
                                           Variant{"bin_legacy_f16", "f16", true}, Variant{"bin_zip64", "f32", false}),
                         [](const auto& info) { return std::string(info.param.folder); });

TEST(TorchCheckpoint, ShardedIndexMatchesSingleFile) {
  auto ref = reference("f32");
  ASSERT_TRUE(ref);
  auto ckpt = Checkpoint::open(kTiny + "/bin_sharded");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  expect_same_tensors(ref->tensors(), (*ckpt)->tensors());
  EXPECT_EQ((*ckpt)->files(), (std::vector<std::string>{"pytorch_model-00001-of-00003.bin", "pytorch_model-00002-of-00003.bin",
                                                        "pytorch_model-00003-of-00003.bin"}));
  EXPECT_EQ((*ckpt)->index_file(), kTorchIndexFileName);
  EXPECT_EQ((*ckpt)->skipped().size(), 2u);
  ASSERT_EQ((*ckpt)->warnings().size(), 1u);
  EXPECT_NE((*ckpt)->warnings()[0].find("model.position_ids (int64 [1, 64])"), std::string::npos) << (*ckpt)->warnings()[0];
  for (const std::string& f : (*ckpt)->files()) {
    EXPECT_EQ((*ckpt)->file_bytes(f).size(), fs::file_size(kTiny + "/bin_sharded/" + f));
    EXPECT_EQ((*ckpt)->shard(f), nullptr);
    EXPECT_NE((*ckpt)->torch_shard(f), nullptr);
  }
  for (const TensorEntry& t : (*ckpt)->tensors()) {  // release/prefetch keep the data readable
    (*ckpt)->prefetch(t);
    (*ckpt)->release(t);
  }
  expect_same_tensors(ref->tensors(), (*ckpt)->tensors());
}

TEST(TorchCheckpoint, IndexInconsistenciesRefused) {
  testing::TempDir dir;
  for (const auto& e : fs::directory_iterator(kTiny + "/bin_sharded")) fs::copy(e.path(), dir.path());
  std::string index = read_file(dir.file(kTorchIndexFileName));
  // Move one tensor to the wrong shard in the index.
  const std::string from = "\"model.embed_tokens.weight\": \"pytorch_model-00001-of-00003.bin\"";
  ASSERT_NE(index.find(from), std::string::npos);
  std::string bad = index;
  bad.replace(bad.find(from), from.size(), "\"model.embed_tokens.weight\": \"pytorch_model-00002-of-00003.bin\"");
  std::ofstream(dir.file(kTorchIndexFileName), std::ios::trunc) << bad;
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("places this tensor in"), std::string::npos) << ckpt.status().to_string();
  // Drop a skipped buffer from the index: it is still a tensor of the shard, so not listed is an error.
  bad = index;
  const size_t at = bad.find("\"model.position_ids\"");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, std::string("\"model.position_ids\"").size(), "\"model.renamed_ids\"");
  std::ofstream(dir.file(kTorchIndexFileName), std::ios::trunc) << bad;
  ckpt = Checkpoint::open(dir.path());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("not listed in pytorch_model.bin.index.json"), std::string::npos)
      << ckpt.status().to_string();
}

TEST(TorchCheckpoint, SafetensorsWinsOverBin) {
  testing::TempDir dir;
  fs::copy(kTiny + "/st_f32/model.safetensors", dir.path());
  fs::copy(kTiny + "/bin_f16/pytorch_model.bin", dir.path());
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->files(), std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE((*ckpt)->skipped().empty());
  // A .bin given directly is read as torch, whatever else is in the folder.
  ckpt = Checkpoint::open(dir.file("pytorch_model.bin"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->files(), std::vector<std::string>{"pytorch_model.bin"});
  EXPECT_EQ((*ckpt)->tensors()[0].dtype, SourceDType::kF16);
}

TEST(TorchCheckpoint, BinOnlyFolderOpens) {
  auto ckpt = Checkpoint::open(kTiny + "/bin_bf16");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->files(), std::vector<std::string>{"pytorch_model.bin"});
  EXPECT_EQ((*ckpt)->index_file(), "");
}

// ---- hostile inputs -------------------------------------------------------------------------

struct Hostile {
  const char* file;
  StatusCode code;
  std::vector<std::string> expect;  // substrings of the message
};

const std::vector<Hostile>& hostile_cases() {
  static const std::vector<Hostile> cases = {
      {"os_system", StatusCode::kCorruptFile, {"GLOBAL: global 'posix.system' is not allowed", "nothing was executed", "at offset"}},
      {"builtins_exec", StatusCode::kCorruptFile, {"global 'builtins.exec' is not allowed", "at offset"}},
      {"builtins_eval", StatusCode::kCorruptFile, {"global 'builtins.eval' is not allowed"}},
      {"subprocess_popen", StatusCode::kCorruptFile, {"GLOBAL: global 'subprocess.Popen' is not allowed"}},
      {"subprocess_popen_p4", StatusCode::kCorruptFile, {"STACK_GLOBAL: global 'subprocess.Popen' is not allowed"}},
      {"unknown_global", StatusCode::kCorruptFile, {"global 'mymodule.Evil' is not allowed"}},
      {"stack_global_system", StatusCode::kCorruptFile, {"STACK_GLOBAL: global 'posix.system' is not allowed"}},
      {"reduce_non_callable", StatusCode::kCorruptFile, {"REDUCE on a storage type", "not an allowed callable"}},
      {"inst_opcode", StatusCode::kCorruptFile, {"opcode INST (0x69) is not accepted"}},
      {"obj_opcode", StatusCode::kCorruptFile, {"opcode OBJ (0x6f) is not accepted"}},
      {"ext_opcode", StatusCode::kCorruptFile, {"opcode EXT1 (0x82) is not accepted"}},
      {"deep_nesting", StatusCode::kCorruptFile, {"MARKs nested deeper than 64"}},
      {"deep_lists", StatusCode::kCorruptFile, {"containers nested deeper than 64"}},
      {"binget_undefined", StatusCode::kCorruptFile, {"BINGET of memo index 7, which was never stored"}},
      {"huge_long_binput", StatusCode::kCorruptFile, {"LONG_BINPUT index 4294967295 exceeds the memo limit"}},
      {"truncated", StatusCode::kCorruptFile, {"pickle: GLOBAL: unterminated"}},
      {"garbage", StatusCode::kCorruptFile, {"at offset", "pickle: unknown opcode 0x00"}},
      {"non_dict_root", StatusCode::kCorruptFile, {"holds a tuple, not a state dict"}},
      {"offset_past_entry", StatusCode::kCorruptFile, {"tensor 'w'", "reach element 6", "has 4 elements"}},
      {"size_overflow", StatusCode::kCorruptFile, {"tensor 'w'", "element count of shape [1099511627776, 1099511627776] overflows"}},
      {"stride_overflow", StatusCode::kCorruptFile, {"tensor 'w'", "size [5, 2] with stride [4611686018427387904, 1] overflows 64 bits"}},
      {"storage_size_mismatch", StatusCode::kCorruptFile, {"storage '0' holds 8 float32 elements (32 bytes)", "has 16 bytes"}},
      {"dotdot_name", StatusCode::kCorruptFile, {"zip entry 'archive/../../etc/evil'", "contains '..'"}},
      {"absolute_name", StatusCode::kCorruptFile, {"zip entry '/tmp/evil'", "absolute"}},
      {"compressed_data", StatusCode::kUnsupported, {"archive/data/0", "is compressed (method 8)"}},
      {"legacy_os_system", StatusCode::kCorruptFile, {"global 'posix.system' is not allowed"}},
  };
  return cases;
}

bool contains_all(const std::string& s, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) {
    if (s.find(p) == std::string::npos) return false;
  }
  return true;
}

TEST(TorchHostile, EachRefusedWithItsOwnError) {
  ::unlink(kMarker);
  std::set<std::string> messages;
  for (const Hostile& h : hostile_cases()) {
    SCOPED_TRACE(h.file);
    const std::string path = kTorch + "/hostile/" + h.file + ".bin";
    ASSERT_TRUE(exists(path)) << path << " (run tools/gen_torch_fixtures.py)";
    auto file = TorchFile::open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), h.code) << file.status().to_string();
    EXPECT_TRUE(contains_all(file.status().message(), h.expect)) << file.status().to_string();
    EXPECT_NE(file.status().message().find(std::string(h.file) + ".bin"), std::string::npos) << "names the file";
    EXPECT_TRUE(messages.insert(file.status().message()).second) << "same error as another case";
    EXPECT_FALSE(exists(kMarker)) << "the payload ran";
  }
}

TEST(TorchHostile, ConvertLeavesNoOutput) {
  ::unlink(kMarker);
  const std::string config = read_file(kTiny + "/bin_f32/config.json");
  for (const Hostile& h : hostile_cases()) {
    SCOPED_TRACE(h.file);
    testing::TempDir dir;
    std::ofstream(dir.file("config.json")) << config;
    fs::copy(kTorch + "/hostile/" + h.file + ".bin", dir.file("pytorch_model.bin"));
    ConvertOptions o;
    o.input = dir.path();
    o.output = dir.file("out.qmodel");
    o.n_threads = 1;
    auto s = convert(o);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains_all(s.status().message(), h.expect)) << s.status().to_string();
    EXPECT_FALSE(exists(o.output));
    for (const auto& e : fs::directory_iterator(dir.path())) {
      EXPECT_TRUE(e.path().filename() == "config.json" || e.path().filename() == "pytorch_model.bin") << e.path();
    }
    EXPECT_FALSE(exists(kMarker)) << "the payload ran";
  }
}

TEST(TorchHostile, GoodControlOpens) {  // the hostile files differ from this one only in the attack
  auto file = TorchFile::open(kTorch + "/hostile/good.bin");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  ASSERT_EQ((*file)->tensors().size(), 1u);
  std::vector<float> out(4);
  to_float((*file)->tensors()[0], 0, 4, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4}));
}

// Byte-level corruptions of a real checkpoint: every truncation and a sweep of byte flips must
// fail cleanly or still describe in-bounds tensors (ASan checks the reads).
TEST(TorchHostile, CorruptedRealFileNeverReadsOutOfBounds) {
  for (const char* folder : {"bin_f32", "bin_legacy"}) {
    const std::string bytes = read_file(kTiny + "/" + folder + "/pytorch_model.bin");
    std::vector<std::string> inputs;
    for (size_t cut = 0; cut < bytes.size(); cut += 97) inputs.push_back(bytes.substr(0, cut));
    for (size_t pos = 0; pos < bytes.size(); pos += 61) {
      std::string m = bytes;
      m[pos] = static_cast<char>(m[pos] ^ 0x5a);
      inputs.push_back(m);
    }
    for (const std::string& in : inputs) {
      auto file = TorchFile::open_memory("mutated.bin", ByteSpan(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
      if (!file.ok()) continue;
      std::vector<float> out;
      for (const TensorEntry& t : (*file)->tensors()) {
        out.resize(static_cast<size_t>(t.n_elems()));
        to_float(t, 0, t.n_elems(), out.data());
      }
    }
  }
}

TEST(TorchZip, DirectoryOfRealCheckpoint) {
  const std::string bytes = read_file(kTiny + "/bin_zip64/pytorch_model.bin");
  auto entries = read_zip_directory("z.bin", ByteSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  ASSERT_TRUE(entries.ok()) << entries.status().to_string();
  bool has_pkl = false;
  for (const ZipEntry& e : *entries) {
    has_pkl |= e.name == "pytorch_model/data.pkl";
    EXPECT_EQ(e.method, 0);
    EXPECT_LE(e.data_offset + e.size, bytes.size());
  }
  EXPECT_TRUE(has_pkl);
}

}  // namespace
}  // namespace qmodel::converter
