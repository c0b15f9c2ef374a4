// y = x·Wᵀ (+ bias) straight from the stored weight: each output row of W is dequantized one
// chunk of kMatmulChunk columns at a time into a stack buffer and reused for all m activation
// rows (Eigen GEMV/dot on the chunk), so no dequantized copy of the matrix ever exists. fp32
// accumulation; one rounding to the activation type at the end. This is the CPU runtime's linear.
#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "qmodel/format/half.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

// 1024 floats = 4 KiB: fits L1 next to the activation chunk, and is a multiple of every 4-bit
// block size up to 1024 so chunks of a row-aligned weight rarely split a block.
constexpr size_t kMatmulChunk = 1024;

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstStridedMap = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

// Activations as fp32, converted once per call (m*cols values; the weight is never copied).
const float* activations_as_f32(ActType act, const void* x, size_t n, std::vector<float>& buf) {
  if (act == ActType::kF32) return static_cast<const float*>(x);
  const uint16_t* h = static_cast<const uint16_t*>(x);
  buf.resize(n);
  if (act == ActType::kF16) {
    for (size_t i = 0; i < n; ++i) buf[i] = f16_to_float(h[i]);
  } else {
    for (size_t i = 0; i < n; ++i) buf[i] = bf16_to_float(h[i]);
  }
  return buf.data();
}

void store(ActType act, void* y, size_t index, float v) {
  switch (act) {
    case ActType::kF32: static_cast<float*>(y)[index] = v; return;
    case ActType::kF16: static_cast<uint16_t*>(y)[index] = float_to_f16(v); return;
    case ActType::kBF16: static_cast<uint16_t*>(y)[index] = float_to_bf16(v); return;
  }
}

}  // namespace

void matmul_ref(ActType act, const void* x, size_t m, const WeightView& w, const float* bias,
                void* y, size_t row_begin, size_t row_end) {
  QMODEL_ASSERT(row_begin <= row_end && row_end <= w.rows);
  if (m == 0 || row_begin == row_end) return;
  const size_t k = w.cols;
  thread_local std::vector<float> x_buf;
  thread_local std::vector<float> acc_buf;
  const float* xf = activations_as_f32(act, x, m * k, x_buf);
  acc_buf.assign(m, 0.0f);
  Eigen::Map<Eigen::VectorXf> acc(acc_buf.data(), static_cast<Eigen::Index>(m));
  alignas(64) float chunk[kMatmulChunk];

  for (size_t r = row_begin; r < row_end; ++r) {
    acc.setZero();
    for (size_t k0 = 0; k0 < k; k0 += kMatmulChunk) {
      const size_t len = std::min(kMatmulChunk, k - k0);
      const float* wrow = chunk;
      if (w.storage == StorageType::kF32) {
        wrow = static_cast<const float*>(w.data) + r * k + k0;  // already fp32: read in place
      } else {
        dequantize_ref(w, r * k + k0, len, chunk);
      }
      const auto n_cols = static_cast<Eigen::Index>(len);
      Eigen::Map<const Eigen::VectorXf> wv(wrow, n_cols);
      if (m == 1) {
        acc[0] += Eigen::Map<const Eigen::VectorXf>(xf + k0, n_cols).dot(wv);
      } else {
        ConstStridedMap xs(xf + k0, static_cast<Eigen::Index>(m), n_cols,
                           Eigen::OuterStride<>(static_cast<Eigen::Index>(k)));
        acc.noalias() += xs * wv;
      }
    }
    const float b = bias != nullptr ? bias[r] : 0.0f;
    for (size_t i = 0; i < m; ++i) store(act, y, i * w.rows + r, acc[static_cast<Eigen::Index>(i)] + b);
  }
}

}  // namespace qmodel::kernels
