// make_synthetic_model: writes a deterministic Hugging Face Llama folder with random weights
// (config.json, generation_config.json, model.safetensors or N shards + index, a small byte-level
// BPE tokenizer.json + tokenizer_config.json) for tests and benchmarks at real shapes. Weights are
// a pure function of (seed, tensor, element index), so the output is byte-identical for any thread
// count; tensors stream out in bounded chunks, so a 16 GB Llama-3-8B folder needs ~100 MB of RAM.
//   make_synthetic_model OUT_DIR [--preset tiny|llama3-8b] [--dtype bf16|f16|f32] [--shards N]
//                        [--seed S] [--layers L] [--classic-config] [--threads T]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "qmodel/format/half.h"

namespace {

using nlohmann::json;

// ---- model shapes --------------------------------------------------------------------------

struct Preset {
  uint32_t hidden, layers, heads, kv_heads, intermediate, vocab, max_positions;
  double rope_theta;
};

constexpr Preset kTiny = {256, 4, 8, 4, 688, 512, 2048, 10000.0};
constexpr Preset kLlama3_8b = {4096, 32, 32, 8, 14336, 128256, 8192, 500000.0};
constexpr double kRmsNormEps = 1e-5;
constexpr double kInitRange = 0.02;  // transformers' initializer_range: the weights' std
constexpr float kInitStd = static_cast<float>(kInitRange);
constexpr float kNormNoise = 0.01f;  // norms are 1 + small noise, so a bug that ignores them shows
constexpr uint64_t kChunkElems = 8u << 20;
constexpr uint64_t kProgressMinBytes = 256ull << 20;

enum class DType { kF32, kF16, kBF16 };

struct Options {
  std::string out_dir;
  std::string preset = "tiny";
  std::string dtype = "bf16";
  uint32_t shards = 1;
  uint64_t seed = 0;
  int layers = -1;
  bool classic_config = false;
  unsigned threads = 0;
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  bool is_norm = false;
  uint64_t id = 0;  // position in Hugging Face order: seeds the tensor's random stream
  uint64_t n_elems() const {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return n;
  }
};

std::vector<TensorSpec> llama_tensors(const Preset& p) {
  const uint64_t head_dim = p.hidden / p.heads;
  std::vector<TensorSpec> t;
  auto add = [&](std::string name, std::vector<uint64_t> shape, bool norm = false) {
    t.push_back({std::move(name), std::move(shape), norm, t.size()});
  };
  add("model.embed_tokens.weight", {p.vocab, p.hidden});
  for (uint32_t l = 0; l < p.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    add(pre + "input_layernorm.weight", {p.hidden}, true);
    add(pre + "self_attn.q_proj.weight", {p.heads * head_dim, p.hidden});
    add(pre + "self_attn.k_proj.weight", {p.kv_heads * head_dim, p.hidden});
    add(pre + "self_attn.v_proj.weight", {p.kv_heads * head_dim, p.hidden});
    add(pre + "self_attn.o_proj.weight", {p.hidden, p.heads * head_dim});
    add(pre + "post_attention_layernorm.weight", {p.hidden}, true);
    add(pre + "mlp.gate_proj.weight", {p.intermediate, p.hidden});
    add(pre + "mlp.up_proj.weight", {p.intermediate, p.hidden});
    add(pre + "mlp.down_proj.weight", {p.hidden, p.intermediate});
  }
  add("model.norm.weight", {p.hidden}, true);
  add("lm_head.weight", {p.vocab, p.hidden});
  return t;
}

// ---- deterministic values --------------------------------------------------------------------

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall, variance 4/12)
// centred and scaled. Bounded at +-3.46, which suits weights and costs one hash per element.
inline float approx_normal(uint64_t key, uint64_t index) {
  const uint64_t r = splitmix64(key ^ (index * 0xd1b54a32d192ed03ull));
  const uint32_t sum = static_cast<uint32_t>(r & 0xffff) + static_cast<uint32_t>((r >> 16) & 0xffff) +
                       static_cast<uint32_t>((r >> 32) & 0xffff) + static_cast<uint32_t>(r >> 48);
  constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16
  return (static_cast<float>(sum) - 2.0f * 65536.0f) * kScale;
}

