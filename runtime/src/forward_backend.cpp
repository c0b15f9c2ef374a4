#include "forward_backend.h"

namespace qmodel::runtime {

Result<int32_t> ForwardBackend::sample_last(const SamplingOptions&, double) {
  return Status(StatusCode::kUnsupported, "this backend samples on the host");
}

Result<int32_t> ForwardBackend::decode_and_sample(int32_t, size_t, const SamplingOptions&, double) {
  return Status(StatusCode::kUnsupported, "this backend samples on the host");
}

}  // namespace qmodel::runtime
