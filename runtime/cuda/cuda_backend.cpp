// The CUDA backend's entry points (cuda_backend.h) for builds with CUDA or its CPU emulator.
#include "cuda_backend.h"

#include <cuda_runtime_api.h>

#include "cuda/cuda_forward.h"
#include "cuda/device_model.h"
#include "model_impl.h"
#include "qmodel/kernels/cuda.h"

namespace qmodel::runtime {

Result<std::unique_ptr<DeviceModel>> upload_model_to_cuda(const format::ModelFile& file, const ModelWeights& weights,
                                                          const ModelOptions& options) {
  size_t free_bytes = 0, total_bytes = 0;
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
  OffloadOptions o;
  const MemoryBudget& b = options.gpu_memory;
  o.budget_bytes = b.bytes != 0            ? b.bytes
                   : b.fraction != 0.0     ? static_cast<uint64_t>(b.fraction * static_cast<double>(free_bytes))
                   : free_bytes > kDefaultSafetyMarginBytes ? free_bytes - kDefaultSafetyMarginBytes
                                                            : 0;
  if (o.budget_bytes == 0) {
    return Status(StatusCode::kOutOfMemory, file.path() + ": the GPU has " + std::to_string(free_bytes) +
                                                " bytes free, no more than the safety margin");
  }
  o.context = options.reserve_context;
  o.prefill_chunk = options.reserve_prefill_chunk;
  o.compute_dtype = options.compute_dtype.value_or(file.header().quant_settings.compute_dtype);
  Result<OffloadPlan> plan = plan_offload(file.header(), o);
  if (!plan.ok()) return Status(plan.status().code(), file.path() + ": " + plan.status().message());
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaDeviceModel> model,
                          cuda::CudaDeviceModel::upload(file, weights, &plan.value()));
  return std::unique_ptr<DeviceModel>(std::move(model));
}

Result<std::unique_ptr<ForwardBackend>> create_cuda_forward(const Model& model, size_t max_context, size_t max_chunk) {
  const auto* device = dynamic_cast<const cuda::CudaDeviceModel*>(model.impl().device.get());
  if (device == nullptr) {
    return Status(StatusCode::kInvalidArgument, model.path() + ": the model was not opened for the cuda device");
  }
  const ComputeDType dtype = model.options().compute_dtype.value_or(model.header().quant_settings.compute_dtype);
  const cuda::ActType act = dtype == ComputeDType::kF32   ? cuda::ActType::kF32
                            : dtype == ComputeDType::kF16 ? cuda::ActType::kF16
                                                          : cuda::ActType::kBF16;
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaForward> forward,
                          cuda::CudaForward::create(model.config(), model.header().arch, *device, act, max_context, max_chunk));
  return std::unique_ptr<ForwardBackend>(std::move(forward));
}

}  // namespace qmodel::runtime
