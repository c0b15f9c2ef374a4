// The CUDA entry points of a build configured without CUDA (QMODEL_ENABLE_CUDA=OFF or no nvcc):
// Device::kCuda is refused with a message saying how to get it.
#include "cuda_backend.h"

namespace qmodel::runtime {
namespace {
Status no_cuda() {
  return Status(StatusCode::kUnsupported,
                "this build of qmodel has no CUDA backend (configure with the CUDA toolkit and "
                "-DQMODEL_ENABLE_CUDA=ON); use the cpu device");
}
}  // namespace

Result<std::unique_ptr<DeviceModel>> upload_model_to_cuda(const format::ModelFile&, const ModelWeights&,
                                                          const ModelOptions&) {
  return no_cuda();
}

Result<std::unique_ptr<ForwardBackend>> create_cuda_forward(const Model&, size_t, size_t) { return no_cuda(); }

}  // namespace qmodel::runtime
