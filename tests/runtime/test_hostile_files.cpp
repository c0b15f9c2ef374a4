// Hostile but self-consistent .qmodel files: an attacker who recomputes every checksum (ModelWriter
// does it here) can still lie in the header and the blobs. Each lie is refused at Model::open with
// its own error, before anything is sized from it, or the file runs with bounded memory. (Rules
// the format itself enforces, such as block sizes 0/1/48/8192, byte sizes that overflow and NaN
// code tables, are in tests/format/test_corrupt_files.cpp; the writer refuses to write them.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "qmodel/runtime/model.h"
#include "qmodel/runtime/session.h"
#include "support/temp_dir.h"
#include "test_model_fixture.h"

namespace qmodel::runtime {
namespace {

using testing::TempDir;
using testing::TinyModelSpec;
using Header = format::ModelHeader;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Result<std::unique_ptr<Model>> write_and_open(const TempDir& dir, const TinyModelSpec& spec) {
  const std::string path = dir.file("hostile.qmodel");
  const Status written = testing::write_tiny_model(path, spec);
  EXPECT_TRUE(written.ok()) << written.to_string();
  return Model::open(path);
}

// Sets float `index` of the blobs of `role` in tensor `tensor` to `value`.
std::function<void(const std::string&, format::BlobRole, std::vector<uint8_t>&)> poison(const std::string& tensor,
                                                                                         format::BlobRole role,
                                                                                         size_t index, float value) {
  return [=](const std::string& name, format::BlobRole r, std::vector<uint8_t>& bytes) {
    if (name == tensor && r == role && bytes.size() >= 4 * (index + 1)) std::memcpy(&bytes[4 * index], &value, 4);
  };
}

struct Refused {
  const char* what;
  std::function<void(TinyModelSpec&)> make;
  const char* message;
};

TEST(HostileFiles, EachRefusedAtOpenWithItsOwnError) {
  TempDir dir;
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight";
  auto header = [](std::function<void(Header&)> edit) { return [edit](TinyModelSpec& s) { s.edit = edit; }; };
  const Refused cases[] = {
      // Sizes the graph is built from.
      {"a billion blocks", header([](Header& h) { h.config.n_layers = 1000000000; }), "num_hidden_layers 1000000000"},
      {"zero heads", header([](Header& h) { h.config.n_heads = 0; }), "must all be > 0"},
      {"head_dim 0", header([](Header& h) { h.config.head_dim = 0; }), "must all be > 0"},
      {"odd head_dim", header([](Header& h) { h.config.head_dim = 5; }), "expected [20, 16]"},
      {"head_dim 2^30", header([](Header& h) { h.config.head_dim = 1u << 30; }), "expected [4294967296, 16]"},
      {"head_dim and rotary dims 2^30 (a 2 GiB frequency table if sized first)",
       header([](Header& h) { h.config.head_dim = h.arch.rotary_dim = 1u << 30; }), "expected [4294967296, 16]"},
      {"kv heads that do not divide", header([](Header& h) { h.config.n_kv_heads = 3; }), "not a multiple"},
      {"a vocabulary the embedding lacks", header([](Header& h) { h.config.vocab_size = 1u << 31; }), "expected [2147483648"},
      {"a hidden size the tensors lack", header([](Header& h) { h.config.hidden_size = 1u << 30; }), "disagree"},
      {"an intermediate size the tensors lack", header([](Header& h) { h.config.intermediate_size = 4000000000u; }),
       "expected [4000000000, 16]"},
      // Numbers the arithmetic uses.
      {"odd rotary dims", header([](Header& h) { h.arch.rotary_dim = 3; }), "rotary dims 3"},
      {"NaN norm epsilon", header([](Header& h) { h.arch.norm_eps = kNan; }), "norm epsilon"},
      {"negative attention scale", header([](Header& h) { h.arch.attn_scale = -1.0f; }), "attention scale"},
      {"NaN rope_theta", header([](Header& h) { h.config.rope_theta = kNan; }), "rope_theta is not a finite value"},
      {"rope_theta 0", header([](Header& h) { h.config.rope_theta = 0.0f; }), "rope_theta is not a finite value"},
      {"infinite rope_theta", header([](Header& h) { h.config.rope_theta = kInf; }), "rope_theta is not a finite value"},
      {"NaN RoPE scaling factor",
       header([](Header& h) {
         h.config.rope_scaling.type = "linear";
         h.config.rope_scaling.factor = kNan;
       }),
       "factor must be a finite value > 0"},
      {"llama3 RoPE bands inverted",
       header([](Header& h) {
         h.config.rope_scaling.type = "llama3";
         h.config.rope_scaling.factor = 8.0f;
         h.config.rope_scaling.low_freq_factor = 4.0f;
         h.config.rope_scaling.high_freq_factor = 1.0f;
         h.config.rope_scaling.original_max_position_embeddings = 8192;
       }),
       "low_freq_factor < high_freq_factor"},
      // Scale constants and small parameters in the blobs.
      {"NaN absmax",
       [&](TinyModelSpec& s) {
         s.linear_storage = StorageType::kNF4;
         s.edit_blob = poison(q0, format::BlobRole::kAbsmax, 1, kNan);
       },
       "absmax of block 1 is nan"},
      {"infinite nested absmax",
       [&](TinyModelSpec& s) {
         s.linear_storage = StorageType::kNF4;
         s.double_quant = true;
         s.edit_blob = poison(q0, format::BlobRole::kNestedAbsmax, 0, kInf);
       },
       "nested absmax 0 is inf"},
      {"NaN INT8 row scale",
       [&](TinyModelSpec& s) {
         s.linear_storage = StorageType::kINT8;
         s.edit_blob = poison(q0, format::BlobRole::kRowScale, 3, -kNan);
       },
       "row scale of row 3"},
      {"NaN norm weight",
       [&](TinyModelSpec& s) { s.edit_blob = poison("model.layers.1.input_layernorm.weight", format::BlobRole::kData, 7, kNan); },
       "model.layers.1.input_layernorm.weight"},
      // The embedded tokenizer.
      {"tokenizer.json that is not JSON", [](TinyModelSpec& s) { s.tokenizer_json = "{\"model\": "; }, "embedded tokenizer.json"},
      {"tokenizer.json nested 100000 deep",
       [](TinyModelSpec& s) { s.tokenizer_json = std::string(100000, '[') + std::string(100000, ']'); },
       "embedded tokenizer.json"},
      {"tokenizer with an id beyond int32",
       [](TinyModelSpec& s) {
         s.tokenizer_json = R"({"model": {"type": "BPE", "vocab": {"a": 4294967296, "b": 1}, "merges": []}})";
       },
       "embedded tokenizer.json"},
      {"tokenizer merges of unknown tokens",
       [](TinyModelSpec& s) {
         s.tokenizer_json = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["x y"]}})";
       },
       "embedded tokenizer.json"},
  };
  for (const Refused& c : cases) {
    TinyModelSpec spec;
    c.make(spec);
    auto model = write_and_open(dir, spec);
    ASSERT_FALSE(model.ok()) << c.what;
    EXPECT_NE(model.status().message().find(c.message), std::string::npos) << c.what << ": " << model.status().message();
  }
}

