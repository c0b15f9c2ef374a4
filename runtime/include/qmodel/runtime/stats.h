// Timing and memory figures of a session (what qrun prints, LitGPT style).
#pragma once

#include <cstdint>

namespace qmodel::runtime {

struct Stats {
  double load_seconds = 0;        // Model::open
  uint64_t prefill_tokens = 0;    // prompt tokens run since the session was created
  double prefill_seconds = 0;
  uint64_t decode_tokens = 0;     // single-token steps run
  double decode_seconds = 0;
  uint64_t weight_bytes = 0;      // weight blobs as stored (read from the mapping)
  uint64_t kv_cache_bytes = 0;    // K and V for every layer at the session's max context
  uint64_t scratch_bytes = 0;     // activations and attention workspace
  // CUDA backend only (0 on the CPU): device memory this model and session allocated (weights as
  // stored + KV cache + workspace), and what the device reports in use (total - free: includes
  // the CUDA context and other processes).
  uint64_t device_weight_bytes = 0;
  uint64_t device_allocated_bytes = 0;
  uint64_t device_used_bytes = 0;
  uint64_t process_resident_bytes = 0;       // VmRSS now (mapped pages that were touched count)
  uint64_t process_peak_resident_bytes = 0;  // VmHWM

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
};

// Resident set of this process from /proc/self/status (0 where unavailable).
uint64_t process_resident_bytes();
uint64_t process_peak_resident_bytes();

}  // namespace qmodel::runtime