void fill_chunk(const TensorSpec& t, uint64_t key, uint64_t first, uint64_t count, DType dtype, uint8_t* out) {
  for (uint64_t i = 0; i < count; ++i) {
    const float n = approx_normal(key, first + i);
    const float v = t.is_norm ? 1.0f + kNormNoise * n : kInitStd * n;
    if (dtype == DType::kF32) {
      std::memcpy(out + 4 * i, &v, 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? qmodel::float_to_bf16(v) : qmodel::float_to_f16(v);
      std::memcpy(out + 2 * i, &h, 2);
    }
  }
}

// ---- safetensors writing ---------------------------------------------------------------------

class Writer {
 public:
  Writer(DType dtype, uint64_t seed, unsigned threads, uint64_t total_bytes)
      : dtype_(dtype), seed_(seed), threads_(threads), total_bytes_(total_bytes),
        start_(std::chrono::steady_clock::now()) {}

  size_t elem_bytes() const { return dtype_ == DType::kF32 ? 4 : 2; }

  // One safetensors file: tensors sorted by name (what the reference writer does for one dtype).
  bool write_file(const std::string& path, std::vector<const TensorSpec*> tensors) {
    std::sort(tensors.begin(), tensors.end(), [](const TensorSpec* a, const TensorSpec* b) { return a->name < b->name; });
    const char* dtype_name = dtype_ == DType::kF32 ? "F32" : dtype_ == DType::kF16 ? "F16" : "BF16";
    json header = {{"__metadata__", {{"format", "pt"}}}};
    uint64_t offset = 0;
    for (const TensorSpec* t : tensors) {
      const uint64_t n_bytes = t->n_elems() * elem_bytes();
      header[t->name] = {{"dtype", dtype_name}, {"shape", t->shape}, {"data_offsets", {offset, offset + n_bytes}}};
      offset += n_bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as the reference pads
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return fail("cannot create " + path);
    uint8_t prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
    bool ok = std::fwrite(prefix, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    for (const TensorSpec* t : tensors) {
      if (!ok) break;
      ok = write_tensor(*t, f);
    }
    ok = std::fclose(f) == 0 && ok;
    return ok ? true : fail("write failed: " + path);
  }

 private:
  bool write_tensor(const TensorSpec& t, std::FILE* f) {
    const uint64_t key = splitmix64(seed_ * 0x9e3779b97f4a7c15ull + t.id);
    const uint64_t n = t.n_elems();
    buffer_.resize(static_cast<size_t>(std::min(n, kChunkElems) * elem_bytes()));
    for (uint64_t first = 0; first < n; first += kChunkElems) {
      const uint64_t count = std::min(kChunkElems, n - first);
      fill_parallel(t, key, first, count);
      const size_t n_bytes = static_cast<size_t>(count * elem_bytes());
      if (std::fwrite(buffer_.data(), 1, n_bytes, f) != n_bytes) return false;
      report(n_bytes);
    }
    return true;
  }

  void fill_parallel(const TensorSpec& t, uint64_t key, uint64_t first, uint64_t count) {
    const uint64_t per_thread = (count + threads_ - 1) / threads_;
    if (threads_ <= 1 || count < 65536) {
      fill_chunk(t, key, first, count, dtype_, buffer_.data());
      return;
    }
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < threads_; ++w) {
      const uint64_t begin = w * per_thread;
      if (begin >= count) break;
      const uint64_t len = std::min(per_thread, count - begin);
      pool.emplace_back(fill_chunk, std::cref(t), key, first + begin, len, dtype_, buffer_.data() + begin * elem_bytes());
    }
    for (std::thread& th : pool) th.join();
  }

  void report(size_t n_bytes) {
    done_bytes_ += n_bytes;
    if (total_bytes_ < kProgressMinBytes) return;
    const uint64_t step = total_bytes_ / 20;
    if (done_bytes_ < next_report_ && done_bytes_ != total_bytes_) return;
    next_report_ = done_bytes_ + step;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "  %.2f / %.2f GB (%3.0f%%), %.2f GB/s\n", static_cast<double>(done_bytes_) / 1e9,
                 static_cast<double>(total_bytes_) / 1e9, 100.0 * static_cast<double>(done_bytes_) / static_cast<double>(total_bytes_),
                 secs > 0 ? static_cast<double>(done_bytes_) / 1e9 / secs : 0.0);
  }

  static bool fail(const std::string& what) {
    std::fprintf(stderr, "make_synthetic_model: %s\n", what.c_str());
    return false;
  }

  DType dtype_;
  uint64_t seed_;
  unsigned threads_;
  uint64_t total_bytes_;
  uint64_t done_bytes_ = 0, next_report_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::vector<uint8_t> buffer_;
};

// Splits tensors (in Hugging Face order) into `n` contiguous groups of roughly equal bytes.
std::vector<std::vector<const TensorSpec*>> split_shards(const std::vector<TensorSpec>& tensors, uint32_t n) {
  uint64_t total = 0;
  for (const TensorSpec& t : tensors) total += t.n_elems();
  std::vector<std::vector<const TensorSpec*>> shards(n);
  uint64_t done = 0;
  size_t shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t left_tensors = tensors.size() - i, left_shards = n - shard;
    // Move on when this shard has its share, or when every later shard needs one tensor each.
    if (!shards[shard].empty() && (done * n >= total * (shard + 1) || left_tensors < left_shards) && shard + 1 < n) ++shard;
    shards[shard].push_back(&tensors[i]);
    done += tensors[i].n_elems();
  }
  return shards;
}

