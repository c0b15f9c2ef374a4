// A verified, memory-mapped .qmodel ready to run. Model::open maps the file through
// format::ModelFile (which verifies every rule before anything is used), checks that the
// architecture is supported and that every tensor the graph needs is present with the right shape,
// and binds each weight as a kernels::WeightView pointing INTO the mapping: the runtime never
// requantizes and never keeps a dequantized copy of a weight matrix.
// A Model is immutable after open() and may be shared by several Sessions (one per thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qmodel/format/quant_blocks.h"
#include "qmodel/format/signing.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"
#include "qmodel/runtime/offload_plan.h"
#include "qmodel/runtime/tokenizer.h"

namespace qmodel::runtime {

enum class Device : uint8_t {
  kCpu,   // reference backend: fp32 compute, multi-threaded, reads the quantized blobs as stored
  kCuda,  // the product: weights uploaded as stored, fused kernels, CUDA-graph decode
};

const char* device_name(Device device);

struct ModelOptions {
  Device device = Device::kCpu;
  // Activation dtype. The CPU backend always computes in fp32 (ignores this); it only matters for
  // CUDA (bf16 / fp16 / fp32 activations, KV cache and GEMM inputs; accumulation is always fp32).
  // Unset = the file's quantization settings (bnb_4bit_compute_dtype).
  std::optional<ComputeDType> compute_dtype;
  unsigned n_threads = 0;          // default worker threads of sessions; 0 = hardware concurrency
  bool verify_checksums = false;   // also hash every blob at open (reads the whole file)
  // Refuse a file that is not signed by this key (format::OpenOptions::trusted_key; reads the
  // whole file at open). Unset: unsigned files open.
  std::optional<format::PublicKey> trusted_key;
  // Device::kCuda: the GPU memory the model may use (weights, KV cache, workspace). Unset: what
  // the device has free less kDefaultSafetyMarginBytes. Blocks that do not fit stream from the
  // registered file mapping (offload_plan.h); a budget below the minimum is kOutOfMemory.
  MemoryBudget gpu_memory;
  uint32_t reserve_context = 0;        // KV cache tokens the budget reserves (0: default_context())
  uint32_t reserve_prefill_chunk = 256;  // prefill chunk the workspace is sized for
};

class Model {
 public:
  // Errors: whatever format::ModelFile::open reports (kIoError, kCorruptFile, ...);
  // kUnsupported for an unknown architecture, activation or RoPE scaling, or Device::kCuda in a
  // build without CUDA; kOutOfMemory (naming the shortfall) when the weights do not fit the GPU;
  // kNotFound naming the first missing tensor; kCorruptFile naming a tensor with a wrong shape or
  // an unusable embedded tokenizer.
  static Result<std::unique_ptr<Model>> open(const std::string& path, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& path() const;
  const format::ModelConfig& config() const;
  const format::GenerationDefaults& generation_defaults() const;
  const format::ModelHeader& header() const;
  const ModelOptions& options() const;
  // nullptr when the file embeds no tokenizer.json (the model then runs from token ids only).
  const Tokenizer* tokenizer() const;
  // Text -> ids with the embedded tokenizer; kInvalidArgument when there is none.
  Result<std::vector<int32_t>> encode(const std::string& text, bool add_special = true) const;
  // Stop ids for generation: generation_config eos ids, else config eos ids, else the tokenizer's.
  std::vector<int32_t> default_stop_ids() const;

  double load_seconds() const;     // open(): map + verify + bind + tokenizer
  uint64_t weight_bytes() const;   // bytes of all weight blobs the graph reads (as stored)
  // Weight bytes one decode step reads: everything but the embedding table, of which one row
  // (unless lm_head is tied to it). The numerator of the decode bandwidth roofline.
  uint64_t weight_bytes_per_token() const;

  // Device::kCuda: the plan the weights were loaded with (every block resident when they fit).
  // nullptr on the CPU.
  const OffloadPlan* offload_plan() const;

  struct Impl;                     // runtime-internal (weights, mapping); see src/model_impl.h
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmodel::runtime
