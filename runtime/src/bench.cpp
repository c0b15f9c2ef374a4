// run_bench: fresh session sized for the longest prompt, one warm-up per measurement (it also
// captures the CUDA decode graph), medians of the timed repeats.
#include "qmodel/runtime/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "qmodel/runtime/session.h"

namespace qmodel::runtime {
namespace {

constexpr uint32_t kDecodePromptTokens = 16;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int32_t> random_ids(std::mt19937_64& rng, size_t n, uint32_t vocab) {
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab) - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = pick(rng);
  return ids;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

Result<BenchResult> run_bench(const Model& model, const BenchOptions& options) {
  const format::ModelConfig& c = model.config();
  if (options.prefill_lengths.empty() && options.decode_tokens == 0) {
    return Status(StatusCode::kInvalidArgument, "bench: nothing to measure");
  }
  uint32_t longest = kDecodePromptTokens + options.decode_tokens;
  for (uint32_t n : options.prefill_lengths) {
    if (n == 0) return Status(StatusCode::kInvalidArgument, "bench: a prefill length of 0");
    longest = std::max(longest, n);
  }
  if (c.max_position_embeddings != 0 && longest > c.max_position_embeddings) {
    return Status(StatusCode::kInvalidArgument, "bench: " + std::to_string(longest) +
                                                    " tokens exceed the model's max_position_embeddings of " +
                                                    std::to_string(c.max_position_embeddings));
  }
  SessionOptions so;
  so.max_context = longest;
  so.prefill_chunk = longest;
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::create(model, so));
  std::mt19937_64 rng(options.seed);

  BenchResult r;
  r.device = device_name(model.options().device);
  r.load_seconds = model.load_seconds();
  for (uint32_t n : options.prefill_lengths) {
    const std::vector<int32_t> ids = random_ids(rng, n, c.vocab_size);
    std::vector<double> times;
    for (uint32_t rep = 0; rep <= options.repeats; ++rep) {
      session->reset();
      const auto t0 = std::chrono::steady_clock::now();
      QMODEL_RETURN_IF_ERROR(session->prefill(ids).status());
      if (rep > 0) times.push_back(seconds_since(t0));  // run 0 is the warm-up
    }
    PrefillFigure f;
    f.tokens = n;
    f.seconds = median(times);
    f.tokens_per_second = f.seconds > 0 ? n / f.seconds : 0;
    r.prefill.push_back(f);
  }

  if (options.decode_tokens > 0) {
    GenerateOptions gen;
    gen.use_default_stop_ids = false;  // random weights emit EOS at random: never stop early
    const std::vector<int32_t> prompt = random_ids(rng, kDecodePromptTokens, c.vocab_size);
    gen.max_new_tokens = 8;
    QMODEL_RETURN_IF_ERROR(session->generate(prompt, gen).status());  // warm-up (captures graphs)
    const Stats before = session->stats();
    gen.max_new_tokens = options.decode_tokens + 1;  // the first token comes from the prompt's logits
    QMODEL_RETURN_IF_ERROR(session->generate(prompt, gen).status());
    const Stats after = session->stats();
    r.decode_tokens = static_cast<uint32_t>(after.decode_tokens - before.decode_tokens);
    r.decode_seconds = after.decode_seconds - before.decode_seconds;
    r.decode_tokens_per_second = r.decode_seconds > 0 ? r.decode_tokens / r.decode_seconds : 0;
  }
  const Stats s = session->stats();
  r.weight_bytes = s.weight_bytes;
  r.kv_cache_bytes = s.kv_cache_bytes;
  r.scratch_bytes = s.scratch_bytes;
  r.device_allocated_bytes = s.device_allocated_bytes;
  r.device_used_bytes = s.device_used_bytes;
  r.process_peak_resident_bytes = s.process_peak_resident_bytes;
  r.weight_bytes_per_token = model.weight_bytes_per_token();
  // Step i attends over kDecodePromptTokens + i positions; each position is a K and a V row.
  const uint64_t kv_row = s.kv_cache_bytes / 2 / std::max<uint64_t>(1, longest);
  const double mean_context = kDecodePromptTokens + options.decode_tokens / 2.0;
  r.kv_bytes_per_token = static_cast<uint64_t>(2.0 * kv_row * mean_context);
  if (options.bandwidth_gb_per_s > 0 && r.decode_tokens_per_second > 0) {
    r.roofline_fraction = static_cast<double>(r.weight_bytes_per_token + r.kv_bytes_per_token) *
                          r.decode_tokens_per_second / (options.bandwidth_gb_per_s * 1e9);
  }
  return r;
}

std::string BenchResult::to_text() const {
  char line[256];
  std::string out;
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof(line), fmt, args...);
    out += line;
  };
  add("device: %s   load: %.3f s\n", device.c_str(), load_seconds);
  for (const PrefillFigure& f : prefill) add("prefill %5u tokens: %10.1f tok/s  (%.4f s)\n", f.tokens, f.tokens_per_second, f.seconds);
  if (decode_tokens > 0) add("decode  %5u tokens: %10.1f tok/s\n", decode_tokens, decode_tokens_per_second);
  add("bytes read per decode token: %.3f GB weights + %.4f GB KV cache\n", weight_bytes_per_token / 1e9,
      kv_bytes_per_token / 1e9);
  if (roofline_fraction > 0) add("decode bandwidth roofline: %.1f%%\n", 100.0 * roofline_fraction);
  add("memory: weights %.3f GB, KV cache %.3f GB, workspace %.3f GB", weight_bytes / 1e9, kv_cache_bytes / 1e9,
      scratch_bytes / 1e9);
  if (device_allocated_bytes > 0) {
    add("; GPU allocated %.3f GB, GPU in use %.3f GB (context included)", device_allocated_bytes / 1e9,
        device_used_bytes / 1e9);
  }
  add("; host peak RSS %.3f GB\n", process_peak_resident_bytes / 1e9);
  return out;
}

std::string BenchResult::to_json() const {
  nlohmann::json j;
  j["device"] = device;
  j["load_seconds"] = load_seconds;
  for (const PrefillFigure& f : prefill) {
    j["prefill"].push_back({{"tokens", f.tokens}, {"seconds", f.seconds}, {"tokens_per_second", f.tokens_per_second}});
  }
  j["decode_tokens"] = decode_tokens;
  j["decode_tokens_per_second"] = decode_tokens_per_second;
  j["weight_bytes_per_token"] = weight_bytes_per_token;
  j["kv_bytes_per_token"] = kv_bytes_per_token;
  j["roofline_fraction"] = roofline_fraction;
  j["weight_bytes"] = weight_bytes;
  j["kv_cache_bytes"] = kv_cache_bytes;
  j["scratch_bytes"] = scratch_bytes;
  j["device_allocated_bytes"] = device_allocated_bytes;
  j["device_used_bytes"] = device_used_bytes;
  j["process_peak_resident_bytes"] = process_peak_resident_bytes;
  return j.dump();
}

}  // namespace qmodel::runtime