// ---- tokenizer -------------------------------------------------------------------------------

// Training text for the BPE merges: plain English, so common words become single tokens.
constexpr const char* kCorpus =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. "
    "One day, she saw a big red ball in the park. She wanted to play with it, so she ran to her mom and said, "
    "\"Mom, can I play with the ball?\" Her mom smiled and said, \"Yes, you can play, but be careful.\" "
    "Lily played with the ball all day. She threw it high into the sky and caught it with her hands. "
    "Then a small dog came running. The dog wanted to play too. Lily and the dog became good friends. "
    "They played together every day after that, and they were very happy. The end.\n"
    "Tom was a brave boy who liked to explore the forest near his house. Every morning he walked along the river, "
    "looking at the trees, the birds and the flowers. One morning he found a shiny stone under a tree. "
    "It was blue and green and it sparkled in the light. Tom picked it up and put it in his pocket. "
    "When he got home, he showed the stone to his sister Anna. \"Look what I found!\" he said. "
    "Anna was surprised. \"It is beautiful,\" she said. They decided to keep it in a little box by the window. "
    "Sometimes at night the stone would glow, and the children would watch it before they went to sleep.\n"
    "The quick brown fox jumps over the lazy dog. Numbers like 1, 2, 3, 10, 42 and 2024 appear in text too. "
    "What is the answer? It is simple: read, think, write, and learn something new every single day.\n";

constexpr const char* kBosToken = "<|begin_of_text|>";
constexpr const char* kEosToken = "<|end_of_text|>";

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards.
std::array<std::string, 256> byte_symbols() {
  std::array<std::string, 256> out;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const uint32_t cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xc0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    out[b] = s;
  }
  return out;
}

// ASCII approximation of the GPT-2 pre-tokenizer regex: contractions, " ?letters", " ?digits",
// " ?punctuation", whitespace runs (a space before a word goes with the word).
std::vector<std::string> pre_tokenize(const std::string& text) {
  auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t'; };
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    if (text[i] == '\'' && i + 1 < text.size() && std::string("stmd").find(text[i + 1]) != std::string::npos) {
      j = i + 2;
    } else if (is_space(text[i]) && !(text[i] == ' ' && i + 1 < text.size() && !is_space(text[i + 1]))) {
      while (j < text.size() && is_space(text[j])) ++j;
      if (j < text.size() && j - i > 1 && text[j - 1] == ' ') --j;  // leave the space for the word
    } else {
      if (text[i] == ' ') ++j;
      const char c = text[j];
      if (is_alpha(c)) {
        while (j < text.size() && is_alpha(text[j])) ++j;
      } else if (is_digit(c)) {
        while (j < text.size() && is_digit(text[j])) ++j;
      } else {
        while (j < text.size() && !is_alpha(text[j]) && !is_digit(text[j]) && !is_space(text[j])) ++j;
      }
    }
    out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

struct Bpe {
  std::vector<std::string> vocab;  // id -> token (byte-level symbols)
  std::vector<std::pair<std::string, std::string>> merges;
};

// Learns merges until the vocabulary has `target` tokens (or nothing is left to merge). Ties in
// pair frequency go to the lexicographically smallest pair, so the result is fixed.
Bpe train_bpe(size_t target) {
  const std::array<std::string, 256> symbols = byte_symbols();
  Bpe bpe;
  std::map<std::string, size_t> ids;
  for (const std::string& s : symbols) {
    ids[s] = bpe.vocab.size();
    bpe.vocab.push_back(s);
  }
  std::map<std::string, long> counts;
  for (const std::string& w : pre_tokenize(kCorpus)) ++counts[w];
  std::vector<std::pair<std::vector<std::string>, long>> words;
  for (const auto& [w, c] : counts) {
    std::vector<std::string> seq;
    for (unsigned char b : w) seq.push_back(symbols[b]);
    words.emplace_back(std::move(seq), c);
  }
  while (bpe.vocab.size() < target) {
    std::map<std::pair<std::string, std::string>, long> pairs;
    for (const auto& [seq, c] : words) {
      for (size_t k = 0; k + 1 < seq.size(); ++k) pairs[{seq[k], seq[k + 1]}] += c;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto [a, b] = best->first;
    const std::string merged = a + b;
    bpe.merges.emplace_back(a, b);
    if (ids.emplace(merged, bpe.vocab.size()).second) bpe.vocab.push_back(merged);
    for (auto& [seq, c] : words) {
      std::vector<std::string> next;
      for (size_t k = 0; k < seq.size(); ++k) {
        if (k + 1 < seq.size() && seq[k] == a && seq[k + 1] == b) {
          next.push_back(merged);
          ++k;
        } else {
          next.push_back(seq[k]);
        }
      }
      seq = std::move(next);
    }
  }
  return bpe;
}

json added_token(size_t id, const char* content) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},  {"normalized", false}, {"special", true}};
}