// Lies that cannot hurt: the file opens and generates with bounded memory.
TEST(HostileFiles, HarmlessLiesRunBounded) {
  TempDir dir;
  struct Runs {
    const char* what;
    std::function<void(Header&)> edit;
  };
  const Runs cases[] = {
      // The field is a u32, so 2^40 cannot be stored; the largest value stands in for it. The
      // default session context is min(max_position_embeddings, 4096) either way.
      {"max context 2^32 - 1", [](Header& h) { h.config.max_position_embeddings = UINT32_MAX; }},
      {"max context 0 (unknown)", [](Header& h) { h.config.max_position_embeddings = 0; }},
      // Ids no sampled token can equal: they simply never stop generation.
      {"eos ids outside the vocabulary",
       [](Header& h) {
         h.config.eos_token_ids = {1 << 30, -7};
         h.generation.eos_token_ids = {INT32_MAX, INT32_MIN};
       }},
  };
  for (const Runs& c : cases) {
    TinyModelSpec spec;
    spec.edit = c.edit;
    auto model = write_and_open(dir, spec);
    ASSERT_TRUE(model.ok()) << c.what << ": " << model.status().to_string();
    auto session = Session::create(**model);
    ASSERT_TRUE(session.ok()) << c.what << ": " << session.status().to_string();
    GenerateOptions gen;
    gen.max_new_tokens = 5;
    auto out = (*session)->generate({1, 3, 4}, gen);
    ASSERT_TRUE(out.ok()) << c.what << ": " << out.status().to_string();
    EXPECT_EQ(out->ids.size(), 5u) << c.what;
    for (int32_t id : out->ids) EXPECT_TRUE(id >= 0 && id < 32) << c.what;
  }
}

}  // namespace
}  // namespace qmodel::runtime
