// Host-side entry points shared by every kernel family: CUDA error -> Status, validation of a
// DeviceWeightView, the SM count used for grid sizing, and launch_gemv / launch_gemv_multi's
// checks and dispatch by storage type to gemv_4bit.cu / gemv_int8.cu / gemv_float.cu. No kernels
// live here.
#include <string>

#include "common.cuh"

namespace qmodel::kernels {

Status cuda_status(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status();
  return Status(StatusCode::kCuda, std::string(what) + ": " + cudaGetErrorName(error) + ": " +
                                       cudaGetErrorString(error));
}

Status current_sm_count(int* n_sms) {
  int device = 0;
  QMODEL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(n_sms, cudaDevAttrMultiProcessorCount, device));
  return Status();
}

Status validate_device_weight(const DeviceWeightView& w) {
  if (w.rows <= 0 || w.cols <= 0) {
    return Status(StatusCode::kInvalidArgument, "weight: rows and cols must be positive");
  }
  if (w.rows > INT64_MAX / w.cols) return Status(StatusCode::kUnsupported, "weight: rows*cols overflows");
  if (w.data == nullptr) return Status(StatusCode::kInvalidArgument, "weight: data is null");
  switch (w.storage) {
    case StorageType::kF32:
    case StorageType::kF16:
    case StorageType::kBF16:
      return Status();
    case StorageType::kINT8:
      if (w.row_scale == nullptr) return Status(StatusCode::kInvalidArgument, "int8 weight: row_scale (SCB) is null");
      return Status();
    case StorageType::kNF4:
    case StorageType::kFP4:
      if (!is_valid_4bit_block_size(static_cast<uint64_t>(w.block_size))) {
        return Status(StatusCode::kUnsupported,
                      "4-bit weight: block size " + std::to_string(w.block_size) +
                          " not in {32, 64, ..., 4096}");
      }
      if (w.double_quant()) {
        if (w.nested_absmax == nullptr || w.nested_code_table == nullptr) {
          return Status(StatusCode::kInvalidArgument, "4-bit weight: nested absmax or nested code table is null");
        }
        if (w.nested_block_size != kNestedBlockSize) {
          return Status(StatusCode::kUnsupported, "4-bit weight: nested block size " +
                                                      std::to_string(w.nested_block_size) + " (only 256)");
        }
      } else if (w.absmax == nullptr) {
        return Status(StatusCode::kInvalidArgument, "4-bit weight: absmax is null");
      }
      return Status();
  }
  return Status(StatusCode::kInvalidArgument, "weight: unknown storage type");
}

namespace {

// The checks launch_gemv and launch_gemv_multi share, in launch_gemv's historical order after the
// weight itself: m, then the activation type, then x.
Status check_gemv_call(ActType act, const void* x, int64_t m) {
  if (m <= 0) return Status(StatusCode::kInvalidArgument, "gemv: m must be positive");
  if (m > kMaxGemvRows) {
    return Status(StatusCode::kUnsupported, "gemv: m = " + std::to_string(m) + " > 8 (use launch_gemm)");
  }
  if (act != ActType::kBF16 && act != ActType::kF16 && act != ActType::kF32) {
    return Status(StatusCode::kUnsupported, "gemv: activations must be bf16, f16 or f32");
  }
  if (x == nullptr) return Status(StatusCode::kInvalidArgument, "gemv: x is null");
  return Status();
}

// ws[0..count) share storage type and double-quant-ness (checked by the callers).
Status dispatch_gemv(ActType act, const void* x, int m, const DeviceWeightView* ws, const float* const* biases,
                     void* const* ys, int count, cudaStream_t stream) {
  switch (ws[0].storage) {
    case StorageType::kNF4:
    case StorageType::kFP4: return launch_gemv_4bit(act, x, m, ws, biases, ys, count, stream);
    case StorageType::kINT8: return launch_gemv_int8(act, x, m, ws, biases, ys, count, stream);
    case StorageType::kF32:
    case StorageType::kF16:
    case StorageType::kBF16: return launch_gemv_float(act, x, m, ws, biases, ys, count, stream);
  }
  return Status(StatusCode::kInvalidArgument, "gemv: unknown storage type");
}

}  // namespace

Status launch_gemv(ActType act, const void* x, int64_t m, const DeviceWeightView& w,
                   const float* bias, void* y, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(validate_device_weight(w));
  QMODEL_RETURN_IF_ERROR(check_gemv_call(act, x, m));
  if (y == nullptr) return Status(StatusCode::kInvalidArgument, "gemv: y is null");
  return dispatch_gemv(act, x, static_cast<int>(m), &w, &bias, &y, 1, stream);
}

Status launch_gemv_multi(ActType act, const void* x, int64_t m, const DeviceWeightView* ws,
                         const float* const* biases, void* const* ys, int count, cudaStream_t stream) {
  if (count < 1) return Status(StatusCode::kInvalidArgument, "gemv_multi: count must be positive");
  if (count > kMaxGemvMulti) {
    return Status(StatusCode::kUnsupported, "gemv_multi: count = " + std::to_string(count) + " > " +
                                                std::to_string(kMaxGemvMulti));
  }
  if (ws == nullptr || ys == nullptr) return Status(StatusCode::kInvalidArgument, "gemv_multi: ws or ys is null");
  for (int j = 0; j < count; ++j) {
    QMODEL_RETURN_IF_ERROR(validate_device_weight(ws[j]));
    if (ys[j] == nullptr) return Status(StatusCode::kInvalidArgument, "gemv_multi: ys[" + std::to_string(j) + "] is null");
  }
  for (int j = 1; j < count; ++j) {
    // One family and one policy per launch: mixed weights are the caller's separate launches.
    if (ws[j].storage != ws[0].storage || ws[j].double_quant() != ws[0].double_quant()) {
      return Status(StatusCode::kUnsupported, "gemv_multi: weights differ in storage type or double quantization");
    }
    if (ws[j].cols != ws[0].cols) {
      return Status(StatusCode::kInvalidArgument, "gemv_multi: weights differ in cols (they share x)");
    }
  }
  QMODEL_RETURN_IF_ERROR(check_gemv_call(act, x, m));
  const float* no_bias[kMaxGemvMulti] = {nullptr, nullptr, nullptr};
  return dispatch_gemv(act, x, static_cast<int>(m), ws, biases != nullptr ? biases : no_bias, ys, count, stream);
}

}  // namespace qmodel::kernels
