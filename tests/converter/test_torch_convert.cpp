// .bin round trips through convert(): the same model saved as safetensors and as pytorch_model.bin
// (single zip, 3 shards + index, fp16, bf16, legacy, ZIP64; the bloom and GPT-2 family goldens;
// stories260K written here as a torch checkpoint) converts to .qmodel files whose tensors are
// identical: same names, shapes, storage, quantization constants and blob bytes. Provenance
// differs (other source files), so whole files are not compared.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "qmodel/converter/convert.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/converter/torch_checkpoint.h"
#include "qmodel/format/reader.h"
#include "support/temp_dir.h"

namespace qmodel::converter {
namespace {

namespace fs = std::filesystem;

const std::string kTorch = std::string(QMODEL_SOURCE_DIR) + "/tests/goldens/torch";
const std::string kFamilies = std::string(QMODEL_SOURCE_DIR) + "/tests/goldens/families";

Result<ConvertSummary> run(const std::string& input, const std::string& output, StorageType quant) {
  ConvertOptions o;
  o.input = input;
  o.output = output;
  o.quant = quant;
  o.n_threads = 2;
  o.overwrite = true;
  return convert(o);
}

void expect_same_qmodel_tensors(const std::string& a_path, const std::string& b_path) {
  auto a = format::ModelFile::open(a_path);
  auto b = format::ModelFile::open(b_path);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  const auto& ta = (*a)->header().tensors;
  const auto& tb = (*b)->header().tensors;
  ASSERT_EQ(ta.size(), tb.size());
  std::map<std::string, const format::TensorInfo*> index;
  for (const auto& t : tb) index[t.name] = &t;
  for (const auto& t : ta) {
    SCOPED_TRACE(t.name);
    ASSERT_EQ(index.count(t.name), 1u);
    const format::TensorInfo& u = *index[t.name];
    EXPECT_EQ(t.shape, u.shape);
    EXPECT_EQ(t.storage, u.storage);
    EXPECT_EQ(t.source_dtype, u.source_dtype);
    EXPECT_EQ(t.role, u.role);
    EXPECT_EQ(t.transposed, u.transposed);
    ASSERT_EQ(t.blobs.size(), u.blobs.size());
    for (size_t i = 0; i < t.blobs.size(); ++i) {
      auto x = (*a)->blob_bytes(t.blobs[i]);
      auto y = (*b)->blob_bytes(u.blobs[i]);
      ASSERT_TRUE(x.ok() && y.ok());
      ASSERT_EQ(x->size(), y->size());
      EXPECT_EQ(std::memcmp(x->data(), y->data(), x->size()), 0) << "blob " << i;
      EXPECT_EQ(t.blobs[i].xxh3, u.blobs[i].xxh3);
    }
  }
}

struct RoundTrip {
  const char* name;
  std::string safetensors_dir;
  std::string bin_dir;
};

class TorchRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(TorchRoundTrip, IdenticalTensors) {
  const RoundTrip& r = GetParam();
  testing::TempDir tmp;
  for (StorageType quant : {StorageType::kF32, StorageType::kNF4}) {
    SCOPED_TRACE(storage_type_name(quant));
    auto st = run(r.safetensors_dir, tmp.file("st.qmodel"), quant);
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    auto pt = run(r.bin_dir, tmp.file("pt.qmodel"), quant);
    ASSERT_TRUE(pt.ok()) << pt.status().to_string();
    EXPECT_EQ(st->n_tensors, pt->n_tensors);
    EXPECT_EQ(st->n_params, pt->n_params);
    expect_same_qmodel_tensors(tmp.file("st.qmodel"), tmp.file("pt.qmodel"));
  }
}

const std::string kTiny = kTorch + "/tiny_llama";
INSTANTIATE_TEST_SUITE_P(
    Fixtures, TorchRoundTrip,
    ::testing::Values(RoundTrip{"single", kTiny + "/st_f32", kTiny + "/bin_f32"},
                      RoundTrip{"sharded", kTiny + "/st_f32", kTiny + "/bin_sharded"},
                      RoundTrip{"f16", kTiny + "/st_f16", kTiny + "/bin_f16"},
                      RoundTrip{"bf16", kTiny + "/st_bf16", kTiny + "/bin_bf16"},
                      RoundTrip{"legacy", kTiny + "/st_f32", kTiny + "/bin_legacy"},
                      RoundTrip{"legacy_f16", kTiny + "/st_f16", kTiny + "/bin_legacy_f16"},
                      RoundTrip{"zip64", kTiny + "/st_f32", kTiny + "/bin_zip64"},
                      RoundTrip{"bloom", kFamilies + "/bloom", kTorch + "/bloom"},
                      RoundTrip{"gpt2_legacy", kFamilies + "/gpt2", kTorch + "/gpt2_legacy"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(TorchConvert, SkippedBuffersAreReported) {
  testing::TempDir tmp;
  auto s = run(kTiny + "/bin_f32", tmp.file("x.qmodel"), StorageType::kF32);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  bool found = false;
  for (const std::string& w : s->warnings) {
    found |= w.find("skipped 2 non-float tensor(s)") != std::string::npos &&
             w.find("model.layers.0.self_attn.causal_mask (bool [4, 4])") != std::string::npos;
  }
  EXPECT_TRUE(found);
}

// ---- a minimal torch.save writer (zip and legacy), for stories260K ----------------------------

void put_le(std::string* s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string short_unicode(const std::string& s) {
  std::string out = "\x8c";
  out.push_back(static_cast<char>(s.size()));
  return out + s;
}

std::string pickle_int(uint64_t v) {
  std::string out = "\x8a\x08";
  put_le(&out, v, 8);
  return out;
}

const char* storage_class(SourceDType d) {
  return d == SourceDType::kF32 ? "FloatStorage" : d == SourceDType::kF16 ? "HalfStorage" : "BFloat16Storage";
}

// The state dict pickle torch.save writes: {name: _rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict())}.
std::string state_pickle(const std::vector<TensorEntry>& tensors, bool legacy) {
  std::string p = "\x80\x02}(";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorEntry& t = tensors[i];
    p += short_unicode(t.name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + short_unicode("storage") + "ctorch\n" +
         storage_class(t.dtype) + "\n" + short_unicode(std::to_string(i)) + short_unicode("cpu") + pickle_int(t.n_elems()) +
         (legacy ? "N" : "") + "tQ" + pickle_int(0) + "(";
    for (uint64_t d : t.shape) p += pickle_int(d);
    p += "t(";
    uint64_t stride = 1;
    std::vector<uint64_t> strides(t.shape.size());
    for (size_t d = t.shape.size(); d-- > 0;) strides[d] = stride, stride *= t.shape[d];
    for (uint64_t s : strides) p += pickle_int(s);
    p += "t\x89" "ccollections\nOrderedDict\n)Rtq";
    p.push_back(static_cast<char>(i & 0xff));  // BINPUT, exercising the memo
    p += "R";
  }
  return p + "u.";
}

// Stored zip entries (no compression, CRC left 0 in both headers: our reader does not need it).
std::string zip(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, central;
  for (const auto& [name, data] : files) {
    const uint64_t header = out.size();
    put_le(&out, 0x04034b50, 4);
    put_le(&out, 20, 2), put_le(&out, 0, 2), put_le(&out, 0, 2), put_le(&out, 0, 4), put_le(&out, 0, 4);
    put_le(&out, data.size(), 4), put_le(&out, data.size(), 4), put_le(&out, name.size(), 2), put_le(&out, 0, 2);
    out += name + data;
    put_le(&central, 0x02014b50, 4);
    put_le(&central, 20, 2), put_le(&central, 20, 2), put_le(&central, 0, 2), put_le(&central, 0, 2);
    put_le(&central, 0, 4), put_le(&central, 0, 4), put_le(&central, data.size(), 4), put_le(&central, data.size(), 4);
    put_le(&central, name.size(), 2), put_le(&central, 0, 2), put_le(&central, 0, 2), put_le(&central, 0, 2);
    put_le(&central, 0, 2), put_le(&central, 0, 4), put_le(&central, header, 4);
    central += name;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  put_le(&out, 0x06054b50, 4);
  put_le(&out, 0, 4), put_le(&out, files.size(), 2), put_le(&out, files.size(), 2);
  put_le(&out, central.size(), 4), put_le(&out, cd_offset, 4), put_le(&out, 0, 2);
  return out;
}

std::string torch_save(const std::vector<TensorEntry>& tensors, bool legacy) {
  if (!legacy) {
    std::vector<std::pair<std::string, std::string>> files = {{"archive/data.pkl", state_pickle(tensors, false)},
                                                              {"archive/byteorder", "little"}};
    for (size_t i = 0; i < tensors.size(); ++i) {
      files.emplace_back("archive/data/" + std::to_string(i),
                         std::string(reinterpret_cast<const char*>(tensors[i].bytes.data()), tensors[i].bytes.size()));
    }
    files.emplace_back("archive/version", "3\n");
    return zip(files);
  }
  std::string out = "\x80\x02\x8a\x0a";
  out += std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10) + ".";
  out += "\x80\x02M\xe9\x03.";
  out += "\x80\x02}(" + short_unicode("little_endian") + "\x88u.";
  out += state_pickle(tensors, true);
  out += "\x80\x02](";
  for (size_t i = 0; i < tensors.size(); ++i) out += short_unicode(std::to_string(i));
  out += "e.";
  for (const TensorEntry& t : tensors) {
    put_le(&out, t.n_elems(), 8);
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  }
  return out;
}

TEST(TorchConvert, Stories260KAsPytorchModelBin) {
  QMODEL_REQUIRE_ASSETS(assets);
  const std::string src = assets + "/stories260K/f32";
  auto st = SafetensorsFile::open(src + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  for (bool legacy : {false, true}) {
    SCOPED_TRACE(legacy ? "legacy" : "zip");
    testing::TempDir tmp;
    const std::string dir = tmp.file("model");
    fs::create_directory(dir);
    for (const auto& e : fs::directory_iterator(src)) {
      if (e.path().filename() != "model.safetensors") fs::copy(e.path(), dir);
    }
    std::ofstream(dir + "/pytorch_model.bin", std::ios::binary) << torch_save((*st)->tensors(), legacy);
    for (StorageType quant : {StorageType::kF32, StorageType::kNF4}) {
      auto a = run(src, tmp.file("st.qmodel"), quant);
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      auto b = run(dir, tmp.file("pt.qmodel"), quant);
      ASSERT_TRUE(b.ok()) << b.status().to_string();
      expect_same_qmodel_tensors(tmp.file("st.qmodel"), tmp.file("pt.qmodel"));
    }
  }
}

}  // namespace
}  // namespace qmodel::converter
