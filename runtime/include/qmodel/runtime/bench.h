// Benchmark of a loaded model on its device (what `qrun --bench` prints): prefill throughput at
// several prompt lengths, decode throughput over a run of greedy steps, memory, and the bytes a
// decode step reads against a bandwidth roofline. Prompts are random token ids (speed does not
// depend on the values), so it runs on models without a tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/runtime/model.h"

namespace qmodel::runtime {

struct BenchOptions {
  std::vector<uint32_t> prefill_lengths = {128, 512, 2048};
  uint32_t decode_tokens = 256;   // greedy steps after a 16-token prompt
  uint32_t repeats = 3;           // timed runs per prefill length (median), after one warm-up
  double bandwidth_gb_per_s = 0;  // device read bandwidth for the roofline; 0 = not reported
  uint64_t seed = 1;
};

struct PrefillFigure {
  uint32_t tokens = 0;
  double seconds = 0;             // median of the repeats
  double tokens_per_second = 0;
};

struct BenchResult {
  std::string device;
  double load_seconds = 0;
  std::vector<PrefillFigure> prefill;
  uint32_t decode_tokens = 0;
  double decode_seconds = 0;
  double decode_tokens_per_second = 0;
  uint64_t weight_bytes_per_token = 0;   // Model::weight_bytes_per_token
  uint64_t kv_bytes_per_token = 0;       // mean KV-cache bytes a decode step reads over the run
  double roofline_fraction = 0;          // (weights + KV) bytes * tok/s / bandwidth; 0 if unknown
  uint64_t weight_bytes = 0, kv_cache_bytes = 0, scratch_bytes = 0;
  uint64_t device_allocated_bytes = 0, device_used_bytes = 0;  // CUDA only
  uint64_t process_peak_resident_bytes = 0;

  std::string to_text() const;  // a small human-readable table
  std::string to_json() const;  // one line, for scripts
};

// kInvalidArgument for an empty length list, a zero length or a length beyond the model's
// max_position_embeddings; errors of Session::create / prefill / generate otherwise.
Result<BenchResult> run_bench(const Model& model, const BenchOptions& options);

}  // namespace qmodel::runtime
