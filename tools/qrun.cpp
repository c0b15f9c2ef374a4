// qrun: run a .qmodel — prompt (text or ids) in, streamed text out, then LitGPT-style timing and
// memory lines on stderr. Exit codes: 0 ok, 1 error (message on stderr), 2 usage.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "qmodel/format/fault_guard.h"
#include "qmodel/runtime/bench.h"
#include "qmodel/runtime/model.h"
#include "qmodel/runtime/npy.h"
#include "qmodel/runtime/offload_plan.h"
#include "qmodel/runtime/session.h"

namespace {

using qmodel::Status;
namespace rt = qmodel::runtime;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr double kBytesPerGB = 1e9;

struct Args {
  std::string model_path, prompt, prompt_ids, dump_logits, device = "cpu", compute_dtype;
  uint32_t max_new_tokens = 128;
  float temperature = -1.0f;  // unset: the file's generation defaults, else greedy
  int32_t top_k = -1;
  float top_p = -1.0f;
  uint64_t seed = 0;
  unsigned threads = 0;
  bool print_ids = false;
  bool ignore_eos = false;
  std::string stop_ids, gpu_memory, trusted_key;
  bool bench = false;
  std::string bench_prefill = "128,512,2048", bench_json;
  uint32_t bench_decode = 256, bench_repeats = 3;
  double bandwidth_gbs = 0;
};

int fail(const Status& status) {
  std::fprintf(stderr, "qrun: error: %s\n", status.to_string().c_str());
  return kExitError;
}

// "1 17 250" (spaces or commas) -> ids; kInvalidArgument on anything else.
qmodel::Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::string s = text;
  for (char& c : s) c = (c == ',') ? ' ' : c;
  std::istringstream in(s);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) {
      return Status(qmodel::StatusCode::kInvalidArgument, "--prompt-ids: '" + word + "' is not a token id");
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return Status(qmodel::StatusCode::kInvalidArgument, "--prompt-ids: no ids given");
  return ids;
}

// The ids of `ids` the model can emit; the others are named in one warning and dropped.
std::vector<int32_t> usable_stop_ids(const std::vector<int32_t>& ids, const rt::Model& model, const char* what) {
  const uint32_t vocab = model.config().vocab_size;
  std::vector<int32_t> kept;
  std::string dropped;
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<uint32_t>(id) < vocab) {
      kept.push_back(id);
    } else {
      dropped += (dropped.empty() ? "" : " ") + std::to_string(id);
    }
  }
  if (!dropped.empty()) {
    std::fprintf(stderr, "qrun: warning: %s: ignoring stop id(s) outside the vocabulary of %u: %s\n", what, vocab,
                 dropped.c_str());
  }
  return kept;
}

// Command-line sampling overrides on top of the file's generation defaults (greedy without them).
rt::SamplingOptions sampling_options(const Args& a, const rt::Model& model) {
  rt::SamplingOptions s;
  const qmodel::format::GenerationDefaults& g = model.generation_defaults();
  if (g.do_sample) {
    s.temperature = g.temperature;
    s.top_k = g.top_k;
    s.top_p = g.top_p;
  }
  if (a.temperature >= 0.0f) s.temperature = a.temperature;
  if (a.top_k >= 0) s.top_k = a.top_k;
  if (a.top_p >= 0.0f) s.top_p = a.top_p;
  s.seed = a.seed;
  return s;
}

// --bench: no prompt; random ids at the requested lengths (see qmodel/runtime/bench.h).
int bench(const Args& a, const rt::Model& model) {
  rt::BenchOptions options;
  options.prefill_lengths.clear();
  if (!a.bench_prefill.empty() && a.bench_prefill != "0") {
    auto lengths = parse_ids(a.bench_prefill);
    if (!lengths.ok()) {
      std::fprintf(stderr, "qrun: --bench-prefill: expected token counts, e.g. 128,512,2048\n");
      return kExitUsage;
    }
    for (int32_t n : *lengths) options.prefill_lengths.push_back(static_cast<uint32_t>(n));
  }
  options.decode_tokens = a.bench_decode;
  options.repeats = a.bench_repeats;
  options.bandwidth_gb_per_s = a.bandwidth_gbs;
  auto result = rt::run_bench(model, options);
  if (!result.ok()) return fail(result.status());
  std::printf("%s", result->to_text().c_str());
  if (!a.bench_json.empty()) {
    FILE* f = std::fopen(a.bench_json.c_str(), "w");
    if (f == nullptr) {
      return fail(Status(qmodel::StatusCode::kIoError, a.bench_json + ": cannot open for writing"));
    }
    const std::string json = result->to_json() + "\n";
    const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
    if (std::fclose(f) != 0 || !written) {
      return fail(Status(qmodel::StatusCode::kIoError, a.bench_json + ": write failed"));
    }
  }
  return 0;
}

