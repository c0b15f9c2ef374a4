// Checkpoint: the real stories260K folders (f32/f16/bf16), and sharded folders written here with
// an index, including every index inconsistency the reader must refuse.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qmodel/converter/checkpoint.h"
#include "qmodel/converter/hf_config.h"
#include "qmodel/format/half.h"

namespace qmodel::converter {
namespace {

const std::string kStories = std::string(QMODEL_TEST_ASSETS) + "/stories260K";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

struct FakeTensor {
  std::string name;
  std::vector<uint64_t> shape;
  float first_value;  // F32 values first_value, first_value + 1, ...
};

// Writes an F32 safetensors file holding `tensors` back to back in the given order.
void write_safetensors(const std::string& path, const std::vector<FakeTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const FakeTensor& t : tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    const uint64_t begin = data.size();
    for (uint64_t i = 0; i < n; ++i) {
      const float v = t.first_value + static_cast<float>(i);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  const uint64_t n = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/qmodel_ckpt_XXXXXX";
    QMODEL_ASSERT(mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { (void)std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
constexpr const char* kShard2 = "model-00002-of-00002.safetensors";

// A two-shard folder: shard 1 holds a, b; shard 2 holds c (index also lists them so).
void write_sharded(const TempDir& dir, const nlohmann::json& weight_map) {
  write_safetensors(dir / kShard1, {{"b", {2, 3}, 10.0f}, {"a", {4}, 0.0f}});
  write_safetensors(dir / kShard2, {{"c", {3}, 100.0f}});
  nlohmann::json index = {{"metadata", {{"total_size", 52}}}, {"weight_map", weight_map}};
  write_text(dir / kIndexFileName, index.dump(2));
}

const nlohmann::json kGoodMap = {{"a", kShard1}, {"b", kShard1}, {"c", kShard2}};

void expect_error(const std::string& dir, StatusCode code, const std::vector<std::string>& parts) {
  auto ckpt = Checkpoint::open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), code) << ckpt.status().to_string();
  for (const std::string& p : parts) {
    EXPECT_NE(ckpt.status().message().find(p), std::string::npos) << "'" << p << "' not in " << ckpt.status().message();
  }
}

TEST(Checkpoint, ReadsStories260KInAllDtypes) {
  if (!exists(kStories + "/f32/model.safetensors")) GTEST_SKIP() << "no test assets at " << kStories;
  const SourceDType dtypes[] = {SourceDType::kF32, SourceDType::kF16, SourceDType::kBF16};
  const char* dirs[] = {"f32", "f16", "bf16"};
  std::vector<std::unique_ptr<Checkpoint>> ckpts;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(dirs[i]);
    auto ckpt = Checkpoint::open(kStories + "/" + dirs[i]);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
    const Checkpoint& c = **ckpt;
    EXPECT_EQ(c.files(), std::vector<std::string>{"model.safetensors"});
    ASSERT_EQ(c.tensors().size(), 47u);  // embed + 5 x 9 + norm; tied, so no lm_head
    EXPECT_EQ(c.tensors().front().name, "model.embed_tokens.weight");
    EXPECT_EQ(c.find("lm_head.weight"), nullptr);
    const TensorEntry* embed = c.find("model.embed_tokens.weight");
    ASSERT_NE(embed, nullptr);
    EXPECT_EQ(embed->shape, (std::vector<uint64_t>{512, 64}));
    EXPECT_EQ(embed->dtype, dtypes[i]);
    for (int layer = 0; layer < 5; ++layer) {
      const std::string p = "model.layers." + std::to_string(layer) + ".";
      ASSERT_NE(c.find(p + "self_attn.k_proj.weight"), nullptr);
      EXPECT_EQ(c.find(p + "self_attn.q_proj.weight")->shape, (std::vector<uint64_t>{64, 64}));
      EXPECT_EQ(c.find(p + "self_attn.k_proj.weight")->shape, (std::vector<uint64_t>{32, 64}));
      EXPECT_EQ(c.find(p + "mlp.down_proj.weight")->shape, (std::vector<uint64_t>{64, 172}));
      EXPECT_EQ(c.find(p + "mlp.gate_proj.weight")->shape, (std::vector<uint64_t>{172, 64}));
      EXPECT_EQ(c.find(p + "input_layernorm.weight")->shape, (std::vector<uint64_t>{64}));
    }
    EXPECT_EQ(c.find("model.norm.weight")->shape, (std::vector<uint64_t>{64}));
    uint64_t previous_end = 0;
    for (const TensorEntry& t : c.tensors()) {  // offset order, contiguous
      EXPECT_EQ(t.file, "model.safetensors");
      if (&t != &c.tensors().front()) {
        EXPECT_EQ(t.file_offset, previous_end) << t.name;
      }
      previous_end = t.file_offset + t.bytes.size();
    }
    ckpts.push_back(std::move(*ckpt));
  }
  // The f16/bf16 files are roundings of the f32 one: same names, and every value rounds the same.
  ASSERT_EQ(ckpts[0]->tensors().size(), ckpts[2]->tensors().size());
  for (const TensorEntry& t32 : ckpts[0]->tensors()) {
    const TensorEntry* t16 = ckpts[1]->find(t32.name);
    const TensorEntry* tb16 = ckpts[2]->find(t32.name);
    ASSERT_NE(t16, nullptr);
    ASSERT_NE(tb16, nullptr);
    ASSERT_EQ(t16->shape, t32.shape);
    std::vector<float> f32(t32.n_elems()), f16(t32.n_elems()), bf16(t32.n_elems());
    to_float(t32, 0, t32.n_elems(), f32.data());
    to_float(*t16, 0, t16->n_elems(), f16.data());
    to_float(*tb16, 0, tb16->n_elems(), bf16.data());
    for (size_t i = 0; i < f32.size(); ++i) {
      ASSERT_EQ(f16[i], f16_to_float(float_to_f16(f32[i]))) << t32.name << "[" << i << "]";
      ASSERT_EQ(bf16[i], bf16_to_float(float_to_bf16(f32[i]))) << t32.name << "[" << i << "]";
    }
    ckpts[0]->release(t32);
  }
}

TEST(Checkpoint, OpensASingleFilePath) {
  if (!exists(kStories + "/bf16/model.safetensors")) GTEST_SKIP() << "no test assets at " << kStories;
  auto ckpt = Checkpoint::open(kStories + "/bf16/model.safetensors");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->dir(), kStories + "/bf16");
  EXPECT_EQ((*ckpt)->files(), std::vector<std::string>{"model.safetensors"});
  EXPECT_NE((*ckpt)->shard("model.safetensors"), nullptr);
  EXPECT_EQ((*ckpt)->total_tensor_bytes(), 524960u - 8u - 4888u);
}

TEST(Checkpoint, ReadsShardsInShardThenOffsetOrder) {
  TempDir dir;
  write_sharded(dir, kGoodMap);
  write_safetensors(dir / "model.safetensors", {{"stale", {1}, 0.0f}});  // the index wins
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  const Checkpoint& c = **ckpt;
  EXPECT_EQ(c.files(), (std::vector<std::string>{kShard1, kShard2}));
  ASSERT_EQ(c.tensors().size(), 3u);
  EXPECT_EQ(c.tensors()[0].name, "b");  // first in shard 1's data
  EXPECT_EQ(c.tensors()[1].name, "a");
  EXPECT_EQ(c.tensors()[2].name, "c");
  EXPECT_EQ(c.tensors()[2].file, kShard2);
  EXPECT_EQ(c.find("stale"), nullptr);
  EXPECT_EQ(c.index_metadata().at("total_size"), "52");
  const TensorEntry* b = c.find("b");
  ASSERT_NE(b, nullptr);
  float v[6];
  to_float(*b, 0, 6, v);
  EXPECT_EQ(v[0], 10.0f);
  EXPECT_EQ(v[5], 15.0f);
  c.release(*b);
  c.prefetch(*b);
  to_float(*b, 5, 1, v);
  EXPECT_EQ(v[0], 15.0f);
  EXPECT_EQ(c.total_tensor_bytes(), 52u);
}

TEST(Checkpoint, RejectsAMissingShard) {
  TempDir dir;
  write_sharded(dir, {{"a", kShard1}, {"b", kShard1}, {"c", kShard2}, {"d", "model-00003-of-00002.safetensors"}});
  expect_error(dir.path(), StatusCode::kNotFound, {"model-00003-of-00002.safetensors", "does not exist", "tensor 'd'"});
}

TEST(Checkpoint, RejectsAnIndexedTensorMissingFromItsShard) {
  TempDir dir;
  write_sharded(dir, {{"a", kShard1}, {"b", kShard1}, {"c", kShard2}, {"ghost", kShard2}});
  expect_error(dir.path(), StatusCode::kCorruptFile, {kShard2, "tensor 'ghost'", "not present"});
}

TEST(Checkpoint, RejectsAShardTensorMissingFromTheIndex) {
  TempDir dir;
  write_sharded(dir, {{"a", kShard1}, {"c", kShard2}});
  expect_error(dir.path(), StatusCode::kCorruptFile, {kShard1, "tensor 'b'", "not listed"});
}

TEST(Checkpoint, RejectsATensorInTheWrongShard) {
  TempDir dir;
  write_sharded(dir, {{"a", kShard2}, {"b", kShard1}, {"c", kShard2}});
  expect_error(dir.path(), StatusCode::kCorruptFile, {"tensor 'a'", "places this tensor in '" + std::string(kShard2)});
}

TEST(Checkpoint, RejectsATensorInTwoShards) {
  TempDir dir;
  write_sharded(dir, kGoodMap);
  write_safetensors(dir / kShard2, {{"c", {3}, 100.0f}, {"a", {4}, 0.0f}});
  expect_error(dir.path(), StatusCode::kCorruptFile, {"tensor 'a'", "also appears in '" + std::string(kShard1)});
}

TEST(Checkpoint, RejectsBadIndexFiles) {
  struct Row {
    const char* rule;
    std::string text;
    std::string part;
  };
  const std::vector<Row> rows = {
      {"not json", "{\"weight_map\":", "not valid JSON"},
      {"not an object", "[]", "must be a JSON object"},
      {"no weight_map", R"({"metadata":{}})", "missing key 'weight_map'"},
      {"weight_map not an object", R"({"weight_map":[]})", "'weight_map' must be an object"},
      {"empty weight_map", R"({"weight_map":{}})", "lists no tensors"},
      {"shard not a string", R"({"weight_map":{"a":1}})", "must be a file name"},
      {"path traversal", R"({"weight_map":{"a":"../model.safetensors"}})", "not a plain file name"},
      {"duplicate key", R"({"weight_map":{"a":"x.safetensors","a":"y.safetensors"}})", "duplicate key 'a'"},
      {"metadata not an object", R"({"metadata":3,"weight_map":{"a":"x.safetensors"}})", "'metadata' must be an object"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.rule);
    TempDir dir;
    write_text(dir / kIndexFileName, row.text);
    expect_error(dir.path(), StatusCode::kCorruptFile, {kIndexFileName, row.part});
  }
}

TEST(Checkpoint, ReportsCorruptShardsAndMissingFolders) {
  TempDir dir;
  write_sharded(dir, kGoodMap);
  write_text(dir / kShard2, std::string("\x03\0\0\0\0\0\0\0{}", 11));  // header length 3 > "{}"
  expect_error(dir.path(), StatusCode::kCorruptFile, {kShard2});

  TempDir empty;
  expect_error(empty.path(), StatusCode::kNotFound, {"has neither"});
  expect_error(empty / "nope", StatusCode::kNotFound, {"no such file"});
}

// make_synthetic_model's folders must be what this reader accepts: shards + index, config, and
// byte-identical output whatever the thread count.
TEST(Checkpoint, ReadsMakeSyntheticModelOutput) {
  const std::string tool = std::string(QMODEL_BIN_DIR) + "/make_synthetic_model";
  if (!exists(tool)) GTEST_SKIP() << tool << " not built";
  TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  ASSERT_EQ(std::system((tool + " '" + a + "' --shards 3 --layers 2 --seed 5 --threads 1").c_str()), 0);
  ASSERT_EQ(std::system((tool + " '" + b + "' --shards 3 --layers 2 --seed 5 --threads 3").c_str()), 0);
  auto ckpt = Checkpoint::open(a);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->files().size(), 3u);
  EXPECT_EQ((*ckpt)->tensors().size(), 1u + 2u * 9u + 2u);
  const TensorEntry* k = (*ckpt)->find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<uint64_t>{128, 256}));
  EXPECT_EQ(k->dtype, SourceDType::kBF16);
  EXPECT_EQ((*ckpt)->find("lm_head.weight")->shape, (std::vector<uint64_t>{512, 256}));
  std::vector<float> w(k->n_elems());
  to_float(*k, 0, k->n_elems(), w.data());
  double sum_sq = 0;
  for (float v : w) sum_sq += static_cast<double>(v) * v;
  const double std_dev = std::sqrt(sum_sq / static_cast<double>(w.size()));
  EXPECT_NEAR(std_dev, 0.02, 0.002);
  float norm[4];
  to_float(*(*ckpt)->find("model.norm.weight"), 0, 4, norm);
  for (float v : norm) EXPECT_NEAR(v, 1.0f, 0.05f);

  auto cfg = load_model_config(a);
  ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->n_layers, 2u);
  EXPECT_EQ(cfg->hidden_size, 256u);
  EXPECT_EQ(cfg->n_kv_heads, 4u);
  EXPECT_EQ(cfg->intermediate_size, 688u);
  EXPECT_EQ(cfg->vocab_size, 512u);
  EXPECT_FALSE(cfg->tie_word_embeddings);
  for (const std::string& f : (*ckpt)->files()) {
    EXPECT_EQ(std::system(("cmp -s '" + a + "/" + f + "' '" + b + "/" + f + "'").c_str()), 0) << f;
  }

  // f32 with classic config keys, one shard per tensor.
  const std::string c = dir / "c";
  ASSERT_EQ(std::system((tool + " '" + c + "' --dtype f32 --layers 1 --shards 12 --classic-config").c_str()), 0);
  auto f32 = Checkpoint::open(c);
  ASSERT_TRUE(f32.ok()) << f32.status().to_string();
  EXPECT_EQ((*f32)->files().size(), 12u);
  EXPECT_EQ((*f32)->tensors().front().name, "model.embed_tokens.weight");
  EXPECT_EQ((*f32)->tensors().front().dtype, SourceDType::kF32);
  auto classic = load_model_config(c);
  ASSERT_TRUE(classic.ok()) << classic.status().to_string();
  EXPECT_EQ(classic->torch_dtype, "float32");
  EXPECT_EQ(classic->rope_theta, 10000.0f);
  EXPECT_EQ(classic->head_dim, 32u);
  auto gen = load_generation_config(c);
  ASSERT_TRUE(gen.ok()) << gen.status().to_string();
  EXPECT_EQ(gen->eos_token_ids, std::vector<int32_t>{511});
}

}  // namespace
}  // namespace qmodel::converter
