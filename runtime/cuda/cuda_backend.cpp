// The CUDA backend's entry points (cuda_backend.h) for builds with CUDA or its CPU emulator.
#include "cuda_backend.h"

#include "cuda/cuda_forward.h"
#include "cuda/device_model.h"
#include "model_impl.h"

namespace qmodel::runtime {

Result<std::unique_ptr<DeviceModel>> upload_model_to_cuda(const format::ModelFile& file, const ModelWeights& weights,
                                                          const ModelOptions&) {
  QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaDeviceModel> model, cuda::CudaDeviceModel::upload(file, weights));
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