int run(const Args& a) {
  std::vector<int32_t> ids_from_args;
  if (!a.prompt_ids.empty()) {
    auto ids = parse_ids(a.prompt_ids);
    if (!ids.ok()) {
      std::fprintf(stderr, "qrun: %s\n", ids.status().message().c_str());
      return kExitUsage;
    }
    ids_from_args = std::move(ids).value();
  }
  rt::ModelOptions model_options;
  if (!a.trusted_key.empty()) {
    auto key = qmodel::format::load_public_key(a.trusted_key);
    if (!key.ok()) {
      std::fprintf(stderr, "qrun: --trusted-key: %s\n", key.status().message().c_str());
      return kExitUsage;
    }
    model_options.trusted_key = key.value();
  }
  model_options.device = a.device == "cuda" ? rt::Device::kCuda : rt::Device::kCpu;
  model_options.n_threads = a.threads;
  if (a.compute_dtype == "bf16") model_options.compute_dtype = qmodel::ComputeDType::kBF16;
  if (a.compute_dtype == "f16") model_options.compute_dtype = qmodel::ComputeDType::kF16;
  if (a.compute_dtype == "f32") model_options.compute_dtype = qmodel::ComputeDType::kF32;
  if (!a.gpu_memory.empty()) {
    auto budget = rt::parse_memory_budget(a.gpu_memory);
    if (!budget.ok()) {
      std::fprintf(stderr, "qrun: --gpu-memory: %s\n", budget.status().message().c_str());
      return kExitUsage;
    }
    model_options.gpu_memory = *budget;
  }
  // The KV cache the budget reserves: the prompt (at most one token per byte of text, plus
  // specials) and the new tokens.
  if (!a.bench) {
    const size_t prompt_bound = ids_from_args.empty() ? a.prompt.size() + 8 : ids_from_args.size();
    model_options.reserve_context = static_cast<uint32_t>(std::min<size_t>(prompt_bound + a.max_new_tokens, UINT32_MAX));
  }
  auto model = rt::Model::open(a.model_path, model_options);
  if (!model.ok()) return fail(model.status());
  std::fprintf(stderr, "Time to load model: %.2f seconds.\n", (*model)->load_seconds());
  if (const rt::OffloadPlan* plan = (*model)->offload_plan(); plan != nullptr && plan->n_streamed > 0) {
    std::fprintf(stderr, "%s\n", plan->summary().c_str());
  }
  if (a.bench) return bench(a, **model);
  if (model_options.device == rt::Device::kCpu && model_options.compute_dtype &&
      *model_options.compute_dtype != qmodel::ComputeDType::kF32) {
    std::fprintf(stderr, "note: the CPU backend computes in fp32; --compute-dtype %s applies to CUDA only\n",
                 a.compute_dtype.c_str());
  }

  std::vector<int32_t> prompt = ids_from_args;
  if (prompt.empty()) {
    auto ids = (*model)->encode(a.prompt, /*add_special=*/true);
    if (!ids.ok()) return fail(ids.status());
    prompt = std::move(ids).value();
    if (prompt.empty()) return fail(Status(qmodel::StatusCode::kInvalidArgument, "the prompt encodes to no tokens"));
  }

  rt::SessionOptions session_options;
  uint64_t context = prompt.size() + uint64_t{a.max_new_tokens};
  // The KV cache holds at most the model's context (learned absolute positions end with their
  // table; RoPE models are not trained beyond it): generation stops there, and a huge
  // --max-new-tokens never sizes a huge cache.
  const qmodel::format::ModelConfig& config = (*model)->config();
  if (config.max_position_embeddings != 0 && context > config.max_position_embeddings) {
    context = config.max_position_embeddings;
    std::fprintf(stderr, "note: the model's context is %u tokens: generation stops when it is full\n",
                 config.max_position_embeddings);
  }
  session_options.max_context = static_cast<uint32_t>(std::min<uint64_t>(context, UINT32_MAX));
  auto session = rt::Session::create(**model, session_options);
  if (!session.ok()) return fail(session.status());

  const bool has_tokenizer = (*model)->tokenizer() != nullptr;
  rt::GenerateOptions gen;
  gen.max_new_tokens = a.max_new_tokens;
  gen.use_default_stop_ids = !a.ignore_eos;
  if (!a.stop_ids.empty()) {
    auto ids = parse_ids(a.stop_ids);
    if (!ids.ok()) {
      std::fprintf(stderr, "qrun: --stop-ids: expected token ids, e.g. \"2 32000\"\n");
      return kExitUsage;
    }
    gen.stop_ids = usable_stop_ids(*ids, **model, "--stop-ids");
  }
  if (gen.use_default_stop_ids) {
    // The file's EOS ids, minus any the vocabulary cannot produce (random-init configs keep
    // GPT-2's 50256 with a 400-token vocabulary): said once, then ignored.
    const std::vector<int32_t> eos = usable_stop_ids((*model)->default_stop_ids(), **model, "the model's eos_token_id");
    gen.stop_ids.insert(gen.stop_ids.end(), eos.begin(), eos.end());
    gen.use_default_stop_ids = false;
  }
  gen.sampling = sampling_options(a, **model);
  Status dump_status;
  if (!a.dump_logits.empty()) {
    gen.on_prompt_logits = [&](qmodel::Span<const float> logits, size_t rows, size_t vocab) {
      dump_status = rt::write_npy_f32(a.dump_logits, logits.data(), rows, vocab);
    };
  }
  gen.on_token = [&](int32_t id, const std::string& piece) {
    if (has_tokenizer) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else if (id >= 0) {
      std::printf("%d ", id);
    }
    std::fflush(stdout);
    return false;
  };
  auto result = (*session)->generate(prompt, gen);
  if (!result.ok()) return fail(result.status());
  std::printf("\n");
  if (a.print_ids && has_tokenizer) {
    for (size_t i = 0; i < result->ids.size(); ++i) std::printf("%s%d", i ? " " : "", result->ids[i]);
    std::printf("\n");
  }
  std::fflush(stdout);
  if (!dump_status.ok()) return fail(dump_status);

  const rt::Stats stats = (*session)->stats();
  const size_t n_new = result->ids.size();
  std::fprintf(stderr, "Time for inference: %.2f sec total, %.2f tokens/sec\n", result->seconds,
               result->seconds > 0 ? n_new / result->seconds : 0.0);
  if (model_options.device == rt::Device::kCuda) {
    std::fprintf(stderr, "Memory used: %.2f GB (GPU: weights, KV cache and workspace), %.2f GB host\n",
                 stats.device_allocated_bytes / kBytesPerGB, stats.process_peak_resident_bytes / kBytesPerGB);
  } else {
    std::fprintf(stderr, "Memory used: %.2f GB\n", stats.process_peak_resident_bytes / kBytesPerGB);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  qmodel::format::install_fault_guard("qrun");
  CLI::App app{"qrun: generate text with a .qmodel file on the CPU (fp32 reference) or a CUDA GPU"};
  Args a;
  app.add_option("model", a.model_path, "the .qmodel file")->required();
  auto* prompt = app.add_option("--prompt", a.prompt, "prompt text (needs the embedded tokenizer)");
  auto* prompt_ids = app.add_option("--prompt-ids", a.prompt_ids, "prompt as token ids, e.g. \"1 17 250\"");
  prompt->excludes(prompt_ids);
  app.add_option("--max-new-tokens", a.max_new_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--temperature", a.temperature, "0 = greedy (default: the file's generation defaults, else greedy)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", a.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", a.top_p, "nucleus sampling threshold in (0, 1]")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", a.seed, "random seed")->capture_default_str();
  app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_option("--compute-dtype", a.compute_dtype, "bf16, f16 or f32 (CUDA only; the CPU computes in fp32)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--threads", a.threads, "worker threads (0 = all cores; at most 1024)")->check(CLI::Range(0u, 1024u));
  app.add_flag("--print-ids", a.print_ids, "also print the generated token ids");
  app.add_option("--gpu-memory", a.gpu_memory, "--device cuda: GPU memory budget (6GiB, 5000MB, 90%); blocks that do not "
                                               "fit stream from the file (default: free memory less 256 MiB)");
  app.add_option("--trusted-key", a.trusted_key, "refuse the file unless it is signed by this Ed25519 public key (qkeygen)")
      ->check(CLI::ExistingFile);
  app.add_flag("--ignore-eos", a.ignore_eos, "do not stop at the model's EOS ids: generate exactly --max-new-tokens");
  app.add_option("--stop-ids", a.stop_ids, "extra ids that end generation, e.g. \"2 32000\" (ids outside the vocabulary "
                                           "are ignored with a warning)");
  app.add_option("--dump-logits", a.dump_logits, "write the logits of every prompt position to FILE.npy");
  auto* bench = app.add_flag("--bench", a.bench, "benchmark instead of generating: load, prefill and decode speed, memory");
  app.add_option("--bench-prefill", a.bench_prefill, "--bench: prompt lengths to time (0 = none)")->capture_default_str();
  app.add_option("--bench-decode", a.bench_decode, "--bench: greedy decode steps to time")->capture_default_str();
  app.add_option("--bench-repeats", a.bench_repeats, "--bench: timed runs per prompt length (median)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--bandwidth-gbs", a.bandwidth_gbs, "--bench: device read bandwidth (GB/s) for the roofline line");
  app.add_option("--bench-json", a.bench_json, "--bench: also write the figures as one JSON line to FILE");
  bench->excludes(prompt)->excludes(prompt_ids);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (!a.bench && a.prompt.empty() && a.prompt_ids.empty()) {
    std::fprintf(stderr, "qrun: one of --prompt or --prompt-ids is required\n");
    return kExitUsage;
  }
  if (a.top_p == 0.0f || std::isnan(a.top_p)) {
    std::fprintf(stderr, "qrun: --top-p must be in (0, 1]\n");
    return kExitUsage;
  }
  if (std::isnan(a.temperature) || std::isinf(a.temperature)) {
    std::fprintf(stderr, "qrun: --temperature must be a finite number >= 0\n");
    return kExitUsage;
  }
  return run(a);
}