// tokenizer.json (byte-level BPE as GPT-2 / Llama 3 use it, BOS added by the post-processor) and
// tokenizer_config.json. Returns the BOS and EOS ids.
std::pair<size_t, size_t> tokenizer_files(uint32_t model_vocab, std::string* tokenizer, std::string* tokenizer_config) {
  const Bpe bpe = train_bpe(std::min<size_t>(model_vocab, 512) - 2);
  const size_t bos = bpe.vocab.size(), eos = bos + 1;
  json vocab = json::object();
  for (size_t id = 0; id < bpe.vocab.size(); ++id) vocab[bpe.vocab[id]] = id;
  json merges = json::array();
  for (const auto& [a, b] : bpe.merges) merges.push_back(a + " " + b);
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added_token(bos, kBosToken), added_token(eos, kEosToken)}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", kBosToken}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", kBosToken}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", kBosToken}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{kBosToken, {{"id", kBosToken}, {"ids", {bos}}, {"tokens", {kBosToken}}}}}}}},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
  *tokenizer = tok.dump(2);
  json decoder = json::object();
  for (size_t id : {bos, eos}) {
    decoder[std::to_string(id)] = added_token(id, id == bos ? kBosToken : kEosToken);
    decoder[std::to_string(id)].erase("id");
  }
  const json cfg = {{"add_bos_token", true}, {"add_eos_token", false}, {"bos_token", kBosToken}, {"eos_token", kEosToken},
                    {"clean_up_tokenization_spaces", false}, {"model_max_length", 1000000},
                    {"tokenizer_class", "PreTrainedTokenizerFast"}, {"added_tokens_decoder", decoder}};
  *tokenizer_config = cfg.dump(2);
  return {bos, eos};
}

// ---- config files ----------------------------------------------------------------------------

json model_config(const Preset& p, const Options& o, size_t bos, size_t eos) {
  const char* torch_dtype = o.dtype == "f32" ? "float32" : o.dtype == "f16" ? "float16" : "bfloat16";
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_size", p.hidden},
            {"intermediate_size", p.intermediate},
            {"num_hidden_layers", p.layers},
            {"num_attention_heads", p.heads},
            {"num_key_value_heads", p.kv_heads},
            {"vocab_size", p.vocab},
            {"max_position_embeddings", p.max_positions},
            {"rms_norm_eps", kRmsNormEps},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", false},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"bos_token_id", bos},
            {"eos_token_id", eos},
            {"initializer_range", kInitRange},
            {"use_cache", true}};
  // transformers 5 writes dtype/rope_parameters/head_dim; older versions torch_dtype/rope_theta.
  if (o.classic_config || o.dtype == "f32") {
    c["torch_dtype"] = torch_dtype;
    c["rope_theta"] = p.rope_theta;
    c["rope_scaling"] = nullptr;
  } else {
    c["dtype"] = torch_dtype;
    c["head_dim"] = p.hidden / p.heads;
    c["rope_parameters"] = {{"rope_theta", p.rope_theta}, {"rope_type", "default"}};
    c["transformers_version"] = "5.17.0";
  }
  return c;
}

