// The weights of a model in device memory, exactly as stored in the .qmodel file:
// one device arena holds every blob the graph reads (packed codes, absmax or absmax codes + nested
// absmax, INT8 row scales, float matrices), each 256-byte aligned, and DeviceWeightViews point
// into it. Nothing is dequantized or repacked; only the O(hidden) 1-D weights (norms, biases) are
// widened to fp32 on the way, because the fused norm / GEMV epilogues read fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cuda_backend.h"
#include "qmodel/kernels/cuda.h"
#include "qmodel/runtime/offload_plan.h"

namespace qmodel::runtime::cuda {

// Views of absent modules have data == nullptr (rows == 0); absent vectors are nullptr.
struct DeviceLayerWeights {
  kernels::DeviceWeightView wq, wk, wv, wqkv, wo, w_gate, w_up, w_down;
  const float* attn_norm = nullptr;  // fp32 [hidden]
  const float* mlp_norm = nullptr;
  const float *attn_norm_b = nullptr, *mlp_norm_b = nullptr;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bqkv = nullptr, *bo = nullptr;  // fp32 or nullptr
  const float *b_gate = nullptr, *b_up = nullptr, *b_down = nullptr;
};

// A block whose matrices are not resident: per forward pass its blobs are copied, as stored, from
// the registered file mapping into device slot `slot` (the layer's DeviceWeightViews point there).
struct StreamedLayer {
  struct Region {
    const void* host;
    uint64_t bytes, offset;  // offset inside the slot
  };
  uint32_t layer = 0, slot = 0;
  std::vector<Region> regions;
};

class CudaDeviceModel final : public DeviceModel {
 public:
  // Uploads every block (plan == nullptr) or the plan's resident blocks, allocating the plan's
  // slots for the others and keeping the file mapping registered for their copies. Errors:
  // kOutOfMemory naming the bytes needed and free when the weights do not fit; kUnsupported when
  // blocks must stream from a zstd-compressed file (the copies read the mapping); kCuda for a
  // failing CUDA call (no device, driver error).
  static Result<std::unique_ptr<CudaDeviceModel>> upload(const format::ModelFile& file, const ModelWeights& weights,
                                                         const OffloadPlan* plan = nullptr);
  ~CudaDeviceModel() override;

  // The resident arena plus the streaming slots.
  uint64_t device_weight_bytes() const override { return arena_bytes_ + n_slots_ * slot_bytes_; }
  double upload_seconds() const override { return upload_seconds_; }
  const OffloadPlan& offload_plan() const override { return plan_; }
  // True when the copy read the mapping through cudaHostRegister (DMA straight from the page
  // cache); false when it fell back to pageable copies.
  bool used_registered_mapping() const { return registered_; }

  // Streamed blocks in layer order, and the slots they take turns in (empty when all are resident).
  const std::vector<StreamedLayer>& streamed() const { return streamed_; }
  void* slot(uint32_t i) const { return slots_[i]; }
  // The index into streamed() of `layer`, or -1 when it is resident.
  int streamed_index(size_t layer) const { return layer < streamed_index_.size() ? streamed_index_[layer] : -1; }

  kernels::DeviceWeightView embed, lm_head, pos_embed, project_in, project_out;
  const float *final_norm = nullptr, *final_norm_b = nullptr;
  const float *embed_norm = nullptr, *embed_norm_b = nullptr;
  std::vector<DeviceLayerWeights> layers;

 private:
  CudaDeviceModel() = default;
  OffloadPlan plan_;
  void* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
  void* slots_[2] = {nullptr, nullptr};
  uint64_t slot_bytes_ = 0, n_slots_ = 0;
  std::vector<StreamedLayer> streamed_;
  std::vector<int> streamed_index_;
  const void* registered_base_ = nullptr;  // the mapping, registered for the model's lifetime when streaming
  double upload_seconds_ = 0;
  bool registered_ = false;
};

}  // namespace qmodel::runtime::cuda
