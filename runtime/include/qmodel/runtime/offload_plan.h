// What fits on the GPU, decided before anything is loaded: under a GPU memory budget the KV cache
// for the requested context and the session workspace are reserved first, then whole blocks stay
// resident (the first ones; every block costs the same bus bytes per token per byte kept, so any
// order streams the same bytes), and the remaining blocks' weight blobs stay in the registered
// read-only file mapping and are copied per forward pass into two device slots sized for the
// largest streamed block (double buffering: block l+1 copies while block l computes). Embedding,
// positions, projections, final norm, lm_head and every 1-D weight (norms, biases as fp32) are
// always resident. Pure arithmetic over the header: `qinspect --fit` prints it without a GPU and
// the CUDA loader executes exactly this plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::runtime {

// "6GiB", "5000MB", "4096" (bytes), "1.5 GB", or a fraction of the device's free memory "90%".
struct MemoryBudget {
  uint64_t bytes = 0;     // absolute budget; 0 with fraction == 0: unset
  double fraction = 0.0;  // (0, 1]: of the free device memory
  bool is_set() const { return bytes != 0 || fraction != 0.0; }
};
// kInvalidArgument naming the text when it is not one of the forms above (or is 0 / > 100%).
Result<MemoryBudget> parse_memory_budget(const std::string& text);

// Device memory left aside when the budget is "what the device has free": the CUDA runtime,
// cuBLASLt and the graph executor allocate outside our accounting (handles, kernel images, graph
// nodes), and the allocator rounds allocations to 2 MiB pages; 256 MiB covers those on an H100
// with room to spare while costing under 0.4% of its memory.
inline constexpr uint64_t kDefaultSafetyMarginBytes = uint64_t{256} << 20;

struct OffloadOptions {
  uint64_t budget_bytes = 0;      // device bytes the model may use: weights + KV cache + workspace
  uint32_t context = 0;           // tokens of KV cache to reserve (0: min(max_position_embeddings, 4096))
  uint32_t prefill_chunk = 256;   // prompt tokens per forward pass (sizes the workspace)
  ComputeDType compute_dtype = ComputeDType::kBF16;
  double bus_gb_per_s = 54.0;     // host -> device from the registered mapping (H100, measured)
  double device_gb_per_s = 3100.0;
};

struct OffloadPlan {
  uint64_t budget_bytes = 0;
  uint64_t kv_cache_bytes = 0;     // 2 x layers x context x kv_heads x head_dim x dtype bytes
  uint64_t workspace_bytes = 0;    // activations, logits, GEMM scratch and cuBLASLt workspace
  uint64_t always_resident_bytes = 0;  // embedding, positions, projections, lm_head, 1-D weights
  std::vector<uint64_t> layer_bytes;   // device bytes of each block's matrices (256-byte aligned blobs)
  std::vector<bool> resident;          // per block
  uint32_t n_resident = 0, n_streamed = 0;
  uint32_t n_slots = 0;                // 0 (nothing streamed), 1 or 2
  uint64_t slot_bytes = 0;             // the largest streamed block
  uint64_t weight_device_bytes = 0;    // resident weights + slots: what the weights occupy
  uint64_t device_total_bytes = 0;     // weight_device_bytes + KV cache + workspace
  uint64_t minimum_budget_bytes = 0;   // every block streamed: always-resident + slots + KV + workspace
  uint64_t stored_weight_bytes = 0;    // the file's weight bytes the graph reads
  // Per decode token: bytes read from device memory (every weight but the embedding table, of
  // which one row; plus the KV cache at full context), bytes copied over the bus (the streamed
  // blocks), and the speed those imply with copies overlapped: 1 / max(device, bus) time.
  uint64_t device_bytes_per_token = 0;
  uint64_t bus_bytes_per_token = 0;
  double bus_gb_per_s = 0, device_gb_per_s = 0;
  double decode_tokens_per_s = 0;

  // One line for qrun: "offload: 20 of 32 blocks resident, 12 streamed ...".
  std::string summary() const;
  // The multi-line table qinspect --fit prints.
  std::string to_text(const format::ModelHeader& header) const;
  std::string to_json() const;
};

// kOutOfMemory naming the minimum budget when even one streamed block (two slots) plus the KV
// cache and workspace do not fit; kInvalidArgument for a zero budget or context; kCorruptFile
// when the header lacks the roles the description needs.
Result<OffloadPlan> plan_offload(const format::ModelHeader& header, const OffloadOptions& options);

// The device bytes one stored tensor occupies when uploaded as stored (every blob 256-byte
// aligned; 1-D weights widened to fp32; the nested code table of a double-quantized tensor).
uint64_t device_tensor_bytes(const format::TensorInfo& tensor);

// The context a session reserves by default for this config (what SessionOptions{} gives).
uint32_t default_context(const format::ModelConfig& config);

}  // namespace qmodel::runtime
