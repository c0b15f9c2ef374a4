// The CUDA backend's entry points, as the device-independent runtime sees them. They are defined by
// runtime/cuda (real CUDA, or the CPU emulator of CUDA in the qmodel_runtime_emu variant) or by
// runtime/nocuda (a build without CUDA: both return kUnsupported saying so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "forward_backend.h"
#include "qmodel/format/reader.h"
#include "qmodel/format/status.h"
#include "qmodel/runtime/model.h"
#include "weights.h"

namespace qmodel::runtime {

// A model's weights in device memory (owned by Model::Impl, shared by its sessions).
class DeviceModel {
 public:
  virtual ~DeviceModel() = default;
  virtual uint64_t device_weight_bytes() const = 0;  // bytes of device memory the weights hold
  virtual double upload_seconds() const = 0;
  virtual const OffloadPlan& offload_plan() const = 0;  // what is resident, what streams
};

// Plans the upload under options.gpu_memory (offload_plan.h) and copies every resident weight blob
// the graph reads to the device as stored (no dequantization; 1-D norm weights and biases,
// O(hidden), as fp32); blocks that do not fit stream at run time. kOutOfMemory names the minimum
// budget when even streaming does not fit.
Result<std::unique_ptr<DeviceModel>> upload_model_to_cuda(const format::ModelFile& file, const ModelWeights& weights,
                                                          const ModelOptions& options);

// A CUDA forward pass (KV cache, workspace, stream, decode graph) over the model's DeviceModel.
Result<std::unique_ptr<ForwardBackend>> create_cuda_forward(const Model& model, size_t max_context, size_t max_chunk);

}  // namespace qmodel::runtime
