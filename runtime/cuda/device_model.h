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

class CudaDeviceModel final : public DeviceModel {
 public:
  // Errors: kOutOfMemory naming the bytes needed and free when the weights do not fit; kCuda for
  // a failing CUDA call (no device, driver error).
  static Result<std::unique_ptr<CudaDeviceModel>> upload(const format::ModelFile& file, const ModelWeights& weights);
  ~CudaDeviceModel() override;

  uint64_t device_weight_bytes() const override { return arena_bytes_; }
  double upload_seconds() const override { return upload_seconds_; }
  // True when the copy read the mapping through cudaHostRegister (DMA straight from the page
  // cache); false when it fell back to pageable copies.
  bool used_registered_mapping() const { return registered_; }

  kernels::DeviceWeightView embed, lm_head, pos_embed, project_in, project_out;
  const float *final_norm = nullptr, *final_norm_b = nullptr;
  const float *embed_norm = nullptr, *embed_norm_b = nullptr;
  std::vector<DeviceLayerWeights> layers;

 private:
  CudaDeviceModel() = default;
  void* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
  double upload_seconds_ = 0;
  bool registered_ = false;
};

}  // namespace qmodel::runtime::cuda
