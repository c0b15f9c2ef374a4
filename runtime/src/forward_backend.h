// What a Session needs from a device backend: run tokens through the model (KV cache and
// workspace owned by the backend) and, where the backend can, sample the next token on the
// device. CpuForward (forward.h) and CudaForward (runtime/cuda/cuda_forward.h) implement it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "qmodel/format/status.h"
#include "qmodel/runtime/sampler.h"
#include "qmodel/runtime/stats.h"

namespace qmodel::runtime {

class ForwardBackend {
 public:
  virtual ~ForwardBackend() = default;

  // Runs ids[0..m) at positions [start, start + m) (m <= max_chunk(), start + m <= max_context();
  // the caller checks ids are < vocab). Writes their K/V into the cache and the fp32 logits of the
  // last token ([vocab]) or, with all_logits, of every token ([m, vocab]) to host memory `logits`
  // (nullptr: logits are not wanted on the host, e.g. before sample_last()).
  virtual Status run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) = 0;

  // Device sampling (backends that return true from samples_on_device()): the next token drawn
  // from the last logits computed by run() / decode_and_sample(), and one decode step of `id` at
  // `position` followed by sampling, without copying logits to the host. `uniform` is the draw in
  // [0, 1) the host Sampler would use (ignored when greedy).
  virtual bool samples_on_device() const { return false; }
  virtual Result<int32_t> sample_last(const SamplingOptions& options, double uniform);
  virtual Result<int32_t> decode_and_sample(int32_t id, size_t position, const SamplingOptions& options,
                                            double uniform);

  virtual size_t max_context() const = 0;
  virtual size_t max_chunk() const = 0;
  // Fills the memory fields of `stats` this backend knows (KV cache, scratch, device memory).
  virtual void fill_memory_stats(Stats& stats) const = 0;
};

}  // namespace qmodel::runtime