bool write_text(const std::filesystem::path& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::fprintf(stderr, "make_synthetic_model: cannot create %s\n", path.c_str());
    return false;
  }
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::fprintf(stderr, "make_synthetic_model: write failed: %s\n", path.c_str());
    return false;
  }
  return true;
}

std::string shard_name(uint32_t k, uint32_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05u-of-%05u.safetensors", k, n);
  return name;
}

int run(const Options& o) {
  Preset p = o.preset == "llama3-8b" ? kLlama3_8b : kTiny;
  if (o.layers >= 0) p.layers = static_cast<uint32_t>(o.layers);
  const DType dtype = o.dtype == "f32" ? DType::kF32 : o.dtype == "f16" ? DType::kF16 : DType::kBF16;
  const std::vector<TensorSpec> tensors = llama_tensors(p);
  if (o.shards < 1 || o.shards > tensors.size()) {
    std::fprintf(stderr, "make_synthetic_model: --shards must be in 1..%zu\n", tensors.size());
    return 1;
  }
  const std::filesystem::path dir(o.out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "make_synthetic_model: cannot create %s: %s\n", o.out_dir.c_str(), ec.message().c_str());
    return 1;
  }

  std::string tokenizer, tokenizer_config;
  const auto [bos, eos] = tokenizer_files(p.vocab, &tokenizer, &tokenizer_config);
  const json generation = {{"_from_model_config", true}, {"bos_token_id", bos}, {"eos_token_id", eos},
                           {"transformers_version", "5.17.0"}};
  if (!write_text(dir / "config.json", model_config(p, o, bos, eos).dump(2) + "\n") ||
      !write_text(dir / "generation_config.json", generation.dump(2) + "\n") ||
      !write_text(dir / "tokenizer.json", tokenizer) || !write_text(dir / "tokenizer_config.json", tokenizer_config + "\n")) {
    return 1;
  }

  const size_t elem = dtype == DType::kF32 ? 4 : 2;
  uint64_t total_bytes = 0;
  for (const TensorSpec& t : tensors) total_bytes += t.n_elems() * elem;
  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  Writer writer(dtype, o.seed, threads, total_bytes);
  if (total_bytes >= kProgressMinBytes) {
    std::fprintf(stderr, "make_synthetic_model: %s %s, %zu tensors, %.2f GB in %u file(s), %u threads\n", o.preset.c_str(),
                 o.dtype.c_str(), tensors.size(), static_cast<double>(total_bytes) / 1e9, o.shards, threads);
  }
  if (o.shards == 1) {
    std::vector<const TensorSpec*> all;
    for (const TensorSpec& t : tensors) all.push_back(&t);
    return writer.write_file((dir / "model.safetensors").string(), all) ? 0 : 1;
  }
  json weight_map = json::object();
  const auto groups = split_shards(tensors, o.shards);
  for (uint32_t k = 0; k < o.shards; ++k) {
    const std::string name = shard_name(k + 1, o.shards);
    for (const TensorSpec* t : groups[k]) weight_map[t->name] = name;
    if (!writer.write_file((dir / name).string(), groups[k])) return 1;
  }
  const json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  return write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n") ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("Writes a deterministic Hugging Face Llama folder with random weights (tests, benchmarks).");
  app.add_option("OUT_DIR", o.out_dir, "output folder (created)")->required();
  app.add_option("--preset", o.preset, "tiny (hidden 256, 4 layers) or llama3-8b (Llama-3-8B shapes)")
      ->check(CLI::IsMember({"tiny", "llama3-8b"}));
  app.add_option("--dtype", o.dtype, "weight dtype")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--shards", o.shards, "number of safetensors files (>1 writes an index)");
  app.add_option("--seed", o.seed, "random seed (output is a pure function of it)");
  app.add_option("--layers", o.layers, "override the preset's layer count")->check(CLI::Range(1, 1024));
  app.add_flag("--classic-config", o.classic_config, "torch_dtype/rope_theta keys instead of transformers-5 style");
  app.add_option("--threads", o.threads, "worker threads (0 = all cores; does not change the output)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run(o);
}
