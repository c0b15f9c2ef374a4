// Dequantization of any flat range of a stored weight to fp32, for every storage type; 4-bit
// blocks may straddle rows and the range may start or end inside a block or a byte. All
// arithmetic is float32 in bnb's order: lut[nibble] * absmax, absmax = dyn[q] * nested + offset.
#include <algorithm>
#include <cstring>

#include "qmodel/format/half.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

// bnb's int8 dequant multiplies by this python float (cast to float32), not by dividing by 127.
constexpr float kInt8DequantScale = 7.874015718698502e-3f;

void dequantize_4bit(const WeightView& w, size_t first, size_t count, float* out) {
  const uint8_t* codes = static_cast<const uint8_t*>(w.data);
  const float* lut = w.code_table;
  const size_t end = first + count;
  size_t i = first;
  while (i < end) {
    const size_t b = i / w.block_size;
    const size_t blk_end = std::min(end, (b + 1) * w.block_size);
    const float a = block_absmax_ref(w, b);
    if (i < blk_end && (i & 1)) {  // range starts on a low nibble
      *out++ = lut[codes[i / 2] & 0xF] * a;
      ++i;
    }
    for (; i + 1 < blk_end; i += 2) {  // whole bytes: the loop the runtime spends its time in
      const uint8_t byte = codes[i / 2];
      out[0] = lut[byte >> 4] * a;
      out[1] = lut[byte & 0xF] * a;
      out += 2;
    }
    if (i < blk_end) {  // range (or a block of odd length) ends on a high nibble
      *out++ = lut[codes[i / 2] >> 4] * a;
      ++i;
    }
  }
}

void dequantize_int8(const WeightView& w, size_t first, size_t count, float* out) {
  const int8_t* q = static_cast<const int8_t*>(w.data);
  size_t i = first;
  const size_t end = first + count;
  while (i < end) {
    const size_t row = i / w.cols;
    const size_t row_end = std::min(end, (row + 1) * w.cols);
    const float scb = w.row_scale[row];
    for (; i < row_end; ++i) *out++ = static_cast<float>(q[i]) * scb * kInt8DequantScale;
  }
}

}  // namespace

float block_absmax_ref(const WeightView& w, size_t block) {
  if (w.absmax_codes == nullptr) return w.absmax[block];
  QMODEL_ASSERT(w.nested_block_size > 0);
  // Kept as two roundings (bnb: dequantize_blockwise, then a separate `+ offset`): the volatile
  // stops a compiler targeting FMA hardware from fusing them. Once per block, so it costs nothing.
  volatile float scaled =
      w.nested_code_table[w.absmax_codes[block]] * w.nested_absmax[block / w.nested_block_size];
  return scaled + w.nested_offset;
}

void dequantize_ref(const WeightView& w, size_t first, size_t count, float* out) {
  QMODEL_ASSERT(first <= w.rows * w.cols && count <= w.rows * w.cols - first);
  if (count == 0) return;
  switch (w.storage) {
    case StorageType::kF32:
      std::memcpy(out, static_cast<const float*>(w.data) + first, count * sizeof(float));
      return;
    case StorageType::kF16: {
      const uint16_t* h = static_cast<const uint16_t*>(w.data) + first;
      for (size_t i = 0; i < count; ++i) out[i] = f16_to_float(h[i]);
      return;
    }
    case StorageType::kBF16: {
      const uint16_t* h = static_cast<const uint16_t*>(w.data) + first;
      for (size_t i = 0; i < count; ++i) out[i] = bf16_to_float(h[i]);
      return;
    }
    case StorageType::kNF4:
    case StorageType::kFP4:
      QMODEL_ASSERT(w.block_size > 0 && w.code_table != nullptr);
      dequantize_4bit(w, first, count, out);
      return;
    case StorageType::kINT8:
      QMODEL_ASSERT(w.row_scale != nullptr);
      dequantize_int8(w, first, count, out);
      return;
  }
  QMODEL_ASSERT(false && "unknown storage type");
}

}  // namespace qmodel::kernels
